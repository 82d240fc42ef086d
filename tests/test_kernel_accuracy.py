"""Accuracy of the wide kernels as stated (issue 18): the infinite-depth solve meets ``rtol``
against a fine reference and reports its error; the fast paths meet their stated accuracy
on and off the diagonal, for both readouts."""

import math

import numpy as np
import pytest

import deeplimits as dl
from deeplimits.wide.depth_flow import DEFAULT_RTOL, choose_steps


def _net(act, sigma_b=0.5, post=False, form="A"):
    return dl.ResNet(width=4, depth=1, form=form, activation=act, sigma_w=1.2, sigma_b=sigma_b,
                     input_layer=dl.InputLayer(4),
                     readout=dl.Readout(post_activation=post))


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _check_against_reference(net, x, rtol):
    k = dl.kernel(net, x, depth=math.inf, rtol=rtol)
    # the reference: 8x the chosen steps, whose own error estimate is 8^4 times smaller
    ref = dl.kernel(net, x, depth=math.inf, steps=8 * k.steps)
    assert ref.error < rtol / 100
    achieved = max(_rel(k.nngp, ref.nngp), _rel(k.ntk, ref.ntk))
    assert k.error <= rtol and achieved <= rtol, (k.steps, k.error, achieved)
    # the estimate is an estimate, not a bound picked to pass: within 10x of the truth
    assert achieved / 10 <= k.error <= 10 * achieved + 1e-13
    return k


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("act", ["relu", "erf"])
def test_depth_inf_meets_rtol_and_reports_its_error(act, seed):
    x = np.random.default_rng(seed).standard_normal((12, 4))
    k = _check_against_reference(_net(act), x, DEFAULT_RTOL)
    # a looser tolerance takes fewer steps and still meets it
    loose = dl.kernel(_net(act), x, depth=math.inf, rtol=1e-6)
    assert loose.steps < k.steps and loose.error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_depth_inf_meets_rtol_tanh(seed):
    # the Mehler-series dual compiles for ~20 s on 2 cores: slow
    x = np.random.default_rng(seed).standard_normal((12, 4))
    _check_against_reference(_net("tanh"), x, DEFAULT_RTOL)


def test_tanh_meets_rtol_small():
    x = np.random.default_rng(3).standard_normal((5, 4))
    _check_against_reference(_net("tanh"), x, 1e-7)


def test_given_steps_are_used_and_their_error_reported():
    x = np.random.default_rng(0).standard_normal((6, 4))
    k = dl.kernel(_net("erf"), x, depth=math.inf, steps=8)
    ref = dl.kernel(_net("erf"), x, depth=math.inf, steps=512)
    assert k.steps == 8
    achieved = max(_rel(k.nngp, ref.nngp), _rel(k.ntk, ref.ntk))
    assert achieved / 10 <= k.error <= 10 * achieved
    fin = dl.kernel(_net("erf"), x, depth=10)
    assert fin.steps is None and fin.error is None


def test_choose_steps_on_a_known_rate():
    # a scalar "pilot" with error exactly C n^-4: the chosen n meets rtol, and n/2 does not
    C = 3.0
    pilot = lambda n: (np.array([1.0 + C / n**4]),)  # noqa: E731
    n, err = choose_steps(pilot, 1e-9)
    assert C / n**4 <= 1e-9 < C / (n // 2) ** 4
    assert err == pytest.approx(C / n**4, rel=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1e-9, math.nan, math.inf, "1e-9", True])
def test_bad_rtol(bad):
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match="rtol"):
        dl.kernel(_net("erf"), x, depth=math.inf, rtol=bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_steps(bad):
    with pytest.raises(ValueError, match="steps"):
        dl.kernel(_net("erf"), np.ones((2, 4)), depth=math.inf, steps=bad)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("post", [False, True])
def test_homogeneous_path_meets_its_stated_accuracy_on_and_off_the_diagonal(post, seed):
    """Stated in kernels.py: NNGP 1e-12, NTK 1e-9 relative to the largest entry, both
    readouts, diagonal included (it was 1.2e-7 on the post-activation NTK diagonal)."""
    x = np.random.default_rng(seed).standard_normal((10, 4))
    net = dl.ResNet(width=4, depth=10, form="A", activation="relu", sigma_w=1.3,
                    input_layer=dl.InputLayer(4), readout=dl.Readout(post_activation=post))
    for depth, kw in ((10, {}), (math.inf, {"steps": 32})):
        a = dl.kernel(net, x, depth=depth, homogeneous=False, **kw)
        b = dl.kernel(net, x, depth=depth, homogeneous=True, **kw)
        for name, tol in (("nngp", 1e-12), ("ntk", 1e-9)):
            A, B = getattr(a, name), getattr(b, name)
            scale = np.abs(A).max()
            assert np.abs(np.diag(A) - np.diag(B)).max() <= tol * scale
            assert np.abs(A - B).max() <= tol * scale


def test_general_path_diagonal_is_exact_for_relu_with_biases():
    """Diagonal pairs start exactly on the variances, so ReLU's arccos sees correlation 1:
    the finite-depth diagonal equals the scalar recursion d <- d + (sb^2 + sw^2 d / 2) / L
    to rounding (it was off by ~2e-9 through arccos(1 - 1e-16))."""
    x = np.random.default_rng(0).standard_normal((9, 4))
    net = dl.ResNet(width=4, depth=50, form="A", activation="relu", sigma_w=1.2, sigma_b=0.5,
                    input_layer=dl.InputLayer(4), readout=dl.Readout(post_activation=True))
    k = dl.kernel(net, x, depth=50, max_memory=1)  # 16 x 16 tiles: diagonal tile only
    d, h = np.sum(x * x, 1) / 4, np.sum(x * x, 1) / 4
    for _ in range(50):
        rate = 0.25 + 1.44 * d / 2
        d, h = d + rate / 50, h + (rate + 1.44 / 2 * h) / 50
    np.testing.assert_allclose(np.diag(k.nngp), d / 2, rtol=1e-13)
    np.testing.assert_allclose(np.diag(k.ntk), d / 2 + h / 2, rtol=1e-13)


def _equal_norm_inputs(seed, n=12):
    x = np.random.default_rng(seed).standard_normal((n, 4))
    return 2 * x / np.linalg.norm(x, axis=1, keepdims=True)


def _check_table(act, post, seed):
    x = _equal_norm_inputs(seed)
    net = dl.ResNet(width=4, depth=10, form="A", activation=act, sigma_w=1.2, sigma_b=0.5,
                    input_layer=dl.InputLayer(4), readout=dl.Readout(post_activation=post))
    for depth, kw in ((10, {}), (math.inf, {"steps": 16})):
        a = dl.kernel(net, x, depth=depth, table=False, **kw)
        b = dl.kernel(net, x, depth=depth, table=True, **kw)
        for name, tol in (("nngp", 1e-11), ("ntk", 1e-9)):  # the stated accuracy
            A, B = getattr(a, name), getattr(b, name)
            scale = np.abs(A).max()
            assert np.abs(np.diag(A) - np.diag(B)).max() <= tol * scale
            assert np.abs(A - B).max() <= tol * scale


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("act,post", [("erf", False), ("relu", True)])
def test_equal_norm_table_meets_its_stated_accuracy(act, post, seed):
    _check_table(act, post, seed)


@pytest.mark.slow
@pytest.mark.parametrize("post", [False, True])
def test_equal_norm_table_tanh(post):
    _check_table("tanh", post, 2)


def test_table_true_needs_positive_variances():
    x = np.random.default_rng(0).standard_normal((4, 4))
    x[0] = 0.0  # variance 0 behind an input layer without bias: no log-variance axis
    with pytest.raises(ValueError, match="positive initial variance"):
        dl.kernel(_net("erf"), x, depth=3, table=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("act,post", [("erf", False), ("relu", True), ("relu", False)])
def test_unequal_norm_table_meets_rtol_and_reports_its_error(act, post, seed):
    """The 3-D table in (log d1, log d2, theta) against the general path at the same depth
    or steps, diagonal included, both readouts: within the default rtol (1e-9, relative
    to the largest entry), and its reported ``table_error`` (measured on the pilot pairs)
    is the achieved error to within 10x. ReLU with sigma_b > 0 is the hard case: pairs at
    correlation 1 with unequal variances leave it along a cone (pair_tables.py)."""
    x = np.random.default_rng(seed).standard_normal((20, 4))
    net = _net(act, post=post).replace(depth=10)
    for depth, kw in ((10, {}), (math.inf, {"steps": 16})):
        a = dl.kernel(net, x, depth=depth, table=False, **kw)
        b = dl.kernel(net, x, depth=depth, table=True, **kw)
        assert a.table_error is None
        achieved = 0.0
        for name in ("nngp", "ntk"):
            A, B = getattr(a, name), getattr(b, name)
            scale = np.abs(A).max()
            assert np.abs(np.diag(A) - np.diag(B)).max() <= DEFAULT_RTOL * scale
            achieved = max(achieved, np.abs(A - B).max() / scale)
        assert achieved <= DEFAULT_RTOL
        assert achieved / 10 <= b.table_error <= 10 * achieved + 1e-14, (achieved, b.table_error)


def test_unequal_norm_table_rectangular_and_auto_choice():
    """Rows and columns with their own variance ranges; ``table="auto"`` takes the 3-D table
    only when the kernel has at least twice its node pairs, and reports its error."""
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((7, 4)), 2 * rng.standard_normal((5, 4))
    net = _net("erf").replace(depth=6)
    a = dl.kernel(net, x1, x2, table=False)
    b = dl.kernel(net, x1, x2, table=True)
    scale = np.abs(a.ntk).max()
    assert np.abs(a.ntk - b.ntk).max() <= DEFAULT_RTOL * scale
    assert np.abs(a.nngp - b.nngp).max() <= DEFAULT_RTOL * np.abs(a.nngp).max()
    assert dl.kernel(net, x1, x2).table_error is None  # 35 pairs: the general path
