"""One simulation as a dataset: samples of a network, compared with its limit.

:func:`simulate` samples a network with any sampler and compares coordinate 0 of input 0
at ``t = T`` with the best available reference: the closed-form log-normal norm law where
it applies, otherwise Euler-Maruyama of the limiting SDE (none for the i.i.d. baseline).
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import numpy as np
import xarray as xr

from deeplimits.analysis import closed_forms, stats
from deeplimits.experiments.figures import figure, histogram
from deeplimits.simulation.samplers import get_sampler, sample, sample_sde
from deeplimits.spec.networks import ResNet

__all__ = ["simulate", "plot_simulation", "network_config", "default_inputs",
           "estimate_seconds", "format_seconds"]

# Cap on reference SDE samples: enough for a KS test to see a CDF gap of about 0.014.
_REFERENCE_SAMPLES = 20_000


def network_config(net: ResNet) -> dict:
    """A JSON-ready description of a network's hyperparameters."""
    out = {}
    for field in dataclasses.fields(net):
        value = getattr(net, field.name)
        if field.name == "activation":
            value = value.name
        elif field.name == "law":
            value = value.name
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = np.asarray(value).tolist()
        out[field.name] = value
    return out


# Cost model of the samplers on one CPU core (measured with jit, float32, widths 4-64, 1-2
# inputs): a fixed cost per sample and layer plus one per random number drawn. A rough
# guide, right to a factor of about 2 there; accelerators are faster.
_SECONDS_PER_SAMPLE_LAYER = 2.5e-6
_SECONDS_PER_RANDOM_NUMBER = 6e-8


def estimate_seconds(net: ResNet, inputs: int, samples: int, sampler: str = "exact",
                     steps: int | None = None, *, factor: float = 1.0) -> float:
    """Rough wall time of ``sample(net, x, samples=samples, sampler=sampler)`` on one CPU
    core for ``inputs`` inputs (compilation excluded), from the samplers' cost model: each
    sample and layer costs 2.5 us plus 60 ns per random number it draws. ``factor`` scales
    it (about 3 for forward and backward passes)."""
    sampler_obj = get_sampler(sampler, net, steps)
    per_step = sum(math.prod(shape) for shape in sampler_obj.noise_shapes(net, inputs).values())
    return factor * samples * sampler_obj.steps(net) * (
        _SECONDS_PER_SAMPLE_LAYER + _SECONDS_PER_RANDOM_NUMBER * per_step)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``, ``12 days`` or ``3e+04 years``."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.2g} {unit}" if value < 1e4 else f"{value:.1e} {unit}"
    return f"{seconds:.2g} s"


def default_inputs(dim: int, inputs: int, seed: int) -> np.ndarray:
    """``inputs`` fixed points of norm ``sqrt(dim)`` (coordinates of order 1), from ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((inputs, dim))
    return np.sqrt(dim) * x / np.linalg.norm(x, axis=1, keepdims=True)


def simulate(
    net: ResNet,
    x,
    *,
    samples: int,
    seed: int = 0,
    sampler: str = "exact",
    steps: int | None = None,
    trajectory: bool = False,
    compare: bool = True,
    progress=False,
) -> xr.Dataset:
    """Sample ``net`` at inputs ``x`` and compare with its limit.

    Returns a dataset with ``x`` of dims ``(sample, input, coord)`` (or ``(sample, time,
    input, coord)`` with ``trajectory``), the reference samples when there are any, and
    attributes with the comparison statistics, timings and configuration.
    """
    sampler_obj = get_sampler(sampler, net, steps)
    sampler_obj.check(net)
    key_net, key_ref = jax.random.split(jax.random.key(seed))
    start = time.perf_counter()
    X = np.asarray(sample(net, x, key_net, samples=samples, sampler=sampler_obj,
                          trajectory=trajectory, progress=progress))
    seconds = time.perf_counter() - start
    dims = ("sample", "time", "input", "coord") if trajectory else ("sample", "input", "coord")
    coords = {"time": np.linspace(0, net.horizon, X.shape[1])} if trajectory else {}
    ds = xr.Dataset({"x": (dims, X)}, coords=coords)
    final = X[:, -1] if trajectory else X
    ds.attrs.update(sampler=sampler_obj.name, steps=sampler_obj.steps(net), samples=samples,
                    seconds=seconds, reference="none")
    if not compare:
        return ds
    x0 = np.asarray(x, dtype=np.float64).reshape(-1, net.input_dim)[0]
    try:  # the closed form, when it applies
        law = closed_forms.log_norm_law(net)
        if net.input_layer is not None:
            raise ValueError("closed form is stated for a fixed initial state")
        logratio = np.log(np.linalg.norm(final[:, 0], axis=-1) / np.linalg.norm(x0))
        ks = stats.ks_1samp(logratio, law)
        ds["log_norm_ratio"] = ("sample", logratio)
        ds.attrs.update(reference="closed-form log-normal norm", ref_mean=float(law.mean()),
                        ref_std=float(law.std()), ks_pvalue=ks.pvalue, ks_statistic=ks.statistic)
    except ValueError:
        if net.scaling != "shrinking":
            return ds
        ref_steps = max(sampler_obj.steps(net), net.depth)
        n_ref = min(samples, _REFERENCE_SAMPLES)
        Y = np.asarray(sample_sde(net, x, key_ref, samples=n_ref, steps=ref_steps))
        ks = stats.ks_2samp(final[:, 0, 0], Y[:, 0, 0])
        ds["sde_x"] = (("ref_sample", "input", "coord"), Y)
        ds.attrs.update(reference=f"SDE Euler-Maruyama, {ref_steps} steps", ks_pvalue=ks.pvalue,
                        ks_statistic=ks.statistic,
                        w1=stats.wasserstein1(final[:, 0, 0], Y[:, 0, 0]))
    return ds


def plot_simulation(ds: xr.Dataset):
    """Histogram of the simulated law against its reference."""
    from scipy import stats as st

    final = ds.x.isel(time=-1) if "time" in ds.x.dims else ds.x
    if "log_norm_ratio" in ds:
        fig, (ax,) = figure(1)
        histogram(ax, ds.log_norm_ratio, f"{ds.attrs['sampler']} sampler")
        t = np.linspace(*np.percentile(ds.log_norm_ratio, [0.1, 99.9]), 200)
        ax.plot(t, st.norm(ds.attrs["ref_mean"], ds.attrs["ref_std"]).pdf(t), "k-",
                label="closed form")
        ax.set(xlabel="log |x_T| / |x_0|", ylabel="density",
               title=f"KS p = {ds.attrs['ks_pvalue']:.3g}")
    else:
        fig, (ax,) = figure(1)
        histogram(ax, final.isel(input=0, coord=0), f"{ds.attrs['sampler']} sampler")
        if "sde_x" in ds:
            histogram(ax, ds.sde_x.isel(input=0, coord=0), "limiting SDE")
            ax.set(title=f"KS p = {ds.attrs['ks_pvalue']:.3g}")
        ax.set(xlabel="x_T[0] of input 0", ylabel="density")
    ax.legend(fontsize=8)
    return fig
