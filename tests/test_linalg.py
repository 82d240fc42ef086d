"""The Gram factor of every exact step (``_core/linalg.py``): ``F F^T = G`` to rounding for
nonsingular, singular (repeated and zero rows) and all-zero Gram matrices, one matrix's factor
independent of its batch, and ``F z`` exactly ``N(0, G)`` in law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from deeplimits._core.linalg import eigh_sqrt, psd_sqrt

K = 6


def _grams(dtype=jnp.float64):
    """A nonsingular Gram, a singular one (row 1 repeats row 0, row 3 is zero: a dead ReLU
    input) and the zero matrix, all ``(K, K)``, of ``H H^T`` with ``H`` ``(K, 8)``."""
    H = jax.random.normal(jax.random.key(0), (K, 8), jnp.float64)
    S = H.at[1].set(H[0]).at[3].set(0.0)
    grams = [H @ H.T / 8, S @ S.T / 8, jnp.zeros((K, K))]
    return jnp.stack(grams).astype(dtype)


def _gamma(m, dtype):
    eps = float(jnp.finfo(dtype).eps)
    return m * eps / (1 - m * eps)


def _assert_factor(F, G):
    """``F F^T = G`` within the backward error of the factorisation that produced ``F``:
    Cholesky (Higham, Thm 10.3) gives ``|E_ij| <= gamma_{k+1} sqrt(G_ii G_jj)`` (with
    ``gamma_{k+1}`` of ``(|L| |L^T|)_ij <= |L_i| |L_j|`` and one more rounding for the
    product ``F F^T`` here); a symmetric eigensolver ``|E|_2 <= p(k) eps |G|_2`` with
    ``p(k)`` a small multiple of ``k`` (LAPACK Users' Guide §4.7), the clipped negative
    eigenvalues no larger."""
    dtype, k = F.dtype, G.shape[-1]
    F, G = np.asarray(F, np.float64), np.asarray(G, np.float64)
    err = np.abs(F @ F.T - G)
    d = np.sqrt(np.clip(np.diag(G), 0, None))
    chol_bound = _gamma(2 * k + 2, dtype) * np.outer(d, d)
    eigh_bound = 4 * k * float(jnp.finfo(dtype).eps) * np.linalg.norm(G, 2)
    assert np.all(err <= np.maximum(chol_bound, eigh_bound) + np.finfo(np.float64).tiny)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_factor_reproduces_the_gram_to_rounding(dtype):
    G = _grams(dtype)
    F = jax.jit(jax.vmap(psd_sqrt))(G)
    assert F.dtype == dtype and F.shape == G.shape
    for f, g in zip(F, G, strict=True):
        _assert_factor(f, g)
    # rows of a repeated input are equal, a zero input's row is zero: to rounding
    tol = 8 * K * float(jnp.finfo(dtype).eps) * float(jnp.max(jnp.abs(G[1])))
    np.testing.assert_allclose(F[1, 1], F[1, 0], rtol=0, atol=np.sqrt(tol))
    np.testing.assert_allclose(F[1, 3], 0.0, rtol=0, atol=np.sqrt(tol))
    assert np.all(np.asarray(F[2]) == 0)


def test_nonsingular_grams_take_cholesky_singular_ones_eigh():
    G = _grams()
    F = psd_sqrt(G)
    np.testing.assert_array_equal(F[0], jnp.linalg.cholesky(G[0]))  # no eigh ran
    np.testing.assert_array_equal(F[1], eigh_sqrt(G[1]))
    # one matrix's factor never depends on its batch (samples do not depend on chunking)
    for i in range(3):
        np.testing.assert_array_equal(F[i], psd_sqrt(G[i]))
    # nested vmaps and a leading batch shape merge into one batch
    nested = jax.jit(jax.vmap(jax.vmap(psd_sqrt)))(jnp.stack([G, G[::-1]]))
    np.testing.assert_array_equal(nested[0], F)
    np.testing.assert_array_equal(nested[1], F[::-1])
    np.testing.assert_array_equal(psd_sqrt(jnp.stack([G, G[::-1]])), nested)


def test_near_singular_and_rank_one_grams():
    """Eigenvalues from 1 down to 1e-20 (Cholesky may or may not complete) and rank one:
    the factor still reproduces the Gram to rounding, whichever path it took."""
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((K, K)))
    lam = np.logspace(0, -20, K)
    v = np.arange(1.0, K + 1)
    for G in (q * lam @ q.T, np.outer(v, v), 1.0 + np.zeros((K, K))):
        _assert_factor(psd_sqrt(jnp.asarray(G)), G)


def test_one_input_is_the_scalar_root():
    np.testing.assert_array_equal(psd_sqrt(jnp.array([[4.0]])), [[2.0]])
    np.testing.assert_array_equal(psd_sqrt(jnp.array([[-1e-18]])), [[0.0]])


@pytest.mark.parametrize("which", [0, 1])
def test_samples_have_the_gram_as_covariance(which):
    """``F z`` over ``N`` columns: every entry of the sample covariance within a Bonferroni
    z-bound (``alpha = 1e-3`` over the ``K (K + 1) / 2`` entries) of ``G``, with the Gaussian
    SE ``sqrt((G_ii G_jj + G_ij^2) / N)``, each variance raised by the factor's rounding
    ``r = 8 K eps |G|_2`` (twice the bound of ``_assert_factor``: a zero input's row is zero
    only to rounding) and ``r`` added. Control: the factor of ``G + delta I``, ``delta``
    twice the smallest diagonal shift the bound detects (``(z + z_0.95) max SE_ii``), is
    rejected by the same bound."""
    G = np.asarray(_grams()[which])
    N = 100_000
    z = jax.random.normal(jax.random.key(7), (K, N), jnp.float64)
    r = 8 * K * np.finfo(np.float64).eps * np.linalg.norm(G, 2)
    d = np.diag(G) + r
    se = np.sqrt((np.outer(d, d) + G**2) / N)
    zc = stats.norm.isf(1e-3 / (2 * K * (K + 1) // 2))
    delta = 2 * (zc + stats.norm.isf(0.05)) * se.diagonal().max()

    def rejected(F):
        Y = np.asarray(F @ z)
        return bool(np.any(np.abs(Y @ Y.T / N - G) > zc * se + r))

    assert not rejected(psd_sqrt(jnp.asarray(G)))
    assert rejected(psd_sqrt(jnp.asarray(G + delta * np.eye(K))))
