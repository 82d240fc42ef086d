"""The one layer-loop engine (``simulation.samplers.run_layers``) against the loop it
replaced, side by side: conv networks sampled exactly in law and by Euler-Maruyama.

    python benchmarks/bench_layer_engine.py --trees OLD_SRC NEW_SRC [--repeats 5]

Each tree is a ``src`` folder (``git worktree add /tmp/old <commit>`` gives an old one);
every measurement runs in a fresh subprocess with ``PYTHONPATH`` set to the tree, and the
trees alternate round by round so that load from other processes falls on both alike. A
measurement is the median of 3 steady calls after a compiling call. Prints a Markdown table
(and ``--json``) with the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CASES = [  # (channels, image side, depth, samples, sampler): the sizes of V1's claims
    (4, 4, 64, 32, "exact"),
    (4, 4, 64, 32, "sde"),
    (16, 4, 32, 16, "exact"),
]

_CHILD = r"""
import json, sys, time
import jax, numpy as np
from deeplimits.conv import ConvResNet, sample_conv
C, P, L, S, sampler = json.loads(sys.argv[1])
net = ConvResNet(channels=C, depth=L, image_shape=(P, P), activation="tanh", sigma_b=0.2)
img = np.linspace(-1, 1, 2 * P * P).reshape(2, 1, P, P)
run = lambda k: sample_conv(net, img, jax.random.key(k), samples=S,
                            sampler=sampler).block_until_ready()
run(0)
times = []
for k in range(1, 4):
    t = time.perf_counter(); run(k); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[1]))
"""


def measure(tree: str, case) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs=2, required=True, metavar=("OLD", "NEW"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = []
    for case in CASES:
        runs = {t: [] for t in args.trees}
        for _ in range(args.repeats):
            for tree in args.trees:
                runs[tree].append(measure(tree, case))
        old, new = (statistics.median(runs[t]) for t in args.trees)
        rows.append({"case": case, "old_s": old, "new_s": new, "old/new": old / new})
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average {load0:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end; median of {args.repeats} interleaved rounds")
    print("| channels | image | depth | samples | sampler | old loop s | engine s | old/engine |")
    print("|---:|---:|---:|---:|:--|---:|---:|---:|")
    for r in rows:
        C, P, L, S, sampler = r["case"]
        print(f"| {C} | {P}x{P} | {L} | {S} | {sampler} | {r['old_s']:.3g} | "
              f"{r['new_s']:.3g} | {r['old/new']:.2f} |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
