"""Wall time of ``deeplimits.scaling.analyze_weights`` on the full-scale T1 layout: the 31
depths of ``floor(1.2^k)`` from 3 to 850 x 5 seeds, 10 x 10 layers (the synthetic data's
width), 2000 bootstrap resamples (issue 15, performance).

Run ``python benchmarks/bench_scaling_analyze.py`` (under a minute on 2 CPU cores). It
prints the median over repeats of the whole analysis and of its two parts, the per-cell
statistics and the slope fits (OLS + bootstrap over seeds, 23 statistics), interleaved so
that load from other processes falls on all alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from deeplimits.scaling import (
    analyze_weights,
    depth_grid,
    sequence_statistics,
    synthetic_weights,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    depths = depth_grid(1000)
    w = synthetic_weights(0, depths, "iid", beta=0.5, n_seeds=5, shape=(10, 10))
    times = {"analyze_weights": [], "statistics only": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = analyze_weights(w, n_boot=args.n_boot)
        times["analyze_weights"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for stack in w.values():
            for A in stack:
                sequence_statistics(A)
        times["statistics only"].append(time.perf_counter() - t)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{len(depths)} depths {depths[0]}-{depths[-1]} x 5 seeds, 10 x 10 layers, "
          f"n_boot {args.n_boot}; verdict {a.regime.regime}")
    for name, v in times.items():
        print(f"  {name}: median {statistics.median(v):.2f} s over {len(v)} repeats")


if __name__ == "__main__":
    main()
