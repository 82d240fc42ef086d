"""Claims about the kernels of finite networks against the wide limit (``kernels.md``,
"Monte Carlo agreement").

Each finite network of depth ``L`` is compared with the finite-depth wide recursion
``kernel(net, x, depth=L)`` (§5), the exact width -> infinity limit at that depth, so the only
error left is finite width: fluctuations of one network's kernel of order ``n^{-1/2}`` and a
bias of order ``1/n``. Two configurations: form A ReLU with an input layer (state readout
with a bias; the NTK trains the input layer) and form C ReLU (post-activation readout; the
NTK freezes the input layer).

A claim passes when, for every configuration, the mean over networks of one network's
relative Frobenius error falls with width with a fitted log-log slope within a tolerance of
-1/2, and, at the largest width, the Monte Carlo mean agrees with the wide kernel entry by
entry: t-tests combined with a Bonferroni correction (as in :mod:`.forward`), whose
threshold in standard errors the verdict states. Every claim draws its randomness from
``jax.random.key(seed)`` folded with a fixed tag, so a seed reproduces the whole report.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from scipy import stats as st

from deeplimits._core.keys import seed_key
from deeplimits.analysis import stats
from deeplimits.experiments.claims._base import (
    Claim,
    Control,
    Detectable,
    Verdict,
    detectable_shift,
    judge,
    pick,
    register,
    with_verdict,
)
from deeplimits.experiments.claims.checks import weighted_rate, width_extrapolation
from deeplimits.experiments.figures import depth_ticks, figure, loglog_fit
from deeplimits.spec.networks import InputLayer, Readout, ResNet
from deeplimits.wide.empirical import empirical_nngp, empirical_ntk_samples
from deeplimits.wide.kernels import kernel

TWIN_SIGMA_W = 1.05
"""The control: the wide kernel of the same network with sigma_w multiplied by this."""


# level of the Bonferroni-combined t-tests of the Monte Carlo means (as in forward.py)
ALPHA = 0.01


INPUT_DIM = 8




def _inputs(k: int = 4, d: int = INPUT_DIM) -> np.ndarray:
    """``k`` fixed inputs of different norms; the first two have cosine 0.8."""
    rng = np.random.default_rng(20240607)
    x = rng.standard_normal((k, d))
    q, _ = np.linalg.qr(x.T)
    x = q.T * math.sqrt(d)
    x[1] = 0.8 * x[0] + 0.6 * x[1]
    norms = np.array([1.0, 1.0, 1.3, 0.8, 1.1, 0.9])[:k]
    return x * norms[:, None]


def _networks(width: int, depth: int, what: str = "nngp") -> dict[str, tuple[ResNet, bool]]:
    """The compared networks and whether their input layer is trained (NTK); the NTK claim
    adds the shallow form B with tanh (phi''(0) = 0: the closed form of §4.3) and swish
    (phi''(0) != 0: the mean drift term), one with a trained and one with a frozen input
    layer."""
    layer = InputLayer(INPUT_DIM, sigma_A=1.0, sigma_a=0.3)
    nets = {
        "A-relu": (ResNet(width=width, depth=depth, form="A", activation="relu", sigma_w=1.5,
                          sigma_b=0.3, input_layer=layer,
                          readout=Readout(sigma_v=1.0, sigma_v0=0.2)), True),
        "C-relu": (ResNet(width=width, depth=depth, form="C", activation="relu", sigma_w=1.0,
                          sigma_b=0.3, sigma_u=1.5, input_layer=layer,
                          readout=Readout(sigma_v=1.0, post_activation=True)), False),
    }
    if what == "ntk":
        nets["B-tanh"] = (ResNet(width=width, depth=depth, form="B", activation="tanh",
                                 sigma_w=1.0, sigma_b=0.3, input_layer=layer,
                                 readout=Readout(sigma_v=1.0, sigma_v0=0.2)), True)
        nets["B-swish"] = (ResNet(width=width, depth=depth, form="B", activation="swish",
                                  sigma_w=1.0, sigma_b=0.3, input_layer=layer,
                                  readout=Readout(sigma_v=1.0)), False)
    return nets


def _upper(k: int):
    return np.triu_indices(k)


def _entries(k: int) -> list[str]:
    i, j = _upper(k)
    return [f"{a},{b}" for a, b in zip(i, j, strict=True)]


def _relative_error(draws: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """``|K_hat - K|_F / |K|_F`` for each draw ``(..., k, k)``."""
    return np.linalg.norm(draws - exact, axis=(-2, -1)) / np.linalg.norm(exact)


def _agreement(scale: str, seed: int, what: str) -> xr.Dataset:
    """Shared computation of both claims: ``what`` is ``"nngp"`` or ``"ntk"``."""
    # Quick scale: two widths a factor 8 (NNGP) or 4 (NTK) apart. Each width is a
    # compilation of its own (2-3 s of CPU each, most of the check's cost); the end points
    # carry most of the information on a log-log slope and on the 1/n extrapolation.
    if what == "nngp":
        widths = pick(scale, [128, 1024], [128, 256, 512, 1024, 2048, 4096])
        depth = pick(scale, 100, 256)
        reps = [pick(scale, 128, 256)] * len(widths)  # independent networks per width
    else:
        # The NTK's mean has an O(1/n) bias, removed by extrapolation in 1/n
        # (width_extrapolation), so small widths serve: one network's NTK costs O(L n^2)
        # and the mean's SE is O((n S)^-1/2), so for a fixed cost small widths with many
        # networks (all in one vectorised program per width) give the smallest SE.
        widths = pick(scale, [16, 64], [32, 64, 128, 256])
        depth = pick(scale, 20, 100)
        reps = pick(scale, [2048, 512], [2048, 1024, 512, 256])
    x = _inputs()
    k = x.shape[0]
    iu = _upper(k)
    key = seed_key(seed, f"K1-{what}")
    configs = list(_networks(1, depth, what))
    err = np.full((len(configs), len(widths), max(reps)), np.nan)
    emp = np.empty((len(configs), len(widths), len(iu[0])))
    se = np.empty_like(emp)
    exact = np.empty((len(configs), len(iu[0])))
    full = np.empty((2, len(configs), k, k))  # (model, twin) wide kernels
    draws_all = np.full((len(configs), len(widths), max(reps), k, k), np.nan)
    for c, name in enumerate(configs):
        net, train_input = _networks(widths[0], depth, what)[name]
        for t, factor in enumerate((1.0, TWIN_SIGMA_W)):
            wide = kernel(net.replace(sigma_w=net.sigma_w * factor), x, depth=depth,
                          compute_ntk=what == "ntk", train_input_layer=train_input)
            full[t, c] = wide.nngp if what == "nngp" else wide.ntk
        K = full[0, c]
        exact[c] = K[iu]
        for w, (n, r) in enumerate(zip(widths, reps, strict=True)):
            net, _ = _networks(n, depth, what)[name]
            kw = jax.random.fold_in(jax.random.fold_in(key, c), n)
            if what == "nngp":
                # float32 paths: rounding (1e-6) is far below the O(n^-1/2) fluctuations
                draws = empirical_nngp(net, x, kw, r, estimator="state",
                                       dtype=jnp.float32).draws
            else:
                draws = empirical_ntk_samples(net, x, kw, r,
                                              train_input_layer=train_input).draws
            err[c, w, :r] = _relative_error(draws, K)
            draws_all[c, w, :r] = draws
            emp[c, w] = draws.mean(0)[iu]
            se[c, w] = draws.std(0, ddof=1)[iu] / math.sqrt(r)
    reps_arr = np.asarray(reps)
    mean_err = np.nanmean(err, -1)
    se_err = np.nanstd(err, -1, ddof=1) / np.sqrt(reps_arr)
    # the weighted fit of the verdict (two widths at quick scale: no unweighted CI)
    slopes = [weighted_rate(widths, e, line=True) for e in err]
    if what == "ntk":  # the mean beyond its O(1/n) bias: z of the n -> oo extrapolation
        fit = width_extrapolation(widths, emp.transpose(1, 0, 2), se.transpose(1, 0, 2))
        z = (fit.intercept - exact) / fit.intercept_se
        limit = {"extrapolated": (("config", "entry"), fit.intercept),
                 "extrapolated_se": (("config", "entry"), fit.intercept_se),
                 "bias_coefficient": (("config", "entry"), fit.coefficient)}
        z_tol = float(st.norm.isf(ALPHA / (2 * z.size)))
    else:
        z = (emp[:, -1] - exact) / se[:, -1]
        limit = {}
        z_tol = float(st.t.isf(ALPHA / (2 * z.size), reps[-1] - 1))
    return xr.Dataset(
        {
            "rel_error": (("config", "width", "network"), err),
            "networks": ("width", reps_arr),
            "mean_rel_error": (("config", "width"), mean_err),
            "se_rel_error": (("config", "width"), se_err),
            "empirical": (("config", "width", "entry"), emp),
            "stderr": (("config", "width", "entry"), se),
            "wide": (("config", "entry"), exact),
            "z": (("config", "entry"), z),
            "slope": ("config", [s[0] for s in slopes]),
            "slope_se": ("config", [s[1] for s in slopes]),
            "intercept": ("config", [s[2] for s in slopes]),
            "draws": (("config", "width", "network", "i", "j"), draws_all),
            "wide_full": (("kernel", "config", "i", "j"), full),
            **limit,
        },
        coords={"config": configs, "width": widths, "network": np.arange(max(reps)),
                "entry": _entries(k)},
        attrs={"depth": depth, "inputs": k,
               # |t| that the Bonferroni-combined tests of all configurations and entries
               # allow at level ALPHA
               "z_tolerance": z_tol},
    )


def _mean_tests(ds: xr.Dataset, wide: np.ndarray, what: str):
    """``(z, se)`` per configuration and entry of the Monte Carlo mean against ``wide``
    (``(config, k, k)``) and the degrees of freedom of its t-tests.

    NNGP: the mean at the largest width (its O(1/n) bias is below the noise there). NTK: the
    ``n -> oo`` intercept of the weighted fit ``mean(n) = a + b/n`` over all widths
    (:func:`width_extrapolation`; the per-width means are independent), whose SE is known
    from the networks' spread: normal tests."""
    iu = _upper(ds.attrs["inputs"])
    draws = ds.draws.values
    if what == "ntk":
        est, se = ds.extrapolated.values, ds.extrapolated_se.values
        return (est - wide[:, iu[0], iu[1]]) / se, se, math.inf
    reps = int(ds.networks.values[-1])
    last = draws[:, -1, :reps]
    se = last.std(1, ddof=1)[:, iu[0], iu[1]] / math.sqrt(reps)
    return (last.mean(1) - wide)[:, iu[0], iu[1]] / se, se, reps - 1


def _verdict(ds: xr.Dataset, what: str) -> xr.Dataset:
    n_max, reps = int(ds.width.values[-1]), int(ds.networks.values[-1])
    k = ds.attrs["inputs"]
    iu = _upper(k)
    draws = ds.draws.values
    n_tests = ds.config.size * len(iu[0])
    dof = _mean_tests(ds, ds.wide_full.values[0], what)[2]
    p_value = (lambda z: 2 * st.norm.sf(np.abs(z))) if math.isinf(dof) else (
        lambda z: 2 * st.t.sf(np.abs(z), dof))
    z_tol = float(ds.attrs["z_tolerance"])
    z_slope = float(st.norm.isf(ALPHA / (2 * ds.config.size)))
    # the rate must be told apart from the nearest wrong rates, 0 (no convergence) and -1
    # (a bias-dominated error): a confidence half-width below 1/4 separates -1/2 from both
    max_halfwidth = 0.25
    label = "NNGP" if what == "nngp" else "NTK"
    if what == "ntk":
        mean_text = (f"the n -> oo intercept of the weighted fit mean(n) = a + b/n over widths "
                     f"{list(map(int, ds.width.values))} (width_extrapolation; the O(1/n) "
                     f"bias removed) agrees with the wide recursion in every entry")
    else:
        mean_text = (f"at n = {n_max} the mean over {reps} networks agrees with the wide "
                     f"recursion in every entry")

    def decide(t: int) -> Verdict:
        wide = ds.wide_full.values[t]
        rates, parts = [], []
        zs = _mean_tests(ds, wide, what)[0]
        for c, name in enumerate(ds.config.values):
            err = np.linalg.norm(draws[c] - wide[c], axis=(-2, -1)) / np.linalg.norm(wide[c])
            slope, se = weighted_rate(ds.width.values, err)
            rates.append((slope, se))
            parts.append(f"{name}: slope {slope:.3f} +- {se:.3f}, "
                         f"max |z| {np.abs(zs[c]).max():.2f}")
        adjusted = stats.bonferroni(p_value(zs.ravel()))
        worst = max(abs(r + 0.5) / se for r, se in rates)
        sharp = max(z_slope * se for _, se in rates) < max_halfwidth
        ok = worst < z_slope and sharp and adjusted >= ALPHA
        return Verdict(
            statistic=f"worst |slope + 1/2| / SE of one network's relative {label} error "
                      f"against width ({ds.config.size} configurations)",
            tolerance=f"< {z_slope:.2f} (weighted log-log fit, delta-method SE from the "
                      f"networks per width; Bonferroni over configurations at level {ALPHA}) "
                      f"with {z_slope:.2f} SE < {max_halfwidth} (the interval separates -1/2 "
                      f"from the rates 0 and -1), and {mean_text}: tests of all {n_tests} "
                      f"entries, Bonferroni-adjusted p >= {ALPHA} (|mean - wide| < "
                      f"{z_tol:.2f} SE)",
            measured=float(worst), passed=bool(ok),
            details=f"depth {ds.attrs['depth']}, {k} inputs, widths "
                    f"{list(map(int, ds.width.values))} with "
                    f"{list(map(int, ds.networks.values))} networks; reference "
                    f"kernel(net, x, depth=L); " + "; ".join(parts)
                    + f"; adjusted p {adjusted:.3g}")

    # the mean test detects an entry shifted by (z_tol + z_power) SE; relative to the entry
    _, se, _ = _mean_tests(ds, ds.wide_full.values[0], what)
    rel_se = se / np.abs(ds.wide_full.values[0][:, iu[0], iu[1]])
    if what == "ntk":
        # a scale error of a configuration's kernel is caught by its best-measured entry
        single = detectable_shift(float(rel_se.max()), alpha=ALPHA / n_tests)
        det = Detectable(detectable_shift(float(rel_se.min(1).max()), alpha=ALPHA / n_tests),
                         f"relative error common to one configuration's {label} entries "
                         f"(any single entry: {100 * single:.3g}%)")
    else:
        det = Detectable(detectable_shift(float(rel_se.max()), alpha=ALPHA / n_tests),
                         f"relative error in a {label} entry")
    return with_verdict(ds.drop_vars("draws"), judge(decide, 0, 1, det))


def _plot(ds: xr.Dataset, label: str):
    fig, (ax1, ax2) = figure(2)
    widths = ds.width.values
    for c in ds.config.values:
        d = ds.sel(config=c)
        line = loglog_fit(ax1, widths, d.mean_rel_error.values, float(d.slope),
                          float(d.intercept), str(c))
        ax1.errorbar(widths, d.mean_rel_error.values, 2 * d.se_rel_error.values, fmt="none",
                     color=line.get_color())
    ref = ds.mean_rel_error.values[:, 0].mean() * (widths / widths[0]) ** -0.5
    ax1.loglog(widths, ref, "k:", lw=1, label="n^(-1/2)")
    depth_ticks(ax1, widths)
    ax1.set(xlabel="width n", ylabel=f"mean |{label}_n - {label}_wide|_F / |{label}_wide|_F",
            title=f"one network, depth {ds.attrs['depth']}")
    ax1.legend(fontsize=7)
    entries = np.arange(ds.entry.size)
    for i, c in enumerate(ds.config.values):
        ax2.plot(entries + 0.15 * i, ds.z.sel(config=c), "o", label=str(c))
    for s in (-1, 1):
        ax2.axhline(s * ds.attrs["z_tolerance"], color="r", ls="--", lw=1)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks(entries, ds.entry.values, fontsize=7)
    if "extrapolated" in ds:  # NTK: the n -> oo intercept of the fit a + b/n
        where = f"extrapolated to n = oo from n = {list(map(int, widths))}"
    else:
        where = f"n = {int(widths[-1])}, {int(ds.networks.values[-1])} networks"
    ax2.set(xlabel="entry (i, j)", ylabel="(mean - wide) / SE", title=where)
    ax2.legend(fontsize=7)
    return fig


def _nngp_compute(scale: str, seed: int) -> xr.Dataset:
    return _verdict(_agreement(scale, seed, "nngp"), "nngp")


def _ntk_compute(scale: str, seed: int) -> xr.Dataset:
    return _verdict(_agreement(scale, seed, "ntk"), "ntk")


K1_CONTROL = Control(f"wide kernel of sigma_w x{TWIN_SIGMA_W}",
                     f"the same finite networks against the wide recursion of the network "
                     f"with sigma_w multiplied by {TWIN_SIGMA_W}")

register(Claim(
    "K1-nngp",
    "The empirical NNGP of finite networks agrees with the wide recursion, with error "
    "shrinking like width^(-1/2) (form A ReLU with input layer, form C ReLU)",
    "PF21 [abstract]; kernels.md §1, §5 and 'Monte Carlo agreement' [derived, simulated]",
    _nngp_compute, lambda ds: _plot(ds, "K"), control=K1_CONTROL))


register(Claim(
    "K1-ntk",
    "The empirical NTK of a finite network (autodiff, NTK parametrisation) agrees with the "
    "analytic NTK, with error shrinking like width^(-1/2)",
    "PF21 [abstract]; kernels.md §2, §4, §5 and 'Monte Carlo agreement' [derived, simulated]",
    _ntk_compute, lambda ds: _plot(ds, "Theta"), control=K1_CONTROL))
