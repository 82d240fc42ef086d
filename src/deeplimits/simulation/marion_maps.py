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
the layer factor ``L^{-beta}`` does) and for many networks in one compiled call, as the
geometric mean over the inputs, and returned as ``log10`` values; an overflow (beta far
below critical: the hidden state explodes) is ``+inf``.

The heuristic of §9: ``sum_{k <= Lt} V_k ~ L^H`` makes the first-order term critical at
beta = H, and the positive quadratic term ``sum_k L^{-2 beta} |V_k sigma(h_k)|^2 ~ L^{1 - 2
beta}`` forces beta >= 1/2, so ``beta_c = max(H, 1/2)``. [derived] For res-1 with H < 1/2
the quadratic term is cancelled: ``|h_{k+1}|^2 - |h_k|^2 = 2 L^{-beta} <h_k, V_k sigma(h_k)>
+ L^{-2 beta} |V_k sigma(h_k)|^2`` and ``h_k - h_0 ~ L^{-beta} sum_{j<k} V_j sigma(h_0)``, so the
cross term carries ``2 L^{-2 beta} sum_{j<k} gamma_H(k - j) |V sigma|^2``, and the fGn
autocovariance sums to ``sum_{j >= 1} gamma_H(j) = -1/2`` for H < 1/2 (telescoping:
``((n+1)^{2H} - n^{2H} - 1)/2``): the two terms cancel, leaving ``beta_c = H``. In res-3 the
inner weights ``W_k`` decorrelate ``sigma(W_k h)`` across layers, the cancellation is lost,
and ``max(H, 1/2)`` holds (measured: claim T4-critical-line).
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
    """jit of (stacked networks with A = I, h0 (N, n, w), u (N, w), scales (N, B, L)) ->
    (N, B) log10 output and gradient changes."""

    def one(net: MarionResNet, h0, u, scale):
        hL, pull = jax.vjp(lambda h: net.hidden(h, scale), h0)
        (p0,) = pull(jnp.broadcast_to(u, hL.shape))
        out = jnp.linalg.norm(hL - h0, axis=-1) / jnp.linalg.norm(h0, axis=-1)
        grad = jnp.linalg.norm(p0 - u, axis=-1) / jnp.linalg.norm(u)
        return jnp.mean(jnp.log10(out)), jnp.mean(jnp.log10(grad))

    per_beta = jax.vmap(one, in_axes=(None, None, None, 0))
    return jax.jit(jax.vmap(per_beta, in_axes=(0, 0, 0, 0)))


def _pad(a, depth: int):
    return None if a is None else jnp.concatenate(
        [a, jnp.zeros((depth - a.shape[0],) + a.shape[1:], a.dtype)])


def change_maps(keys: Sequence, depths: Sequence[int], hursts: Sequence[float], *,
                kind: str, width: int, betas: Sequence[float], n_inputs: int = 8,
                d_in: int = 10, activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """``(log10 output change, log10 gradient change)``, each (n_networks, n_betas), of the
    networks drawn from ``keys[i]`` (JAX keys or ``numpy.random.Generator``) at depth
    ``depths[i]`` with rough weights of Hurst ``hursts[i]``, each on its own ``n_inputs``
    standard Gaussian inputs of dimension ``d_in`` and its own unit direction ``u``.

    All networks are evaluated by one compiled, vmapped call: they are padded to the largest
    depth with zero layers whose factor is 0 (exact no-ops).

    Raises:
        ValueError: for a bad kind, width, depth, Hurst index, sequences of unequal length,
            or empty or non-finite betas.
    """
    if kind not in MARION_KINDS:
        raise ValueError(f"kind must be one of {MARION_KINDS}, got {kind!r}")
    b = np.asarray(betas, np.float64)
    if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b)):
        raise ValueError(f"betas must be a non-empty 1-d sequence of finite numbers, got {betas}")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
    if not (len(keys) == len(depths) == len(hursts) >= 1):
        raise ValueError(f"keys, depths and hursts must have one (equal, >= 1) length, got "
                         f"{len(keys)}, {len(depths)}, {len(hursts)}")
    pad = max(int(L) for L in depths)
    nets, h0s, us, scales = [], [], [], []
    for key, L, h in zip(keys, depths, hursts, strict=True):
        net = init_marion(key, int(L), width, d_in, d_in, kind=kind, regularity="rough",
                          hurst=float(h), activation=activation,
                          beta=0.5)  # unused (the factors are given), but one static field
        rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(
            np.asarray(jax.random.key_data(key)).ravel().tolist())
        x = rng.standard_normal((n_inputs, d_in))
        u = rng.standard_normal(width)
        h0s.append(jnp.asarray(x, jnp.float32) @ net.A.T)
        us.append(u / np.linalg.norm(u))
        # the recursion from h_0 (A replaced by the identity), padded to the largest depth
        nets.append(eqx.tree_at(lambda m: (m.A, m.V, m.W), net,
                                (jnp.eye(width, dtype=net.A.dtype), _pad(net.V, pad),
                                 _pad(net.W, pad)), is_leaf=lambda v: v is None))
        scales.append(np.where(np.arange(pad) < L, float(L) ** (-b)[:, None], 0.0))
    arrays = [eqx.filter(n, eqx.is_array) for n in nets]
    static = eqx.partition(nets[0], eqx.is_array)[1]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *arrays)
    fn = _changes_fn(activation)
    with np.errstate(all="ignore"):
        out, grad = (np.asarray(v, np.float64) for v in fn(
            eqx.combine(stacked, static), jnp.stack(h0s), jnp.asarray(np.stack(us), jnp.float32),
            jnp.asarray(np.stack(scales), jnp.float32)))
    # overflow, or NaN from inf - inf: the change exploded
    return np.where(np.isfinite(out), out, np.inf), np.where(np.isfinite(grad), grad, np.inf)
