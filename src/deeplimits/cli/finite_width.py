"""``deeplimits finite-width``: Hayou's network at fixed width and infinite depth.

Each command runs one study of :mod:`deeplimits.finite_width` and writes a ``.nc`` dataset
(with provenance) and a ``.png`` figure, both atomically. Bad options exit with status 2
before any work and write nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from deeplimits.cli._common import ACTIVATION_HELP, check_output, err, fail

app = typer.Typer(no_args_is_help=True, help="Fixed width, infinite depth (finite_width.md).")


def _ints(text: str, name: str) -> list[int]:
    """``"1-8"``, ``"2,3,5"`` or a mix (``"1-4,8"``) as a list of positive integers."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise fail(f"--{name} must be integers like '1-8' or '2,3,5', got {text!r}") from None
    if not out or min(out) < 1:
        raise fail(f"--{name} must be positive integers, got {text!r}")
    return out


def _floats(text: str, name: str) -> list[float]:
    try:
        out = [float(v) for v in text.split(",")]
    except ValueError:
        raise fail(f"--{name} must be numbers like '1,10', got {text!r}") from None
    if not out or min(out) <= 0:
        raise fail(f"--{name} must be positive, got {text!r}")
    return out


def _positive(value: int, name: str, least: int = 1) -> int:
    if value < least:
        raise fail(f"--{name} must be an integer >= {least}, got {value}")
    return value


def _outputs(out: Path, figure: Path | None) -> Path:
    figure = out.with_suffix(".png") if figure is None else figure
    check_output(out, ".nc")
    check_output(figure, ".png")
    return figure


def _gbm_spec(spec: str):
    """``identity``, ``abs``, ``affine:A,B`` (A x + B) or ``abs:A,C`` (A |x - C|)."""
    from deeplimits.analysis.closed_forms import GBMActivation, gbm_activation

    kind, _, args = spec.partition(":")
    if not args:
        return gbm_activation(spec)
    a, c = (float(v) for v in args.split(","))
    if kind == "affine":
        return GBMActivation("affine", a, -c / a if a else 0.0)
    if kind == "abs":
        return GBMActivation("abs", a, c)
    raise ValueError(f"unknown activation kind {kind!r}: use affine:A,B or abs:A,C")


def _write(ds, figure_fn, out: Path, figure: Path, config: dict, seed: int, start: float):
    from deeplimits.experiments.report import figure_png
    from deeplimits.experiments.store import atomic_path, provenance, save_dataset

    ds.attrs.update(provenance(config, seed))
    ds.attrs["seconds"] = time.perf_counter() - start
    save_dataset(ds, out)
    with atomic_path(figure) as tmp:
        tmp.write_bytes(figure_png(figure_fn(ds)))
    err.print(f"wrote {out} and {figure} in {time.perf_counter() - start:.1f} s")


Seed = Annotated[int, typer.Option(help="Random seed.")]


Samples = Annotated[int, typer.Option(help="Independent networks per setting.")]


Figure = Annotated[Path | None, typer.Option(help="Figure (.png; default: beside --out).")]


@app.command()
def law(
    activation: Annotated[str, typer.Option(
        help="relu, identity, abs, affine:A,B (A x + B) or abs:A,C (A |x - C|).")] = "relu",
    widths: Annotated[str, typer.Option(help="Widths, e.g. '2,3,5' or '1-4'.")] = "2,3,5",
    depth: Annotated[int, typer.Option(help="Depth L.")] = 256,
    t: Annotated[float, typer.Option(help="Time horizon (network depth covers [0, t]).")] = 1.0,
    samples: Samples = 20_000,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/fw_law.nc"),
    figure: Figure = None,
) -> None:
    """Closed-form law of the post-activation norm against simulation: the geometric-BM
    family (a x + b, a|x - c|) or the ReLU identity with the active count."""
    from deeplimits.experiments.claims.finite_width import plot_gbm, plot_relu_identity
    from deeplimits.experiments.finite_width import gbm_law_study, relu_identity_study

    figure = _outputs(out, figure)
    ws = _ints(widths, "widths")
    _positive(depth, "depth")
    _positive(samples, "samples", 2)
    if not t > 0:
        raise fail(f"--t must be > 0, got {t}")
    relu = activation.strip().lower() == "relu"
    try:
        gbm = None if relu else _gbm_spec(activation)
    except ValueError as exc:
        raise fail(f"{exc}; the closed forms cover ReLU and the a x + b, a|x - c| family"
                   ) from None
    start = time.perf_counter()
    if relu:
        ds = relu_identity_study(ws, [depth], t=t, samples=samples, seed=seed, progress=True)
        plot = plot_relu_identity
    else:
        ds = gbm_law_study([gbm], ws, depth=depth, t=t, samples=samples, seed=seed,
                           progress=True)
        plot = plot_gbm
    config = dict(activation=activation, widths=ws, depth=depth, t=t, samples=samples)
    _write(ds, plot, out, figure, config, seed, start)
    if relu:
        for n in ws:
            cell = ds.sel(width=n).isel(depth=-1)
            typer.echo(f"n={n}: R_t mean {float(cell['mean']):+.4f} (SE "
                       f"{float(cell.mean_se):.4f}), var {float(cell['var']):.4f} vs t/n = "
                       f"{t / n:.4f}, KS p {float(cell.pvalue):.3g}")
    else:
        for n in ws:
            cell = ds.isel(activation=0).sel(width=n)
            typer.echo(f"{gbm.name}, n={n}: N({float(cell.law_mean):.4f}, "
                       f"{float(cell.law_sd):.4f}^2), KS p {float(cell.pvalue):.3g}")


@app.command()
def regime(
    widths: Annotated[str, typer.Option(help="Widths, e.g. '1-8'.")] = "1-8",
    horizons: Annotated[str, typer.Option(help="Horizons t, e.g. '1,10'.")] = "1,10",
    steps_per_unit: Annotated[int, typer.Option(help="Layers per unit of time.")] = 256,
    samples: Samples = 20_000,
    level: Annotated[float, typer.Option(help="Confidence level.")] = 0.99,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/fw_regime.nc"),
    figure: Figure = None,
) -> None:
    """The ReLU width regime change: E log|phi(Y_t)|/|phi(Y_0)| by width and horizon."""
    from deeplimits.experiments.claims.finite_width import plot_regime
    from deeplimits.experiments.finite_width import regime_study, sign_change_width

    figure = _outputs(out, figure)
    ws = _ints(widths, "widths")
    hs = _floats(horizons, "horizons")
    _positive(steps_per_unit, "steps-per-unit")
    _positive(samples, "samples", 2)
    if samples % 2:
        raise fail(f"--samples must be even (paths come in antithetic pairs), got {samples}")
    if not 0 < level < 1:
        raise fail(f"--level must be in (0, 1), got {level}")
    start = time.perf_counter()
    try:
        ds = regime_study(ws, hs, steps_per_unit=steps_per_unit, samples=samples, seed=seed,
                          level=level, progress=True)
    except ValueError as exc:  # a horizon that is not an even number of layers
        raise fail(str(exc)) from None
    config = dict(widths=ws, horizons=hs, steps_per_unit=steps_per_unit, samples=samples,
                  level=level)
    _write(ds, plot_regime, out, figure, config, seed, start)
    typer.echo(f"{'n':>3} {'t':>5} {'E log ratio (compensator)':>28} {'direct':>18} "
               f"{'initial drift x t':>18}")
    for n in ws:
        for h in hs:
            c = ds.sel(width=n, horizon=h)
            typer.echo(f"{n:>3} {h:>5g} {float(c.compensator):+.4f} "
                       f"[{float(c.compensator_lo):+.4f}, {float(c.compensator_hi):+.4f}]   "
                       f"{float(c.direct):+.4f} +- {float(c.direct_se):.4f} "
                       f"{float(c.initial_drift) * h:+18.4f}")
    for h in hs:
        typer.echo(f"t = {h:g}: first positive width {sign_change_width(ds, h, 'compensator')}"
                   f" (compensator), {sign_change_width(ds, h)} (direct)")


@app.command()
def dead(
    widths: Annotated[str, typer.Option(help="Widths, e.g. '2-4'.")] = "1-4",
    depths: Annotated[str, typer.Option(help="Depths, e.g. '1,4,16,64'.")] = "1,2,4,8,16,64,256",
    samples: Samples = 20_000,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/fw_dead.nc"),
    figure: Figure = None,
) -> None:
    """ReLU dead orthant: dead starts (2^-n) and collapse during propagation by depth."""
    from deeplimits.experiments.claims.finite_width import plot_dead
    from deeplimits.experiments.finite_width import dead_orthant_study

    figure = _outputs(out, figure)
    ws, ls = _ints(widths, "widths"), _ints(depths, "depths")
    _positive(samples, "samples", 2)
    start = time.perf_counter()
    ds = dead_orthant_study(ws, ls, samples=samples, seed=seed, progress=True)
    _write(ds, plot_dead, out, figure, dict(widths=ws, depths=ls, samples=samples), seed,
           start)
    for n in ws:
        c = ds.sel(width=n)
        typer.echo(f"n={n}: dead start {float(c.dead_start.sum()) / (samples * len(ls)):.4f} "
                   f"(2^-n = {2.0**-n:.4f}); collapse by depth "
                   + ", ".join(f"L={L}: {v:.2g}" for L, v in zip(ls, c.collapse.values,
                                                                   strict=True)))


@app.command()
def limits(
    widths: Annotated[str, typer.Option(help="Widths, e.g. '4,16,64'.")] = "4,16,64,256",
    depths: Annotated[str, typer.Option(help="Depths, e.g. '4,16,64'.")] = "4,16,64,256",
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "relu",
    rho: Annotated[float, typer.Option(help="Cosine of the two inputs.")] = 0.5,
    samples: Samples = 2_000,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/fw_limits.nc"),
    figure: Figure = None,
) -> None:
    """Order of limits for the covariance: (n, L) grid against the kernel ODE and the
    width-first recursion."""
    from deeplimits.experiments.claims.finite_width import plot_covariance
    from deeplimits.experiments.finite_width import covariance_grid
    from deeplimits.spec.activations import get_activation

    figure = _outputs(out, figure)
    ws, ls = _ints(widths, "widths"), _ints(depths, "depths")
    _positive(samples, "samples", 2)
    if not -1 < rho < 1:
        raise fail(f"--rho must be in (-1, 1), got {rho}")
    try:
        get_activation(activation)
    except ValueError as exc:
        raise fail(str(exc)) from None
    start = time.perf_counter()
    ds = covariance_grid(ws, ls, activation=activation, rho=rho, samples=samples, seed=seed,
                         progress=True)
    config = dict(widths=ws, depths=ls, activation=activation, rho=rho, samples=samples)
    _write(ds, plot_covariance, out, figure, config, seed, start)
    typer.echo(f"q_ODE(1) = {float(ds.ode):.4f}; RMS error of <Y(x), Y(x')>/n:")
    for n in ws:
        typer.echo(f"n={n:>5}: " + "  ".join(f"L={L}: {float(ds.rmse.sel(width=n, depth=L)):.4f}"
                                          for L in ls))


@app.command()
def nongaussian(
    activations: Annotated[str, typer.Option(
        help="Comma-separated activations, e.g. 'identity,relu'. " + ACTIVATION_HELP)] = (
        "identity,relu"),
    widths: Annotated[str, typer.Option(help="Widths, e.g. '1,2,4,8,16'.")] = "1,2,4,8,16,32",
    depths: Annotated[str, typer.Option(help="Depths, e.g. '4,32,256'.")] = "4,16,64,256",
    samples: Samples = 20_000,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/fw_ng.nc"),
    figure: Figure = None,
) -> None:
    """Distance of one neuron to the Gaussian limit over (n, L): KS distance, kurtosis,
    tail quantiles and dependence of neurons."""
    from deeplimits.experiments.claims.finite_width import plot_nongaussian
    from deeplimits.experiments.finite_width import nongaussian_study
    from deeplimits.spec.activations import get_activation

    figure = _outputs(out, figure)
    acts = [a.strip() for a in activations.split(",") if a.strip()]
    ws, ls = _ints(widths, "widths"), _ints(depths, "depths")
    _positive(samples, "samples", 2)
    try:
        for a in acts:
            get_activation(a)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if "relu" not in acts:
        raise fail("--activations must include relu (the heatmap shows the ReLU neuron)")
    start = time.perf_counter()
    ds = nongaussian_study(acts, ws, ls, samples=samples, seed=seed, progress=True)
    config = dict(activations=acts, widths=ws, depths=ls, samples=samples)
    _write(ds, plot_nongaussian, out, figure, config, seed, start)
    last = ds.isel(depth=-1)
    for a in acts:
        typer.echo(f"{a}: KS distance to N(0, q_ODE) at L={ls[-1]}: "
                   + ", ".join(f"n={n}: {float(last.ks_distance.sel(activation=a, width=n)):.3f}"
                               for n in ws))
