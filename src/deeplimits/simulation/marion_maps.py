r"""Output and gradient change of res-1 / res-3 networks at initialisation, over the branch
exponent beta and the Hurst index H of the weights (``trained_scaling.md`` §9, MFBV22).

For a network of :func:`~deeplimits.spec.trainable.init_marion` with rough (fractional
Gaussian noise, Hurst H; H = 1/2 is i.i.d. Gaussian) weight sequences, hidden recursion
``h_{k+1} = h_k + L^{-beta} V_{k+1} sigma(W_{k+1} h_k)`` (res-3; ``W = I`` for res-1) from
``h_0 = A x``:

* output change ``|h_L - h_0| / |h_0|``;
* gradient change ``|p_0 - p_L| / |p_L|``, ``p_k = d<u, h_L>/dh_k`` for a fixed random unit
  direction ``u`` (so ``p_L = u``): how much the backward pass moves a gradient.

Both are computed for a whole grid of beta at once (the weights do not depend on beta; only
the layer factor ``L^{-beta}`` does), as the geometric mean over the inputs, and returned as
``log10`` values; an overflow (beta far below critical, the hidden state explodes) is
``+inf``. The heuristic of §9: ``sum_{k <= Lt} V_k ~ L^H`` makes the first-order term
critical at beta = H, and the positive quadratic term ``~ L^{1 - 2 beta}`` forces
beta >= 1/2, so both changes stay O(1) as L grows exactly at ``beta_c = max(H, 1/2)``,
grow with L below it and vanish above it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits.spec.trainable import MARION_KINDS, MarionResNet, init_marion

__all__ = ["change_maps"]


@functools.lru_cache(maxsize=16)
def _changes_fn(activation: str):
    """jit of (network with A = I, h0 (n, w), u (w,), scales (B, L)) -> (B,) log10 output and
    gradient changes."""

    def one(net: MarionResNet, h0, u, scale):
        hL, pull = jax.vjp(lambda h: net.hidden(h, scale), h0)
        (p0,) = pull(jnp.broadcast_to(u, hL.shape))
        out = jnp.linalg.norm(hL - h0, axis=-1) / jnp.linalg.norm(h0, axis=-1)
        grad = jnp.linalg.norm(p0 - u, axis=-1) / jnp.linalg.norm(u)
        return jnp.mean(jnp.log10(out)), jnp.mean(jnp.log10(grad))

    return jax.jit(jax.vmap(one, in_axes=(None, None, None, 0)))


def change_maps(key, *, kind: str, depth: int, width: int, hurst: float,
                betas: Sequence[float], n_inputs: int = 8, d_in: int = 10,
                activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """``(log10 output change, log10 gradient change)``, each (n_betas,), of one network drawn
    from ``key`` (a JAX key or ``numpy.random.Generator``) with rough weights of Hurst
    ``hurst``, on ``n_inputs`` standard Gaussian inputs of dimension ``d_in``.

    Raises:
        ValueError: for a bad kind, depth, width, Hurst index, empty or non-finite betas.
    """
    if kind not in MARION_KINDS:
        raise ValueError(f"kind must be one of {MARION_KINDS}, got {kind!r}")
    b = np.asarray(betas, np.float64)
    if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b)):
        raise ValueError(f"betas must be a non-empty 1-d sequence of finite numbers, got {betas}")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
    net = init_marion(key, depth, width, d_in, d_in, kind=kind, regularity="rough",
                      hurst=hurst, activation=activation)
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(
        np.asarray(jax.random.key_data(key)).ravel().tolist())
    x = jnp.asarray(rng.standard_normal((n_inputs, d_in)), jnp.float32)
    u = rng.standard_normal(width)
    u = jnp.asarray(u / np.linalg.norm(u), jnp.float32)
    h0 = x @ net.A.T
    # the recursion from h_0: A replaced by the identity, so net.hidden(h0) = h_L
    net = eqx.tree_at(lambda m: m.A, net, jnp.eye(width, dtype=net.A.dtype))
    scales = jnp.asarray(np.float64(depth) ** (-b)[:, None] * np.ones((1, depth)), jnp.float32)
    with np.errstate(all="ignore"):
        out, grad = (np.asarray(v, np.float64)
                     for v in _changes_fn(activation)(net, h0, u, scales))
    # overflow or NaN from inf - inf: the change exploded
    return np.where(np.isfinite(out), out, np.inf), np.where(np.isfinite(grad), grad, np.inf)
