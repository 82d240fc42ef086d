"""``deeplimits conv``: convolutional ResNets on images (``conv.md``): sample finite
networks (dense, exact or SDE) and compute the wide-channel kernels."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits._core.progress import progress_bar
from deeplimits.cli._common import (
    ACTIVATION_HELP,
    ConvForm,
    SamplerName,
    Scaling,
    check_output,
    err,
    fail,
    load_inputs,
)

app = typer.Typer(no_args_is_help=True, help="Convolutional ResNets on images: finite "
                  "networks, their SDE and their wide-channel kernels.")


def _images(digits: str, images: Path | None) -> np.ndarray:
    """Images ``(k, C_in, *spatial)``: a .npy stack, or bundled digits by index."""
    from deeplimits.data.images import digits_images

    if images is not None:
        if not images.exists() or images.suffix != ".npy":
            raise fail(f"--images must be an existing .npy file, got {images}")
        return load_inputs(images)
    try:
        return digits_images([int(i) for i in digits.split(",")])
    except ValueError as exc:
        raise fail(f"--digits: {exc}") from None


@app.command()
def simulate(
    digits: Annotated[str, typer.Option(help="Digit image indices, comma separated.")] = "0,1",
    images: Annotated[Path | None, typer.Option(help="Images (.npy, (k, C_in, H[, W])).")
                      ] = None,
    channels: Annotated[int, typer.Option(help="Channels C.")] = 16,
    depth: Annotated[int, typer.Option(help="Depth L.")] = 64,
    kernel_size: Annotated[int, typer.Option(help="Filter size per dimension.")] = 3,
    form: Annotated[ConvForm, typer.Option(help="Residual block form (no form C for conv).")
                    ] = ConvForm.A,
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "tanh",
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    scaling: Annotated[Scaling, typer.Option(help="Parameter scaling.")] = Scaling.shrinking,
    sampler: Annotated[SamplerName, typer.Option(help="Sampler.")] = SamplerName.exact,
    samples: Annotated[int, typer.Option(help="Independent networks.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/conv.nc"),
) -> None:
    """Sample conv networks at images; save the final states and a figure of a pixel's
    law and of the squared norm."""
    import jax
    import xarray as xr

    from deeplimits.experiments.figures import figure, histogram
    from deeplimits.experiments.report import figure_png
    from deeplimits.experiments.store import atomic_path, provenance, save_dataset
    from deeplimits.simulation.conv import sample_conv
    from deeplimits.spec.conv import ConvResNet

    check_output(out, ".nc")
    imgs = _images(digits, images)
    try:
        if samples <= 0:
            raise ValueError(f"samples must be a positive integer, got {samples}")
        if np.ndim(imgs) not in (3, 4):
            raise ValueError(f"images must be (k, C_in, H) or (k, C_in, H, W), got shape "
                             f"{np.shape(imgs)}")
        net = ConvResNet(channels=channels, depth=depth, image_shape=np.shape(imgs)[2:],
                         kernel_size=kernel_size, form=form.value, activation=activation,
                         sigma_w=sigma_w, sigma_b=sigma_b, in_channels=np.shape(imgs)[1],
                         scaling=scaling.value)
    except ValueError as exc:
        raise fail(str(exc)) from None
    start = time.perf_counter()
    with progress_bar(console=err, transient=True) as bar:
        task = bar.add_task(f"{sampler.value} sampler", total=samples)
        try:
            X = sample_conv(net, imgs, jax.random.key(seed), samples=samples, sampler=sampler.value,
                            progress=lambda k: bar.advance(task, k))
        except ValueError as exc:
            raise fail(str(exc)) from None
    X = np.asarray(X, dtype=np.float64)
    spatial = [f"p{i}" for i in range(X.ndim - 3)]
    ds = xr.Dataset({"x": (("sample", "image", "channel", *spatial), X),
                     "images": (("image", "in_channel", *[f"q{i}" for i in range(
                         len(spatial))]), np.asarray(imgs))})
    config = dict(channels=channels, depth=depth, kernel_size=kernel_size, form=form.value,
                  activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                  scaling=scaling.value, sampler=sampler.value, samples=samples)
    ds.attrs.update(provenance(config, seed))
    save_dataset(ds, out)
    fig, axes = figure(2)
    flat = X.reshape(X.shape[0], X.shape[1], -1)
    for i in range(X.shape[1]):
        histogram(axes[0], flat[:, i, 0], label=f"image {i}")
        histogram(axes[1], np.mean(flat[:, i] ** 2, axis=-1), label=f"image {i}")
    axes[0].set(title="channel 0, first pixel", xlabel="x")
    axes[1].set(title="|x|^2 / (C P)", xlabel="mean square")
    axes[0].legend(fontsize=7)
    with atomic_path(out.with_suffix(".png")) as tmp:
        tmp.write_bytes(figure_png(fig))
    err.print(f"wrote {out} and {out.with_suffix('.png')} in "
              f"{time.perf_counter() - start:.1f} s")


@app.command()
def kernel(
    digits: Annotated[str, typer.Option(help="Digit image indices, comma separated.")] =
    "0,1,2,3",
    images: Annotated[Path | None, typer.Option(help="Images (.npy, (k, C_in, H[, W])).")
                      ] = None,
    depth: Annotated[str, typer.Option(help="Depth L, or 'inf' for the ODE.")] = "inf",
    kernel_size: Annotated[int, typer.Option(help="Filter size per dimension.")] = 3,
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "relu",
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    readout: Annotated[str, typer.Option(help="flatten or gap.")] = "flatten",
    out: Annotated[Path, typer.Option(help="Dataset (.nc).")] = Path("results/conv_kernel.nc"),
) -> None:
    """NNGP and NTK of the infinitely-many-channel conv network (form A) between images."""
    import xarray as xr

    from deeplimits.experiments.store import provenance, save_dataset
    from deeplimits.spec.conv import ConvResNet
    from deeplimits.wide.conv_kernels import conv_kernel

    check_output(out, ".nc")
    imgs = _images(digits, images)
    try:
        L = math.inf if depth.lower() in ("inf", "infinity") else int(depth)
        if L <= 0:
            raise ValueError(f"depth must be a positive integer or 'inf', got {depth!r}")
        if np.ndim(imgs) not in (3, 4):
            raise ValueError(f"images must be (k, C_in, H) or (k, C_in, H, W), got shape "
                             f"{np.shape(imgs)}")
        net = ConvResNet(channels=1, depth=1 if math.isinf(L) else L,
                         image_shape=np.shape(imgs)[2:], kernel_size=kernel_size, form="A",
                         activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                         in_channels=np.shape(imgs)[1], readout=readout)
    except ValueError as exc:
        raise fail(str(exc)) from None
    start = time.perf_counter()
    k = conv_kernel(net, imgs, depth=L, progress=True)
    ds = xr.Dataset({"nngp": (("x1", "x2"), np.asarray(k.nngp)),
                     "ntk": (("x1", "x2"), np.asarray(k.ntk))})
    ds.attrs.update(provenance(dict(depth=str(L), kernel_size=kernel_size,
                                    activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                                    readout=readout, digits=digits if images is None
                                    else str(images))))
    save_dataset(ds, out)
    err.print(f"wrote {out} ({len(imgs)} x {len(imgs)}) in {time.perf_counter() - start:.1f} s")
