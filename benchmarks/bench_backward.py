"""Exact forward-backward sampler against autodiff through dense networks.

Run ``python benchmarks/bench_backward.py`` (a few minutes on 2 CPU cores) or
``python benchmarks/bench_backward.py --quick`` (depth 100: a smoke run).

Work: form A ReLU ResNet, width 256, depth 1000, one input ``x = ones(1, n)``, float32,
loss ``sum sin(x_L)``, through the public API
``deeplimits.backward.sample_gradients(net, x, key, samples=..., method=...)``. Both
methods return the same things per sample: ``x_L``, ``J_L u``, ``g_0`` and the squared
parameter-gradient norms.

* exact: the ``O(n)``-per-layer joint sampler of ``backward.md`` §4, on ``SAMPLES``
  samples.
* autodiff: draws every ``n x n`` weight matrix, runs ``jax.jvp`` and ``jax.vjp`` through
  ``net.apply``. Its cost is exactly linear in the samples (independent networks), so it is
  timed on ``AUTODIFF_SAMPLES`` and scaled to ``SAMPLES``.

Both are timed side by side in one run (median of interleaved repeats after a warm-up
call, as in ``bench_samplers.py``, whose timing and table helpers this script reuses); the
ratio is the target (>= 20x at width 256, depth 1000).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_samplers import bench, blocked, g, machine, md_table, text_table  # noqa: E402
from deeplimits.backward import sample_gradients  # noqa: E402
from deeplimits.spec.networks import ResNet

WIDTH = 256
SAMPLES = 256
AUTODIFF_SAMPLES = 8
TARGET = 20


def runner(method: str, depth: int, samples: int, key):
    net = ResNet(form="A", activation="relu", width=WIDTH, depth=depth)
    x = jnp.ones((1, WIDTH), jnp.float32)
    return blocked(lambda: sample_gradients(net, x, key, samples=samples, method=method))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="depth 100, 2 repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3)")
    args = p.parse_args()
    depth = 100 if args.quick else 1000
    repeats = args.repeats or (2 if args.quick else 3)
    t_start = time.perf_counter()
    info = machine()
    load0 = os.getloadavg()
    print(f"deeplimits at commit {info['commit']}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']} / jaxlib "
          f"{info['jaxlib']} ({info['backend']}), {info['date']}")
    print(f"work: width {WIDTH}, depth {depth}, form A, ReLU, one input, float32; exact on "
          f"{SAMPLES} samples, autodiff on {AUTODIFF_SAMPLES} scaled to {SAMPLES}; median "
          f"of {repeats} interleaved repeats after a warm-up\n")
    key = jax.random.key(0)
    res = bench({"exact": runner("exact", depth, SAMPLES, key),
                 "autodiff": runner("autodiff", depth, AUTODIFF_SAMPLES, key)}, repeats)
    exact = res["exact"]["wall"]
    autodiff = res["autodiff"]["wall"] * SAMPLES / AUTODIFF_SAMPLES
    ratio = autodiff / exact
    header = ["width", "depth", f"exact s / {SAMPLES}", f"autodiff s / {SAMPLES} (timed on)",
              "autodiff/exact", "exact first call s"]
    rows = [[WIDTH, depth, g(exact), f"{g(autodiff)} ({AUTODIFF_SAMPLES})", g(ratio),
             g(res["exact"]["first"])]]
    print(text_table(header, rows))
    print()
    print(md_table(header, rows))
    load1 = os.getloadavg()
    print(f"\ntarget autodiff/exact >= {TARGET}x: {ratio:.0f}x "
          f"({'met' if ratio >= TARGET else 'NOT met'}); load average (1 min) "
          f"{load0[0]:.2f} at start, {load1[0]:.2f} at end; total "
          f"{time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
