r"""NNGP and NTK of infinitely wide ResNets, at any depth including infinity (``kernels.md``).

For a pair of inputs the wide network is described by deterministic pair dynamics in the
depth variable ``t`` in ``[0, T]``:

* forms A and C: the 2 x 2 covariance ``K_t`` (diagonals ``d, d'`` and cross term ``k``)
  with ``dK/dt = F(K)``, and the NTK accumulator ``dH/dt = G(K) + r(K) H`` (the forward
  form of ``kernels.md`` §4);
* form B: the means, second moments and cross term ``(m, q, m', q', c)`` of §4.3.

At infinite depth the dynamics are integrated with RK4 (float64) whose step count is chosen
from ``rtol`` (default :data:`DEFAULT_RTOL` = 1e-9, relative to the largest entry, on the NNGP
and the NTK) by step doubling on a pilot tile of pairs, and the estimated error is reported
on the result (:attr:`Kernel.error`, :func:`deeplimits.wide.depth_flow.choose_steps`); at
finite depth ``L`` forms A and C take ``L`` explicit Euler steps, which is the exact
width-first limit of the network (§5), and form B takes its own exact layer map. The output
kernels are

    K_f = sigma_v^2 R(K_T) + sigma_v0^2,
    Theta = sigma_v^2 [R(K_T) + R'(K_T) H_T] + sigma_v0^2,

with ``R = id, R' = 1`` for the state readout and ``R = V_phi, R' = V_phi'`` for the
post-activation readout.

Matrices are computed in tiles of at most ``block`` x ``block`` pairs, so memory stays
bounded; only the diagonals are shared between tiles. When the dynamics are positively
homogeneous (forms A and C, ``sigma_b = 0`` and a homogeneous activation such as ReLU),
a pair depends on its inputs only through ``sqrt(d d')`` and the angle ``theta_0`` of
``K_0``: the dynamics are then solved once on Chebyshev nodes in ``theta_0`` and
interpolated spectrally (``homogeneous="auto"``). Its stated accuracy, against the general
path at the same depth or steps and relative to the largest entry, on and off the diagonal
and for both readouts: ``1e-12`` on the NNGP and ``1e-9`` on the NTK (measured: ~1e-13
and 1e-10..4e-10; the outputs, not the state, are tabulated, so the post-activation
readout's ``V_phi'`` is not evaluated at a rounded diagonal correlation). The same table
serves every activation and ``sigma_b`` when all inputs share one initial variance
(normalised inputs, ``table="auto"``): a pair's flow then depends on its correlation only;
stated accuracy ``1e-11`` on the NNGP and ``1e-9`` on the NTK (measured, erf/ReLU/tanh with
``sigma_b = 0.5``: <= 9e-13 and <= 4e-11). Unequal norms take the general path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from deeplimits._core.progress import progress_callback
from deeplimits._core.tracing import traced_floats
from deeplimits.spec.networks import Readout, ResNet
from deeplimits.wide.depth_flow import (
    DEFAULT_RTOL,
    Kernel,
    choose_steps,
    flow,
    pilot_indices,
    step_plan,
)

__all__ = ["Kernel", "kernel", "kernel_steps", "nngp", "ntk", "DEFAULT_RTOL"]




_CHEBYSHEV_NODES = 96


_CHOP = 1e-11


# working memory per pair of a tile: about 24 float64 temporaries (states, RK4 stages)
_BYTES_PER_PAIR = 192


DEFAULT_MEMORY = 2**30


class _Dynamics(eqx.Module):
    """The pair dynamics of ``net``'s block form (``Block.kernel_*`` of spec/blocks.py) as
    the ``field`` / ``layer`` object of :func:`flow`. ``state`` is a tuple of arrays:
    per-input diagonals of shapes ``(B1,)`` and ``(B2,)`` and cross terms ``(B1, B2)``."""

    net: ResNet

    def init(self, k11, k22, k12, h0, mean1=None, mean2=None):
        return self.net.block.kernel_init(self.net, k11, k22, k12, h0, mean1, mean2)

    def field(self, state):
        return self.net.block.kernel_field(self.net, state)

    def layer(self, state, dt):
        """One layer of the finite-depth wide network."""
        return self.net.block.kernel_layer(self.net, state, dt)

    def outputs(self, state, readout: Readout):
        """``(R(K_T), R(K_T) + R'(K_T) H_T)`` for every pair."""
        return self.net.block.kernel_outputs(self.net, state, readout.post_activation)


@eqx.filter_jit
def _evolved(dyn: _Dynamics, state, count, h, rk4: bool):
    return flow(dyn, state, count, h, rk4)


@eqx.filter_jit
def _block(dyn, init, count, h, rk4: bool, readout):
    return dyn.outputs(flow(dyn, init, count, h, rk4), readout)


def _initial_gram(net: ResNet, xa, xb):
    if net.input_layer is not None:
        return net.input_layer.gram_between(xa, xb)
    return xa @ xb.T / xa.shape[1]


def _initial_state(net, dyn, x1, x2, train_input: bool, same=None):
    """Initial pair state of the tile ``x1 x x2``; ``same``: a boolean ``(B1, B2)`` mask of
    the pairs of an input with itself, which start exactly on its variance (a Gram product
    rounds differently from the variances, and a correlation of ``1 - 1e-16`` instead of 1
    costs ReLU-like duals ``sqrt(eps)`` through their ``arccos``)."""
    k12, q1, q2 = _initial_gram(net, x1, x2), _diag_gram(net, x1), _diag_gram(net, x2)
    k12 = _consistent_gram(k12, q1, q2, same)
    h0 = k12 if (train_input and net.input_layer is not None) else jnp.zeros_like(k12)
    # coordinate means (form B tracks them): zero behind an input layer, else those of x
    mean = lambda x: jnp.zeros(x.shape[0]) if net.input_layer is not None else x.mean(1)
    return dyn.init(q1, q2, k12, h0, mean(x1), mean(x2))


def _consistent_gram(k12, q1, q2, same):
    """``k12`` within Cauchy-Schwarz of the variances, and equal to them where ``same`` (a
    mask of the pairs of an input with itself, or ``None``)."""
    bound = jnp.sqrt(q1[:, None] * q2[None, :])
    k12 = jnp.clip(k12, -bound, bound)
    if same is not None:
        k12 = jnp.where(same, q1[:, None], k12)
    return k12


def _self_pairs(x1, x2, i: int, j: int, rows: int, cols: int):
    """The mask of pairs of an input with itself in the tile at ``(i, j)``, or ``None``."""
    if x2 is not x1 or i >= j + cols or j >= i + rows:
        return None
    return jnp.asarray(np.arange(i, i + rows)[:, None] == np.arange(j, j + cols)[None, :])


def _diag_gram(net, x):
    if net.input_layer is not None:
        layer = net.input_layer
        return layer.sigma_a**2 + layer.sigma_A**2 * jnp.sum(x * x, 1) / layer.dim
    return jnp.sum(x * x, 1) / x.shape[1]


def _chebyshev_tables(dyn, plan, train_input, nodes, readout, variance: float = 1.0):
    """Outputs ``(R, R + R' H)`` (after the readout) of pairs of inputs of initial variance
    ``variance`` on Chebyshev-Lobatto nodes in ``theta_0 in [0, pi]``, as Chebyshev
    coefficients (divided by ``variance``). Tabulating the outputs, not
    the state, keeps the post-activation readout's ``V_phi'`` away from the
    ``arccos(1 - eps)`` of a rounded diagonal correlation (a ``sqrt(eps)`` error)."""
    j = np.arange(nodes + 1)
    # u_j = cos(pi j / nodes) in [-1, 1] and theta_j = pi (u_j + 1) / 2, so that
    # T_k(u_j) = cos(pi k j / nodes) and a type-I DCT gives the Chebyshev coefficients
    theta = 0.5 * np.pi * (1 + np.cos(np.pi * j / nodes))
    rho = jnp.asarray(variance * np.cos(theta))[None, :]
    rho = rho.at[0, -1].set(variance)  # theta_0 = 0: exactly the diagonal
    one = jnp.full(1, variance)
    h0 = rho if train_input else jnp.zeros_like(rho)
    final = _evolved(dyn, dyn.init(one, one, rho, h0), *plan)
    R, Th = _outputs(dyn, final, readout)
    vals = np.stack([np.asarray(R)[0], np.asarray(Th)[0]]) / variance
    # values at Lobatto nodes -> Chebyshev coefficients (type-I DCT)
    coef = np.empty_like(vals)
    for k in range(nodes + 1):
        w = np.cos(np.pi * k * j / nodes)
        w = w * np.where((j == 0) | (j == nodes), 0.5, 1.0)
        coef[:, k] = 2.0 / nodes * (vals * w).sum(1)
    coef[:, 0] /= 2
    coef[:, -1] /= 2
    # chop each series where it reaches its noise plateau (rounding in arccos near
    # rho = +-1 leaves coefficients of ~1e-12): keeps ~1e-11 accuracy, evaluates faster.
    # The kept length is padded with zeros to a power of two, which leaves every value
    # unchanged and lets nearby hyperparameters share one compiled evaluation.
    keep = max(_last_significant(c, _CHOP) for c in coef) + 1
    padded = np.zeros((2, 1 << (keep - 1).bit_length()))
    padded[:, :keep] = coef[:, :keep]
    return jnp.asarray(padded)


def _common_variance(q1: np.ndarray, q2: np.ndarray) -> float | None:
    """The initial variance shared by every input (to 1e-13 relative), or ``None``."""
    q = np.concatenate([q1, q2])
    v = float(q[0])
    if v > 0 and np.all(np.abs(q - v) <= 1e-13 * v):
        return v
    return None


def _last_significant(c: np.ndarray, tol: float) -> int:
    big = np.nonzero(np.abs(c) > tol * np.abs(c).max())[0]
    return int(big[-1]) if big.size else 0


def _clenshaw(coef, u):
    """Evaluate ``sum_k coef[k] T_k(u)`` (Chebyshev series) elementwise.

    Unrolled over the (static, chopped) number of coefficients so that XLA fuses the
    recurrence into one elementwise pass (a loop would stream every array ``k`` times).
    """
    b1 = b2 = jnp.zeros_like(u)
    for k in range(coef.shape[0] - 1, 0, -1):
        b1, b2 = 2 * u * b1 - b2 + coef[k], b1
    return u * b1 - b2 + coef[0]


@eqx.filter_jit
def _outputs(dyn, state, readout):
    return dyn.outputs(state, readout)


@eqx.filter_jit
def _homogeneous_block(coef_r, coef_t, d1, d2, k12):
    # outputs of homogeneous dynamics are positively homogeneous of degree 1 in the pair's
    # scale sqrt(d d'); with one common variance (the equal-norm table) the scale is it
    scale = jnp.sqrt(d1[:, None] * d2[None, :])
    safe = jnp.where(scale > 0, scale, 1.0)
    theta = jnp.arccos(jnp.clip(k12 / safe, -1.0, 1.0))
    u = 2 * theta / jnp.pi - 1  # Lobatto nodes in theta map to cos-nodes in u
    return scale * _clenshaw(coef_r, u), scale * _clenshaw(coef_t, u)


def check_kernel_net(net: ResNet):
    if net.M is not None or np.any(np.asarray(net.mu_b) != 0):
        raise ValueError("kernels need mu_b = 0 and M = None (kernels.md §1)")
    if not net.width_scaled:
        raise ValueError("kernels need width_scaled=True (weights of variance sigma_w^2/n)")
    if net.scaling != "shrinking":
        raise ValueError("the i.i.d. baseline has no infinite-depth kernel; use "
                         "scaling='shrinking'")
    if net.block.kernel_needs_input_layer and net.input_layer is None:
        raise ValueError(f"form {net.form} kernels need an input layer (dl.InputLayer): "
                         "without one the state coordinates are not Gaussian (kernels.md §7)")


def as_kernel_inputs(x, name: str, dim: int | None) -> jnp.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (inputs, features), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} features, the network expects {dim}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return jnp.asarray(arr)


def kernel(
    net: ResNet,
    x1,
    x2=None,
    depth: int | float | None = None,
    *,
    steps: int | None = None,
    rtol: float = DEFAULT_RTOL,
    compute_ntk: bool = True,
    train_input_layer: bool = True,
    homogeneous: str | bool = "auto",
    table: str | bool = "auto",
    max_memory: int = DEFAULT_MEMORY,
    out_nngp=None,
    out_ntk=None,
    progress: bool | Callable[[int], None] = False,
) -> Kernel:
    """NNGP and NTK of the infinitely wide version of ``net``.

    Args:
        net: the network (its width is ignored). Needs ``width_scaled=True``, no mean
            parameters, and for form A an input layer.
        x1, x2: inputs ``(N1, d)`` and ``(N2, d)`` (``x2`` defaults to ``x1``).
        depth: ``None`` for ``net.depth``, an integer, or ``math.inf`` for the ODE limit.
        steps: RK4 steps on ``[0, T]`` at infinite depth; ``None`` (default) chooses them
            from ``rtol``.
        rtol: at infinite depth, the target error of the NNGP and NTK relative to their
            largest entry (default :data:`DEFAULT_RTOL` = 1e-9); the estimate reached is
            the result's ``error``.
        compute_ntk: also return the NTK.
        train_input_layer: whether the input layer's parameters count in the NTK.
        table: ``"auto"`` tabulates the pair flow in ``theta_0`` when every input of ``x1``
            and ``x2`` has the same initial variance (normalised inputs; forms A and C, any
            activation and ``sigma_b``): a pair's flow then depends on its correlation only;
            ``False`` never, ``True`` requires it. Accuracy as for ``homogeneous``.
        homogeneous: ``"auto"`` uses the exact angle reduction when it applies, ``False``
            never, ``True`` requires it.
        max_memory: bound in bytes on the working memory of one tile (default 1 GiB); the
            kernel is computed in square tiles of pairs that fit it.
        out_nngp, out_ntk: optional array-likes (a NumPy memmap, a Zarr array) of shape
            ``(N1, N2)`` to write into instead of allocating.
        progress: ``True`` for a progress bar over tiles, or a callback taking the number
            of tiles just done.

    Returns:
        A :class:`Kernel` of float64 arrays, with the steps used and the estimated error at
        infinite depth.
    """
    check_kernel_net(net)
    depth = net.depth if depth is None else depth
    is_number = isinstance(depth, int | float | np.integer | np.floating)
    if not (is_number and not isinstance(depth, bool)
            and (depth == math.inf or (isinstance(depth, int | np.integer) and depth > 0))):
        raise ValueError(f"depth must be a positive integer or math.inf, got {depth!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int | np.integer)
                              or steps < 1):
        raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
    if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if (isinstance(max_memory, bool) or not isinstance(max_memory, int | np.integer)
            or max_memory < 1):
        raise ValueError(f"max_memory must be a positive integer (bytes), got {max_memory!r}")
    dim = net.input_dim
    x1 = as_kernel_inputs(x1, "x1", dim)
    x2 = x1 if x2 is None else as_kernel_inputs(x2, "x2", dim)
    dyn = _Dynamics(net)
    readout = net.readout if net.readout is not None else Readout()
    traced_dyn, traced_readout = traced_floats((dyn, readout))
    if steps is not None and not (isinstance(steps, int | np.integer)
                                  and not isinstance(steps, bool) and steps > 0):
        raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
    if not (isinstance(rtol, float | int) and not isinstance(rtol, bool)
            and math.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol!r}")
    block = net.block
    if readout.post_activation and not block.kernel_post_activation:
        raise ValueError(f"form {net.form} kernels support the state readout only")
    is_homog = block.kernel_homogeneous(net)
    use_homog = is_homog if homogeneous == "auto" else bool(homogeneous)
    if use_homog and not is_homog:
        raise ValueError("the homogeneous reduction needs form A or C, sigma_b = 0 and a "
                         "positively homogeneous activation")
    variance = 1.0
    if not use_homog and table is not False and block.tabulable_kernel:
        common = _common_variance(np.asarray(_diag_gram(net, x1)),
                                  np.asarray(_diag_gram(net, x2)))
        if common is not None:
            use_homog, variance = True, common
        elif table is True:
            raise ValueError("table=True needs every input to have the same initial variance "
                             "(rows of equal norm) and form A or C")
    elif table is True and not use_homog:
        raise ValueError("table=True needs form A or C")
    N1, N2 = x1.shape[0], x2.shape[0]
    block = max(16, int(math.sqrt(max_memory / _BYTES_PER_PAIR)))
    K = np.empty((N1, N2)) if out_nngp is None else out_nngp
    T = np.empty((N1, N2)) if (compute_ntk and out_ntk is None) else out_ntk
    error = None
    if math.isinf(depth):
        steps, error = _choose_steps(net, dyn, traced_dyn, traced_readout, x1, x2,
                                     train_input_layer, steps, rtol, compute_ntk,
                                     max_memory)
    elif steps is not None:
        steps = None  # finite depth: L layers, steps do not apply
    plan = step_plan(depth, steps or 1, net.horizon)
    if use_homog:
        coef = _chebyshev_tables(traced_dyn, plan,
                                 train_input_layer and net.input_layer is not None,
                                 _CHEBYSHEV_NODES, traced_readout, variance)
    tiles = [(i, j) for i in range(0, N1, block) for j in range(0, N2, block)]
    with progress_callback(progress, len(tiles), "kernel tiles") as advance:
        for i, j in tiles:
            xa, xb = x1[i : i + block], x2[j : j + block]
            k_shape = (xa.shape[0], xb.shape[0])
            if use_homog:
                k12 = _consistent_gram(_initial_gram(net, xa, xb), _diag_gram(net, xa),
                                       _diag_gram(net, xb), _self_pairs(x1, x2, i, j,
                                                                        *k_shape))
                R, Th = _homogeneous_block(coef[0], coef[1], _diag_gram(net, xa),
                                           _diag_gram(net, xb), k12)
            else:
                init = _initial_state(net, dyn, xa, xb, train_input_layer,
                                      same=_self_pairs(x1, x2, i, j, *k_shape))
                R, Th = _block(traced_dyn, init, *plan, traced_readout)
            sv2, sv02 = readout.sigma_v**2, readout.sigma_v0**2
            K[i : i + block, j : j + block] = np.asarray(sv2 * R + sv02)
            if compute_ntk:
                T[i : i + block, j : j + block] = np.asarray(sv2 * Th + sv02)
            advance(1)
    for name, arr in (("NNGP", K), ("NTK", T)):
        if arr is not None and isinstance(arr, np.ndarray) and not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"the {name} has non-finite entries: the dynamics blew "
                                     "up (try a smaller horizon or sigma_w)")
    return Kernel(nngp=K, ntk=T if compute_ntk else None, depth=depth,
                  steps=steps if math.isinf(depth) else None, error=error)


def _choose_steps(net, dyn, traced_dyn, traced_readout, x1, x2, train_input, steps, rtol,
                  compute_ntk, max_memory):
    """:func:`choose_steps` on a pilot tile of real pairs that stands for the kernel: the rows
    of :func:`pilot_indices` (extreme and evenly spaced variances) and the ends of the pairs
    with the most extreme initial correlations, where RK4's error is largest (e.g. near
    ``rho = -1`` for ReLU, whose ``V'`` has a square-root singularity there)."""
    q1 = np.asarray(_diag_gram(net, x1))
    q2 = q1 if x2 is x1 else np.asarray(_diag_gram(net, x2))
    e1, e2 = _extreme_pairs(net, x1, x2, q1, q2, max_memory)
    i1 = np.concatenate([pilot_indices(q1), e1])
    i2 = np.concatenate([pilot_indices(q2), e2])
    same = (i1[:, None] == i2[None, :]) if x2 is x1 else None
    init = _initial_state(net, dyn, x1[i1], x2[i2], train_input, same=same)
    readout = net.readout if net.readout is not None else Readout()

    def pilot(n):
        plan = step_plan(math.inf, n, net.horizon)
        R, Th = _block(traced_dyn, init, *plan, traced_readout)
        out = readout.sigma_v**2 * R + readout.sigma_v0**2
        return (out, readout.sigma_v**2 * Th + readout.sigma_v0**2) if compute_ntk else (out,)

    return choose_steps(pilot, rtol, steps)


_EXTREME_PAIRS = 8


def _extreme_pairs(net, x1, x2, q1, q2, max_memory) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the ``_EXTREME_PAIRS`` pairs of smallest and the as many of
    largest initial correlation (off the diagonal when ``x2 is x1``), by row chunks of the
    Gram matrix within ``max_memory``; repeated to a fixed count."""
    m = _EXTREME_PAIRS
    best_lo = (np.full(0, np.inf), np.zeros(0, int), np.zeros(0, int))
    best_hi = (np.full(0, -np.inf), np.zeros(0, int), np.zeros(0, int))
    rows = max(1, min(x1.shape[0], int(max_memory // (8 * 4 * x2.shape[0]))))
    s2 = np.sqrt(q2)
    for i in range(0, x1.shape[0], rows):
        g = np.asarray(_initial_gram(net, x1[i : i + rows], x2))
        norm = np.sqrt(q1[i : i + rows])[:, None] * s2[None, :]
        rho = np.where(norm > 0, g / np.where(norm > 0, norm, 1.0), 0.0)
        if x2 is x1:
            r = np.arange(i, i + rho.shape[0])
            rho[r - i, r] = np.nan
        flat = rho.ravel()
        ok = np.flatnonzero(~np.isnan(flat))
        for sign, (vals, ra, ca) in ((1, best_lo), (-1, best_hi)):
            take = ok[np.argsort(sign * flat[ok])[:m]]
            vals = np.concatenate([vals, flat[take]])
            ra = np.concatenate([ra, i + take // rho.shape[1]])
            ca = np.concatenate([ca, take % rho.shape[1]])
            keep = np.argsort(sign * vals)[:m]
            if sign == 1:
                best_lo = (vals[keep], ra[keep], ca[keep])
            else:
                best_hi = (vals[keep], ra[keep], ca[keep])
    r = np.concatenate([best_lo[1], best_hi[1]])
    c = np.concatenate([best_lo[2], best_hi[2]])
    if r.size == 0:  # a single input: only its diagonal pair
        r = c = np.zeros(1, int)
    pad = np.arange(2 * m) % r.size
    return r[pad], c[pad]


def kernel_steps(net: ResNet, x1, x2=None, *, steps: int | None = None,
                 rtol: float = DEFAULT_RTOL, compute_ntk: bool = True,
                 train_input_layer: bool = True, max_memory: int = DEFAULT_MEMORY,
                 ) -> tuple[int, float]:
    """The RK4 step count :func:`kernel` uses at infinite depth for these inputs, and its
    estimated relative error (``steps`` given: that count and its error). For callers that
    split one kernel into pieces (Dask tiles, a cache) and want one count for all."""
    check_kernel_net(net)
    x1 = as_kernel_inputs(x1, "x1", net.input_dim)
    x2 = x1 if x2 is None else as_kernel_inputs(x2, "x2", net.input_dim)
    dyn = _Dynamics(net)
    readout = net.readout if net.readout is not None else Readout()
    traced_dyn, traced_readout = traced_floats((dyn, readout))
    return _choose_steps(net, dyn, traced_dyn, traced_readout, x1, x2, train_input_layer,
                         steps, rtol, compute_ntk, max_memory)


def nngp(net: ResNet, x1, x2=None, depth: int | float | None = None, **kwargs) -> np.ndarray:
    """The NNGP kernel ``K_f``, float64 ``(len(x1), len(x2))``; see :func:`kernel`."""
    return kernel(net, x1, x2, depth, compute_ntk=False, **kwargs).nngp


def ntk(net: ResNet, x1, x2=None, depth: int | float | None = None, **kwargs) -> np.ndarray:
    """The neural tangent kernel ``Theta``, float64 ``(len(x1), len(x2))``."""
    return kernel(net, x1, x2, depth, **kwargs).ntk
