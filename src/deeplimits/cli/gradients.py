"""``deeplimits gradients``: Jacobians and gradients of random ResNets (``backward.md``)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits._core.progress import progress_bar
from deeplimits.cli._common import (
    ACTIVATION_HELP,
    Form,
    Law,
    Scaling,
    check_output,
    err,
    fail,
    load_inputs,
    report_cost,
)

app = typer.Typer(no_args_is_help=True, help="Jacobians and gradients of random ResNets: "
                  "autodiff, the joint (X, J) SDE, and the exact forward-backward sampler.")


class Method(StrEnum):
    exact = "exact"
    autodiff = "autodiff"
    sde = "sde"


class Loss(StrEnum):
    sin = "sin"
    square = "square"
    mean = "mean"


def _dataset(out: dict, xs: np.ndarray):
    import xarray as xr

    dims3 = ("sample", "input", "unit")
    data = {name: (dims3, np.asarray(out[name])) for name in ("x", "jvp", "grad")}
    data.update({name: (("sample", "input"), np.asarray(out[name]))
                 for name in ("weight_grad_sq", "bias_grad_sq")})
    data["x0"] = (("input", "unit"), xs)
    return xr.Dataset(data)


def _plot(ds, closed_form):
    from deeplimits.experiments.figures import figure, histogram

    fig, (ax1, ax2) = figure(2)
    for a in ds.input.values:
        g = np.linalg.norm(ds.grad.sel(input=a).values, axis=-1)
        histogram(ax1, np.log(g), f"input {a}")
        j = np.linalg.norm(ds.jvp.sel(input=a).values, axis=-1)
        histogram(ax2, np.log(j), f"input {a}")
    if closed_form is not None:
        t = np.linspace(*ax2.get_xlim(), 200)
        ax2.plot(t, closed_form.pdf(t), "k-", lw=1, label="limit (closed form)")
    ax1.set(xlabel="log |g_0|", ylabel="density", title=f"{ds.attrs['method']}: gradient")
    ax2.set(xlabel="log |J_L u|", title="Jacobian-vector product")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    return fig


@app.command()
def simulate(
    method: Annotated[Method, typer.Option(help="exact, autodiff or sde.")] = Method.exact,
    form: Annotated[Form, typer.Option(help="Residual block form.")] = Form.A,
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "relu",
    width: Annotated[int, typer.Option(help="Width n.")] = 16,
    depth: Annotated[int, typer.Option(help="Depth L.")] = 1000,
    samples: Annotated[int, typer.Option(help="Independent networks.")] = 10_000,
    inputs: Annotated[int, typer.Option(help="Number of inputs (ignored with --x).")] = 1,
    x: Annotated[Path | None, typer.Option(help="Inputs from a .npy or .csv file.")] = None,
    loss: Annotated[Loss, typer.Option(help="Loss of each output.")] = Loss.sin,
    steps: Annotated[int | None, typer.Option(help="Steps of the sde method.")] = None,
    law: Annotated[Law, typer.Option(help="Law of the standardised parameters.")
                   ] = Law.gaussian,
    scaling: Annotated[Scaling, typer.Option(help="Parameter scaling.")] = Scaling.shrinking,
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    width_scaled: Annotated[bool, typer.Option(help="Weight variance sigma_w^2 / n.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Dataset path (.nc).")] = Path("results/grad.nc"),
    figure: Annotated[Path | None, typer.Option(help="Figure path (.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sample outputs x_L, Jacobian-vector products J_L u (u = ones / sqrt(n)), gradients
    g_0 and parameter-gradient norms; save a dataset and a figure."""
    import jax

    from deeplimits.experiments.report import figure_png
    from deeplimits.experiments.simulate import default_inputs, network_config
    from deeplimits.experiments.store import atomic_path, provenance, save_dataset
    from deeplimits.simulation.gradients import (
        check_method,
        jacobian_log_norm_law,
        sample_gradients,
    )
    from deeplimits.spec.networks import ResNet

    figure = out.with_suffix(".png") if figure is None else figure
    check_output(out, ".nc")
    check_output(figure, ".png")
    try:
        net = ResNet(width=width, depth=depth, form=form.value, activation=activation,
                     sigma_w=sigma_w, sigma_b=sigma_b, law=law.value, scaling=scaling.value,
                     width_scaled=width_scaled)
        check_method(net, method.value)
        for name, value in (("samples", samples), ("inputs", inputs)) + (
                (("steps", steps),) if steps is not None else ()):
            if value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        xs = load_inputs(x) if x is not None else default_inputs(width, inputs, seed)
        from deeplimits._core.validation import check_inputs

        xs = np.asarray(check_inputs(net, xs, np.float64))
        from deeplimits.experiments.simulate import estimate_seconds

        sampler = {"sde": "sde", "autodiff": "dense"}.get(method.value, "exact")
        seconds = estimate_seconds(net, len(xs), samples, sampler, steps, factor=3.0)
    except ValueError as exc:
        raise fail(str(exc)) from None
    report_cost(seconds, hint="fewer --samples or a smaller --depth cost less")
    try:
        closed_form = jacobian_log_norm_law(net) if scaling == Scaling.shrinking else None
    except ValueError:
        closed_form = None

    start = time.perf_counter()
    with progress_bar(console=err, transient=True) as bar:
        task = bar.add_task(f"{method.value} gradients", total=samples)
        res = sample_gradients(net, xs, jax.random.key(seed), samples=samples,
                               method=method.value, loss=loss.value, steps=steps,
                               progress=lambda k: bar.advance(task, k))
    ds = _dataset(res, xs)
    config = network_config(net)
    config.update(method=method.value, loss=loss.value, steps=steps, samples=samples,
                  seed=seed, tangent="ones / sqrt(n)", inputs=xs.tolist())
    ds.attrs.update(provenance(config, seed))
    ds.attrs.update(method=method.value, loss=loss.value)
    save_dataset(ds, out)
    with atomic_path(figure) as tmp:
        tmp.write_bytes(figure_png(_plot(ds, closed_form)))
    log_g = np.log(np.linalg.norm(ds.grad.values, axis=-1))
    log_j = np.log(np.linalg.norm(ds.jvp.values, axis=-1))
    summary = {
        "output": str(out), "figure": str(figure), "seconds": time.perf_counter() - start,
        "config": config | {"inputs": len(xs)},
        "median_log_grad_norm": np.median(log_g, axis=0).tolist(),
        "median_log_jvp_norm": np.median(log_j, axis=0).tolist(),
        "mean_weight_grad_sq": ds.weight_grad_sq.mean("sample").values.tolist(),
    }
    if closed_form is not None:
        summary["closed_form_log_jvp_mean"] = float(closed_form.mean())
        summary["closed_form_log_jvp_std"] = float(closed_form.std())
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        err.print(f"wrote {out} and {figure} in {summary['seconds']:.1f} s; median log|g_0| "
                  f"{', '.join(f'{v:.3f}' for v in summary['median_log_grad_norm'])}")
