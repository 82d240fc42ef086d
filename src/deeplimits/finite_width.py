"""Fixed width, infinite depth: studies of Hayou's ``1/sqrt(L)`` ResNet (``finite_width.md``).

The network is ``Y_l = Y_{l-1} + W_l phi(Y_{l-1})`` with ``W_l[i, j] ~ N(0, sigma_w^2/(nL))``
(``hayou_resnet``). For one input its layer increment is exactly ``(s_w |phi(Y)| sqrt(dt)) G``
with ``G ~ N(0, I_n)``, so a path costs ``O(n)`` per layer (``forward.md`` §5); for ``k``
inputs the Gram trick costs ``O(n k^2)``.

* :func:`simulate_paths`: many paths of the exact sampler, recording at chosen times the
  post-activation log-norm, the Gram matrix of the inputs and the two parts of Ito's
  formula for ``log |phi(Y)|`` (martingale and compensator, §4-§5), without storing the
  trajectory;
* :func:`gbm_law_study`: the geometric-BM family ``a x + b``, ``a |x - c|`` against
  :func:`~deeplimits.closed_forms.gbm_log_norm_law` (§4);
* :func:`relu_identity_study`: the ReLU identity with the active count, pathwise (§5);
* :func:`regime_study`: the width 3 -> 4 regime change on several horizons (§6-§7);
* :func:`dead_orthant_study`: dead starts and collapse at finite depth (§8);
* :func:`covariance_grid` and :func:`nongaussian_study`: the order of limits (§9).

Every study is a pure function of its arguments and a seed and returns an
``xarray.Dataset`` whose attributes hold its configuration.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy import stats as st

from . import closed_forms, stats
from ._linalg import psd_sqrt
from ._progress import progress_callback
from ._validation import check_inputs
from .activations import Activation
from .kernels import kernel
from .laws import Gaussian
from .networks import ResNet, hayou_resnet
from .samplers import ExactSampler

__all__ = [
    "simulate_paths",
    "gbm_law_study",
    "relu_identity_study",
    "regime_study",
    "dead_orthant_study",
    "covariance_grid",
    "nongaussian_study",
    "sign_change_width",
    "width_first_covariance",
]

# Floats of state that one compiled chunk of paths holds (16 MB in float32), and at most
# this many paths per chunk (fewer samples: the next power of two). A fixed chunk lets
# studies with different sample counts share one compilation; paths are reproducible from
# (key, samples).
_CHUNK_FLOATS = 2**22
_CHUNK_PATHS = 4096
# States are always recorded up to this padded width (then dropped unless asked for), so
# that keep_state does not split the compilations of narrow networks.
_STATE_WIDTH = 64


def _key(seed: int, tag: str) -> jax.Array:
    return jax.random.fold_in(jax.random.key(int(seed)), zlib.crc32(tag.encode()))


def _positive_ints(values, name: str) -> list[int]:
    out = [int(v) for v in np.atleast_1d(values)]
    if not out or any(v < 1 or v != w for v, w in zip(out, np.atleast_1d(values), strict=True)):
        raise ValueError(f"{name} must be positive integers, got {values!r}")
    return out


def _check_samples(samples) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    return int(samples)


def _check_hayou(net: ResNet) -> None:
    if net.form != "A" or net.scaling != "shrinking" or net.M is not None:
        raise ValueError("the path studies need Hayou's network: form A, shrinking scaling, "
                         "no mean weight M (use hayou_resnet)")
    if net.sigma_b != 0 or np.any(np.asarray(net.mu_b) != 0):
        raise ValueError("the path studies need sigma_b = 0 and mu_b = 0 (no biases)")
    ExactSampler().check(net)


# -- the path engine -----------------------------------------------------------------------


def _padded_width(n: int) -> int:
    """Widths share one compiled program per power of two (at least 8): the padding
    coordinates are masked out, so a sweep over widths compiles a handful of times."""
    return max(8, 1 << (n - 1).bit_length())


@eqx.filter_jit
def _run_paths(act: Activation, X0, width, sigma_w, key, h, bounds, keep_state: bool,
               ito: bool):
    """Paths of Hayou's network from ``X0`` (``(S, k, m)``, zero-padded beyond ``width``)
    with step ``h``, recording after ``bounds[r + 1]`` layers.

    One layer is the exact step of form A without biases (``FormA.euler_apply``): given
    ``Y``, the increment is ``sqrt(h) s_w R Z`` with ``R R^T = <phi(Y_a), phi(Y_b)>`` the
    ``k x k`` Gram matrix and ``Z`` standard normal ``(k, n)``. Per sample and input it
    records log |phi(Y)|, the Gram matrix ``<Y_a, Y_b> / n``, the occupation integral
    ``sum h N`` of the number of positive coordinates and, with ``ito``, the martingale
    ``M = sum <phi phi' / |phi|^2, dY>`` and compensator
    ``A = (s_w^2 / 2) sum h (sum_i [phi'^2 + phi phi''] - 2 |phi phi'|^2 / |phi|^2)``.
    """
    dtype = X0.dtype
    mask = (jnp.arange(X0.shape[-1]) < width).astype(dtype)
    s_w = (sigma_w / jnp.sqrt(width)).astype(dtype)
    h = h.astype(dtype)

    def phi(X):
        return act(X) * mask

    def layer(l, carry):
        X, M, A, N = carry
        z = Gaussian().sample(jax.random.fold_in(key, l), X.shape, dtype) * mask
        f = phi(X)
        root = jax.vmap(psd_sqrt)(jnp.einsum("ska,sja->skj", f, f))
        Xn = X + jnp.sqrt(h) * s_w * jnp.einsum("skj,sja->ska", root, z)
        N = N + h * jnp.sum((X > 0) * mask, -1)
        if not ito:
            return Xn, M, A, N
        d = act.deriv(X) * mask
        ff = f * d
        norm2 = jnp.sum(f * f, -1)
        alive = norm2 > 0
        safe = jnp.where(alive, norm2, 1.0)
        dM = jnp.sum(ff * (Xn - X), -1) / safe
        rate = jnp.sum(d * d + f * act.second_deriv(X), -1) - 2 * jnp.sum(ff * ff, -1) / safe
        A = A + jnp.where(alive, 0.5 * s_w**2 * h * rate, 0.0)
        return Xn, M + jnp.where(alive, dM, 0.0), A, N

    def record(X, M, A, N):
        f = phi(X)
        norm2 = jnp.sum(f * f, -1)
        positive = jnp.where(norm2 > 0, norm2, 1.0)
        out = {"log_phi_norm": jnp.where(norm2 > 0, 0.5 * jnp.log(positive), -jnp.inf),
               "log_norm": 0.5 * jnp.log(jnp.sum(X * X, -1)),
               "gram": jnp.einsum("ska,sja->skj", X, X) / width, "occupation": N}
        if ito:
            out.update(martingale=M, compensator=A)
        if keep_state:
            out["state"] = X
        return out

    zeros = jnp.zeros(X0.shape[:2], dtype)
    init = (X0, zeros, zeros, zeros)

    def segment(carry, r):
        carry = jax.lax.fori_loop(bounds[r], bounds[r + 1], layer, carry)
        return carry, record(*carry)

    first = record(*init)
    _, rest = jax.lax.scan(segment, init, jnp.arange(bounds.shape[0] - 1))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)


def simulate_paths(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    samples: int,
    times: Sequence[float] | None = None,
    keep_state: bool = False,
    ito: bool = False,
    dtype=jnp.float32,
    pad_width: int | None = None,
    progress: bool | Callable[[int], None] = False,
) -> xr.Dataset:
    """Paths of Hayou's network from the exact sampler, recorded at ``times``.

    Args:
        net: a Hayou network (:func:`~deeplimits.networks.hayou_resnet`): form A, no biases,
            Gaussian weights; ``dt = horizon / depth``.
        x: inputs ``(k, input_dim)`` (one row: one input); ``Y_0 = W_in x`` for each path.
        key: JAX key; the paths are reproducible from it and ``samples``.
        samples: number of independent networks.
        times: times in ``(0, horizon]``, each a multiple of ``dt`` (default: the horizon).
            Time 0 is always recorded first.
        keep_state: also return the states ``Y_t`` (``(sample, time, input, neuron)``).
        ito: also accumulate the martingale and compensator of Ito's formula (about twice
            the cost per layer).
        dtype: simulation precision (float32: Monte Carlo error dominates rounding).
        pad_width: simulate in this padded width (default: the next power of two, at least
            8); a sweep over widths can pass its largest to compile once.
        progress: a bar (``True``) or a callback taking the number of paths done.

    Returns:
        Dataset over ``(sample, time, input)``: ``log_phi_norm`` (``-inf`` when
        ``phi(Y) = 0``), ``log_norm``, ``gram`` (``<Y(x), Y(x')>/n``, with dim ``input2``),
        with ``ito`` the ``martingale`` ``M_t`` and ``compensator`` ``A_t`` with
        ``log|phi(Y_t)| - log|phi(Y_0)| = M_t + A_t + O(dt^(1/2))`` pathwise (Ito, §4-§5),
        ``occupation`` ``int_0^t N_s ds`` with ``N`` the number of positive coordinates.
        For ReLU ``A_t = (s_w^2 / 2)(occupation - 2t)`` while alive. Cost: ``O(samples n k^2)``
        per layer.
    """
    _check_hayou(net)
    samples = _check_samples(samples)
    x = check_inputs(net, x, dtype)
    dt = net.horizon / net.depth
    times = [net.horizon] if times is None else [float(t) for t in np.atleast_1d(times)]
    layers = []
    for t in times:
        layer = round(t / dt)
        if not (0 < t <= net.horizon * (1 + 1e-9)) or abs(layer * dt - t) > 1e-6 * max(t, 1):
            raise ValueError(f"every time must be a multiple of dt = {dt:g} in (0, "
                             f"{net.horizon:g}], got {t!r}")
        layers.append(layer)
    if any(b <= a for a, b in zip(layers, layers[1:], strict=False)):
        raise ValueError(f"times must be increasing, got {times}")
    k, n = x.shape[0], net.width
    m = _padded_width(n) if pad_width is None else int(pad_width)
    if m < n:
        raise ValueError(f"pad_width must be >= the width {n}, got {pad_width}")
    chunk = max(1, min(_CHUNK_PATHS, _CHUNK_FLOATS // (k * m), 1 << (samples - 1).bit_length()))
    record_state = keep_state or m <= _STATE_WIDTH
    # the number of records is padded to a power of two (>= 4) with empty segments, so that
    # studies with different numbers of times share one compilation
    slots = max(4, 1 << (len(layers) - 1).bit_length())
    bounds = jnp.asarray([0, *layers] + [layers[-1]] * (slots - len(layers)), jnp.int32)
    k_embed, k_layers = jax.random.split(key)
    parts = []
    with progress_callback(progress, samples, f"paths n={n}") as advance:
        for c, start in enumerate(range(0, samples, chunk)):  # the last chunk is padded
            keys = jax.random.split(jax.random.fold_in(k_embed, c), chunk)
            X0 = jax.vmap(lambda kk: net.embed(kk, x))(keys).astype(dtype)
            X0 = jnp.pad(X0, ((0, 0), (0, 0), (0, m - n)))
            # width, sigma_w and the step are traced: one compile per (activation, shape)
            out = _run_paths(net.activation, X0, jnp.asarray(n), jnp.asarray(net.sigma_w),
                             jax.random.fold_in(k_layers, c), jnp.asarray(dt), bounds,
                             record_state, ito)
            size = min(chunk, samples - start)
            part = {name: np.asarray(a[: len(layers) + 1, :size]) for name, a in out.items()}
            if keep_state:
                part["state"] = part["state"][..., :n]
            else:
                part.pop("state", None)
            parts.append(part)
            advance(size)
    data = {name: np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]}
    dims = {"gram": ("time", "sample", "input", "input2"),
            "state": ("time", "sample", "input", "neuron")}
    ds = xr.Dataset(
        {name: (dims.get(name, ("time", "sample", "input")), value)
         for name, value in data.items()},
        coords={"time": [0.0, *times]})
    ds = ds.transpose("sample", "time", ...)
    ds.attrs.update(width=n, depth=net.depth, horizon=net.horizon, sigma_w=net.sigma_w,
                    activation=net.activation.name, samples=samples, dt=dt)
    return ds


# -- W2: the geometric-BM family ---------------------------------------------------------------


def _log_ratio(ds: xr.Dataset, time=-1) -> np.ndarray:
    """``log |phi(Y_t)| - log |phi(Y_0)|``: NaN for a dead start, -inf for a later death."""
    lp = ds.log_phi_norm.isel(input=0).values
    with np.errstate(invalid="ignore"):
        return lp[:, time] - lp[:, 0]


def gbm_law_study(activations: Sequence, widths: Sequence[int], *, depth: int = 256,
                  t: float = 1.0, samples: int = 20_000, seed: int = 0,
                  progress: bool = False) -> xr.Dataset:
    """``log(|phi(Y_L)| / |phi(Y_0)|)`` of Hayou's network against the closed-form GBM law.

    For ``phi = a x + b`` or ``a |x - c|`` the log-ratio is ``N(a^2 (1/2 - 1/n) t, a^2 t/n)``
    whatever ``Y_0`` (``finite_width.md`` §4): checked with a one-sample KS test per
    (activation, width) from an isotropic start ``Y_0 ~ N(0, I_n)``.
    """
    gbms = [closed_forms.gbm_activation(a) for a in activations]
    widths = _positive_ints(widths, "widths")
    samples = _check_samples(samples)
    key = _key(seed, "gbm")
    logratio = np.empty((len(gbms), len(widths), samples))
    pvalue = np.empty((len(gbms), len(widths)))
    mean = np.empty_like(pvalue)
    sd = np.empty_like(pvalue)
    for i, g in enumerate(gbms):
        for j, n in enumerate(widths):
            net = hayou_resnet(n, depth, Activation(g.name, g), input_dim=1, horizon=t)
            ds = simulate_paths(net, [1.0], jax.random.fold_in(key, 100 * i + j),
                                samples=samples, progress=progress)
            logratio[i, j] = _log_ratio(ds)
            law = closed_forms.gbm_log_norm_law(g, n, t)
            pvalue[i, j] = stats.ks_1samp(logratio[i, j], law).pvalue
            mean[i, j], sd[i, j] = law.mean(), law.std()
    return xr.Dataset(
        {"logratio": (("activation", "width", "sample"), logratio),
         "pvalue": (("activation", "width"), pvalue),
         "law_mean": (("activation", "width"), mean), "law_sd": (("activation", "width"), sd),
         "slope": ("activation", [g.slope for g in gbms]),
         "shift": ("activation", [g.shift for g in gbms]),
         "kind": ("activation", [g.kind for g in gbms])},
        coords={"activation": [g.name for g in gbms], "width": widths},
        attrs=dict(depth=depth, t=t, samples=samples, seed=seed))


# -- W2: the ReLU identity with the active count -----------------------------------------------


def relu_identity_study(widths: Sequence[int], depths: Sequence[int], *, t: float = 1.0,
                        samples: int = 20_000, seed: int = 0,
                        progress: bool = False) -> xr.Dataset:
    """The ReLU post-activation norm identity (``finite_width.md`` §5, Case II).

    For each width and depth, from ``Y_0 ~ N(0, I_n)`` conditioned on ``phi(Y_0) != 0``:

    * ``R = log(|phi(Y_L)|/|phi(Y_0)|) - (2n)^-1 sum_l dt (N_l - 2)`` (the discrete residual
      of §5), whose limit law is ``N(0, t/n)``: mean, variance and KS p-value;
    * the pathwise gap ``|R - M|`` between ``R`` and the discrete stochastic integral
      ``M = sum <phi / |phi|^2, dY> = W_hat_t / sqrt(n) + o(1)`` on the same path, which
      vanishes as ``L`` grows when the identity holds pathwise.
    """
    widths = _positive_ints(widths, "widths")
    depths = _positive_ints(depths, "depths")
    samples = _check_samples(samples)
    key = _key(seed, "relu-identity")
    shape = (len(widths), len(depths))
    out = {name: np.full(shape, np.nan) for name in
           ("mean", "mean_se", "var", "var_se", "pvalue", "gap_mean", "gap_se", "alive")}
    residual = np.full((len(widths), samples), np.nan)
    for i, n in enumerate(widths):
        for j, L in enumerate(depths):
            net = hayou_resnet(n, L, "relu", input_dim=1, horizon=t)
            ds = simulate_paths(net, [1.0], jax.random.fold_in(key, 1000 * i + j),
                                samples=samples, ito=True, progress=progress)
            occ = ds.occupation.isel(input=0, time=-1).values
            lr = _log_ratio(ds)
            ok = np.isfinite(lr)  # live start, and alive at t
            R = (lr - (occ - 2 * t) / (2 * n))[ok]
            gap = np.abs(R - ds.martingale.isel(input=0, time=-1).values[ok])
            m = stats.moments(R)
            out["mean"][i, j], out["mean_se"][i, j] = m["mean"].value, m["mean"].stderr
            out["var"][i, j], out["var_se"][i, j] = m["variance"].value, m["variance"].stderr
            out["pvalue"][i, j] = stats.ks_1samp(R, closed_forms.relu_residual_law(n, t)).pvalue
            out["gap_mean"][i, j] = gap.mean()
            out["gap_se"][i, j] = gap.std(ddof=1) / math.sqrt(gap.size)
            out["alive"][i, j] = ok.sum()
            if j == len(depths) - 1:
                residual[i, : R.size] = R
    data = {name: (("width", "depth"), value) for name, value in out.items()}
    data["residual"] = (("width", "sample"), residual)
    data["target_var"] = ("width", [t / n for n in widths])
    return xr.Dataset(data, coords={"width": widths, "depth": depths},
                      attrs=dict(t=t, samples=samples, seed=seed))


# -- W3: the width regime change -----------------------------------------------------------------


def regime_study(widths: Sequence[int] = range(1, 9), horizons: Sequence[float] = (1.0, 10.0),
                 *, steps_per_unit: int = 256, samples: int = 20_000, seed: int = 0,
                 level: float = 0.99, progress: bool = False) -> xr.Dataset:
    """Expected ReLU post-activation log-ratio ``E log(|phi(Y_t)|/|phi(Y_0)|)`` by width and
    horizon, from ``Y_0 ~ N(0, I_n)`` conditioned on a live start (``finite_width.md`` §7).

    One network of horizon ``max(horizons)`` and ``steps_per_unit`` layers per unit time is
    recorded at each horizon. Two estimators with ``level`` intervals:

    * ``direct``: the sample mean of the log-ratio;
    * ``compensator``: the mean of ``(2n)^-1 int_0^t (N_s - 2) ds``, equal in expectation by
      the identity of §5 (the martingale part has mean 0) and far less noisy.

    Beside them: the analytic initial drift ``(E[N_0 | N_0 >= 1] - 2) / (2n)``, its
    ``E[N_0 | N_0 >= 1]`` with a Monte Carlo estimate, the live-start fraction, the mean
    active fraction ``N_t / n`` at each horizon, and the paths that died on the way.
    """
    widths = _positive_ints(widths, "widths")
    horizons = sorted(float(h) for h in np.atleast_1d(horizons))
    if not horizons or horizons[0] <= 0:
        raise ValueError(f"horizons must be positive, got {horizons!r}")
    steps_per_unit = _positive_ints(steps_per_unit, "steps_per_unit")[0]
    samples = _check_samples(samples)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    T = horizons[-1]
    depth = round(T * steps_per_unit)
    key = _key(seed, "regime")
    z = st.norm.ppf(0.5 + level / 2)
    names = ("direct", "direct_se", "compensator", "compensator_se", "active_fraction",
             "died")
    res = {name: np.full((len(widths), len(horizons)), np.nan) for name in names}
    live_frac, n0_mc, n0_se, seconds = [], [], [], []
    for i, n in enumerate(widths):
        start = time.perf_counter()
        net = hayou_resnet(n, depth, "relu", input_dim=1, horizon=T)
        ds = simulate_paths(net, [1.0], jax.random.fold_in(key, n), samples=samples,
                            times=horizons, keep_state=n <= 64, progress=progress)
        lp = ds.log_phi_norm.isel(input=0).values
        live = np.isfinite(lp[:, 0])
        live_frac.append(live.mean())
        if "state" in ds:
            N0 = (ds.state.isel(input=0, time=0).values > 0).sum(-1)[live]
            n0_mc.append(N0.mean())
            n0_se.append(N0.std(ddof=1) / math.sqrt(N0.size))
        else:
            n0_mc.append(np.nan)
            n0_se.append(np.nan)
        for j in range(len(horizons)):
            lr = lp[live, j + 1] - lp[live, 0]
            ok = np.isfinite(lr)
            res["died"][i, j] = (~ok).sum()
            direct = stats.mean_ci(lr[ok], level)
            comp = (ds.occupation.isel(input=0, time=j + 1).values[live][ok]
                    - 2 * horizons[j]) / (2 * n)
            cm = stats.mean_ci(comp, level)
            res["direct"][i, j], res["direct_se"][i, j] = direct.value, direct.stderr
            res["compensator"][i, j], res["compensator_se"][i, j] = cm.value, cm.stderr
            if "state" in ds:
                Xt = ds.state.isel(input=0, time=j + 1).values[live][ok]
                res["active_fraction"][i, j] = (Xt > 0).mean()
        seconds.append(time.perf_counter() - start)
    dims = ("width", "horizon")
    data = {name: (dims, value) for name, value in res.items()}
    for est in ("direct", "compensator"):
        data[f"{est}_lo"] = (dims, res[est] - z * res[f"{est}_se"])
        data[f"{est}_hi"] = (dims, res[est] + z * res[f"{est}_se"])
    data.update(
        initial_drift=("width", [closed_forms.relu_initial_log_drift(n) for n in widths]),
        live_active_mean=("width", [closed_forms.relu_live_active_mean(n) for n in widths]),
        live_active_mean_mc=("width", n0_mc), live_active_mean_se=("width", n0_se),
        live_fraction=("width", live_frac),
        live_fraction_target=("width", [1 - 2.0**-n for n in widths]),
        seconds=("width", seconds))
    return xr.Dataset(data, coords={"width": widths, "horizon": horizons},
                      attrs=dict(steps_per_unit=steps_per_unit, depth=depth, samples=samples,
                                 seed=seed, level=level))


def sign_change_width(ds: xr.Dataset, horizon: float, estimator: str = "direct") -> int | None:
    """Smallest width whose ``level`` interval lies above 0 while every smaller width's lies
    below 0 (``None`` when the widths do not separate that cleanly)."""
    sel = ds.sel(horizon=horizon)
    lo, hi = sel[f"{estimator}_lo"].values, sel[f"{estimator}_hi"].values
    for i, n in enumerate(ds.width.values):
        if lo[i] > 0:
            return int(n) if i > 0 and np.all(hi[:i] < 0) else None
    return None


# -- W4: the dead orthant -----------------------------------------------------------------------


def dead_orthant_study(widths: Sequence[int], depths: Sequence[int], *, samples: int = 20_000,
                       seed: int = 0, progress: bool = False) -> xr.Dataset:
    """Dead starts and collapse during propagation for ReLU (``finite_width.md`` §8).

    For ``Y_0 = W_in x ~ N(0, I_n)``: the fraction of dead starts (``phi(Y_0) = 0``, target
    ``2^-n``, exact binomial test), the largest displacement ``max |Y_L - Y_0|`` of a dead
    start (0 exactly: the orthant is absorbing), and the fraction of live starts that are
    dead at the output (entered the orthant on the way; absorbing, so that is "ever"), by
    depth, with its binomial standard error.
    """
    widths = _positive_ints(widths, "widths")
    depths = _positive_ints(depths, "depths")
    samples = _check_samples(samples)
    key = _key(seed, "dead")
    shape = (len(widths), len(depths))
    dead_start, collapse, collapse_se, frozen = (np.zeros(shape) for _ in range(4))
    for i, n in enumerate(widths):
        for j, L in enumerate(depths):
            net = hayou_resnet(n, L, "relu", input_dim=1)
            ds = simulate_paths(net, [1.0], jax.random.fold_in(key, 10_000 * i + j),
                                samples=samples, keep_state=True, progress=progress)
            lp = ds.log_phi_norm.isel(input=0).values
            dead0, live = ~np.isfinite(lp[:, 0]), np.isfinite(lp[:, 0])
            dead_start[i, j] = dead0.sum()
            c = ~np.isfinite(lp[live, -1])
            collapse[i, j] = c.mean()
            collapse_se[i, j] = math.sqrt(max(c.mean() * (1 - c.mean()), 1 / c.size) / c.size)
            X = ds.state.isel(input=0).values
            frozen[i, j] = np.abs(X[dead0, -1] - X[dead0, 0]).max() if dead0.any() else 0.0
    pvals = np.array([[stats.binomial_test(int(dead_start[i, j]), samples, 2.0**-n).pvalue
                       for j in range(len(depths))] for i, n in enumerate(widths)])
    return xr.Dataset(
        {"dead_start": (("width", "depth"), dead_start),
         "dead_start_target": ("width", [samples * 2.0**-n for n in widths]),
         "dead_start_pvalue": (("width", "depth"), pvals),
         "frozen_displacement": (("width", "depth"), frozen),
         "collapse": (("width", "depth"), collapse),
         "collapse_se": (("width", "depth"), collapse_se)},
        coords={"width": widths, "depth": depths}, attrs=dict(samples=samples, seed=seed))


# -- W5: the order of limits ----------------------------------------------------------------------


def width_first_covariance(activation, q0, depth: int, *, horizon: float = 1.0,
                           sigma_w: float = 1.0) -> np.ndarray:
    """Width first at finite depth (``finite_width.md`` §9): the ``k x k`` covariance of the
    infinitely wide Hayou network, ``q_l = q_{l-1} + (sigma_w^2 T / L) V_phi(q_{l-1})``
    from ``q_0`` (the input Gram ``<x, x'>/d``), with the activation's dual ``V_phi``;
    float64. As ``L -> inf`` it solves the kernel ODE ``q' = sigma_w^2 V_phi(q)``."""
    from .activations import get_activation

    act = get_activation(activation)
    depth = _positive_ints(depth, "depth")[0]
    q = np.array(q0, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != q.shape[1]:
        raise ValueError(f"q0 must be a square matrix, got shape {q.shape}")
    step = sigma_w**2 * horizon / depth
    for _ in range(depth):
        d = np.diag(q)
        q = q + step * np.asarray(act.dual(d[:, None], d[None, :], q), dtype=np.float64)
    return q


def _pair_inputs(rho: float) -> np.ndarray:
    """Two inputs of ``R^2`` with norm ``sqrt(2)`` and cosine ``rho`` (so ``q_0 = 1``)."""
    return math.sqrt(2) * np.array([[1.0, 0.0], [rho, math.sqrt(1 - rho**2)]])


def covariance_grid(widths: Sequence[int], depths: Sequence[int], *, activation: str = "relu",
                    rho: float = 0.5, samples: int = 1_000, seed: int = 0,
                    progress: bool = False) -> xr.Dataset:
    """The covariance ``C = <Y_L(x), Y_L(x')>/n`` of two inputs over a grid of ``(n, L)``
    (``finite_width.md`` §9), against

    * ``ode``: the width-then-depth limit ``q_1(x, x')`` (``kernels.kernel`` at depth inf);
    * ``recursion``: the width-first value at each finite depth
      (:func:`width_first_covariance`).

    Per cell: mean of ``C`` and its standard error, the root-mean-square error
    ``E[(C - q_1)^2]^{1/2}`` (depth and width fluctuations together) and the bias.
    """
    widths = _positive_ints(widths, "widths")
    depths = _positive_ints(depths, "depths")
    samples = _check_samples(samples)
    if not -1 < rho < 1:
        raise ValueError(f"rho must be in (-1, 1), got {rho!r}")
    x = _pair_inputs(rho)
    base = hayou_resnet(1, 1, activation, input_dim=2)
    ode = float(kernel(base, x, depth=math.inf, compute_ntk=False).nngp[0, 1])
    recursion = [float(width_first_covariance(activation, x @ x.T / 2, L)[0, 1])
                 for L in depths]
    key = _key(seed, "covariance")
    # narrow grids share one compilation; wide ones pad each width on its own
    pad = _padded_width(max(widths)) if max(widths) <= _STATE_WIDTH else None
    shape = (len(widths), len(depths))
    mean, se, rmse = (np.zeros(shape) for _ in range(3))
    with progress_callback(progress, len(widths) * len(depths), "(n, L) grid") as advance:
        for i, n in enumerate(widths):
            for j, L in enumerate(depths):
                net = hayou_resnet(n, L, activation, input_dim=2)
                ds = simulate_paths(net, x, jax.random.fold_in(key, 10_000 * i + j),
                                    samples=samples, pad_width=pad)
                C = ds.gram.isel(time=-1, input=0, input2=1).values.astype(np.float64)
                mean[i, j], se[i, j] = C.mean(), C.std(ddof=1) / math.sqrt(samples)
                rmse[i, j] = math.sqrt(np.mean((C - ode) ** 2))
                advance(1)
    dims = ("width", "depth")
    return xr.Dataset(
        {"mean": (dims, mean), "se": (dims, se), "rmse": (dims, rmse),
         "bias": (dims, mean - ode), "recursion": ("depth", recursion), "ode": ode},
        coords={"width": widths, "depth": depths},
        attrs=dict(activation=activation, rho=rho, samples=samples, seed=seed))


def _spearman_z(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman correlation and its z-score under independence (SE ``1/sqrt(S - 1)``)."""
    r = float(st.spearmanr(a, b).statistic)
    return r, r * math.sqrt(a.size - 1)


def nongaussian_study(activations: Sequence[str], widths: Sequence[int],
                      depths: Sequence[int] = (256,), *, samples: int = 20_000, seed: int = 0,
                      progress: bool = False) -> xr.Dataset:
    """How far one neuron of the deep narrow network is from its Gaussian limit
    (``finite_width.md`` §3, §9), by activation, width and depth, from ``Y_0 ~ N(0, I_n)``.

    Per cell ``(activation, width, depth)`` (t = 1):

    * ``ks_distance``: sup-distance between the CDF of ``Y_L[0]`` and the Gaussian limit
      ``N(0, q_1)`` of both limits (``q_1`` from the kernel ODE);
    * ``excess_kurtosis`` (delta-method SE) and ``tail_ratio``: the 99.9% quantile of
      ``|Y_L[0]| / sd`` over the Gaussian's 3.29;
    * dependence of neurons: Pearson correlation of ``Y[0]^2`` and ``Y[1]^2`` and the
      Spearman correlation with its z-score under independence (0 in the Gaussian limit);
    * ``log_norm_sd``: standard deviation of ``log |Y_L| / |Y_0|``, the random clock;
    * ``neuron`` and ``start``: the samples of ``Y_L[0]`` and ``Y_0[0]`` at the last depth.
    """
    widths = _positive_ints(widths, "widths")
    depths = _positive_ints(depths, "depths")
    samples = _check_samples(samples)
    key = _key(seed, "nongaussian")
    names = ("ks_distance", "excess_kurtosis", "kurtosis_se", "tail_ratio", "corr_sq",
             "spearman_sq", "spearman_z", "log_norm_sd", "variance")
    shape = (len(activations), len(widths), len(depths))
    out = {name: np.full(shape, np.nan) for name in names}
    neuron = np.full((len(activations), len(widths), samples), np.nan)
    start = np.full_like(neuron, np.nan)
    targets = []
    total = math.prod(shape)
    with progress_callback(progress, total, "(activation, n, L) grid") as advance:
        for a, act in enumerate(activations):
            base = hayou_resnet(1, 1, act, input_dim=1)
            q1 = float(kernel(base, [[1.0]], depth=math.inf, compute_ntk=False).nngp[0, 0])
            targets.append(q1)
            limit = st.norm(0, math.sqrt(q1))
            for i, n in enumerate(widths):
                for j, L in enumerate(depths):
                    net = hayou_resnet(n, L, act, input_dim=1)
                    ds = simulate_paths(net, [1.0], jax.random.fold_in(key, 10**6 * a + 1000
                                                                       * i + j),
                                        samples=samples, keep_state=True)
                    X = ds.state.isel(input=0, time=-1).values.astype(np.float64)
                    y = X[:, 0]
                    m = stats.moments(y)
                    out["ks_distance"][a, i, j] = stats.ks_1samp(y, limit).statistic
                    out["excess_kurtosis"][a, i, j] = m["excess_kurtosis"].value
                    out["kurtosis_se"][a, i, j] = m["excess_kurtosis"].stderr
                    out["variance"][a, i, j] = m["variance"].value
                    sd = math.sqrt(m["variance"].value)
                    out["tail_ratio"][a, i, j] = np.quantile(np.abs(y) / sd, 0.999) / 3.2905
                    if n >= 2:
                        out["corr_sq"][a, i, j] = np.corrcoef(X[:, 0] ** 2, X[:, 1] ** 2)[0, 1]
                        r, zr = _spearman_z(X[:, 0] ** 2, X[:, 1] ** 2)
                        out["spearman_sq"][a, i, j], out["spearman_z"][a, i, j] = r, zr
                    ln = ds.log_norm.isel(input=0).values
                    out["log_norm_sd"][a, i, j] = np.std(ln[:, -1] - ln[:, 0], ddof=1)
                    if j == len(depths) - 1:
                        neuron[a, i] = y
                        start[a, i] = ds.state.isel(input=0, time=0).values[:, 0]
                    advance(1)
    data = {name: (("activation", "width", "depth"), value) for name, value in out.items()}
    data["neuron"] = (("activation", "width", "sample"), neuron)
    data["start"] = (("activation", "width", "sample"), start)
    data["q1"] = ("activation", targets)
    return xr.Dataset(data, coords={"activation": list(activations), "width": widths,
                                    "depth": depths},
                      attrs=dict(samples=samples, seed=seed, t=1.0))
