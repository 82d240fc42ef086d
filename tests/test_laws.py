"""Standardised parameter-noise laws (forward.md §2)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplimits.spec.laws import CustomLaw, Gaussian, Rademacher, Uniform, get_law

N = 200_000


@pytest.mark.parametrize(
    ("law", "fourth_moment"),
    [(Gaussian(), 3.0), (Rademacher(), 1.0), (Uniform(), 9 / 5)],
)
def test_builtin_laws_are_standardised(law, fourth_moment):
    # N = 2e5 draws. se(mean) = 1/sqrt(N) = 0.0022; se(var) = sqrt((E eps^4 - 1)/N), i.e.
    # 0.0032 (Gaussian), 0 (Rademacher: eps^2 = 1), 0.0020 (Uniform). Tolerance 5 se.
    x = np.asarray(law.sample(jax.random.key(3), (N,), jnp.float64))
    assert x.shape == (N,) and x.dtype == np.float64
    assert abs(x.mean()) < 5 / math.sqrt(N)
    assert abs(np.mean(x**2) - 1) <= 5 * math.sqrt((fourth_moment - 1) / N) + 1e-12
    # the fourth moment identifies the law (se = sqrt((E eps^8 - m4^2)/N) < 0.03 for these)
    assert np.mean(x**4) == pytest.approx(fourth_moment, abs=0.15)


def test_law_supports_and_flags():
    key = jax.random.key(0)
    r = np.asarray(Rademacher().sample(key, (1000,)))
    assert set(np.unique(r)) == {-1.0, 1.0}
    u = np.asarray(Uniform().sample(key, (1000,)))
    assert np.all(np.abs(u) <= math.sqrt(3)) and np.max(np.abs(u)) > 1.6
    assert Gaussian().is_gaussian and not Rademacher().is_gaussian
    assert not Uniform().is_gaussian
    assert Gaussian().sample(key, (2, 3)).dtype == jnp.float32  # default dtype
    # different keys give different draws, the same key the same draws
    g = Gaussian()
    np.testing.assert_array_equal(g.sample(key, (5,)), g.sample(key, (5,)))
    assert not np.array_equal(g.sample(key, (5,)), g.sample(jax.random.key(1), (5,)))


def test_get_law_names_and_errors():
    assert isinstance(get_law("gaussian"), Gaussian)
    assert isinstance(get_law("Normal"), Gaussian)
    assert isinstance(get_law("RADEMACHER"), Rademacher)
    assert isinstance(get_law("uniform"), Uniform)
    law = Rademacher()
    assert get_law(law) is law
    with pytest.raises(ValueError, match="unknown parameter law") as err:
        get_law("cauchy")
    for name in ("gaussian", "rademacher", "uniform"):
        assert name in str(err.value)
    with pytest.raises(TypeError):
        get_law(1.0)


def _laplace(key, shape, dtype):
    return jax.random.laplace(key, shape, dtype) / math.sqrt(2)  # variance 1


def test_custom_law_accepts_standardised_law():
    law = CustomLaw(_laplace, name="laplace")
    assert law.name == "laplace" and not law.is_gaussian
    x = np.asarray(law.sample(jax.random.key(1), (1000,), jnp.float64))
    assert x.dtype == np.float64 and x.shape == (1000,)
    # get_law wraps a plain callable in a CustomLaw named after it
    wrapped = get_law(_laplace)
    assert isinstance(wrapped, CustomLaw) and wrapped.name == "_laplace"


@pytest.mark.parametrize(
    ("draw", "what"),
    [
        (lambda k, s, d: 2.0 * jax.random.normal(k, s, d), "variance 4"),
        (lambda k, s, d: math.sqrt(1.1) * jax.random.normal(k, s, d), "variance 1.1"),
        (lambda k, s, d: jax.random.normal(k, s, d) + 0.1, "mean 0.1"),
        (lambda k, s, d: jax.random.exponential(k, s, d), "mean 1"),
    ],
)
def test_custom_law_rejects_mis_scaled_law(draw, what):
    # 2**16 draws: 6 se is 0.023 for the mean and 0.033 for a Gaussian variance, so each
    # of these (10 se or more away) must be rejected.
    with pytest.raises(ValueError, match="standardised"):
        CustomLaw(draw, name=what)


def test_custom_law_rejects_non_finite_values():
    with pytest.raises(ValueError, match="non-finite"):
        CustomLaw(lambda k, s, d: jnp.full(s, jnp.nan, d))
