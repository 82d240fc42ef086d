"""Property-based tests of the public entry points (issue 17 item 1): whatever a user
passes, each call ends in a ``ValueError``/``TypeError`` raised by deeplimits' own checks
(not from inside JAX or NumPy), whose message names the constraint, or in a finite result
of the promised shape. Kernels are also symmetric positive semi-definite.

Examples per test: the "ci" hypothesis profile of ``conftest.py`` (25), or "slow" (300)
with ``pytest -m slow``. Shapes stay tiny so that every example is cheap; the first example
of each test compiles.
"""

from __future__ import annotations

import math
import traceback

import jax
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import deeplimits as dl
from deeplimits.analysis.weight_scaling import analyze_weights
from deeplimits.wide import inference
from deeplimits.wide.estimators import ResNetKernel, ResNetKernelRegressor

KEY = jax.random.key(0)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------
SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e-8, -1e-8, 1e8, -1e8, math.nan, math.inf, -math.inf]
DTYPES = ["int64", "int32", "float16", "float32", "float64", "object", "str", "bool",
          "complex128"]


@st.composite
def arrays(draw, dims=(0, 1, 2, 3), sizes=(0, 1, 2, 3, 4)):
    """An array-like of any small shape and dtype, with special values anywhere."""
    ndim = draw(st.sampled_from(dims))
    shape = tuple(draw(st.sampled_from(sizes)) for _ in range(ndim))
    dtype = draw(st.sampled_from(DTYPES))
    count = int(np.prod(shape))
    values = draw(st.lists(st.one_of(st.sampled_from(SPECIAL),
                                     st.floats(-3, 3, allow_nan=False)),
                           min_size=count, max_size=count))
    arr = np.asarray(values, dtype=np.float64).reshape(shape)
    if dtype == "str":
        return arr.astype(str)
    if dtype == "object":
        return arr.astype(object)
    if dtype.startswith(("int", "bool")):
        return np.nan_to_num(arr, nan=0, posinf=7, neginf=-7).astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(dtype)


def numbers():
    """What a user may type where a number belongs."""
    return st.one_of(st.sampled_from(SPECIAL + [10.0, 0.5, 2, 0, -2]),
                     st.floats(-20, 20), st.integers(-3, 10**6),
                     st.sampled_from(["1.0", "", "one", None, True, [1.0], np.float32(0.7)]))


def positive_counts():
    return st.one_of(st.integers(-2, 5), st.sampled_from([0, 1, 2.5, "3", None, True,
                                                         np.int64(2), math.nan]))


# --------------------------------------------------------------------------------------
# the property: a clear error from our checks, or a finite result
# --------------------------------------------------------------------------------------
def ends_well(call, boundary=("deeplimits",)):
    """Run ``call``; return its result, or ``None`` when it raised a clear error.

    A clear error is a ValueError or TypeError raised by a checking layer in ``boundary``
    (deeplimits' own code by default; its last frame is there, not in JAX/NumPy/equinox)
    with a message that says something.
    """
    try:
        return call()
    except (ValueError, TypeError) as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = (frames[-1].filename if frames else "").replace("\\", "/")
        assert any(b in where.split("site-packages")[-1] for b in boundary), (
            f"{type(exc).__name__} from inside a library ({where}): {exc}")
        assert len(str(exc)) > 10, f"unclear message: {exc!r}"
        return None


def finite(result) -> None:
    arr = np.asarray(result, dtype=np.float64)
    assert np.all(np.isfinite(arr)), f"non-finite result: {arr}"


# --------------------------------------------------------------------------------------
# networks and their constructors
# --------------------------------------------------------------------------------------
@given(width=positive_counts(), depth=st.one_of(positive_counts(), st.just(10**6)),
       form=st.sampled_from(["A", "B", "C", "D", 1, None]),
       activation=st.sampled_from(["relu", "tanh", "erf", "sin", "nope", 3, None]),
       sigma_w=numbers(), sigma_b=numbers())
def test_resnet_constructor(width, depth, form, activation, sigma_w, sigma_b):
    net = ends_well(lambda: dl.ResNet(width=width, depth=depth, form=form,
                                      activation=activation, sigma_w=sigma_w,
                                      sigma_b=sigma_b))
    if net is not None:
        assert net.width == width and net.depth == depth


NET = dl.ResNet(width=2, depth=4, form="A", activation="tanh", sigma_w=1.0, sigma_b=0.1)


# --------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------
@given(x=arrays(), samples=positive_counts(),
       sampler=st.sampled_from(["exact", "dense", "sde", "euler", 0]))
@example(x=np.ones((2, 2)), samples=3, sampler="exact")
def test_sample(x, samples, sampler):
    out = ends_well(lambda: dl.sample(NET, x, KEY, samples=samples, sampler=sampler))
    if out is not None:
        finite(out)
        assert out.shape[0] == samples and out.shape[-1] == NET.width


@given(sigma=st.sampled_from([0.0, 1e-3, 1.0, 10.0]), scale=st.sampled_from([1e-8, 1.0, 1e8]),
       depth=st.sampled_from([1, 2, 64]))
def test_sample_extreme_valid_values_are_finite(sigma, scale, depth):
    """sigma up to 10, inputs of norm 1e-8..1e8, depth 1..64: finite in float64."""
    net = dl.ResNet(width=2, depth=depth, form="A", activation="tanh", sigma_w=sigma,
                    sigma_b=sigma)
    out = dl.sample(net, np.full((1, 2), scale), KEY, samples=3, dtype=np.float64)
    finite(out)


@given(x=arrays(), samples=positive_counts(), steps=positive_counts())
def test_sample_sde_and_solve_sde(x, samples, steps):
    net = dl.ResNet(width=2, depth=4, form="B", activation="tanh", sigma_w=1.0)
    out = ends_well(lambda: dl.sample_sde(net, x, KEY, samples=samples, steps=steps))
    if out is not None:
        finite(out)
    out = ends_well(lambda: dl.solve_sde(net, x, KEY, steps=steps, samples=samples))
    if out is not None:
        finite(out)


# --------------------------------------------------------------------------------------
# kernels: symmetric PSD to 1e-9 relative (float64 recursions, a few steps of rounding)
# --------------------------------------------------------------------------------------
PSD_TOL = 1e-9


def check_psd(k) -> None:
    k = np.asarray(k, dtype=np.float64)
    finite(k)
    scale = max(1.0, float(np.max(np.abs(k))))
    np.testing.assert_allclose(k, k.T, atol=PSD_TOL * scale, rtol=0)
    assert np.linalg.eigvalsh((k + k.T) / 2).min() >= -PSD_TOL * scale * len(k)


KNET = dl.ResNet(width=2, depth=1, form="A", activation="relu", sigma_w=1.0, sigma_b=0.5,
                 input_layer=dl.InputLayer(2))


@given(x1=arrays(dims=(1, 2)), x2=st.one_of(st.none(), arrays(dims=(1, 2))),
       depth=st.sampled_from([None, 1, 3, math.inf, 0, -1, "inf", math.nan, 2.5]))
def test_kernel_nngp_ntk(x1, x2, depth):
    k = ends_well(lambda: dl.kernel(KNET, x1, x2, depth))
    if k is None:
        return
    finite(k.nngp)
    finite(k.ntk)
    if x2 is None:
        check_psd(k.nngp)
        check_psd(k.ntk)


@given(scale=st.sampled_from([1e-8, 1e-3, 1.0, 1e3, 1e8]), sigma=st.sampled_from([0.0, 1.0,
                                                                                   10.0]),
       activation=st.sampled_from(["relu", "tanh", "erf"]))
@example(scale=1e8, sigma=1.0, activation="erf")  # its NTK was non-finite (issue 17)
@example(scale=1e8, sigma=10.0, activation="erf")
def test_kernels_of_extreme_valid_inputs_are_symmetric_psd(scale, sigma, activation):
    net = dl.ResNet(width=2, depth=1, form="A", activation=activation, sigma_w=sigma,
                    sigma_b=sigma, input_layer=dl.InputLayer(2))
    x = scale * np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.1]])
    for k in (dl.nngp(net, x, depth=4), dl.ntk(net, x, depth=4)):
        check_psd(k)


# --------------------------------------------------------------------------------------
# sweep files
# --------------------------------------------------------------------------------------
@given(spec=st.fixed_dictionaries(
    {"study": st.sampled_from(["forward", "kernel", "claim", "nope", 3])},
    optional={"seeds": st.one_of(st.integers(-1, 3), st.lists(st.one_of(
        st.integers(-2, 3), st.sampled_from(["a", 1.5, None])), max_size=3)),
        "grid": st.dictionaries(st.sampled_from(["width", "depth", "samples", "colour",
                                                 "activation"]),
                                st.one_of(st.lists(numbers(), max_size=2), numbers()),
                                max_size=2),
        "config": st.dictionaries(st.sampled_from(["width", "depth", "sigma_w", "samples"]),
                                  numbers(), max_size=2),
        "speed": st.just(1)}))
def test_sweep_files_are_checked_whole_before_any_cell(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    sweep = ends_well(lambda: dl.Sweep.from_dict(spec))
    if sweep is None:
        return
    cells = ends_well(sweep.validate)
    if cells is not None:
        assert len(cells) == math.prod(len(v) for v in sweep.grid.values()) * len(sweep.seeds)
    assert not out.exists()




# --------------------------------------------------------------------------------------
# inference, the scikit-learn estimator and GP kernel, the trained-weight analysis
# --------------------------------------------------------------------------------------

X = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.1]])
K = X @ X.T + np.eye(3)  # a valid kernel matrix


@given(k_train=st.one_of(arrays(dims=(2,)), st.just(K)), k_cross=arrays(dims=(1, 2)),
       y=arrays(dims=(0, 1, 2)), noise=numbers())
def test_gp_posterior_and_trained_networks(k_train, k_cross, y, noise):
    for call in (lambda: inference.gp_posterior(k_train, k_cross, y, noise=noise),
                 lambda: inference.weakly_trained(k_train, k_cross, y, ridge=noise),
                 lambda: inference.fully_trained(k_train, k_cross, k_train, k_cross, y,
                                                 ridge=noise)):
        post = ends_well(call)
        if post is not None:
            finite(post.mean)


SKLEARN = ("deeplimits", "sklearn/utils/validation.py")


@given(X=arrays(dims=(1, 2, 3)), y=arrays(dims=(0, 1, 2)),
       sigma_b=st.sampled_from([0.0, 0.5, -1.0, "x"]))
def test_estimator_fit_predict(X, y, sigma_b):
    """scikit-learn estimators check X and y with sklearn's own ``check_X_y`` (clear
    errors: "Input X contains NaN", "Found array with dim 3"): that is their boundary."""
    model = ResNetKernelRegressor(activation="relu", sigma_b=sigma_b)
    fitted = ends_well(lambda: model.fit(X, y), SKLEARN)
    if fitted is not None:
        prediction = ends_well(lambda: fitted.predict(X), SKLEARN)
        if prediction is not None:
            finite(prediction)


@given(X=arrays(dims=(1, 2, 3)))
def test_gp_kernel_is_symmetric_psd_or_refuses(X):
    k = ends_well(lambda: ResNetKernel()(X), SKLEARN)
    if k is not None:
        check_psd(k)


@given(depths=st.lists(st.integers(1, 6), min_size=0, max_size=4, unique=True),
       seeds=st.integers(0, 2), layer=st.sampled_from([(), (2,), (2, 2)]),
       fill=st.sampled_from(["normal", "nan", "inf", "zero", "str"]))
def test_analyze_weights(depths, seeds, layer, fill):
    rng = np.random.default_rng(0)
    weights = {}
    for L in depths:
        w = rng.normal(size=(seeds, L, *layer)) / np.sqrt(L)
        w = {"normal": w, "nan": w * np.nan, "inf": w + np.inf, "zero": 0 * w,
             "str": w.astype(str)}[fill]
        weights[L] = w
    result = ends_well(lambda: analyze_weights(weights, n_boot=50))
    if result is not None:
        for fit in result.slopes.values():
            assert np.isfinite(fit.slope) or np.isnan(fit.slope)


# --------------------------------------------------------------------------------------
# the gradient, conv and finite-width samplers, conv kernels
# --------------------------------------------------------------------------------------
@given(x=arrays(), samples=positive_counts(),
       method=st.sampled_from(["exact", "autodiff", "sde", "nope"]),
       loss=st.sampled_from(["sin", "square", "nope", 3]))
@example(x=np.ones((2, 2)), samples=3, method="exact", loss="sin")  # a valid call, always
def test_sample_gradients(x, samples, method, loss):
    from deeplimits.backward import sample_gradients

    out = ends_well(lambda: sample_gradients(NET, x, KEY, samples=samples, method=method,
                                             loss=loss))
    if out is not None:
        for value in out.values():
            finite(value)


CONV = None


def _conv_net():
    global CONV
    if CONV is None:
        from deeplimits.conv import ConvResNet

        CONV = ConvResNet(channels=2, depth=2, image_shape=(4,), kernel_size=3, form="A",
                          activation="relu", sigma_w=1.0)
    return CONV


@given(images=arrays(dims=(1, 2, 3, 4)), samples=positive_counts(),
       sampler=st.sampled_from(["dense", "sde", "exact", 2]))
@example(images=np.linspace(-1, 1, 8).reshape(2, 1, 4), samples=3, sampler="dense")
def test_sample_conv(images, samples, sampler):
    from deeplimits.conv import sample_conv

    out = ends_well(lambda: sample_conv(_conv_net(), images, KEY, samples=samples,
                                        sampler=sampler))
    if out is not None:
        finite(out)


@given(x1=arrays(dims=(1, 2, 3, 4)), depth=st.sampled_from([None, 1, 2, 0, math.nan, "x"]))
@example(x1=np.linspace(-1, 1, 12).reshape(3, 1, 4), depth=2)
def test_conv_kernel(x1, depth):
    from deeplimits.conv import conv_kernel

    k = ends_well(lambda: conv_kernel(_conv_net(), x1, depth=depth, steps=4))
    if k is not None:
        check_psd(k.nngp)


@given(x=arrays(), samples=positive_counts(),
       times=st.one_of(st.none(), st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, math.nan,
                                                            2.0]), max_size=3)))
@example(x=np.array([[1.0, 0.5]]), samples=3, times=None)
@example(x=np.array([0, -1]), samples=2, times=None)  # found in CI: both paths dead
def test_simulate_paths(x, samples, times):
    from deeplimits.finite_width import simulate_paths

    net = dl.hayou_resnet(width=2, depth=4)
    ds = ends_well(lambda: simulate_paths(net, x, KEY, samples=samples, times=times))
    if ds is not None:
        for name, value in ds.data_vars.items():
            if name == "log_phi_norm":  # -inf where phi(Y) = 0 (a dead ReLU path, documented)
                assert not np.isnan(value).any() and not (value == np.inf).any(), value
            else:
                finite(value)
