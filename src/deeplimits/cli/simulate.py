"""``deeplimits simulate``: sample a finite network and compare it with its limit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits._core.progress import progress_bar
from deeplimits.cli._common import (
    ACTIVATION_HELP,
    Form,
    Law,
    SamplerName,
    Scaling,
    check_output,
    err,
    fail,
    load_inputs,
    report_cost,
)


def simulate(
    form: Annotated[Form, typer.Option(help="Residual block form.")] = Form.A,
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "relu",
    width: Annotated[int, typer.Option(help="Width n.")] = 4,
    depth: Annotated[int, typer.Option(help="Depth L.")] = 1000,
    samples: Annotated[int, typer.Option(help="Independent networks.")] = 10_000,
    inputs: Annotated[int, typer.Option(help="Number of inputs (ignored with --x).")] = 1,
    x: Annotated[Path | None, typer.Option(help="Inputs from a .npy or .csv file.")] = None,
    sampler: Annotated[SamplerName, typer.Option(help="Sampler.")] = SamplerName.exact,
    steps: Annotated[int | None, typer.Option(help="Steps of the sde sampler.")] = None,
    law: Annotated[Law, typer.Option(help="Law of the standardised parameters.")
                   ] = Law.gaussian,
    scaling: Annotated[Scaling, typer.Option(help="Parameter scaling.")] = Scaling.shrinking,
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    width_scaled: Annotated[bool, typer.Option(help="Weight variance sigma_w^2 / n.")] = True,
    trajectory: Annotated[bool, typer.Option(help="Keep every layer's state.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Dataset path (.nc).")] = Path("results/sim.nc"),
    figure: Annotated[Path | None, typer.Option(help="Figure path (.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sample a network, compare it with its limit, and save a dataset and a figure."""
    from deeplimits.experiments.report import figure_png
    from deeplimits.experiments.simulate import (
        default_inputs,
        estimate_seconds,
        network_config,
        plot_simulation,
    )
    from deeplimits.experiments.simulate import simulate as run
    from deeplimits.experiments.store import atomic_path, provenance, save_dataset
    from deeplimits.spec.networks import ResNet

    figure = out.with_suffix(".png") if figure is None else figure
    check_output(out, ".nc")
    check_output(figure, ".png")
    try:
        net = ResNet(width=width, depth=depth, form=form.value, activation=activation,
                     sigma_w=sigma_w, sigma_b=sigma_b, law=law.value, scaling=scaling.value,
                     width_scaled=width_scaled)
        if samples <= 0:
            raise ValueError(f"samples must be a positive integer, got {samples}")
        if inputs <= 0:
            raise ValueError(f"inputs must be a positive integer, got {inputs}")
        xs = load_inputs(x) if x is not None else default_inputs(width, inputs, seed)
        from deeplimits._core.validation import check_inputs
        from deeplimits.simulation.samplers import get_sampler

        check_inputs(net, xs, np.float64)
        sampler_obj = get_sampler(sampler.value, net, steps)
        sampler_obj.check(net)
    except ValueError as exc:
        raise fail(str(exc)) from None
    k = len(np.atleast_2d(xs))
    kept = samples * k * width * (sampler_obj.steps(net) + 1 if trajectory else 1)
    report_cost(estimate_seconds(net, k, samples, sampler.value, steps), 8.0 * kept,
                hint="fewer --samples or a smaller --depth (or --steps) cost less")

    start = time.perf_counter()
    with progress_bar(console=err, transient=True) as bar:
        task = bar.add_task(f"{sampler.value} sampler", total=samples)
        ds = run(net, xs, samples=samples, seed=seed, sampler=sampler.value, steps=steps,
                 trajectory=trajectory, progress=lambda k: bar.advance(task, k))
    config = network_config(net)
    config.update(sampler=sampler.value, steps=steps, samples=samples, seed=seed,
                  inputs=np.asarray(xs).tolist())
    ds.attrs.update(provenance(config, seed))
    save_dataset(ds, out)
    with atomic_path(figure) as tmp:
        tmp.write_bytes(figure_png(plot_simulation(ds)))
    final = ds.x.isel(time=-1) if "time" in ds.x.dims else ds.x
    summary = {
        "output": str(out), "figure": str(figure), "seconds": time.perf_counter() - start,
        "config": config | {"inputs": len(np.atleast_2d(xs))},
        "mean": final.mean("sample").values.tolist(),
        "variance": final.var("sample").values.tolist(),
        "reference": ds.attrs["reference"],
    }
    for name in ("ks_pvalue", "ks_statistic", "w1"):
        if name in ds.attrs:
            summary[name] = float(ds.attrs[name])
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        err.print(f"wrote {out} and {figure} in {summary['seconds']:.1f} s; reference: "
                  f"{summary['reference']}"
                  + (f", KS p = {summary['ks_pvalue']:.3g}" if "ks_pvalue" in summary else ""))
