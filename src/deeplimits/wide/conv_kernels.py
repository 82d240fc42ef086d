"""Split from ``deeplimits.conv``."""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.progress import progress_callback
from deeplimits._core.tracing import traced_floats
from deeplimits._core.validation import check_samples
from deeplimits.spec.blocks import get_block
from deeplimits.spec.conv import ConvResNet, patches
from deeplimits.wide.depth_flow import (
    DEFAULT_RTOL,
    Kernel,
    choose_steps,
    flow,
    pilot_indices,
    step_plan,
)

__all__ = ["ConvKernel", "conv_kernel", "empirical_conv_kernel"]

ConvKernel = Kernel  # the one kernel result type, under its conv name (deeplimits 0.1)


class _ConvDynamics(eqx.Module):
    """State ``(d1, d2, k, h)``: per-image diagonal variances ``(N, *S)`` and the cross
    kernel and NTK accumulator, ``(N1, N2, *S, *S)`` (full) or ``(N1, N2, *S)`` (diagonal
    closure, ``full=False``)."""

    net: ConvResNet
    full: bool = eqx.field(static=True)

    def _patch_mean(self, M, lead: int, paired: bool):
        """``T M``: the mean over offsets of ``M`` shifted by the offset on every position
        axis (both sets of axes when ``paired``)."""
        dims = self.net.spatial_dims
        axes = tuple(range(lead, lead + dims * (2 if paired else 1)))
        # materialise M once: otherwise XLA fuses its (costly) dual map into every shift
        M = jax.lax.optimization_barrier(M)
        total = 0.0
        for off in self.net.offsets:
            shift = tuple(-int(o) for o in off) * (2 if paired else 1)
            total = total + jnp.roll(M, shift, axes)
        return total / self.net.patch_size

    def _pair(self, d1, d2):
        n1, n2, dims = d1.shape[0], d2.shape[0], self.net.spatial_dims
        S = self.net.image_shape
        if not self.full:
            return d1[:, None], d2[None, :]
        return (d1.reshape(n1, 1, *S, *(1,) * dims), d2.reshape(1, n2, *(1,) * dims, *S))

    def field(self, state):
        d1, d2, k, h = state
        net, act = self.net, self.net.activation
        sb2, sw2 = net.sigma_b**2, net.sigma_w**2
        F1 = sb2 + sw2 * self._patch_mean(act.dual(d1, d1, d1), 1, False)
        F2 = sb2 + sw2 * self._patch_mean(act.dual(d2, d2, d2), 1, False)
        a, b = self._pair(d1, d2)
        F = sb2 + sw2 * self._patch_mean(act.dual(a, b, k), 2, self.full)
        G = F + sw2 * self._patch_mean(act.dual_deriv(a, b, k) * h, 2, self.full)
        return (F1, F2, F, G)

    def layer(self, state, dt):
        # the finite-depth wide network is exactly the explicit Euler scheme (§3)
        return jax.tree.map(lambda s, f: s + dt * f, state, self.field(state))

    def outputs(self, state):
        """``(K_f, Theta) / sigma_v^2`` per image pair."""
        k, h = state[2], state[3]
        dims, P = self.net.spatial_dims, self.net.positions
        n1, n2 = k.shape[:2]
        if not self.full:  # flatten: mean over the diagonal
            return (k.reshape(n1, n2, P).mean(-1), (k + h).reshape(n1, n2, P).mean(-1))
        kk = k.reshape(n1, n2, P, P)
        hh = h.reshape(n1, n2, P, P)
        if self.net.readout == "flatten":
            return (jnp.diagonal(kk, axis1=2, axis2=3).mean(-1),
                    jnp.diagonal(kk + hh, axis1=2, axis2=3).mean(-1))
        del dims
        return kk.mean((2, 3)), (kk + hh).mean((2, 3))


@eqx.filter_jit
def _kernel_block(dyn: _ConvDynamics, init, count, h, rk4: bool):
    return dyn.outputs(flow(dyn, init, count, h, rk4))


def _initial_state(net: ConvResNet, full: bool, img1, img2, train_input: bool):
    """``K_0(p, q; x, x') = sigma_a^2 + sigma_A^2 / (C_in |K|) sum_{c',k} x_{c',p+k}
    x'_{c',q+k}`` (§3); its diagonals; ``H_0 = K_0`` when the input layer is trained."""
    scale = net.sigma_A**2 / (net.in_channels * net.patch_size)
    p1 = patches(net, img1).reshape(img1.shape[0], -1, *net.image_shape)
    p2 = patches(net, img2).reshape(img2.shape[0], -1, *net.image_shape)
    d1 = net.sigma_a**2 + scale * jnp.sum(p1 * p1, 1)
    d2 = net.sigma_a**2 + scale * jnp.sum(p2 * p2, 1)
    f1 = p1.reshape(p1.shape[0], p1.shape[1], -1)
    f2 = p2.reshape(p2.shape[0], p2.shape[1], -1)
    if full:
        k = jnp.einsum("aip,biq->abpq", f1, f2).reshape(
            p1.shape[0], p2.shape[0], *net.image_shape, *net.image_shape)
    else:
        k = jnp.einsum("aip,bip->abp", f1, f2).reshape(p1.shape[0], p2.shape[0],
                                                       *net.image_shape)
    k = net.sigma_a**2 + scale * k
    h = k if train_input else jnp.zeros_like(k)
    return (d1, d2, k, h)


def _check_kernel_net(net: ConvResNet) -> None:
    if not get_block(net.form).conv_kernel:
        raise ValueError(f"conv kernels are specified for form A only, got form {net.form} "
                         "(conv.md §3-§4)")
    if net.in_channels is None:
        raise ValueError("conv kernels need an input layer (in_channels): without one the "
                         "channels of x_0 are not i.i.d. Gaussian")
    if net.scaling != "shrinking":
        raise ValueError("the i.i.d. baseline has no infinite-depth kernel; use "
                         "scaling='shrinking'")


def conv_kernel(
    net: ConvResNet,
    x1,
    x2=None,
    depth: int | float | None = None,
    *,
    steps: int | None = None,
    rtol: float = DEFAULT_RTOL,
    compute_ntk: bool = True,
    train_input_layer: bool = True,
    full: bool | None = None,
    max_memory: int = 2**29,
    progress: bool | Callable[[int], None] = False,
) -> Kernel:
    """NNGP and NTK of the infinitely wide (``C -> oo``) conv network, form A (§3-§4).

    Args:
        net: the network (its channel count is ignored); form A with an input layer.
        x1, x2: images ``(N, C_in, *image_shape)`` (``x2`` defaults to ``x1``).
        depth: ``None`` for ``net.depth``, an integer (the exact width-first recursion), or
            ``math.inf`` (the ODE, RK4 on ``[0, T]``).
        steps: RK4 steps at infinite depth; ``None`` (default) chooses them from ``rtol``.
        rtol: target error of the NNGP and NTK relative to their largest entry (default
            1e-9), estimated by step doubling on a pilot tile of 8 x 8 images (extreme and
            evenly spaced norms); the estimate reached is the result's ``error``.
        compute_ntk: also return the NTK (the forward ``H`` form of §4).
        train_input_layer: whether the input layer's parameters count in the NTK.
        full: integrate the whole ``P x P`` position kernel (default: only for ``gap``;
            ``flatten`` needs the diagonal only, which closes on itself).
        max_memory: bound in bytes on one tile of image pairs.
        progress: ``True`` for a progress bar over tiles, or a callback.

    Returns:
        A :class:`~deeplimits.wide.depth_flow.Kernel` of float64 arrays.
    """
    _check_kernel_net(net)
    depth = net.depth if depth is None else depth
    if not (math.isinf(depth) or (isinstance(depth, int | np.integer)
                                  and not isinstance(depth, bool) and depth > 0)):
        raise ValueError(f"depth must be a positive integer or math.inf, got {depth!r}")
    if steps is not None:
        steps = check_samples(steps, "steps")
    if not (isinstance(rtol, float | int) and not isinstance(rtol, bool)
            and math.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol!r}")
    full = net.readout == "gap" if full is None else bool(full)
    if net.readout == "gap" and not full:
        raise ValueError("the gap readout needs the full P x P kernel (full=True)")
    img1 = net.check_images(x1, jnp.float64)
    img2 = img1 if x2 is None else net.check_images(x2, jnp.float64)
    dyn = _ConvDynamics(net, full)
    P = net.positions
    per_pair = 8 * 40 * (P * P if full else P)  # RK4 stages and dual temporaries
    rows = max(1, min(img1.shape[0], max_memory // (per_pair * img2.shape[0])))
    N1, N2 = img1.shape[0], img2.shape[0]
    K, T = np.empty((N1, N2)), np.empty((N1, N2))
    tiles = list(range(0, N1, rows))
    dyn = traced_floats(dyn)
    error = None
    if math.isinf(depth):
        norms = lambda img: np.asarray(jnp.sum(img.reshape(img.shape[0], -1) ** 2, 1))
        i1, i2 = pilot_indices(norms(img1), 8), pilot_indices(norms(img2), 8)
        pilot_init = _initial_state(net, full, img1[i1], img2[i2], train_input_layer)

        def pilot(n):
            R, Th = _kernel_block(dyn, pilot_init, *step_plan(math.inf, n, net.horizon))
            return (R, Th) if compute_ntk else (R,)

        steps, error = choose_steps(pilot, rtol, steps)
    plan = step_plan(depth, steps or 1, net.horizon)
    with progress_callback(progress, len(tiles), "conv kernel tiles") as advance:
        for i in tiles:
            init = _initial_state(net, full, img1[i : i + rows], img2, train_input_layer)
            R, Th = _kernel_block(dyn, init, *plan)
            K[i : i + rows] = net.sigma_v**2 * np.asarray(R)
            T[i : i + rows] = net.sigma_v**2 * np.asarray(Th)
            advance(1)
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(T)):
        raise FloatingPointError("the conv kernel has non-finite entries: the dynamics blew "
                                 "up (try a smaller horizon or sigma_w)")
    return Kernel(nngp=K, ntk=T if compute_ntk else None, depth=depth,
                  steps=steps if math.isinf(depth) else None, error=error)


def _standard_shapes(net: ConvResNet) -> dict[str, tuple[int, ...]]:
    C, K, L = net.channels, net.patch_size, net.depth
    return {"W": (L, C, C, K), "b": (L, C), "A": (C, net.in_channels, K), "a": (C,),
            "v": net.readout_shape()}


def _empirical_one(net: ConvResNet, key, images, compute_ntk: bool, train_input: bool):
    shapes = _standard_shapes(net)
    keys = jax.random.split(key, len(shapes))
    theta = {name: net.law.sample(k, shape, images.dtype)
             for k, (name, shape) in zip(keys, shapes.items(), strict=True)}
    # NNGP with the readout averaged analytically: K_f = sigma_v^2 <P_T, X X'^T / C>
    X = net.apply(net.scale_params(theta), images).reshape(images.shape[0], net.channels, -1)
    if net.readout == "flatten":
        nngp = jnp.einsum("acp,bcp->ab", X, X) / (net.channels * net.positions)
    else:
        m = X.mean(-1)
        nngp = m @ m.T / net.channels
    nngp = net.sigma_v**2 * nngp
    if not compute_ntk:
        return nngp, jnp.zeros_like(nngp)
    f = lambda th: net.output(th["v"], net.apply(net.scale_params(th), images))
    jac = jax.jacrev(f)(theta)
    names = [n for n in shapes if train_input or n not in ("A", "a")]
    rows = jnp.concatenate([jac[n].reshape(images.shape[0], -1) for n in names], axis=1)
    return nngp, rows @ rows.T


def empirical_conv_kernel(
    net: ConvResNet,
    images,
    key: jax.Array,
    *,
    samples: int = 1,
    compute_ntk: bool = True,
    train_input_layer: bool = True,
    dtype=jnp.float32,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Empirical NNGP and NTK of ``samples`` independent finite conv networks.

    The NNGP averages the readout analytically: ``sigma_v^2 <P_T, X_T X_T'^T / C>``; the
    NTK is ``J J^T`` over all standardised parameters (NTK parametrisation; the input layer
    only if ``train_input_layer``). Both converge to :func:`conv_kernel` at the same depth
    as ``C -> oo`` with fluctuations ``O(C^{-1/2})``. Needs form A with an input layer.

    Returns:
        ``(nngp, ntk)``, float64 ``(samples, N, N)`` each (``ntk`` is ``None`` unless
        ``compute_ntk``).
    """
    _check_kernel_net(net)
    samples = check_samples(samples)
    images = net.check_images(images, dtype)
    keys = jax.random.split(key, samples)
    nngp, ntk = _empirical_batch(net, keys, images, compute_ntk, train_input_layer)
    return np.asarray(nngp, np.float64), (np.asarray(ntk, np.float64) if compute_ntk
                                          else None)


@eqx.filter_jit
def _empirical_batch(net, keys, images, compute_ntk, train_input):
    return jax.vmap(lambda k: _empirical_one(net, k, images, compute_ntk, train_input))(keys)
