"""A smooth activation without a closed-form dual (tanh) against erf, and 4096 tanh inputs
(issue 18): NNGP + NTK, form A, input layer (d = 32), sigma_w = 1, sigma_b = 0.5, depth =
inf at the default rtol (1e-9), interleaved rounds, first call and steady call, the chosen
steps, the estimated step error and the table's measured error.

    python benchmarks/bench_kernels_smooth.py --inputs 1024 --acts erf,tanh
    python benchmarks/bench_kernels_smooth.py --inputs 4096 --acts tanh --norms equal,unequal
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=int, default=1024)
    p.add_argument("--acts", default="erf,tanh")
    p.add_argument("--norms", default="unequal", help="comma list of equal, unequal")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import jax
    jax.config.update("jax_enable_x64", True)
    import deeplimits as dl

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.inputs, args.dim))
    xs = {"unequal": x, "equal": x * math.sqrt(args.dim) / np.linalg.norm(x, axis=1,
                                                                        keepdims=True)}
    runs = [(a, nm) for nm in args.norms.split(",") for a in args.acts.split(",")]
    nets = {a: dl.ResNet(form="A", activation=a, width=1, depth=1000, sigma_w=1.0,
                         sigma_b=0.5, input_layer=dl.InputLayer(args.dim))
            for a in args.acts.split(",")}
    out = {"load_start": os.getloadavg()[0], "inputs": args.inputs, "rows": {}}
    for rnd in range(1 + args.repeats):  # round 0: first calls
        for act, nm in runs:
            t = time.perf_counter()
            k = dl.kernel(nets[act], xs[nm], depth=math.inf)
            dt = time.perf_counter() - t
            row = out["rows"].setdefault(f"{act}/{nm}", {"times": []})
            row["times"].append(dt)
            row.update(steps=k.steps, error=k.error, table_error=k.table_error)
            print(f"round {rnd} {act} {nm}: {dt:.3g} s, steps {k.steps}, error "
                  f"{k.error:.2g}, table error {k.table_error}", flush=True)
    out["load_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
