"""Jacobians and gradients (backward.md): analytic, pathwise and in-law checks.

The claims B1-* and B2-exact (run by test_claims.py) check the laws at scale; these tests
check the pieces: finite differences, the Euler-Maruyama identity for (X, J u, g), the
conditioning lemma, the degenerate Gram-Schmidt, reproducibility, form B, bad input, CLI.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as st
from typer.testing import CliRunner

from deeplimits.cli import app
from deeplimits.experiments.store import load_dataset
from deeplimits.simulation.gradients import (
    _differentiate,
    jacobian_moment_identity,
    orthonormal_rows,
    sample_gradients,
    sample_gradients_sweep,
)
from deeplimits.spec.laws import get_law
from deeplimits.spec.networks import InputLayer, ResNet

X3 = np.array([[0.7, -0.4, 1.1]])


def test_layer_product_jacobian_matches_finite_differences():
    """J_L = prod_l (I + W_l diag phi'(x_{l-1})) (backward.md §1) vs central differences."""
    net = ResNet(width=3, depth=8, activation="tanh", sigma_b=0.5, width_scaled=False)
    params = net.init(jax.random.key(1), jnp.float64)
    f = lambda x: np.asarray(net.apply(params, jnp.asarray(x)[None])[0])
    path = np.asarray(net.apply(params, jnp.asarray(X3), trajectory=True))[:, 0]
    J = np.eye(3)
    for l in range(net.depth):
        d = np.asarray(net.activation.deriv(jnp.asarray(path[l])))
        J = (np.eye(3) + np.asarray(params.blocks.W[l]) * d[None, :]) @ J
    h = 1e-5
    fd = np.stack([(f(X3[0] + h * e) - f(X3[0] - h * e)) / (2 * h) for e in np.eye(3)], 1)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-9)


def test_sde_method_is_autodiff_on_the_shared_path():
    """Form A with Gaussian parameters is Euler-Maruyama of its SDE: the joint (X, J u)
    scheme and its adjoint, fed the increments that are the network's parameters, give the
    network's x_L, J u, g_0 and parameter-gradient norms to rounding (float64)."""
    net = ResNet(width=3, depth=8, activation="tanh", sigma_b=0.5, width_scaled=False)
    loss = lambda x: jnp.sum(jnp.sin(x))
    x, u = jnp.asarray(X3), jnp.asarray([[0.6, 0.8, 0.0]])
    sde, h = net.sde(), net.dt
    kw, kb = jax.random.split(jax.random.key(2))
    dB = {"W": math.sqrt(h) * jax.random.normal(kw, (8, 3, 3), jnp.float64),
          "b": math.sqrt(h) * jax.random.normal(kb, (8, 3), jnp.float64)}

    def on_path(x0, dB):
        step = lambda X, db: (X + h * sde.drift(X) + sde.noise(X, db), None)
        return jax.lax.scan(step, x0[None], dB)[0][0]

    blocks = net.params_from_increments(dB).blocks

    def on_net(x0, blocks):
        from deeplimits.spec.networks import ResNetParams

        return net.apply(ResNetParams(blocks=blocks), x0[None])[0]

    a = _differentiate(on_path, loss, x, u, dB)
    b = _differentiate(on_net, loss, x, u, blocks)
    for i in range(3):  # x_L, J u, g_0
        np.testing.assert_allclose(a[i], b[i], rtol=1e-10, atol=1e-12)
    # dl/dE = sqrt(h) dl/d(dB) = s_w sqrt(h) dl/dW
    np.testing.assert_allclose(h * jnp.sum(a[3]["W"] ** 2),
                               net.s_w**2 * h * jnp.sum(b[3].W ** 2), rtol=1e-10)


def test_conditioning_lemma_residual_is_uncorrelated_with_v():
    """W = v phi^T/|phi|^2 + W'(I - P): the residual has zero covariance with v = W phi.
    100k draws of a 3 x 3 matrix; |corr| < 5 / sqrt(N) for each of the 81 pairs (v_i, R_jk)
    (each is N(0, 1/N) under the lemma; 5 SE has two-sided p ~ 6e-7, Bonferroni 5e-5)."""
    rng = np.random.default_rng(0)
    N, phi = 100_000, np.array([1.0, -2.0, 0.5])
    W = rng.standard_normal((N, 3, 3))
    v = W @ phi
    R = W - v[:, :, None] * phi[None, None, :] / (phi @ phi)
    corr = np.corrcoef(np.concatenate([v, R.reshape(N, 9)], 1).T)[:3, 3:]
    assert np.abs(corr).max() < 5 / math.sqrt(N)
    # ... and R phi = 0 exactly: v carries all of W phi
    np.testing.assert_allclose(R @ phi, 0, atol=1e-12)


def test_orthonormal_rows_spans_degenerate_sets():
    """Dead ReLU units and duplicate inputs give parallel or zero rows: the result is
    orthonormal-or-zero and still spans F (F Psi^T Psi = F)."""
    F = jnp.asarray([[0.0, 2.0, 0.0, 0.0],   # one live coordinate
                     [0.0, -3.0, 0.0, 0.0],  # parallel to it
                     [0.0, 0.0, 0.0, 0.0],   # dead
                     [1.0, 1.0, 1.0, 0.0],
                     [2.0, 2.0, 2.0, 0.0]], jnp.float32)  # duplicate direction
    Psi = orthonormal_rows(F)
    gram = np.asarray(Psi @ Psi.T)
    norms = np.diag(gram)
    assert set(np.round(norms, 5)) <= {0.0, 1.0} and norms.sum() == 2
    np.testing.assert_allclose(gram - np.diag(norms), 0, atol=1e-6)
    np.testing.assert_allclose(F @ Psi.T @ Psi, F, atol=1e-5)


def test_exact_sampler_is_reproducible_and_chunk_and_padding_invariant():
    net = ResNet(width=4, depth=5, activation="relu", sigma_b=0.3)
    x = np.array([[1.0, -0.5, 0.3, 0.8], [0.2, 0.9, -0.4, 0.1]])
    key = jax.random.key(7)
    # chunks of 4 samples and a scan of 8 layers, against one chunk of 10 and a scan of 9
    # (a sweep runs its deepest network's length; layers beyond the depth are the identity)
    a = sample_gradients(net, x, jax.random.fold_in(key, 0), samples=10, chunk_size=4)
    b = sample_gradients_sweep([net, net.replace(depth=9)], x, key, samples=10)[0]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert np.all(np.isfinite(a["grad"])) and np.unique(a["grad"][:, 0, 0]).size == 10


def test_exact_form_b_agrees_with_autodiff():
    """Form B (swish, conditioning on the pre-activation): KS of x_L, J u and g_0
    statistics, 10^4 samples per method, Bonferroni over 6 tests at level 0.01."""
    net = ResNet(width=4, depth=16, form="B", activation="swish", sigma_b=0.5)
    x = np.array([[1.0, -0.5, 0.3, 0.8]])
    res = [sample_gradients(net, x, jax.random.key(i), samples=10_000, method=m)
           for i, m in enumerate(("autodiff", "exact"))]

    def stat(r):
        g, X, J = (np.asarray(r[k], np.float64)[:, 0] for k in ("grad", "x", "jvp"))
        return [(g * g).sum(-1), (g * x[0]).sum(-1), (X * X).sum(-1),
                np.linalg.norm(J, axis=-1), np.asarray(r["weight_grad_sq"])[:, 0],
                np.asarray(r["bias_grad_sq"])[:, 0]]

    p = [st.ks_2samp(a, b).pvalue for a, b in zip(*map(stat, res), strict=True)]
    assert min(p) * len(p) >= 0.01, p


def test_identity_closed_form():
    net = ResNet(width=4, depth=10, activation="identity")
    finite, limit = jacobian_moment_identity(net, [3.0, 4.0, 0, 0])
    assert finite == pytest.approx(25 * 1.1**10) and limit == pytest.approx(25 * math.e)
    with pytest.raises(ValueError, match="identity activation"):
        jacobian_moment_identity(net.replace(activation="tanh"), [1.0, 0, 0, 0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="nope"), "unknown method"),
    (dict(loss="nope"), "unknown loss"),
    (dict(u=np.ones(3)), "u must be finite with shape"),
    (dict(samples=0), "samples must be a positive integer"),
    (dict(net=dict(law=get_law("rademacher"))), "exact only for Gaussian"),
    (dict(net=dict(M=np.eye(4))), "needs M=None"),
    (dict(net=dict(form="C")), "forms A and B"),
    (dict(method="sde", net=dict(scaling="iid")), "no diffusion limit"),
    (dict(net=dict(input_layer=InputLayer(4))), "without an input layer"),
])
def test_bad_input_raises_before_work(kwargs, message):
    net = ResNet(width=4, depth=3, activation="tanh", **kwargs.pop("net", {}))
    with pytest.raises(ValueError, match=message):
        sample_gradients(net, np.ones(4), jax.random.key(0), **{"samples": 4, **kwargs})


def test_sweep_rejects_mixed_networks():
    nets = [ResNet(width=4, depth=3), ResNet(width=5, depth=3)]
    with pytest.raises(ValueError, match="one form, activation and width"):
        sample_gradients_sweep(nets, np.ones(4), jax.random.key(0), samples=2)


runner = CliRunner()


def test_cli_gradients_writes_dataset_figure_and_json(tmp_path):
    out = tmp_path / "g.nc"
    r = runner.invoke(app, ["gradients", "simulate", "--activation", "identity", "--width",
                            "4", "--depth", "16", "--samples", "500", "--inputs", "2",
                            "--seed", "3", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    # the closed form of log|J u| is N((1/2 - 1/n) T, T/n) at n = 4
    assert summary["closed_form_log_jvp_mean"] == pytest.approx(0.25)
    ds = load_dataset(out)
    assert ds.grad.shape == (500, 2, 4) and ds.weight_grad_sq.shape == (500, 2)
    assert ds.attrs["seed"] == 3 and json.loads(ds.attrs["config"])["method"] == "exact"
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,message", [
    (["--width", "0"], "width must be a positive integer"),
    (["--method", "sde", "--scaling", "iid"], "no diffusion limit"),
    (["--form", "C"], "forms A and B"),
    (["--method", "exact", "--law", "rademacher"], "exact only for Gaussian"),
    (["--samples", "0"], "samples must be a positive integer"),
    (["--out", "x.txt"], "must end in .nc"),
])
def test_cli_gradients_rejects_bad_input_before_writing(tmp_path, args, message):
    r = runner.invoke(app, ["gradients", "simulate", "--samples", "10", "--depth", "10",
                            "--out", str(tmp_path / "g.nc"), *args])
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())
    assert list(tmp_path.iterdir()) == []


def test_a_sample_that_cannot_fit_in_memory_is_refused_before_work():
    # depth 1e10: one exact sample keeps ~1.5 TB for its backward pass; the autodiff
    # reference ~700 GB. Both are refused with the need named, not a JAX allocation error.
    net = ResNet(width=4, depth=10**10, activation="tanh")
    x = np.ones((1, 4))
    for method in ("exact", "autodiff"):
        with pytest.raises(ValueError, match=r"needs [0-9.e+]+ GiB of working memory"):
            sample_gradients(net, x, jax.random.key(0), samples=1, method=method)


def test_a_registered_gradient_method_is_found_by_name():
    """Adding a gradient method touches one place: a ``GradientMethod`` subclass,
    registered; the method object itself is accepted too."""
    from typing import ClassVar

    from deeplimits.backward import GradientMethod, register_gradient_method
    from deeplimits.simulation.gradients import Autodiff

    class Renamed(Autodiff):
        name: ClassVar[str] = "autodiff-copy"

    register_gradient_method(Renamed, overwrite=True)
    net = ResNet(width=4, depth=3, activation="tanh", input_layer=None)
    ref = sample_gradients(net, np.ones(4), jax.random.key(0), samples=2, method="autodiff")
    for spec in ("AUTODIFF-COPY", Renamed()):
        got = sample_gradients(net, np.ones(4), jax.random.key(0), samples=2, method=spec)
        np.testing.assert_array_equal(got["grad"], ref["grad"])
    assert issubclass(Renamed, GradientMethod)
