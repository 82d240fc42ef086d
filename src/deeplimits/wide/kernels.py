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
bounded; only the diagonals are shared between tiles.

Forms A and C have faster paths: a pair's outputs depend on its initial ``(d1, d2,
theta_0)`` only, so they are read from Chebyshev tables of pair flows
(:mod:`deeplimits.wide.pair_tables`), solved once on nodes instead of once per pair:

* ``homogeneous="auto"``: positively homogeneous dynamics (``sigma_b = 0``, ReLU-like
  phi) depend on ``sqrt(d d')`` and ``theta_0`` only (exact angle reduction): a 1-D table
  in ``theta_0``;
* ``table="auto"`` with one initial variance shared by every input (normalised inputs): a
  1-D table in ``theta_0`` at that variance, any activation and ``sigma_b``;
* ``table="auto"`` with unequal norms (forms A and C, positive variances, and a kernel of
  at least twice the table's 17 x 17 x 97 node pairs): a 3-D table in ``(log d1, log d2,
  theta_0)`` over the inputs' ranges of variances and angles (every other angle node
  first, the rest only where the series in ``theta_0`` needs them), diagonal pairs from
  their own series; it is kept only if its difference from the general path on the pilot
  pairs (extreme and evenly spaced variances, extreme correlations) is within ``rtol``.
  A pair's read is a Clenshaw sum over ``theta_0`` whose coefficients come from small
  GEMMs over chunks of rows (:func:`deeplimits.wide.pair_tables.evaluate`).

Every table is measured against the general path on those pilot pairs, at the same depth
or steps, and the result reports it (:attr:`Kernel.table_error`). Stated accuracy of the
1-D tables, relative to the largest entry, on and off the diagonal and for both readouts:
``1e-12`` (angle reduction) and ``1e-11`` (equal norms) on the NNGP and ``1e-9`` on the
NTK; of the 3-D table: ``rtol`` (measured erf/tanh/ReLU with ``sigma_b = 0.5``, 300
inputs, every entry against the general path: 6e-14..9e-14; tests in
``tests/test_kernel_accuracy.py``).
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
from deeplimits.wide import pair_tables
from deeplimits.wide.depth_flow import (
    DEFAULT_RTOL,
    Kernel,
    choose_steps,
    flow,
    pilot_indices,
    relative_difference,
    step_plan,
)

__all__ = ["Kernel", "kernel", "kernel_steps", "nngp", "ntk", "DEFAULT_RTOL"]




# a 3-D table starts with 16 Chebyshev intervals per log-variance axis and may double once
_TABLE_VARIANCE_NODES = (16, 32)

# a 3-D table is built only when the kernel has this many times its node pairs
_TABLE_ADVANTAGE = 2


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


def _common_variance(q1: np.ndarray, q2: np.ndarray) -> float | None:
    """The initial variance shared by every input (to 1e-13 relative), or ``None``."""
    q = np.concatenate([q1, q2])
    v = float(q[0])
    if v > 0 and np.all(np.abs(q - v) <= 1e-13 * v):
        return v
    return None


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
            the result's ``error``. At any depth, the tolerance of a 3-D table.
        compute_ntk: also return the NTK.
        train_input_layer: whether the input layer's parameters count in the NTK.
        table: ``"auto"`` reads forms A and C from a Chebyshev table of pair flows when it
            pays: a 1-D table in ``theta_0`` when every input of ``x1`` and ``x2`` has the
            same initial variance, else a 3-D table in ``(log d1, log d2, theta_0)`` when
            the kernel has at least twice its node pairs and the table meets ``rtol`` on the
            pilot pairs; ``False`` never; ``True`` always (needs positive variances).
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
        infinite depth, and the measured error of a table if one was used.
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
    N1, N2 = x1.shape[0], x2.shape[0]
    q1 = np.asarray(_diag_gram(net, x1))
    q2 = q1 if x2 is x1 else np.asarray(_diag_gram(net, x2))
    mode = "homogeneous" if use_homog else None
    if mode is None and table is not False and block.tabulable_kernel:
        if _common_variance(q1, q2) is not None:
            mode = "equal"
        elif np.all(q1 > 0) and np.all(q2 > 0) and (
                table is True or N1 * N2 > _TABLE_ADVANTAGE * _table_pairs(
                    _TABLE_VARIANCE_NODES[0], q1, q2)):
            mode = "unequal"
        elif table is True:
            raise ValueError("table=True needs every input to have a positive initial "
                             "variance (a nonzero input, or an input layer with sigma_a > 0)")
    elif table is True and mode is None:
        raise ValueError("table=True needs form A or C")
    train_input = train_input_layer and net.input_layer is not None
    pilot = None
    if math.isinf(depth) or mode is not None:  # the steps' and the table's measure
        pilot = _Pilot(net, dyn, traced_dyn, traced_readout, x1, x2, q1, q2,
                       train_input_layer, compute_ntk, max_memory, depth)
    error = None
    if math.isinf(depth):
        steps, error = choose_steps(pilot, rtol, steps)
    elif steps is not None:
        steps = None  # finite depth: L layers, steps do not apply
    plan = step_plan(depth, steps or 1, net.horizon)
    sv2, sv02 = readout.sigma_v**2, readout.sigma_v0**2
    pair_table = table_error = None
    if mode is not None:
        def outputs_of(d1, d2, k, h0):
            return _block(traced_dyn, traced_dyn.init(d1, d2, k, h0), *plan, traced_readout)

        pair_table = _build_table(mode, outputs_of, q1, q2, x2 is x1, train_input, rtol,
                                  pilot.theta_lo)
        d1, d2, k12 = pilot.init[:3]
        got = [sv2 * o + sv02
               for o in pair_tables.evaluate(pair_table, d1, d2, k12, pilot.same)]
        table_error = relative_difference(got[: 2 if compute_ntk else 1],
                                           pilot(steps or 1))
        if table == "auto" and mode == "unequal" and table_error > rtol:
            pair_table = table_error = None  # the table missed the tolerance: general path
    if pair_table is not None:
        per_pair = pair_tables.bytes_per_pair(pair_table)
    else:
        per_pair = _BYTES_PER_PAIR
    block_size = max(16, int(math.sqrt(max_memory / per_pair)))
    # tiles of equal sizes (N = 1024 in 2 x 512, not 965 + 59): fewer shapes to compile
    most = max(N1, N2)
    block_size = max(16, -(-most // -(-most // block_size)))
    K = np.empty((N1, N2)) if out_nngp is None else out_nngp
    T = np.empty((N1, N2)) if (compute_ntk and out_ntk is None) else out_ntk
    # a kernel of x with itself is symmetric: tiles above the diagonal are mirrored
    symmetric = x2 is x1
    tiles = [(i, j) for i in range(0, N1, block_size) for j in range(0, N2, block_size)
             if not (symmetric and j < i)]
    with progress_callback(progress, len(tiles), "kernel tiles") as advance:
        for i, j in tiles:
            xa, xb = x1[i : i + block_size], x2[j : j + block_size]
            k_shape = (xa.shape[0], xb.shape[0])
            same = _self_pairs(x1, x2, i, j, *k_shape)
            if pair_table is not None:
                R, Th = _table_tile(traced_dyn.net, pair_table, xa, xb, same)
            else:
                init = _initial_state(net, dyn, xa, xb, train_input_layer, same=same)
                R, Th = _block(traced_dyn, init, *plan, traced_readout)
            for out, vals in ((K, R), (T, Th) if compute_ntk else (None, None)):
                if out is None:
                    continue
                vals = np.asarray(sv2 * vals + sv02)
                out[i : i + block_size, j : j + block_size] = vals
                if symmetric and j > i:
                    out[j : j + block_size, i : i + block_size] = vals.T
            advance(1)
    for name, arr in (("NNGP", K), ("NTK", T)):
        if arr is not None and isinstance(arr, np.ndarray) and not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"the {name} has non-finite entries: the dynamics blew "
                                     "up (try a smaller horizon or sigma_w)")
    return Kernel(nngp=K, ntk=T if compute_ntk else None, depth=depth,
                  steps=steps if math.isinf(depth) else None, error=error,
                  table_error=table_error)


@eqx.filter_jit
def _tile_gram(net, xa, xb, same):
    qa, qb = _diag_gram(net, xa), _diag_gram(net, xb)
    return qa, qb, _consistent_gram(_initial_gram(net, xa, xb), qa, qb, same)


def _table_tile(net, pair_table, xa, xb, same):
    """The outputs of a tile read from its table (the tile's Gram entries in one compiled
    call: eager operations would compile once per tile shape each)."""
    return pair_tables.evaluate(pair_table, *_tile_gram(net, xa, xb, same), same)


def _table_pairs(n: int, q1: np.ndarray, q2: np.ndarray) -> int:
    """Node pairs of a 3-D table with ``n`` intervals per non-constant variance axis."""
    m1 = n + 1 if q1.max() > q1.min() else 1
    m2 = n + 1 if q2.max() > q2.min() else 1
    return m1 * m2 * (pair_tables.THETA_NODES + 1)


def _build_table(mode, outputs_of, q1, q2, same_grid, train_input, rtol, theta_lo):
    """The pair table of ``mode``: one node per variance axis for the homogeneous reduction
    (variance 1: the outputs scale with ``sqrt(d1 d2)``) and for equal norms (their
    variance), else Lobatto nodes in ``log d`` over the inputs' range, doubled once when
    the last coefficients exceed ``rtol / 10``, and angles from ``theta_lo`` (the largest
    correlation of distinct pairs) with the diagonal pairs in their own series."""
    if mode != "unequal":
        v = np.array([1.0 if mode == "homogeneous" else float(q1[0])])
        return pair_tables.build_table(outputs_of, v, v, True, train_input)
    ranges = (*_log_range(q1), *_log_range(q2))
    for n in _TABLE_VARIANCE_NODES:
        nodes = [np.exp(pair_tables.lobatto(lo, hi, n if hi > lo else 0))
                 for lo, hi in (ranges[:2], ranges[2:])]
        table = pair_tables.build_table(outputs_of, *nodes, same_grid, train_input,
                                        ranges=ranges, theta_lo=theta_lo,
                                        diagonal=same_grid)
        if table.tail <= rtol / 10:
            break
    return table


def _log_range(q: np.ndarray) -> tuple[float, float]:
    return float(np.log(q.min())), float(np.log(q.max()))


class _Pilot:
    """General-path outputs (after the readout) of a pilot tile of real pairs that stands
    for the kernel: the rows of :func:`pilot_indices` (extreme and evenly spaced variances)
    and the ends of the pairs with the most extreme initial correlations, where RK4's error
    is largest (e.g. near ``rho = -1`` for ReLU, whose ``V'`` has a square-root singularity
    there) and a table is hardest. ``pilot(n)``: at infinite depth ``n`` RK4 steps, at
    finite depth the ``L`` layers (``n`` ignored); computed once per ``n``."""

    def __init__(self, net, dyn, traced_dyn, traced_readout, x1, x2, q1, q2, train_input,
                 compute_ntk, max_memory, depth):
        e1, e2 = _extreme_pairs(net, x1, x2, q1, q2, max_memory)
        i1 = np.concatenate([pilot_indices(q1), e1])
        i2 = np.concatenate([pilot_indices(q2), e2])
        same = (i1[:, None] == i2[None, :]) if x2 is x1 else None
        self.init = _initial_state(net, dyn, x1[i1], x2[i2], train_input, same=same)
        self.same = same
        self.theta_lo = 0.0
        # the smallest angle of distinct pairs (the most correlated pairs are among these)
        if net.block.tabulable_kernel:
            d1, d2, k = (np.asarray(v) for v in self.init[:3])
            norm = np.sqrt(d1[:, None] * d2[None, :])
            rho = np.where(norm > 0, k / np.where(norm > 0, norm, 1.0), 0.0)
            if same is not None:
                rho = np.where(same, -1.0, rho)
            self.theta_lo = float(np.arccos(np.clip(rho.max(), -1.0, 1.0)))
        self._args = (net, traced_dyn, traced_readout, compute_ntk, depth)
        self._cache = {}

    def __call__(self, n: int):
        net, traced_dyn, traced_readout, compute_ntk, depth = self._args
        n = int(n) if math.isinf(depth) else 1
        if n not in self._cache:
            readout = net.readout if net.readout is not None else Readout()
            R, Th = _block(traced_dyn, self.init, *step_plan(depth, n, net.horizon),
                           traced_readout)
            out = readout.sigma_v**2 * R + readout.sigma_v0**2
            self._cache[n] = ((out, readout.sigma_v**2 * Th + readout.sigma_v0**2)
                              if compute_ntk else (out,))
        return self._cache[n]


def _choose_steps(net, dyn, traced_dyn, traced_readout, x1, x2, train_input, steps, rtol,
                  compute_ntk, max_memory):
    """:func:`choose_steps` on the pilot tile of :class:`_Pilot`."""
    q1 = np.asarray(_diag_gram(net, x1))
    q2 = q1 if x2 is x1 else np.asarray(_diag_gram(net, x2))
    pilot = _Pilot(net, dyn, traced_dyn, traced_readout, x1, x2, q1, q2, train_input,
                   compute_ntk, max_memory, math.inf)
    return choose_steps(pilot, rtol, steps)


_EXTREME_PAIRS = 8


def _extreme_pairs(net, x1, x2, q1, q2, max_memory) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the ``_EXTREME_PAIRS`` pairs of smallest and the as many of
    largest initial correlation (off the diagonal when ``x2 is x1``), by row chunks of the
    Gram matrix within ``max_memory``; repeated to a fixed count."""
    m = _EXTREME_PAIRS
    vals_all, rows_all, cols_all = [[], []], [[], []], [[], []]
    rows = max(1, min(x1.shape[0], int(max_memory // (8 * 4 * x2.shape[0]))))
    s2 = jnp.sqrt(jnp.asarray(q2))
    for i in range(0, x1.shape[0], rows):
        qa = jnp.asarray(q1[i : i + rows])
        found = _chunk_extremes(net, x1[i : i + rows], x2, qa, s2, jnp.asarray(i), x2 is x1)
        for side, (vals, cols) in enumerate(found):
            vals, cols = np.asarray(vals).ravel(), np.asarray(cols).ravel()
            ok = np.isfinite(vals)  # the diagonal, masked when x2 is x1
            vals_all[side].append(vals[ok])
            rows_all[side].append(i + np.flatnonzero(ok))  # one candidate per row
            cols_all[side].append(cols[ok])
    picked = []
    for side in (0, 1):  # side 0: largest -rho (smallest rho); side 1: largest rho
        vals = np.concatenate(vals_all[side])
        keep = np.argsort(-vals)[:m]
        picked.append((np.concatenate(rows_all[side])[keep],
                       np.concatenate(cols_all[side])[keep]))
    r = np.concatenate([picked[0][0], picked[1][0]])
    c = np.concatenate([picked[0][1], picked[1][1]])
    if r.size == 0:  # a single input: only its diagonal pair
        r = c = np.zeros(1, int)
    pad = np.arange(2 * m) % r.size
    return r[pad], c[pad]


@eqx.filter_jit
def _chunk_extremes(net, xa, x2, qa, s2, row0, same_input: bool):
    """Per row of the chunk ``xa``, its smallest and its largest initial correlation
    against ``x2`` and their columns, as ``((-rho, col), (rho, col))`` of shape ``(B, 1)``
    each (the pair of an input with itself masked as ``-inf`` when ``same_input``): one
    compiled pass of row reductions, where NumPy's argpartition of the whole Gram matrix
    (and XLA's top_k) cost seconds at 4096 inputs. The extreme pairs are then taken among
    the rows' extremes: the most extreme pair is exact, the others are the extremes of
    distinct rows."""
    g = _initial_gram(net, xa, x2)
    norm = jnp.sqrt(qa)[:, None] * s2[None, :]
    rho = jnp.where(norm > 0, g / jnp.where(norm > 0, norm, 1.0), 0.0)
    if same_input:
        self_pair = (row0 + jnp.arange(xa.shape[0]))[:, None] == jnp.arange(x2.shape[0])
    else:
        self_pair = jnp.zeros(rho.shape, bool)
    out = []
    for sign in (-1.0, 1.0):
        masked = jnp.where(self_pair, -jnp.inf, sign * rho)
        col = jnp.argmax(masked, 1)
        out.append((jnp.take_along_axis(masked, col[:, None], 1), col[:, None]))
    return tuple(out)


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
