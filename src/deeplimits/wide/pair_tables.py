r"""Chebyshev tables of pair flows: a kernel entry from a few numbers (issue 18 item 3).

For forms A and C a pair of inputs flows from its initial covariance
``[[d1, k], [k, d2]]`` to its outputs ``(R, R + R' H)`` by dynamics that see nothing else,
so the outputs are a function of three numbers. Writing ``k = sqrt(d1 d2) cos(theta)``,

    out(d1, d2, theta) = sqrt(d1 d2) g(log d1, log d2, theta),

and ``g`` is tabulated on a tensor grid of Chebyshev-Lobatto nodes in ``s_i = log d_i``
over the range of the inputs' variances and in ``theta in [0, pi]``, then evaluated
spectrally (Chebyshev coefficients by type-I DCTs). The flow is solved once per node
triple instead of once per pair: ``(n1 + 1)(n2 + 1)(n_theta + 1)`` pairs (at most 17 x 17
x 97 = 28,033 with the default nodes; 17 x 17 x 49 = 14,161 when the series in ``theta``
converges on every other angle, as for smooth activations) against ``N1 N2``. Each axis
keeps the terms whose dropped tail sums below :data:`CHOP`, and a pair's read is a
Clenshaw sum in ``theta`` whose coefficients, contractions over the variance axes, are
small GEMMs over chunks of rows (about ``m2 m_theta`` multiply-adds per pair, in cache).
Three cases:

* **homogeneous dynamics** (``sigma_b = 0``, ReLU-like phi): ``g`` does not depend on the
  variances at all (exact angle reduction): one node per variance axis;
* **equal norms** (every input has one initial variance ``v``): one node, at ``v``;
* **unequal norms**: ``g`` is analytic in ``log d`` (its nearest singularities are at
  ``d <= 0``, i.e. ``Im log d = +-pi``), so its Chebyshev coefficients in ``log d`` fall
  geometrically; the node count doubles until the last coefficients are below the
  tolerance, and the caller measures the table against the general path on real pairs.

Shapes: ``coef`` is ``(2, m1, m2, m_theta)`` (NNGP part, NTK part); evaluation takes the
diagonals ``d1 (B1,)``, ``d2 (B2,)`` and cross terms ``k (B1, B2)`` of a tile.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft

__all__ = ["PairTable", "lobatto", "build_table", "evaluate", "chebyshev_coefficients"]

THETA_NODES = 96
"""Chebyshev-Lobatto intervals in ``theta`` (the accuracy of the homogeneous path)."""

CHOP = 1e-12
"""Each axis's series is cut where the absolute sum of its trailing coefficients falls below
this, relative to the largest coefficient (a bound on what the cut changes)."""


@dataclasses.dataclass(frozen=True)
class PairTable:
    """Chebyshev coefficients of ``g`` (see the module) and the log-variance ranges.

    ``coef``: ``(2, m1, m2, m_theta)``; ``lo1, hi1`` (``lo2, hi2``): the range of
    ``log d1`` (``log d2``) that the nodes span (unused on an axis with one node);
    ``tail``: the largest last coefficient on the variance axes relative to the largest
    coefficient of its output (0 with one node): the size of the neglected terms.
    ``theta_lo``: the table spans ``theta in [theta_lo, pi]``; ``diag``: ``(2, m1)``
    Chebyshev coefficients in ``log d`` of the outputs (over ``d``) of diagonal pairs
    ``[[d, d], [d, d]]``, which then come from this series instead of the table.
    """

    coef: np.ndarray
    lo1: float
    hi1: float
    lo2: float
    hi2: float
    tail: float
    theta_lo: float = 0.0
    diag: np.ndarray | None = None

    @property
    def pairs(self) -> int:
        """Number of node pairs whose flow the table solved."""
        return int(np.prod(self.coef.shape[1:]))


def lobatto(lo: float, hi: float, n: int) -> np.ndarray:
    """``n + 1`` Chebyshev-Lobatto nodes ``mid + half cos(pi j / n)`` on ``[lo, hi]``
    (one node, ``lo``, when ``n = 0``)."""
    if n == 0:
        return np.array([lo])
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.cos(np.pi * np.arange(n + 1) / n)


def chebyshev_coefficients(values: np.ndarray, axis: int) -> np.ndarray:
    """Values at ``n + 1`` Lobatto nodes (along ``axis``) -> coefficients of ``T_0..T_n``
    (type-I DCT, ends halved); a single node is a constant."""
    n = values.shape[axis] - 1
    if n == 0:
        return values
    coef = scipy.fft.dct(values, type=1, axis=axis) / n
    ends = [slice(None)] * values.ndim
    for k in (0, n):
        ends[axis] = k
        coef[tuple(ends)] /= 2
    return coef


def _theta_nodes(nodes: int, theta_lo: float) -> np.ndarray:
    # u_j = cos(pi j / nodes) in [-1, 1] and theta_j = theta_lo + (pi - theta_lo)(u_j + 1)/2,
    # so that a DCT of values at theta_j gives Chebyshev coefficients in u; the last node
    # is theta_lo (0: correlation 1)
    u = np.cos(np.pi * np.arange(nodes + 1) / nodes)
    return theta_lo + 0.5 * (np.pi - theta_lo) * (1 + u)


def build_table(outputs_of, d1: np.ndarray, d2: np.ndarray, same_grid: bool,
                train_input: bool, theta_nodes: int = THETA_NODES, *,
                ranges=(0.0, 0.0, 0.0, 0.0), theta_lo: float = 0.0,
                diagonal: bool = False) -> PairTable:
    """Solve the pair flow on the node grid and return its table.

    Args:
        outputs_of: ``(d1, d2, k, h0) -> (R, R + R' H)``, the flow of a tile of pairs
            (rows ``d1`` ``(B1,)``, columns ``d2`` ``(B2,)``, ``k`` and ``h0`` ``(B1, B2)``;
            here ``d1`` is ``(m1, 1)`` and ``k`` ``(m1, m_theta, m2)``, which the
            dynamics broadcast alike).
        d1, d2: the variance nodes of each axis (``exp`` of log-variance nodes, or the
            one common variance).
        same_grid: the two axes share their nodes (a kernel of ``x`` with itself): node
            pairs of one variance at ``theta = 0`` start exactly on it, as a diagonal does.
        train_input: ``H_0 = K_0`` (a trained input layer) instead of 0.
        ranges: ``(lo1, hi1, lo2, hi2)`` recorded on the table.
        theta_lo: the smallest angle tabulated (the largest correlation of distinct pairs).
        diagonal: also tabulate diagonal pairs ``[[d, d], [d, d]]`` on the ``d1`` nodes.
            ReLU-like duals need it with unequal norms: a pair starting at correlation 1
            with ``d1 != d2`` leaves it like ``theta_T ~ sqrt(theta_0^2 + c (log d1 -
            log d2)^2)``, a cone at ``theta_0 = 0, d1 = d2`` that no polynomial resolves;
            distinct pairs (``theta_0 >= theta_lo > 0``) stay away from it.
    """
    d1, d2 = np.asarray(d1, np.float64), np.asarray(d2, np.float64)
    m1, m2 = d1.size, d2.size
    scale = np.sqrt(d1[:, None, None] * d2[None, None, :])

    def flows(theta, last, extra):
        """``(2, m1, len(theta), m2)`` outputs at the angles ``theta`` (``last``: the last
        one is ``theta_lo``), and with ``extra`` the diagonal pairs' ``(2, m1)``."""
        # one tile of shape (m1, mt, m2): rows are the d1 nodes as a (m1, 1) column, so
        # that the dynamics' d1[:, None] broadcasts over (angle, d2) and a dual computes
        # its per-variance work (the Mehler coefficients of a smooth phi) for m1 + m2
        # variances
        k = scale * np.cos(theta)[None, :, None]
        if theta_lo == 0 and last:
            k[:, -1, :] = scale[:, 0, :]  # theta = 0: correlation exactly 1
            if same_grid:  # one variance at theta = 0: exactly the diagonal
                i = np.arange(min(m1, m2))
                k[i, -1, i] = d1[i]
        if extra:  # one more slot: the diagonal pairs [[d, d], [d, d]] of the d1 nodes
            slot = scale[:, :1, :].copy()
            slot[np.arange(m1), 0, np.arange(m1)] = d1
            k = np.concatenate([k, slot], 1)
        k = jnp.asarray(k)
        R, Th = outputs_of(jnp.asarray(d1[:, None]), jnp.asarray(d2), k,
                           k if train_input else jnp.zeros_like(k))
        out = np.stack([np.asarray(R), np.asarray(Th)])
        if not extra:
            return out, None
        on = np.arange(m1)
        return out[:, :, :-1], out[:, on, -1, on]

    # a 3-D table first flows every other Lobatto angle (a Lobatto grid of theta_nodes / 2
    # intervals, nested in the full one): smooth activations' series in theta converge
    # there (tanh and erf: ~30 terms to CHOP), and only if it has not (its last quarter
    # is needed) are the other angles flowed, so no flow is wasted (ReLU-like duals:
    # ~40-50 terms)
    coarse = theta_nodes // 2 if (m1 > 1 or m2 > 1) and theta_nodes % 2 == 0 else theta_nodes
    vals, diag_vals = flows(_theta_nodes(coarse, theta_lo), True, diagonal)
    coef, rel = _coefficients(vals, scale)
    if coarse < theta_nodes and _kept_terms(rel, 3) > 3 * coarse // 4:
        full = np.arange(theta_nodes + 1)
        rest = full[full % 2 != 0]
        more, _ = flows(_theta_nodes(theta_nodes, theta_lo)[rest], False, False)
        both = np.empty(vals.shape[:2] + (theta_nodes + 1,) + vals.shape[3:])
        both[:, :, ::2], both[:, :, rest] = vals, more
        coef, rel = _coefficients(both, scale)
    diag = None
    if diagonal:
        diag = chebyshev_coefficients(diag_vals / d1, 1)
    tail = max(float(rel[:, -1].max()) if m1 > 1 else 0.0,
               float(rel[:, :, -1].max()) if m2 > 1 else 0.0)
    # drop the trailing coefficients of each axis whose absolute sum is below CHOP (|T_k| <= 1,
    # so the dropped terms change no value by more than that, relative to the largest
    # coefficient): the theta series ends at its noise plateau (rounding near rho = +-1
    # leaves ~1e-12), the variance series where they have converged. The theta length is
    # padded with zeros to a multiple of 8 (values unchanged), so that nearby
    # hyperparameters share one compiled evaluation
    keep = [_kept_terms(rel, axis) for axis in (1, 2, 3)]
    kept_theta = -(-keep[2] // 8) * 8
    padded = np.zeros(coef.shape[:1] + (keep[0], keep[1], kept_theta))
    padded[..., : keep[2]] = coef[:, : keep[0], : keep[1], : keep[2]]
    return PairTable(padded, *ranges, tail=tail, theta_lo=theta_lo, diag=diag)


def _coefficients(vals: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs ``(2, m1, mt, m2)`` on the nodes -> Chebyshev coefficients of ``g`` as
    ``(2, m1, m2, mt)``, and their absolute values over the largest of each output."""
    coef = (vals / scale).transpose(0, 1, 3, 2)
    for axis in (1, 2, 3):
        coef = chebyshev_coefficients(coef, axis)
    big = np.abs(coef).reshape(2, -1).max(1)[:, None, None, None]
    return coef, np.abs(coef) / np.where(big > 0, big, 1.0)


def _kept_terms(rel: np.ndarray, axis: int) -> int:
    """Terms kept along ``axis`` of ``rel`` (``(2, m1, m2, mt)``, coefficients over the largest
    of their output): the shortest length whose dropped tail sums, in absolute value, to at
    most :data:`CHOP` for each output."""
    other = tuple(a for a in range(1, rel.ndim) if a != axis)
    per_term = rel.sum(other)  # (2, m_axis)
    tail = np.cumsum(per_term[:, ::-1], 1)[:, ::-1].max(0)  # tail[n]: sum of terms >= n
    small = np.nonzero(tail <= CHOP)[0]
    return max(1, int(small[0])) if small.size else rel.shape[axis]


def _clenshaw(coef, u):
    """``sum_k coef[k] T_k(u)`` elementwise; ``coef[k]`` broadcasts against ``u``.

    Unrolled over the (static, chopped) number of coefficients so that XLA fuses the
    recurrence into one elementwise pass (a loop would stream every array ``k`` times).
    """
    b1 = b2 = jnp.zeros_like(u)
    for k in range(coef.shape[0] - 1, 0, -1):
        b1, b2 = 2 * u * b1 - b2 + coef[k], b1
    return u * b1 - b2 + coef[0]


_CHUNK_PAIRS = 1 << 16
"""Pairs per chunk of a 3-D table's evaluation (a few (chunk, B2) float64 arrays of 512 KiB:
the recurrence's working set stays in the cache)."""


def _clenshaw_rows(coef_rows, t2, u):
    """``sum_k c_k T_k(u)`` for a chunk of pairs with ``c_k = coef_rows[k] @ t2.T``:
    ``coef_rows (mt, R, m2)``, ``t2 (B2, m2)``, ``u (R, B2)`` -> ``(R, B2)``."""
    # a loop, not unrolled: its (R, B2) arrays are in the cache, and an unrolled loop of
    # GEMMs took seconds to compile
    def term(k, carry):
        b1, b2 = carry
        return 2 * u * b1 - b2 + coef_rows[k] @ t2.T, b1

    zero = jnp.zeros_like(u)
    b1, b2 = jax.lax.fori_loop(1, coef_rows.shape[0], lambda i, c: term(
        coef_rows.shape[0] - i, c), (zero, zero))
    return u * b1 - b2 + coef_rows[0] @ t2.T


def _axis_values(d, lo, hi, m):
    """``T_a(u)`` for ``a < m`` at ``u = (2 log d - lo - hi) / (hi - lo)``: ``(B, m)``."""
    width = hi - lo
    u = (2 * jnp.log(d) - lo - hi) / jnp.where(width > 0, width, 1.0)
    u = jnp.clip(u, -1.0, 1.0)  # rounding at the ends of the range
    return jnp.cos(jnp.arange(m) * jnp.arccos(u)[:, None])


@eqx.filter_jit
def _evaluate(coef, diag, lo1, hi1, lo2, hi2, theta_lo, d1, d2, k12, same):
    scale = jnp.sqrt(d1[:, None] * d2[None, :])
    safe = jnp.where(scale > 0, scale, 1.0)
    theta = jnp.arccos(jnp.clip(k12 / safe, -1.0, 1.0))
    # Lobatto nodes in theta map to cos-nodes in u (clipped: rounding at theta_lo)
    u = jnp.clip((2 * theta - theta_lo - jnp.pi) / (jnp.pi - theta_lo), -1.0, 1.0)
    _, m1, m2, _ = coef.shape
    if m1 == 1 and m2 == 1:  # one series for every pair
        return tuple(scale * _clenshaw(coef[o, 0, 0], u) for o in range(2))
    # each pair's series in theta has coefficients sum_ab t1[i, a] t2[j, b] coef[a, b, k];
    # summed by Clenshaw's recurrence over k, with the coefficients of term k for a chunk
    # of rows made by one GEMM (chunk, m2) @ (m2, B2) as the recurrence needs them, so no
    # (mt, B1, B2) array is ever stored and each chunk's few (chunk, B2) arrays stay in cache
    t1 = _axis_values(d1, lo1, hi1, m1)
    t2 = _axis_values(d2, lo2, hi2, m2)
    per_row = jnp.einsum("ra,oabc->ocrb", t1, coef)  # (2, mt, B1, m2)
    B1, B2 = k12.shape
    chunk = min(B1, max(8, _CHUNK_PAIRS // max(B2, 1)))
    pad = -B1 % chunk
    per_row = jnp.pad(per_row, ((0, 0), (0, 0), (0, pad), (0, 0)))
    u_rows = jnp.pad(u, ((0, pad), (0, 0)))
    chunks = (B1 + pad) // chunk
    per_row = per_row.reshape(2, -1, chunks, chunk, m2).transpose(2, 0, 1, 3, 4)
    u_rows = u_rows.reshape(chunks, chunk, B2)

    def rows(args):
        coef_rows, u_chunk = args  # (2, mt, chunk, m2), (chunk, B2)
        return jnp.stack([_clenshaw_rows(coef_rows[o], t2, u_chunk) for o in range(2)])

    series = jax.lax.map(rows, (per_row, u_rows))  # (chunks, 2, chunk, B2)
    series = series.transpose(1, 0, 2, 3).reshape(2, chunks * chunk, B2)[:, :B1]
    out = [scale * series[o] for o in range(2)]
    if diag is not None and same is not None:
        t1_diag = _axis_values(d1, lo1, hi1, diag.shape[1])
        on_diag = (t1_diag @ diag.T) * d1[:, None]  # (B1, 2): the rows' own diagonal pairs
        out = [jnp.where(same, on_diag[:, o][:, None], out[o]) for o in range(2)]
    return tuple(out)


def evaluate(table: PairTable, d1, d2, k12, same=None):
    """``(R, R + R' H)`` of a tile from its table: ``d1 (B1,)``, ``d2 (B2,)``,
    ``k12 (B1, B2)`` -> two ``(B1, B2)`` arrays; ``same``: the ``(B1, B2)`` mask of pairs
    of an input with itself (or ``None``), taken from the diagonal series if there is one."""
    diag = None if table.diag is None else jnp.asarray(table.diag)
    return _evaluate(jnp.asarray(table.coef), diag, *(jnp.asarray(v, jnp.float64) for v in (
        table.lo1, table.hi1, table.lo2, table.hi2, table.theta_lo)), d1, d2, k12,
        None if same is None else jnp.asarray(same))


def bytes_per_pair(table: PairTable) -> int:
    """Working memory of one evaluated pair (its two series and temporaries)."""
    # the Gram inputs, angles, the outputs and the chunked series' stacked result; the
    # recurrence's own arrays are per chunk
    return 8 * 16
