"""Kernel matrices computed tile by tile on a Dask cluster.

:func:`distributed_kernel` splits ``x1 x x2`` into square tiles, computes each with
:func:`deeplimits.kernel` on a Dask worker, and assembles the result in a NumPy array or
writes it tile by tile into a Zarr group (arrays ``nngp`` and ``ntk``), so that a kernel
larger than the memory of any one machine can be built. Without a scheduler address it
starts a :class:`dask.distributed.LocalCluster` of single-threaded worker processes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deeplimits._core.dask import dask_client
from deeplimits._core.progress import progress_callback
from deeplimits.spec.networks import ResNet
from deeplimits.wide.kernels import (
    Kernel,
    as_kernel_inputs,
    check_kernel_net,
    kernel,
    kernel_steps,
)

__all__ = ["distributed_kernel"]

def _tile(net, xa, xb, depth, kwargs):
    import deeplimits._core  # noqa: F401  (the package root enables float64 in the worker)

    k = kernel(net, xa, xb, depth, **kwargs)  # xb None: a diagonal tile
    return k.nngp, k.ntk


def _outputs(zarr_path, shape, tile, compute_ntk, net, depth):
    """The NNGP and NTK arrays: in memory, or in a new Zarr group at ``zarr_path``."""
    if zarr_path is None:
        make = lambda name: np.empty(shape)
    else:
        import zarr

        group = zarr.open_group(str(zarr_path), mode="w")
        group.attrs.update(depth=str(depth), form=net.form, activation=net.activation.name)
        make = lambda name: group.create_array(name, shape=shape, chunks=(tile, tile),
                                               dtype="f8")
    return make("nngp"), make("ntk") if compute_ntk else None


def distributed_kernel(
    net: ResNet,
    x1,
    x2=None,
    depth: int | float | None = None,
    *,
    client=None,
    scheduler: str | None = None,
    workers: int = 2,
    timeout: float = 10.0,
    tile: int = 1024,
    zarr_path: str | Path | None = None,
    compute_ntk: bool = True,
    progress: bool | Callable[[int], None] = False,
    **kernel_kwargs,
) -> Kernel:
    """NNGP (and NTK) of ``net`` computed block by block on a Dask cluster.

    Args:
        net, x1, x2, depth: as for :func:`deeplimits.kernel`.
        client: an existing ``dask.distributed.Client``; otherwise ``scheduler`` (an
            address such as ``"tcp://host:8786"``), otherwise a new ``LocalCluster`` with
            ``workers`` processes.
        timeout: seconds to wait for ``scheduler`` before a ``ValueError``.
        tile: rows and columns per task.
        zarr_path: write ``nngp`` and ``ntk`` arrays (chunked by tile) into a Zarr group
            there instead of returning NumPy arrays; the returned :class:`Kernel` then
            holds the Zarr arrays.
        kernel_kwargs: passed to :func:`deeplimits.kernel` on the workers.
    """
    check_kernel_net(net)
    depth = net.depth if depth is None else depth
    x1 = np.asarray(as_kernel_inputs(x1, "x1", net.input_dim))
    x2 = x1 if x2 is None else np.asarray(as_kernel_inputs(x2, "x2", net.input_dim))
    if not (isinstance(tile, int) and tile > 0):
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    N1, N2 = len(x1), len(x2)
    tiles = [(i, j) for i in range(0, N1, tile) for j in range(0, N2, tile)]
    kwargs = dict(kernel_kwargs, compute_ntk=compute_ntk)
    steps = error = None
    if math.isinf(depth):  # one step count for every tile, chosen from rtol on all inputs
        steps, error = kernel_steps(
            net, x1, None if x2 is x1 else x2, compute_ntk=compute_ntk,
            **{k: v for k, v in kernel_kwargs.items()
               if k in ("steps", "rtol", "train_input_layer", "max_memory")})
        kwargs["steps"] = steps
    ctx = (contextlib.nullcontext(client) if client is not None
           else dask_client(scheduler, workers, timeout))
    from dask.distributed import as_completed

    with ctx as cl:  # connected before anything is written
        K, T = _outputs(zarr_path, (N1, N2), tile, compute_ntk, net, depth)
        net_f = cl.scatter(net, broadcast=True)
        futures = {cl.submit(_tile, net_f, x1[i : i + tile],
                             None if (x2 is x1 and i == j) else x2[j : j + tile], depth,
                             kwargs, pure=False): (i, j) for i, j in tiles}
        with progress_callback(progress, len(tiles), "kernel tiles (dask)") as advance:
            for future in as_completed(futures):
                i, j = futures[future]
                k, t = future.result()
                K[i : i + tile, j : j + tile] = k
                if compute_ntk:
                    T[i : i + tile, j : j + tile] = t
                advance(1)
    return Kernel(nngp=K, ntk=T, depth=depth if not math.isinf(depth) else math.inf,
                  steps=steps, error=error)
