"""A 64-cell sweep on a 2-worker Dask LocalCluster against the in-process executor.

Run ``python benchmarks/bench_sweeps.py`` (about 4 minutes on 2 idle cores) or with
``--quick`` (16 cells: a smoke run). Results go to ``benchmarks/README.md`` between the
``sweeps`` markers unless ``--no-readme``.

Work: the built-in ``forward`` study (exact sampler, ReLU, form A, width 8, depth 1000,
4000 samples per cell, one input), 64 cells (seeds 0..63), each written to its own file
in a fresh results folder. Both executors run the same cells in the same process, one
after the other; with ``--repeats N`` they alternate N times (in-process, Dask, ...) and
the median of each is reported, so load from other processes falls on both alike. Workers
are fresh processes: their start and their one compilation are part of the Dask time.

Overhead per cell: the same executors on 64 cells of negligible work (depth 1, 2 samples),
wall time divided by the number of cells, after the same warm-up.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from deeplimits.sweeps import DaskExecutor, InProcess, Sweep, run_sweep

README = Path(__file__).with_name("README.md")
SAMPLES = 4000  # per cell: about 1.5 s of work, so that start-up is a small part of a sweep
START, END = "<!-- sweeps:start -->", "<!-- sweeps:end -->"


def sweep(cells: int, depth: int, samples: int) -> Sweep:
    return Sweep("forward", grid={}, seeds=tuple(range(cells)),
                 config={"width": 8, "depth": depth, "samples": samples})


def timed(plan: Sweep, executor) -> tuple[float, float]:
    """Wall time of the sweep, and the median gap between consecutive cells arriving in
    the second half of the run (the steady state, after start-up and compilation)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    arrivals = []
    try:
        start = time.perf_counter()
        report = run_sweep(plan, folder, executor=executor, progress=False,
                           on_cell=lambda cell, outcome: arrivals.append(time.perf_counter()))
        seconds = time.perf_counter() - start
        assert report.complete, report.failed
        late = arrivals[len(arrivals) // 2:]
        gaps = [b - a for a, b in zip(late, late[1:], strict=False)]
        return seconds, statistics.median(gaps) if gaps else float("nan")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(cells: int, repeats: int = 1) -> dict:
    work, idle = sweep(cells, 1000, SAMPLES), sweep(cells, 1, 2)
    timed(sweep(1, 1000, SAMPLES), InProcess())  # compile the in-process cell once
    timed(idle, InProcess())
    results = {"inprocess": [], "dask": []}
    for _ in range(repeats):
        results["inprocess"].append(timed(work, InProcess())[0])
        results["dask"].append(timed(work, DaskExecutor(workers=2))[0])
    idle_in, gap_in = timed(idle, InProcess())
    idle_dask, gap_dask = timed(idle, DaskExecutor(workers=2))
    med = {k: statistics.median(v) for k, v in results.items()}
    return {"cells": cells, "samples": SAMPLES, "runs": results, "median": med,
            "speedup": med["inprocess"] / med["dask"],
            "idle_inprocess_s": idle_in, "idle_dask_s": idle_dask,
            # a cell's cost beyond its work: the steady gap between arrivals, times the
            # number of cells in flight at once
            "overhead_inprocess_ms": 1e3 * gap_in, "overhead_dask_ms": 2e3 * gap_dask}


def table(r: dict) -> str:
    m = r["median"]
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    return "\n".join([
        f"Measured {when} on {platform.machine()} with {os.cpu_count()} cores "
        f"({platform.platform()}); shared machine, medians of the runs listed.",
        "",
        f"| executor | {r['cells']}-cell sweep (s) | runs (s) | {r['cells']} empty cells (s) "
        "| overhead per cell, steady (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| in-process | {m['inprocess']:.1f} | "
        f"{', '.join(f'{v:.1f}' for v in r['runs']['inprocess'])} | "
        f"{r['idle_inprocess_s']:.1f} | {r['overhead_inprocess_ms']:.0f} |",
        f"| Dask LocalCluster, 2 workers | {m['dask']:.1f} | "
        f"{', '.join(f'{v:.1f}' for v in r['runs']['dask'])} | "
        f"{r['idle_dask_s']:.1f} | {r['overhead_dask_ms']:.0f} |",
        "",
        "The empty-cell sweep on Dask is almost all fixed cost: starting the cluster, "
        "importing JAX and compiling once in each worker, and closing the cluster.",
        "",
        f"**Speed-up: {r['speedup']:.2f}x** (target >= 1.7x with 2 cores).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 cells, one run each")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each executor")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args()
    result = measure(16 if args.quick else 64, args.repeats)
    text = table(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not (args.quick or args.no_readme):
        readme = README.read_text()
        head, _, rest = readme.partition(START)
        _, _, tail = rest.partition(END)
        README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
