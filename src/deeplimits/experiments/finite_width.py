"""Split from ``deeplimits.finite_width``."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy import stats as st

from deeplimits._core.keys import seed_key
from deeplimits._core.progress import progress_callback
from deeplimits.analysis import closed_forms, stats
from deeplimits.simulation.finite_width import (
    STATE_WIDTH,
    check_path_samples,
    padded_width,
    positive_ints,
    simulate_paths,
)
from deeplimits.spec.activations import Activation
from deeplimits.spec.networks import hayou_resnet
from deeplimits.wide.kernels import kernel

__all__ = [
    "gbm_law_study", "relu_identity_study", "regime_study", "dead_orthant_study",
    "covariance_grid", "nongaussian_study", "sign_change_width", "width_first_covariance"
]

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
    widths = positive_ints(widths, "widths")
    samples = check_path_samples(samples)
    key = seed_key(seed, "gbm")
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
    widths = positive_ints(widths, "widths")
    depths = positive_ints(depths, "depths")
    samples = check_path_samples(samples)
    key = seed_key(seed, "relu-identity")
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


def regime_study(widths: Sequence[int] = range(1, 9), horizons: Sequence[float] = (1.0, 10.0),
                 *, steps_per_unit: int = 256, samples: int = 20_000, seed: int = 0,
                 level: float = 0.99, progress: bool = False) -> xr.Dataset:
    """Expected ReLU post-activation log-ratio ``E log(|phi(Y_t)|/|phi(Y_0)|)`` by width and
    horizon, from ``Y_0 ~ N(0, I_n)`` conditioned on a live start (``finite_width.md`` §7).

    One float64 network of horizon ``T = max(horizons)`` and ``steps_per_unit`` layers per
    unit time (float32 squares underflow on long horizons and fake deaths) is recorded at
    each horizon, in ``samples / 2`` antithetic pairs (same ``Y_0``, negated noise: each
    path keeps its law, and the pair mean cancels the martingale part to first order). The
    network with half the layers driven by the same Brownian increments (``coarsen=2``) is
    run beside it for the O(dt) step bias. Per (width, horizon), over live pairs in which no
    path of either network died (``died`` counts the others), with ``level`` intervals:

    * ``direct``: mean of the log-ratio (the verdict's statistic), ``direct_se``, ``_lo``,
      ``_hi``; ``direct_coarse`` the same for the coarse network;
    * ``step_bias``: mean of fine minus coarse, ``step_bias_se``. The Euler step has weak
      order 1 (bias ``c dt + O(dt^2)``), so this estimates the bias of the fine network;
      ``direct_bound = |step_bias| + z step_bias_se`` is its upper confidence bound, to be
      added to the Monte Carlo interval;
    * ``rate``: the growth rate on the interval ending at this horizon,
      ``E[log-ratio_t - log-ratio_s] / (t - s)`` (``s`` the previous horizon, or 0), with
      ``rate_se`` and its step-bias bound ``rate_bound`` (paired differences on one path);
    * ``excess_active``: ``E int_s^t (N_u - 1) du / (2n (t - s))`` with SE, the transient of
      the rate over ``-1/(2n)`` (§5 with ``N_u >= 1`` while alive: one-sided, >= 0);
    * ``compensator``: the mean of ``(2n)^-1 int_0^t (N_s - 2) ds`` (equal to ``direct`` in
      expectation by the identity of §5; reported, not a verdict), with its interval;
    * ``active_fraction`` ``E N_t / n`` and ``single_active`` ``P(N_t = 1)`` (live paths).

    Beside them: the analytic initial drift ``(E[N_0 | N_0 >= 1] - 2) / (2n)``, its
    ``E[N_0 | N_0 >= 1]`` with a Monte Carlo estimate, and the live-start fraction.
    """
    widths = positive_ints(widths, "widths")
    horizons = sorted(float(h) for h in np.atleast_1d(horizons))
    if not horizons or horizons[0] <= 0:
        raise ValueError(f"horizons must be positive, got {horizons!r}")
    steps_per_unit = positive_ints(steps_per_unit, "steps_per_unit")[0]
    samples = check_path_samples(samples)
    if samples % 2:
        raise ValueError(f"samples come in antithetic pairs: must be even, got {samples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    T = horizons[-1]
    depth = round(T * steps_per_unit)
    coarse_steps = [h * steps_per_unit / 2 for h in horizons]
    if depth % 2 or any(abs(c - round(c)) > 1e-9 for c in coarse_steps):
        raise ValueError("every horizon must be an even number of layers (the coupled coarse "
                         f"network has half), got {horizons} at {steps_per_unit} per unit")
    key = seed_key(seed, "regime")
    z = st.norm.ppf(0.5 + level / 2)
    names = ("direct", "direct_se", "direct_coarse", "step_bias", "step_bias_se", "rate",
             "rate_se", "rate_step_bias", "rate_step_bias_se", "excess_active",
             "excess_active_se", "compensator", "compensator_se", "active_fraction",
             "single_active", "died")
    res = {name: np.full((len(widths), len(horizons)), np.nan) for name in names}
    live_frac, n0_mc, n0_se, seconds = [], [], [], []
    grid = np.array([0.0, *horizons])

    def pair_mean(a):
        return a.reshape(-1, 2, *a.shape[1:]).mean(1)

    for i, n in enumerate(widths):
        begin = time.perf_counter()
        runs = []
        for layers, coarsen in ((depth, 1), (depth // 2, 2)):
            net = hayou_resnet(n, layers, "relu", input_dim=1, horizon=T)
            runs.append(simulate_paths(net, [1.0], jax.random.fold_in(key, n), samples=samples,
                                       times=horizons, keep_state=n <= 64, antithetic=True,
                                       coarsen=coarsen, dtype=jnp.float64,
                                       progress=progress))
        fine, coarse = runs
        lp = fine.log_phi_norm.isel(input=0).values            # (S, 1 + horizons)
        lpc = coarse.log_phi_norm.isel(input=0).values
        live = np.isfinite(lp[:, 0])                            # the pair shares Y_0
        live_frac.append(live.mean())
        if "state" in fine:
            N0 = (fine.state.isel(input=0, time=0).values > 0).sum(-1)[live]
            n0_mc.append(N0.mean())
            n0_se.append(N0.std(ddof=1) / math.sqrt(N0.size))
        else:
            n0_mc.append(np.nan)
            n0_se.append(np.nan)
        with np.errstate(invalid="ignore"):
            lr, lrc = lp - lp[:, :1], lpc - lpc[:, :1]          # -inf: died on the way
        occ = fine.occupation.isel(input=0).values
        pair_live = pair_mean(live.astype(float)) == 1
        for j, h in enumerate(horizons):
            # a pair is used at horizon h when neither path of either network died by h
            ok = pair_live & (pair_mean(np.isfinite(lr[:, j + 1]) & np.isfinite(lrc[:, j + 1]))
                              == 1)
            res["died"][i, j] = int(pair_live.sum() - ok.sum())
            f, c = pair_mean(np.where(np.isfinite(lr), lr, 0.0))[ok], \
                pair_mean(np.where(np.isfinite(lrc), lrc, 0.0))[ok]
            direct, diff = stats.mean_ci(f[:, j + 1], level), stats.mean_ci(
                f[:, j + 1] - c[:, j + 1], level)
            span = grid[j + 1] - grid[j]
            rate = stats.mean_ci((f[:, j + 1] - f[:, j]) / span, level)
            rate_diff = stats.mean_ci(((f - c)[:, j + 1] - (f - c)[:, j]) / span, level)
            excess = stats.mean_ci(pair_mean((occ[:, j + 1] - occ[:, j]) / span - 1)[ok]
                                   / (2 * n), level)
            comp = stats.mean_ci(pair_mean((occ[:, j + 1] - 2 * h) / (2 * n))[ok], level)
            res["direct"][i, j], res["direct_se"][i, j] = direct.value, direct.stderr
            res["direct_coarse"][i, j] = float(c[:, j + 1].mean())
            res["step_bias"][i, j], res["step_bias_se"][i, j] = diff.value, diff.stderr
            res["rate"][i, j], res["rate_se"][i, j] = rate.value, rate.stderr
            res["rate_step_bias"][i, j] = rate_diff.value
            res["rate_step_bias_se"][i, j] = rate_diff.stderr
            res["excess_active"][i, j] = excess.value
            res["excess_active_se"][i, j] = excess.stderr
            res["compensator"][i, j], res["compensator_se"][i, j] = comp.value, comp.stderr
            if "state" in fine:
                alive = np.repeat(ok, 2)
                Nt = (fine.state.isel(input=0, time=j + 1).values[alive] > 0).sum(-1)
                res["active_fraction"][i, j] = Nt.mean() / n
                res["single_active"][i, j] = (Nt == 1).mean()
        seconds.append(time.perf_counter() - begin)
    dims = ("width", "horizon")
    data = {name: (dims, value) for name, value in res.items()}
    for est in ("direct", "compensator", "rate"):
        data[f"{est}_lo"] = (dims, res[est] - z * res[f"{est}_se"])
        data[f"{est}_hi"] = (dims, res[est] + z * res[f"{est}_se"])
    data["direct_bound"] = (dims, np.abs(res["step_bias"]) + z * res["step_bias_se"])
    data["rate_bound"] = (dims, np.abs(res["rate_step_bias"]) + z * res["rate_step_bias_se"])
    data.update(
        initial_drift=("width", [closed_forms.relu_initial_log_drift(n) for n in widths]),
        live_active_mean=("width", [closed_forms.relu_live_active_mean(n) for n in widths]),
        live_active_mean_mc=("width", n0_mc), live_active_mean_se=("width", n0_se),
        live_fraction=("width", live_frac),
        live_fraction_target=("width", [1 - 2.0**-n for n in widths]),
        seconds=("width", seconds))
    return xr.Dataset(data, coords={"width": widths, "horizon": horizons},
                      attrs=dict(steps_per_unit=steps_per_unit, depth=depth, samples=samples,
                                 seed=seed, level=level, dtype="float64", antithetic=1))


def sign_change_width(ds: xr.Dataset, horizon: float, estimator: str = "direct") -> int | None:
    """Smallest width whose ``level`` interval lies above 0 while every smaller width's lies
    below 0 (``None`` when the widths do not separate that cleanly). Where the study gives
    a bias bound ``{estimator}_bound`` (the step bias), each interval is widened by it."""
    sel = ds.sel(horizon=horizon)
    lo, hi = sel[f"{estimator}_lo"].values, sel[f"{estimator}_hi"].values
    bound_name = f"{estimator}_bound"
    if bound_name in sel:
        lo, hi = lo - sel[bound_name].values, hi + sel[bound_name].values
    for i, n in enumerate(ds.width.values):
        if lo[i] > 0:
            return int(n) if i > 0 and np.all(hi[:i] < 0) else None
    return None


def dead_orthant_study(widths: Sequence[int], depths: Sequence[int], *, samples: int = 20_000,
                       seed: int = 0, iid: bool = False, progress: bool = False) -> xr.Dataset:
    """Dead starts and collapse during propagation for ReLU (``finite_width.md`` §8).

    For ``Y_0 = W_in x ~ N(0, I_n)``: the fraction of dead starts (``phi(Y_0) = 0``, target
    ``2^-n``, exact binomial test), the largest displacement ``max |Y_L - Y_0|`` of a dead
    start (0 exactly: the orthant is absorbing), and the fraction of live starts that are
    dead at the output (entered the orthant on the way; absorbing, so that is "ever"), by
    depth, with its binomial standard error.

    ``iid=True``: the same layers without the ``1/L`` variance scaling (horizon ``T = L``,
    every layer's weights ``N(0, sigma_w^2/n)``), whose collapse does not vanish with depth;
    run in float64 (on that horizon float32 squares of the norm underflow).
    """
    widths = positive_ints(widths, "widths")
    depths = positive_ints(depths, "depths")
    samples = check_path_samples(samples)
    key = seed_key(seed, "dead")
    shape = (len(widths), len(depths))
    dead_start, collapse, collapse_se, frozen = (np.zeros(shape) for _ in range(4))
    for i, n in enumerate(widths):
        for j, L in enumerate(depths):
            net = hayou_resnet(n, L, "relu", input_dim=1, horizon=float(L) if iid else 1.0)
            # the i.i.d. twin runs to horizon L, where the post-activation norm falls like
            # e^{-L/(2n)}: in float32 its square underflows (a fake death), so float64
            ds = simulate_paths(net, [1.0], jax.random.fold_in(key, 10_000 * i + j),
                                samples=samples, keep_state=True, progress=progress,
                                dtype=jnp.float64 if iid else jnp.float32)
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
        coords={"width": widths, "depth": depths},
        attrs=dict(samples=samples, seed=seed, iid=int(iid)))


def width_first_covariance(activation, q0, depth: int, *, horizon: float = 1.0,
                           sigma_w: float = 1.0) -> np.ndarray:
    """Width first at finite depth (``finite_width.md`` §9): the ``k x k`` covariance of the
    infinitely wide Hayou network, ``q_l = q_{l-1} + (sigma_w^2 T / L) V_phi(q_{l-1})``
    from ``q_0`` (the input Gram ``<x, x'>/d``), with the activation's dual ``V_phi``;
    float64. This is the kernel recursion of the wide network (form A's
    ``Block.kernel_layer``), so it and :func:`deeplimits.kernel` cannot drift apart. As
    ``L -> inf`` it solves the kernel ODE ``q' = sigma_w^2 V_phi(q)``."""
    from deeplimits.spec.networks import ResNet

    depth = positive_ints(depth, "depth")[0]
    q = np.array(q0, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != q.shape[1]:
        raise ValueError(f"q0 must be a square matrix, got shape {q.shape}")
    # the wide network's own finite-depth recursion (form A's pair dynamics, sigma_b = 0)
    net = ResNet(width=1, depth=depth, activation=activation, sigma_w=sigma_w,
                 horizon=horizon)
    block, d = net.block, jnp.diagonal(jnp.asarray(q))
    state = block.kernel_init(net, d, d, jnp.asarray(q), jnp.zeros_like(q))
    for _ in range(depth):
        state = block.kernel_layer(net, state, horizon / depth)
    return np.asarray(state[2], dtype=np.float64)


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
    widths = positive_ints(widths, "widths")
    depths = positive_ints(depths, "depths")
    samples = check_path_samples(samples)
    if not -1 < rho < 1:
        raise ValueError(f"rho must be in (-1, 1), got {rho!r}")
    x = _pair_inputs(rho)
    base = hayou_resnet(1, 1, activation, input_dim=2)
    ode = float(kernel(base, x, depth=math.inf, compute_ntk=False).nngp[0, 1])
    recursion = [float(width_first_covariance(activation, x @ x.T / 2, L)[0, 1])
                 for L in depths]
    key = seed_key(seed, "covariance")
    # narrow grids share one compilation; wide ones pad each width on its own
    pad = padded_width(max(widths)) if max(widths) <= STATE_WIDTH else None
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
                      sampler: str = "exact", progress: bool = False) -> xr.Dataset:
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

    ``sampler``: ``"exact"`` (the Gram sampler) or ``"dense"`` (weight matrices drawn), as in
    :func:`~deeplimits.simulation.finite_width.simulate_paths`.
    """
    widths = positive_ints(widths, "widths")
    depths = positive_ints(depths, "depths")
    samples = check_path_samples(samples)
    key = seed_key(seed, "nongaussian")
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
                                        samples=samples, keep_state=True, sampler=sampler)
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
                      attrs=dict(samples=samples, seed=seed, t=1.0, sampler=sampler))
