"""Small dense linear-algebra helpers shared by the samplers and SDEs.

Every exact step draws ``N(0, G)`` columns as ``F z`` with ``F F^T = G``. Any such factor
gives the same Gaussian law, so :func:`psd_sqrt` takes the cheapest exact one: LAPACK's
Cholesky ``G = L L^T`` (``k^3 / 3`` flops; 8-10x faster than ``eigh`` for ``k = 64``,
``benchmarks/README.md``), and an eigendecomposition only where Cholesky breaks down (a zero pivot:
singular ``G`` from repeated inputs, inputs with ``phi(x) = 0``, or rank lost to rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["psd_sqrt", "eigh_sqrt", "correlated_normal"]


def eigh_sqrt(gram: jax.Array) -> jax.Array:
    """``Q diag(sqrt(max(lam, 0)))`` from ``gram = Q diag(lam) Q^T``, for ``(..., k, k)``.

    Exact for every symmetric PSD matrix, singular ones included: eigenvalues that rounding
    made negative are clipped to zero and no jitter is ever added (``forward.md`` §5).
    ``F F^T`` matches ``gram`` to the eigensolver's backward error, ``O(k eps |gram|_2)``.
    """
    lam, q = jnp.linalg.eigh(0.5 * (gram + jnp.swapaxes(gram, -1, -2)))
    return q * jnp.sqrt(jnp.clip(lam, 0.0))[..., None, :]


def _cholesky_or_eigh(grams: jax.Array) -> jax.Array:
    """``(B, k, k)`` factors: Cholesky where it completes, :func:`eigh_sqrt` elsewhere.

    Cholesky is backward stable whenever it runs to completion (Higham, *Accuracy and
    Stability*, Thm 10.3): ``L L^T = G + E`` with ``|E_ij| <= gamma_{k+1} sqrt(G_ii G_jj)``,
    ``gamma_m = m eps / (1 - m eps)``, tiny or singular pivots included. It fails (JAX fills
    the factor with NaN) exactly when a pivot is not positive; those matrices, and only
    those, are factored by ``eigh`` in a loop, so a matrix's factor never depends on the
    others in its batch (samples do not depend on chunking). The loop and its ``cond`` sit
    outside any ``vmap`` (see :func:`_batched_factor`), so no ``eigh`` runs when none fails.
    """
    chol = jnp.linalg.cholesky(grams)  # symmetrises its input, as eigh_sqrt does
    failed = ~jnp.all(jnp.isfinite(chol), axis=(-2, -1))
    count = jnp.sum(failed)
    order = jnp.nonzero(failed, size=grams.shape[0], fill_value=0)[0]

    def repair(i_factors):
        i, factors = i_factors
        j = order[i]
        return i + 1, factors.at[j].set(eigh_sqrt(grams[j]).astype(factors.dtype))

    return jax.lax.while_loop(lambda c: c[0] < count, repair, (jnp.zeros((), count.dtype),
                                                             chol))[1]


@jax.custom_batching.custom_vmap
def _batched_factor(grams: jax.Array) -> jax.Array:
    return _cholesky_or_eigh(grams)


@_batched_factor.def_vmap
def _batched_factor_vmap(axis_size, in_batched, grams):
    # Under vmap the per-matrix "did Cholesky fail" test would be batched, and a batched
    # cond becomes a select that runs eigh on every matrix. Instead the vmapped axis is
    # merged into the batch, so the test and the loop see every matrix at the top level;
    # nested vmaps merge one axis each (the call below re-enters this rule).
    (batched,) = in_batched
    if not batched:
        return _batched_factor(grams), False
    out = _batched_factor(grams.reshape(-1, *grams.shape[-2:]))
    return out.reshape(grams.shape), True


def psd_sqrt(gram: jax.Array) -> jax.Array:
    """A factor ``F`` with ``F @ F.T == gram`` (to rounding) of symmetric PSD ``(..., k, k)``.

    Lower-triangular Cholesky factor where Cholesky completes (nonsingular ``gram``), else
    :func:`eigh_sqrt`: exact for singular Gram matrices (duplicate inputs, ``phi(x) = 0``),
    no jitter ever added (``forward.md`` §5). Every factor gives ``F z ~ N(0, gram)`` for
    standard normal ``z``; factors differ by a rotation ``F' = F O``, so samples drawn with
    another factor are equal in law, not pathwise. A ``1 x 1`` matrix takes the scalar
    square root.
    """
    if gram.shape[-1] == 1:
        return jnp.sqrt(jnp.clip(gram, 0.0))
    k = gram.shape[-1]
    return _batched_factor(gram.reshape(-1, k, k)).reshape(gram.shape)


def correlated_normal(key: jax.Array, gram: jax.Array, width: int, dtype) -> jax.Array:
    """``(k, width)`` array whose columns are i.i.d. ``N(0, gram)``."""
    z = jax.random.normal(key, (gram.shape[-1], width), dtype)
    root = psd_sqrt(gram).astype(dtype)
    # one input: a scalar scale, O(width) work with no matmul
    return root * z if gram.shape[-1] == 1 else root @ z
