"""Bad inputs raise ValueError naming the violated constraint, before any work starts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deeplimits as dl
from deeplimits._core.validation import check_inputs, check_samples
from deeplimits.simulation import samplers

KEY = jax.random.key(0)


@pytest.fixture
def no_work(monkeypatch):
    """Make any attempt to run a sampler chunk fail the test: errors must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("sampling started before the input was validated")

    monkeypatch.setattr(samplers, "_run_chunk", forbidden)


def net(**kw):
    base = dict(width=4, depth=3, form="A", activation="tanh")
    base.update(kw)
    return dl.ResNet(**base)


# --------------------------------------------------------------------------------------
# constructor
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(width=0), "width must be a positive integer"),
        (dict(width=-3), "width must be a positive integer"),
        (dict(width=2.5), "width must be a positive integer"),
        (dict(width="4"), "width must be a positive integer"),
        (dict(depth=0), "depth must be a positive integer"),
        (dict(depth=1.5), "depth must be a positive integer"),
        (dict(activation="reluu"), "unknown activation"),
        (dict(form="B", activation="relu"), "form B needs an activation that is C\\^2"),
        (dict(form="B", activation="abs"), "form B needs an activation that is C\\^2"),
        (dict(form="B", activation=jax.nn.softplus), "form B needs phi\\(0\\) = 0"),
        (dict(form="B", activation=jnp.cos), "form B needs phi\\(0\\) = 0"),
        (dict(form="C", M=np.eye(4)), "form C has no mean parameters"),
        (dict(form="C", mu_b=0.5), "form C has no mean parameters"),
        (dict(form="D"), "unknown block form"),
        (dict(scaling="shrunk"), "scaling must be one of"),
        (dict(sigma_w=-1.0), "sigma_w must be a finite number >= 0"),
        (dict(sigma_b=float("nan")), "sigma_b must be a finite number >= 0"),
        (dict(sigma_u=float("inf")), "sigma_u must be a finite number >= 0"),
        (dict(horizon=0.0), "horizon must be > 0"),
        (dict(mu_b=np.zeros(3)), "mu_b must be a scalar or have shape \\(4,\\)"),
        (dict(M=np.eye(3)), "M must have shape \\(4, 4\\)"),
        (dict(law="cauchy"), "unknown parameter law"),
        (dict(law=lambda k, s, d: 3 * jax.random.normal(k, s, d)), "standardised"),
    ],
)
def test_constructor_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        net(**kwargs)


def test_constructor_accepts_valid_variants():
    n = net(width=np.int64(5), depth=np.int32(2))  # numpy integers are integers
    assert (n.width, n.depth) == (5, 2) and type(n.width) is int
    assert net(form="b").block.name == "B"  # case-insensitive form
    assert net(form="B", activation="softplus_shifted").activation.phi0 == pytest.approx(0)
    assert net(form="C", activation="relu").form == "C"  # relu is fine in form C
    assert net(mu_b=np.ones(4), M=np.eye(4)).M.shape == (4, 4)


def test_bool_width_is_rejected():
    with pytest.raises(ValueError, match="width"):
        net(width=True)


def test_input_layer_rejects_bad_dim():
    with pytest.raises(ValueError, match="input dim must be a positive integer"):
        dl.InputLayer(0)
    with pytest.raises(ValueError, match="input-layer scales must be >= 0"):
        dl.InputLayer(3, sigma_A=-1.0)


# --------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------
X = np.ones((2, 4))


@pytest.mark.parametrize(
    ("network", "x", "kwargs", "match"),
    [
        (net(), X, dict(sampler="gibbs"), "unknown sampler"),
        (net(law="rademacher"), X, dict(sampler="exact"), "exact only for Gaussian"),
        (net(law="uniform"), X, dict(), "exact only for Gaussian"),  # exact is the default
        (net(), np.ones((2, 3)), dict(), "inputs must have shape \\(inputs, 4\\)"),
        (net(), np.ones(5), dict(), "inputs must have shape"),
        (net(), np.ones((2, 2, 4)), dict(), "inputs must have shape"),
        (net(), np.ones((0, 4)), dict(), "inputs must have shape"),
        (net(), np.array([[1.0, np.nan, 0.0, 0.0]]), dict(), "NaN"),
        (net(), np.array([[1.0, np.inf, 0.0, 0.0]]), dict(), "NaN or infinite"),
        (net(), np.array([["a", "b", "c", "d"]]), dict(), "numeric"),
        (net(input_layer=dl.InputLayer(3)), X, dict(), "inputs must have shape \\(inputs, 3\\)"),
        (net(), X, dict(samples=0), "samples must be a positive integer"),
        (net(), X, dict(samples=-2), "samples must be a positive integer"),
        (net(), X, dict(samples=2.5), "samples must be a positive integer"),
        (net(), X, dict(chunk_size=0), "chunk_size must be a positive integer"),
        (net(scaling="iid"), X, dict(sampler="sde"), "no diffusion limit"),
        (net(), X, dict(sampler="sde", steps=0), "steps must be a positive integer"),
        (net(), X, dict(output="readout"), "needs a network with a readout"),
        (net(), X, dict(output="logits"), "output must be one of"),
        (net(readout=dl.Readout()), X, dict(output="readout", trajectory=True),
         "cannot be combined with readout"),
    ],
)
def test_sample_rejects(no_work, network, x, kwargs, match):
    kwargs.setdefault("samples", 3)
    with pytest.raises(ValueError, match=match):
        dl.sample(network, x, KEY, **kwargs)


def test_sample_sde_rejects_iid(no_work):
    with pytest.raises(ValueError, match="no diffusion limit"):
        dl.sample_sde(net(scaling="iid"), X, KEY, samples=2)


def test_solve_sde_rejects_bad_inputs(monkeypatch):
    import diffrax

    def forbidden(*args, **kwargs):
        raise AssertionError("the SDE solve started before the input was validated")

    monkeypatch.setattr(diffrax, "diffeqsolve", forbidden)
    with pytest.raises(ValueError, match="no diffusion limit"):
        dl.solve_sde(net(scaling="iid"), X, KEY, steps=4)
    with pytest.raises(ValueError, match="NaN"):
        dl.solve_sde(net(), np.full((1, 4), np.nan), KEY, steps=4)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        dl.solve_sde(net(), X, KEY, steps=0)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        dl.solve_sde(net(), X, KEY, steps=4, samples=0)
    # form C has no pathwise (matrix Brownian) form: refused before any work
    with pytest.raises((ValueError, NotImplementedError), match="form C"):
        dl.solve_sde(net(form="C"), X, KEY, steps=4)


def test_solve_sde_on_form_c_raises_value_error():
    with pytest.raises(ValueError, match="form C"):
        dl.solve_sde(net(form="C"), X, KEY, steps=4)


# --------------------------------------------------------------------------------------
# the helpers themselves
# --------------------------------------------------------------------------------------
def test_check_samples():
    assert check_samples(7) == 7 and check_samples(np.int64(3)) == 3
    for bad in (0, -1, 1.0, "2", None):
        with pytest.raises(ValueError, match="samples must be a positive integer"):
            check_samples(bad)
    with pytest.raises(ValueError, match="steps must"):
        check_samples(0, "steps")


def test_check_inputs_shapes_and_dtype():
    n = net()
    one = check_inputs(n, np.arange(4.0), jnp.float64)
    assert one.shape == (1, 4) and one.dtype == jnp.float64
    many = check_inputs(n, np.arange(12).reshape(3, 4), jnp.float32)  # integers are numeric
    assert many.shape == (3, 4) and many.dtype == jnp.float32
    np.testing.assert_array_equal(many, np.arange(12).reshape(3, 4))
    layered = net(input_layer=dl.InputLayer(2))
    assert check_inputs(layered, np.ones((5, 2)), jnp.float32).shape == (5, 2)
