"""Training steps per second: the compiled depth loop against a plain Python loop over layers,
and the cost of the full-scale depth sweep (``trained_scaling.md`` §4).

Run ``python benchmarks/bench_training.py`` (about 2 minutes on 2 CPU cores) or
``python benchmarks/bench_training.py --quick`` (depth 100: a smoke run).

Work: one Adam step (loss, gradient, update) of the fully connected ResNet
``h_{k+1} = h_k + |delta| tanh(A_k h_k + b_k)`` (shared delta) at depth 1000, width 10, on a
mini-batch of 50 samples of the synthetic ODE data, float32, in one process:

* compiled: :class:`deeplimits.scaling.FCResNet` (weights stacked, ``lax.scan`` over layers),
  the whole step under ``jax.jit`` (what :func:`deeplimits.scaling.train_cells` runs);
* python loop: :meth:`FCResNet.apply_loop`, a Python ``for`` over layers, differentiated by
  ``jax.value_and_grad`` and updated by optax without ``jit`` (how a plain layer-by-layer
  implementation runs in JAX).

Both compute the same step; the benchmark checks that their gradients agree. Timings are
medians over repeats after a warm-up (compiling) call, interleaved round-robin so that load
from other processes falls on both alike.

Sweep estimate: the full-scale T1 sweep (31 depths of ``floor(1.2^k)`` from 3 to 850, 5 seeds,
at most 200 epochs of 20 steps) trains cells in groups of depths within a factor 2, padded to
the group's largest depth. The benchmark times epochs of such groups at several padded
depths, fits seconds per (cell x layer x epoch) and per epoch, and prints the estimated wall
time for 200 epochs (an upper bound: cells that meet a stopping rule early still occupy
their group until the group finishes) plus the compile time per group.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deeplimits.scaling import (
    TrainConfig,
    depth_buckets,
    depth_grid,
    init_fc_resnet,
    synthetic_ode_data,
    train_cells,
)


def steps(depth: int, width: int = 10, batch: int = 50):
    data = synthetic_ode_data(0, dim=width)
    x, y = jnp.asarray(data.x_train[:batch]), jnp.asarray(data.y_train[:batch])
    model = init_fc_resnet(np.random.default_rng(0), depth, width, scale=1.0)
    opt = optax.adam(1e-3)
    state = opt.init(model)

    def make(forward):
        def step(m, s):
            loss, g = jax.value_and_grad(lambda q: jnp.mean((forward(q, x) - y) ** 2))(m)
            u, s = opt.update(g, s, m)
            return optax.apply_updates(m, u), s, loss, g
        return step

    compiled = jax.jit(make(lambda m, x: m(x)))
    loop = make(lambda m, x: m.apply_loop(x))
    return model, state, compiled, loop


def bench(fns: dict, repeats: int) -> dict:
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def step_table(depth: int, repeats: int) -> str:
    model, state, compiled, loop = steps(depth)
    run = lambda f: jax.block_until_ready(f(model, state))
    _, _, l1, g1 = run(compiled)
    _, _, l2, g2 = run(loop)
    np.testing.assert_allclose(g1.A, g2.A, rtol=1e-3, atol=1e-9)
    t = bench({"compiled": lambda: run(compiled), "loop": lambda: run(loop)}, repeats)
    rows = ["| implementation | s / step | steps / s | speed-up |", "|---|---|---|---|"]
    for k, label in (("compiled", "lax.scan, jit"), ("loop", "Python loop over layers")):
        rows.append(f"| {label} | {t[k]:.4g} | {1 / t[k]:.4g} | {t['loop'] / t[k]:.1f}x |")
    return "\n".join(rows)


def sweep_estimate(pads: list[int], seeds: int = 5, epochs: int = 200) -> str:
    config = TrainConfig(activation="tanh", delta="shared", max_epochs=3, patience=100,
                         tol=0.0)
    data = synthetic_ode_data(0)
    groups = depth_buckets(depth_grid(1000))
    rows = ["| padded depth | cells | compile + 1 epoch (s) | s / epoch |", "|---|---|---|---|"]
    per_layer, compile_s = [], []
    for pad in pads:
        cells = [(pad, s) for s in range(2 * seeds)]
        t0 = time.perf_counter()
        train_cells(config.__class__(**{**config.to_dict(), "max_epochs": 1}), cells, data)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_cells(config, cells, data)
        per_epoch = (time.perf_counter() - t0) / 3
        rows.append(f"| {pad} | {len(cells)} | {first:.2f} | {per_epoch:.3f} |")
        per_layer.append(per_epoch / (len(cells) * pad))
        compile_s.append(max(first - per_epoch, 0.0))
    c = float(np.median(per_layer))
    total = sum(len(g) * seeds * g[-1] * epochs * c for g in groups)
    comp = float(np.median(compile_s)) * len(groups)
    rows.append("")
    rows.append(f"{len(groups)} groups {[g[-1] for g in groups]} (padded depths); "
                f"{c:.3g} s per cell-layer-epoch; estimated full T1 sweep (31 depths x {seeds} "
                f"seeds x {epochs} epochs): {total / 60:.1f} min training + {comp:.0f} s "
                f"compiling, per claim (4 claims: {4 * (total + comp) / 3600:.2f} h)")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="depth 100, fewer repeats")
    args = parser.parse_args()
    depth = 100 if args.quick else 1000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"JAX {jax.__version__} on {jax.default_backend()}")
    print(f"\n### Adam step, depth {depth}, width 10, batch 50 (float32)\n")
    print(step_table(depth, 3 if args.quick else 5))
    print("\n### Full-scale sweep estimate (synthetic data, tanh, shared delta)\n")
    print(sweep_estimate([16, 64] if args.quick else [64, 256, 850]))


if __name__ == "__main__":
    main()
