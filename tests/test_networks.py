"""ResNet description, dense parameters, dense forward pass and sampler outputs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deeplimits as dl

F64 = jnp.float64


def _np_act(name):
    return {
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0.0),
        "swish": lambda z: z / (1.0 + np.exp(-z)),
    }[name]


# --------------------------------------------------------------------------------------
# dense forward pass against a hand-written loop of the block formula
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("form", "act", "extra"),
    [
        ("A", "tanh",
         dict(sigma_b=0.7, mu_b=np.linspace(-1, 1, 5), M=np.diag([1.0, -2, 0.5, 0, 3]))),
        ("B", "swish", dict(sigma_b=0.4, mu_b=0.3, M=np.ones((5, 5)) / 5)),
        ("C", "relu", dict(sigma_b=0.3, sigma_u=1.3, sigma_w=0.8)),
    ],
)
def test_apply_matches_numpy_loop(form, act, extra):
    n, L = 5, 4
    net = dl.ResNet(width=n, depth=L, form=form, activation=act, horizon=2.0, **extra)
    params = net.init(jax.random.key(11), F64)
    x = np.random.default_rng(0).normal(size=(3, n))
    out = np.asarray(net.apply(params, jnp.asarray(x)))
    path = np.asarray(net.apply(params, jnp.asarray(x), trajectory=True))

    W, b = np.asarray(params.blocks.W), np.asarray(params.blocks.b)
    U = None if params.blocks.U is None else np.asarray(params.blocks.U)
    phi = _np_act(act)
    expected = []
    for row in x:
        h, states = row.copy(), [row.copy()]
        for layer in range(L):
            if form == "A":  # x + b + W phi(x)
                h = h + b[layer] + W[layer] @ phi(h)
            elif form == "B":  # x + phi(b + W x)
                h = h + phi(b[layer] + W[layer] @ h)
            else:  # x + U phi(W x + b), all scales already inside (U, W, b)
                h = h + U[layer] @ phi(W[layer] @ h + b[layer])
            states.append(h.copy())
        expected.append(states)
    expected = np.asarray(expected).transpose(1, 0, 2)  # (L + 1, inputs, n)
    np.testing.assert_allclose(out, expected[-1], rtol=1e-12, atol=1e-12)
    assert path.shape == (L + 1, 3, n)
    np.testing.assert_allclose(path, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(path[0], x)


def _standardised_ok(z, what):
    # z should be i.i.d. mean 0, variance 1 (Gaussian): 5 standard errors on each
    z = np.ravel(z)
    assert abs(z.mean()) < 5 / math.sqrt(z.size), what
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / z.size), what


def test_init_parameter_law_forms_a_and_b():
    # W_l = M dt + s_w sqrt(dt) E, b_l = mu_b dt + sigma_b sqrt(dt) eps (forward.md §2).
    # n = 16, L = 100: 25600 weight entries (5 se on the variance = 4.4%), 1600 biases.
    n, L, T = 16, 100, 2.0
    rng = np.random.default_rng(1)
    M, mu = rng.normal(size=(n, n)), rng.normal(size=n)
    for form in ("A", "B"):
        net = dl.ResNet(width=n, depth=L, form=form, activation="tanh", sigma_w=1.5,
                        sigma_b=0.7, mu_b=mu, M=M, horizon=T)
        p = net.init(jax.random.key(2), F64).blocks
        dt = T / L
        assert net.dt == pytest.approx(dt) and net.s_w == pytest.approx(1.5 / 4)
        _standardised_ok((np.asarray(p.W) - M * dt) / (1.5 / 4 * math.sqrt(dt)), form + " W")
        _standardised_ok((np.asarray(p.b) - mu * dt) / (0.7 * math.sqrt(dt)), form + " b")
        assert p.U is None
    # fixed-width scaling (s_w = sigma_w) and the i.i.d. baseline (dt -> 1)
    fixed = dl.ResNet(width=n, depth=L, sigma_w=1.5, width_scaled=False, horizon=T)
    assert fixed.s_w == 1.5
    _standardised_ok(np.asarray(fixed.init(jax.random.key(3), F64).blocks.W)
                     / (1.5 * math.sqrt(T / L)), "fixed-width W")
    iid = dl.ResNet(width=n, depth=L, sigma_w=1.5, sigma_b=0.5, scaling="iid", horizon=T)
    assert iid.param_dt == 1.0 and iid.dt == pytest.approx(T / L)
    p = iid.init(jax.random.key(4), F64).blocks
    _standardised_ok(np.asarray(p.W) / (1.5 / 4), "iid W")
    _standardised_ok(np.asarray(p.b) / 0.5, "iid b")


def test_init_parameter_law_form_c():
    # inner W ~ sigma_w / sqrt(n) E, b ~ sigma_b eps (unshrunk), outer U ~ sqrt(dt) sigma_u /
    # sqrt(n) E
    n, L, T = 16, 100, 0.5
    net = dl.ResNet(width=n, depth=L, form="C", activation="relu", sigma_w=1.2, sigma_b=0.6,
                    sigma_u=2.0, horizon=T)
    p = net.init(jax.random.key(5), F64).blocks
    _standardised_ok(np.asarray(p.W) / (1.2 / 4), "C W")
    _standardised_ok(np.asarray(p.b) / 0.6, "C b")
    _standardised_ok(np.asarray(p.U) / (math.sqrt(T / L) * 2.0 / 4), "C U")


# --------------------------------------------------------------------------------------
# form B needs phi C^2 at 0: callables are checked numerically (issue 19, item 3)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: jnp.maximum(x, 0.0),            # ReLU: phi' jumps at 0
    lambda x: jnp.where(x > 0, x, 0.1 * x),  # leaky ReLU
    jnp.abs,
    jax.nn.elu,                               # C^1, phi'' jumps from 1 to 0
    lambda x: x * jnp.abs(x),                 # C^1, phi'' jumps from -2 to 2
    jax.nn.relu6,
], ids=["relu", "leaky", "abs", "elu", "x|x|", "relu6"])
def test_form_b_refuses_callables_with_a_kink_at_zero(fn):
    with pytest.raises(ValueError, match="C\\^2 at 0, and .* has a kink there"):
        dl.ResNet(width=3, depth=4, form="B", activation=fn)
    with pytest.raises(ValueError, match="has a kink there"):  # a user Activation as well
        dl.ResNet(width=3, depth=4, form="B", activation=dl.Activation("mine", fn))
    with pytest.raises(ValueError, match="has a kink there"):  # conv networks share the check
        dl.conv.ConvResNet(channels=2, depth=4, image_shape=(5,), form="B", activation=fn)
    dl.ResNet(width=3, depth=4, form="A", activation=fn)  # form A takes any activation


@pytest.mark.parametrize("fn", [
    jnp.tanh, jax.nn.silu, lambda x: jnp.sin(100 * x) / 100, lambda x: x,
    lambda x: x**2 * jnp.abs(x) + x,          # C^2 (not C^3) at 0: allowed
    lambda x: jnp.tanh(x.astype(jnp.float32)),  # float32 rounding is no kink
], ids=["tanh", "silu", "fast-sin", "identity", "x^2|x|", "tanh32"])
def test_form_b_accepts_smooth_callables(fn):
    net = dl.ResNet(width=3, depth=4, form="B", activation=fn)
    assert net.sde().net is net


def test_form_b_refuses_callables_that_autodiff_cannot_differentiate():
    with pytest.raises(ValueError, match="cannot be differentiated"):
        dl.ResNet(width=3, depth=4, form="B", activation=np.tanh)


def test_sde_refuses_a_network_with_no_diffusion_limit():
    import equinox as eqx

    net = dl.ResNet(width=3, depth=4, form="B", activation="tanh")
    relu_b = eqx.tree_at(lambda n: n.activation, net, dl.get_activation("relu"))  # no checks
    for build in (relu_b.sde, lambda: dl.sample_sde(relu_b, jnp.ones((1, 3)),
                                                    jax.random.key(0), samples=2, steps=2)):
        with pytest.raises(ValueError, match="form B needs an activation that is C\\^2"):
            build()
    with pytest.raises(ValueError, match="no diffusion limit"):
        dl.ResNet(width=3, depth=4, scaling="iid").sde()


# --------------------------------------------------------------------------------------
# replace
# --------------------------------------------------------------------------------------
def test_replace_revalidates_and_copies():
    net = dl.ResNet(width=4, depth=3, activation="tanh", sigma_b=0.2)
    deeper = net.replace(depth=7)
    assert deeper.depth == 7 and net.depth == 3
    assert deeper.sigma_b == 0.2 and deeper.activation is net.activation
    assert net.replace(form="B").form == "B"  # tanh is allowed in form B
    with pytest.raises(ValueError, match="width must be a positive integer"):
        net.replace(width=0)
    with pytest.raises(ValueError, match="form B needs"):
        net.replace(form="B", activation="relu")
    with pytest.raises(ValueError, match="M must have shape"):
        net.replace(M=np.eye(3))
    with pytest.raises(ValueError, match="form C has no mean parameters"):
        net.replace(form="C", mu_b=1.0)


# --------------------------------------------------------------------------------------
# samplers: shapes, reproducibility, chunking
# --------------------------------------------------------------------------------------
S = 400


@pytest.fixture(scope="module")
def small():
    net = dl.ResNet(width=4, depth=3, form="A", activation="tanh", sigma_b=0.3,
                    readout=dl.Readout(sigma_v=1.5))
    x = np.random.default_rng(3).normal(size=(2, 4))
    return net, x


def test_sampler_reproducible_and_chunk_independent(small):
    net, x = small
    key = jax.random.key(42)
    a = dl.sample(net, x, key, samples=S)
    assert a.shape == (S, 2, 4) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, dl.sample(net, x, key, samples=S))
    np.testing.assert_array_equal(a, dl.sample(net, x, key, samples=S, chunk_size=7))
    assert not np.array_equal(a, dl.sample(net, x, jax.random.key(43), samples=S))
    # distinct samples are distinct networks
    assert np.unique(np.asarray(a[:, 0, 0])).size == S


_TRACES = []


class _CountingSampler(dl.ExactSampler):
    """Counts how often the layer map is traced: once per compilation of the sampler."""

    def apply(self, net, noise, X):
        _TRACES.append(1)
        return super().apply(net, noise, X)


def test_one_compilation_serves_every_depth_and_sigma(small):
    net, x = small
    sampler = _CountingSampler()
    outs = {}
    for depth, sigma_b in [(3, 0.3), (8, 0.3), (40, 0.3), (40, 0.7)]:
        outs[depth, sigma_b] = dl.sample(net.replace(depth=depth, sigma_b=sigma_b), x,
                                         jax.random.key(0), samples=S, sampler=sampler)
    assert len(_TRACES) == 1
    # ... and the traced numbers are the ones used: the built-in exact sampler (its own
    # compilation) agrees, and a larger sigma_b spreads the states further
    np.testing.assert_array_equal(
        outs[8, 0.3], dl.sample(net.replace(depth=8), x, jax.random.key(0), samples=S))
    assert np.std(outs[40, 0.7]) > np.std(outs[40, 0.3])


def test_sampler_trajectory_and_readout(small):
    net, x = small
    key = jax.random.key(7)
    final = np.asarray(dl.sample(net, x, key, samples=S))
    path = np.asarray(dl.sample(net, x, key, samples=S, trajectory=True))
    assert path.shape == (S, net.depth + 1, 2, 4)
    np.testing.assert_array_equal(path[:, 0], np.broadcast_to(x.astype(np.float32), (S, 2, 4)))
    np.testing.assert_allclose(path[:, -1], final, rtol=1e-6, atol=1e-6)

    f = np.asarray(dl.sample(net, x, key, samples=S, output="readout"))
    assert f.shape == (S, 2)
    # f = sigma_v <v, X_T> / sqrt(n) with v ~ N(0, I) independent of X_T, and X_T is the
    # same draw as above (same key): f / (sigma_v |X_T| / sqrt(n)) ~ N(0, 1) exactly.
    z = f / (1.5 * np.linalg.norm(final, axis=-1) / 2.0)
    # Per input 400 values; 5 se: mean 5/sqrt(400) = 0.25, variance 5 sqrt(2/400) = 0.35.
    for col in z.T:
        assert abs(col.mean()) < 5 / math.sqrt(S)
        assert abs(col.var() - 1) < 5 * math.sqrt(2 / S)


def test_sde_sampler_trajectory_shape(small):
    net, x = small
    path = dl.sample_sde(net, x[:1], jax.random.key(1), samples=5, steps=6, trajectory=True)
    assert path.shape == (5, 7, 1, 4)
    np.testing.assert_array_equal(np.asarray(path[:, 0, 0]),
                                  np.broadcast_to(x[0].astype(np.float32), (5, 4)))
    assert np.all(np.isfinite(np.asarray(path)))


# --------------------------------------------------------------------------------------
# hayou_resnet preset
# --------------------------------------------------------------------------------------
def test_hayou_preset_attributes():
    net = dl.hayou_resnet(8, 10, input_dim=3)
    assert net.form == "A" and net.sigma_b == 0.0 and net.width_scaled
    assert net.scaling == "shrinking" and net.horizon == 1.0 and net.M is None
    assert float(np.asarray(net.mu_b)) == 0.0 and net.activation.name == "relu"
    assert net.s_w == pytest.approx(1 / math.sqrt(8))
    assert net.input_layer.dim == 3 and net.input_dim == 3
    assert (net.input_layer.sigma_A, net.input_layer.sigma_a) == (1.0, 0.0)
    plain = dl.hayou_resnet(8, 10, activation="tanh", sigma_w=2.0)
    assert plain.input_layer is None and plain.input_dim == 8
    assert plain.s_w == pytest.approx(2 / math.sqrt(8)) and plain.activation.name == "tanh"


def test_hayou_dense_samples_input_layer_and_norm_identity():
    # Y_0 = W_in x with W_in ~ N(0, 1/d): E |Y_0|^2 / n = |x|^2 / d.
    # One block: E[|Y_1|^2 | Y_0] = |Y_0|^2 + |phi(Y_0)|^2 / L (forward.md §6.5), exact.
    # 4000 dense samples, float64; both checked within 5 empirical standard errors.
    n, L, d = 8, 4, 3
    net = dl.hayou_resnet(n, L, input_dim=d)
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.3, 0.3]])
    path = np.asarray(dl.sample(net, x, jax.random.key(9), samples=4000, sampler="dense",
                                trajectory=True, dtype=F64))
    assert path.shape == (4000, L + 1, 2, n)
    y0, y1 = path[:, 0], path[:, 1]
    r0 = np.sum(y0**2, axis=-1) / n
    for i in range(2):
        target = np.sum(x[i] ** 2) / d
        assert abs(r0[:, i].mean() - target) < 5 * r0[:, i].std() / math.sqrt(4000)
    gap = (np.sum(y1**2, -1) - np.sum(y0**2, -1) - np.sum(np.maximum(y0, 0) ** 2, -1) / L)
    for i in range(2):
        assert abs(gap[:, i].mean()) < 5 * gap[:, i].std() / math.sqrt(4000)
    # negative control for the power of the check: omitting the 1/L drift is detected
    wrong = np.sum(y1**2, -1) - np.sum(y0**2, -1)
    assert abs(wrong[:, 0].mean()) > 5 * wrong[:, 0].std() / math.sqrt(4000)
