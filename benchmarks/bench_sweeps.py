"""64-cell sweeps on a 2-worker Dask LocalCluster against the in-process executor.

Run ``python benchmarks/bench_sweeps.py`` (about 6 minutes on 2 idle cores) or with
``--quick`` (16 cells per workload: a smoke run). Results go to ``benchmarks/README.md``
between the ``sweeps`` markers unless ``--no-readme``.

Two workloads of the built-in ``forward`` study (exact sampler, ReLU, form A, one input),
each 64 cells written to their own files in a fresh results folder:

* ``grid``: width 2..17 x depth 64, 128, 256, 512, 2000 samples, one seed. The shape of a
  real study: every width compiles its own program (the depth is traced, so the four
  depths of a width share it; a Dask worker compiles every width it is handed).
* ``seeds``: width 8, depth 1000, 4000 samples, seeds 0..63. One program, compiled once
  per process, then pure sampling.

Each workload runs three ways, side by side in one run:

* in-process, as a user gets it: XLA spreads compilation and every operation over both
  cores with its own thread pools;
* in-process in a child process confined to one core: the work of one worker;
* Dask ``LocalCluster`` with 2 workers, each confined to its own core (fresh processes:
  their start, imports and compilations are part of the time).

The two in-process times give XLA's own gain from the second core, ``s = T(1 core) /
T(in-process)``, and with it the most that two one-core workers can gain over in-process:
``T(in-process) / (T(1 core) / 2) = 2 / s``, before any overhead.

Overhead per cell: the same executors on 64 cells of negligible work (depth 1, 2 samples);
the steady gap between consecutive cells arriving, times the cells in flight.

``--fair`` (issue 17): the scale-out of Dask itself, with XLA's threading out of the
comparison. The same ``fair`` workload (width 8, depth 1000, ``--fair-samples`` samples
per cell: at least 1 s of work on one core each; 64 seeds) on a LocalCluster of N workers
each confined to one core, against a LocalCluster of one worker confined to one core (run
from a child process confined to that core), interleaved in one run. Both include the
cluster's start, the imports and one compilation per worker; the ratio is reported with
the per-cell overhead of each (the steady gap between arrivals, times the workers, less
the cell's own compute time as the workers report it), the time to the first cell (the
cluster's start, imports and first compilation: fixed costs that both sides pay once) and
the steady-state ratio of the intervals between arrivals. On a virtual machine the host's
CPU steal is reported too: it varies over minutes and moves every timing with it, which is
why the runs are interleaved and each pair's ratio is printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from deeplimits._core.workers import pin
from deeplimits.experiments.sweeps import DaskExecutor, InProcess, Sweep, run_sweep

README = Path(__file__).with_name("README.md")
START, END = "<!-- sweeps:start -->", "<!-- sweeps:end -->"


def workloads(cells: int) -> dict[str, Sweep]:
    widths = list(range(2, 2 + cells // 4))
    return {
        "grid": Sweep("forward", grid={"width": widths, "depth": [64, 128, 256, 512]},
                      seeds=(0,), config={"samples": 2000}),
        "seeds": Sweep("forward", grid={}, seeds=tuple(range(cells)),
                       config={"width": 8, "depth": 1000, "samples": 4000}),
        "empty": Sweep("forward", grid={}, seeds=tuple(range(cells)),
                       config={"depth": 1, "samples": 2}),
    }


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


def _on_one_core(plan: Sweep, queue) -> None:
    pin((min(os.sched_getaffinity(0)),))  # before JAX starts its thread pools
    timed(Sweep(plan.study, {}, (0,), plan.config | {"width": 2, "depth": 1}), InProcess())
    queue.put(timed(plan, InProcess())[0])


def one_core(plan: Sweep) -> float:
    """The in-process time of ``plan`` in a fresh process confined to one core."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_on_one_core, args=(plan, queue))
    child.start()
    seconds = queue.get()
    child.join()
    return seconds


def _fair_plan(cells: int, samples: int) -> Sweep:
    return Sweep("forward", grid={}, seeds=tuple(range(cells)),
                 config={"width": 8, "depth": 1000, "samples": samples})


def _cpu_ticks() -> list[int]:
    """The machine's cumulative CPU ticks (user, nice, system, idle, iowait, irq, softirq,
    steal): on a virtual machine, steal is time the host gave the cores to someone else."""
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def timed_cells(plan: Sweep, executor, workers: int = 1) -> dict:
    """Wall time, the steady gap between arrivals and the mean compute time of a cell as
    measured on its worker (``Outcome.seconds``)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    arrivals, compute = [], []

    def arrived(cell, outcome):
        arrivals.append(time.perf_counter())
        compute.append(outcome.seconds)

    try:
        stolen = _cpu_ticks()
        start = time.perf_counter()
        report = run_sweep(plan, folder, executor=executor, progress=False, on_cell=arrived)
        seconds = time.perf_counter() - start
        stolen = [b - a for a, b in zip(stolen, _cpu_ticks(), strict=True)]
        assert report.complete, report.failed
        # the late half: steady state, past the cluster's start and the compilations. The
        # mean interval over whole rounds of the N workers (from the N-th arrival on), not
        # the median: N workers in phase arrive in bunches, and the median of bimodal
        # intervals is biased
        half = len(arrivals) // 2
        late = arrivals[half:]
        rounds = len(late) - workers
        return {"seconds": seconds, "first": arrivals[0] - start,
                "gap": (late[-1] - late[workers - 1]) / rounds if rounds > 0 else math.nan,
                "cell": statistics.fmean(compute[half:]),
                "steal": stolen[7] / max(sum(stolen), 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _dask_on_one_core(plan: Sweep, queue) -> None:
    pin((min(os.sched_getaffinity(0)),))  # the cluster's one worker inherits this core
    queue.put(timed_cells(plan, DaskExecutor(workers=1)))


def dask_one_core(plan: Sweep) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_dask_on_one_core, args=(plan, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def measure_fair(cells: int, samples: int, workers: int, repeats: int) -> dict:
    plan = _fair_plan(cells, samples)
    runs = {"one": [], "many": []}
    for _ in range(repeats):  # interleaved: outside load falls on both alike
        runs["one"].append(dask_one_core(plan))
        runs["many"].append(timed_cells(plan, DaskExecutor(workers=workers), workers))
    fields = ("seconds", "first", "gap", "cell", "steal")
    med = {k: {f: statistics.median(r[f] for r in v) for f in fields} for k, v in runs.items()}
    overhead = {"one": 1e3 * (med["one"]["gap"] - med["one"]["cell"]),
                "many": 1e3 * (workers * med["many"]["gap"] - med["many"]["cell"])}
    return {"cells": cells, "samples": samples, "workers": workers, "runs": runs,
            "median": med, "ratio": med["one"]["seconds"] / med["many"]["seconds"],
            "pair_ratios": [a["seconds"] / b["seconds"]
                            for a, b in zip(runs["one"], runs["many"], strict=True)],
            "steady_ratio": med["one"]["gap"] / med["many"]["gap"],
            "overhead_ms": overhead, "load": os.getloadavg()}


def fair_table(r: dict) -> str:
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    m, n = r["median"], r["workers"]
    return "\n".join([
        f"Measured {when} on {platform.machine()} with {os.cpu_count()} cores, load average "
        f"{r['load'][0]:.1f} / {r['load'][1]:.1f} / {r['load'][2]:.1f} at the end; medians "
        f"of {len(r['runs']['one'])} interleaved runs.",
        "",
        f"| Dask LocalCluster ({r['cells']} cells, {r['samples']} samples) | wall (s) "
        "| first cell in (s) | steady interval (s) | compute per cell (s) "
        "| overhead per cell (ms) | CPU stolen by the host |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {label} | {m[k]['seconds']:.1f} | {m[k]['first']:.1f} | {m[k]['gap']:.2f} "
          f"| {m[k]['cell']:.2f} | {r['overhead_ms'][k]:.0f} | {100 * m[k]['steal']:.1f}% |"
          for k, label in (("one", "1 worker on 1 core"),
                           ("many", f"{n} workers, 1 core each"))],
        "",
        f"Steady-state scale-out (interval of 1 worker / of {n}): "
        f"{r['steady_ratio']:.2f}x. Ratio of each interleaved pair: "
        + ", ".join(f"{q:.2f}x" for q in r["pair_ratios"]) + ".",
        "",
        f"Scale-out, {n} workers over 1: **{r['ratio']:.2f}x** (target >= 1.8x for N = 2; "
        f"{'met' if r['ratio'] >= 1.8 else 'not met'}); overhead goal <= 50 ms per cell.",
    ])


def measure(cells: int, repeats: int = 1) -> dict:
    plans = workloads(cells)
    timed(plans["empty"], InProcess())  # import and compile the in-process cell code once
    results = {}
    for name in ("grid", "seeds"):
        runs = {"inprocess": [], "one_core": [], "dask": []}
        for _ in range(repeats):  # interleaved, so that outside load falls on all alike
            runs["inprocess"].append(timed(plans[name], InProcess())[0])
            runs["one_core"].append(one_core(plans[name]))
            runs["dask"].append(timed(plans[name], DaskExecutor(workers=2))[0])
        med = {k: statistics.median(v) for k, v in runs.items()}
        s = med["one_core"] / med["inprocess"]
        results[name] = {"runs": runs, "median": med, "speedup": med["inprocess"] / med["dask"],
                         "xla_gain": s, "ceiling": 2 / s,
                         "vs_one_core": med["one_core"] / med["dask"]}
    idle_in, gap_in = timed(plans["empty"], InProcess())
    idle_dask, gap_dask = timed(plans["empty"], DaskExecutor(workers=2))
    return {"cells": cells, "workloads": results,
            "idle_inprocess_s": idle_in, "idle_dask_s": idle_dask,
            "overhead_inprocess_ms": 1e3 * gap_in, "overhead_dask_ms": 2e3 * gap_dask}


def table(r: dict) -> str:
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    n = r["cells"]
    rows = []
    for name, w in r["workloads"].items():
        m = w["median"]
        rows.append(f"| {name} | {m['inprocess']:.1f} | {m['one_core']:.1f} | {m['dask']:.1f} "
                    f"| **{w['speedup']:.2f}x** | {w['xla_gain']:.2f} | {w['ceiling']:.2f}x "
                    f"| {w['vs_one_core']:.2f}x |")
    best = max(w["speedup"] for w in r["workloads"].values())
    return "\n".join([
        f"Measured {when} on {platform.machine()} with {os.cpu_count()} cores "
        f"({platform.platform()}); medians of the runs in `--json`.",
        "",
        f"| workload ({n} cells) | in-process (s) | in-process, 1 core (s) | Dask, 2 workers (s) "
        "| Dask vs in-process | XLA's gain from core 2, s | ceiling 2/s | Dask vs 1 core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"| executor | {n} empty cells (s) | overhead per cell, steady (ms) |",
        "|---|---:|---:|",
        f"| in-process | {r['idle_inprocess_s']:.1f} | {r['overhead_inprocess_ms']:.0f} |",
        f"| Dask LocalCluster, 2 workers | {r['idle_dask_s']:.1f} "
        f"| {r['overhead_dask_ms']:.0f} |",
        "",
        f"Best speed-up of Dask over in-process: **{best:.2f}x** (target >= 1.7x with 2 cores; "
        f"{'met' if best >= 1.7 else 'not met'}).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 cells, one run each")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each executor")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    parser.add_argument("--fair", action="store_true",
                        help="N one-core Dask workers against one (issue 17)")
    parser.add_argument("--fair-samples", type=int, default=20000,
                        help="samples per cell of --fair (>= 1 s per cell on one core)")
    parser.add_argument("--cells", type=int, default=64, help="cells of --fair")
    parser.add_argument("--workers", type=int, default=2, help="N of --fair")
    args = parser.parse_args()
    if args.fair:
        result = measure_fair(args.cells, args.fair_samples, args.workers, args.repeats)
        print(fair_table(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return
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
