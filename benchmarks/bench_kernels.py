"""Benchmarks of the wide-limit kernels (issue: doubly infinite ResNets).

1. NNGP + NTK of 4096 inputs at infinite depth (ReLU, form A, input layer): wall time.
2. Throughput in kernel entries per second: the depth ODE (RK4, general path), the finite
   depth recursion at L = 1000, and the exact homogeneous reduction, in one run.
3. Peak memory for 50,000 inputs against the configured tile bound, the kernel streamed
   into a disk-backed array.
4. neural-tangents' ResNet kernel at L = 1000 on the same inputs, if a separate pinned
   environment with it exists (``--nt-python PATH``), run side by side.

Usage: ``python benchmarks/bench_kernels.py [--quick] [--nt-python /path/to/python]``.
Results are printed and written between the markers in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import deeplimits as dl

README = Path(__file__).with_name("README.md")
START, END = "<!-- kernels:start -->", "<!-- kernels:end -->"


def timed(fn, repeats=3):
    fn()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def net_a(depth=1000):
    return dl.ResNet(width=8, depth=depth, form="A", activation="relu",
                     input_layer=dl.InputLayer(8))


NT_SCRIPT = r"""
import json, sys, time, numpy as np
import jax; jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
L, n = int(sys.argv[1]), int(sys.argv[2])
x = np.random.default_rng(0).standard_normal((n, 8))
# form A with an input layer: x0 = A x / sqrt(d); blocks x + W relu(x) / sqrt(L), NTK param.
block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(),
        stax.serial(stax.Relu(), stax.Dense(1, W_std=1.0 / np.sqrt(L), parameterization="ntk"))),
        stax.FanInSum())
_, _, kfn = stax.serial(stax.Dense(1, W_std=1.0, parameterization="ntk"), *([block] * L))
kfn = jax.jit(kfn, static_argnames="get")
k = kfn(x, None, get=("nngp", "ntk")); jax.block_until_ready(k)
t = time.perf_counter(); k = kfn(x, None, get=("nngp", "ntk")); jax.block_until_ready(k)
print(json.dumps({"seconds": time.perf_counter() - t, "nngp": np.asarray(k.nngp).tolist()}))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--nt-python", default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    n_big = 1024 if args.quick else 4096
    x = rng.standard_normal((n_big, 8))
    net = net_a()
    t_both = timed(lambda: dl.kernel(net, x, depth=math.inf))
    rows.append(f"| NNGP + NTK, {n_big} inputs, depth inf (ReLU, form A) | {t_both:.2f} s | "
                f"target < 2 s: {'met' if t_both < 2 else 'NOT met'} |")
    # throughput: general ODE path vs finite recursion vs homogeneous reduction
    m = 256 if args.quick else 512
    xs = x[:m]
    entries = m * m
    ode = timed(lambda: dl.kernel(net, xs, depth=math.inf, homogeneous=False), 2)
    rec = timed(lambda: dl.kernel(net, xs, depth=1000, homogeneous=False), 2)
    hom = timed(lambda: dl.kernel(net, xs, depth=math.inf), 2)
    for name, t in (("ODE, RK4 256 steps (general path)", ode),
                    ("finite-depth recursion, L = 1000", rec),
                    ("ODE, exact homogeneous reduction", hom)):
        rows.append(f"| {name}, {m}x{m} | {t:.3f} s | {entries / t:.3g} entries/s |")
    # memory for 50,000 inputs, streamed tile by tile into an uncompressed Zarr array on
    # disk (a memmap would count its dirty pages in the process's resident memory)
    import zarr

    n_mem = 5000 if args.quick else 50_000
    bound = 256 * 2**20
    big = rng.standard_normal((n_mem, 8))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        block = int(math.sqrt(bound / 192))
        out = zarr.create_array(str(Path(tmp) / "k.zarr"), shape=(n_mem, n_mem),
                                chunks=(block, block), dtype="f8", compressors=None)
        before = peak_rss_mb()
        t = time.perf_counter()
        dl.kernel(net, big, depth=math.inf, compute_ntk=False, max_memory=bound,
                  out_nngp=out)
        elapsed = time.perf_counter() - t
        check = float(out[n_mem - 1, n_mem - 1])
    rows.append(f"| NNGP of {n_mem} inputs into Zarr ({n_mem**2 * 8 / 2**30:.1f} GiB), tile "
                f"bound {bound >> 20} MiB | {elapsed:.1f} s | peak RSS {peak_rss_mb():.0f} MiB "
                f"(before the run: {before:.0f} MiB); last entry {check:.4g} |")
    # neural-tangents side by side
    if args.nt_python:
        n_nt = 256
        proc = subprocess.run([args.nt_python, "-c", NT_SCRIPT, "1000", str(n_nt)],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            nt = json.loads(proc.stdout.strip().splitlines()[-1])
            ours = timed(lambda: dl.kernel(net, x[:n_nt], depth=1000, homogeneous=False), 2)
            rows.append(f"| neural-tangents stax ResNet, L = 1000, {n_nt} inputs | "
                        f"{nt['seconds']:.2f} s | ours (recursion) {ours:.2f} s: "
                        f"ratio {nt['seconds'] / ours:.1f}x |")
        else:
            rows.append(f"| neural-tangents | failed | {proc.stderr.strip()[-200:]} |")
    table = "\n".join(["| what | time | result |", "|---|---:|---|", *rows])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"jax {jax.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
               f"{' (quick)' if args.quick else ''}")
    text = f"{START}\nMachine: {machine}\n\n{table}\n{END}"
    print(text)
    readme = README.read_text() if README.exists() else ""
    if START in readme:
        readme = re.sub(re.escape(START) + ".*?" + re.escape(END), text, readme, flags=re.S)
    else:
        readme += "\n## Kernels\n\n" + text + "\n"
    README.write_text(readme)


if __name__ == "__main__":
    sys.exit(main())
