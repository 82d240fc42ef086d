"""Exact versus dense sampler, and the exact sampler against its floor.

Run ``python benchmarks/bench_samplers.py`` (about 3-4 minutes on 2 CPU cores) or
``python benchmarks/bench_samplers.py --quick`` (depth 100, fewer repeats: a smoke run).

Work: 1024 samples of a form-A ReLU ResNet of depth 1000 at one input ``x = ones(1, n)``,
widths 4, 64 and 256, float32 (the sampler default), through the public API
``deeplimits.sample(net, x, key, samples=1024, sampler="exact" | "dense")``.

* exact: all 1024 samples, timed as they are.
* dense: its cost is exactly linear in the number of samples (every sample draws its own
  ``depth`` weight matrices and biases; nothing is shared between samples), so it is timed
  on a subset of the samples and scaled to 1024. At width 256 the full run would draw
  6.7e10 normals (about 15 minutes here).
* floor: ``jax.random.normal(key, (1024 * depth * n,), float32)``, jitted and blocked: the
  same number of normals the exact sampler draws, same dtype, same default PRNG.

Every timing is the median of several repeats after a warm-up (compiling) call, and the
repeats of the things compared in one table are interleaved (round-robin) so that load from
other processes falls on all of them alike. The profile section compares the exact sampler
with hand-written minimal ``lax.scan`` loops (one key per layer, the derivation before
commit 27bf8c0, and one key per block of layers, the one since), and, in a child
process, with JAX's unrolled Threefry lowering (the one JAX uses on GPU; bit-identical
output).

With ``--readme`` (the default for a full run) the results are written into
``benchmarks/README.md`` between the ``results`` markers.

``--factor`` (issue 18 item 5) times only the exact sampler's ``k x k`` Gram factor, old
against new side by side: ``eigh`` (``eigh_sqrt``, the factor before) against
``psd_sqrt`` (Cholesky, ``eigh`` only where Cholesky breaks down), and a floor that uses the
Gram as its own "factor" (same matmul, no factorisation). Work: form A ReLU, ``k`` inputs
``x`` (``(k, n)`` standard normal rows: nonsingular Grams; or with row 1 repeating row 0:
singular in every layer), float64 (Monte Carlo kernels' dtype), through
``deeplimits.sample`` with a sampler whose factor is swapped in; and the factors alone on
``samples * depth`` Gram matrices. Results go between the ``factor`` markers.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import deeplimits as dl
import deeplimits.spec.blocks as _blocks
from deeplimits._core.linalg import eigh_sqrt, psd_sqrt
from deeplimits.simulation.samplers import ExactSampler

SAMPLES = 1024
WIDTHS = (4, 64, 256)
PROFILE_WIDTHS = (4, 256)
# Dense samples actually timed per width (scaled linearly to SAMPLES); about 5-10 s per
# run at depth 1000 on 2 cores. Other widths: about 1e9 normals per run.
DENSE_SAMPLES = {4: 1024, 64: 128, 256: 16}
README = Path(__file__).with_name("README.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"
FACTOR_START, FACTOR_END = "<!-- factor:start -->", "<!-- factor:end -->"
# (inputs k, width n, depth, samples, repeated inputs): the case, singular, smaller
FACTOR_HEADER = ["case", "factor", "sampler s", "x now", "factors alone s"]
FACTOR_CASES = ((64, 512, 32, 64, False), (64, 512, 32, 64, True), (16, 128, 64, 256, False))


# -- timing ------------------------------------------------------------------------------
def bench(fns: dict, repeats: int) -> dict:
    """Warm up each callable once, then time ``repeats`` (or more) interleaved rounds.

    Returns ``{name: {"wall": median s, "cpu": median process CPU s, "first": s}}``.
    """
    first, probe = {}, 0.0
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
        if first[name] < 1.0:  # cheap: one more untimed-for-the-median call to size rounds
            t0 = time.perf_counter()
            fn()
            probe += time.perf_counter() - t0
        else:
            probe += first[name]
    # short runs get more rounds (up to 25, about 2 s in all) for a stable median
    rounds = max(repeats, min(25, math.ceil(2.0 / max(probe, 1e-9))))
    walls = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    return {
        name: {
            "wall": statistics.median(walls[name]),
            "cpu": statistics.median(cpus[name]),
            "first": first[name],
            "all": walls[name],
        }
        for name in fns
    }


def blocked(fn):
    return lambda: jax.block_until_ready(fn())


def digest(arr) -> str:
    return hashlib.sha1(np.asarray(arr).tobytes()).hexdigest()[:12]


# -- the work ----------------------------------------------------------------------------
def make_net(width: int, depth: int):
    return dl.ResNet(form="A", activation="relu", width=width, depth=depth)


def api_exact(width, depth, key, samples=SAMPLES):
    net = make_net(width, depth)
    x = jnp.ones((1, width), jnp.float32)
    return blocked(lambda: dl.sample(net, x, key, samples=samples, sampler="exact"))


def api_dense(width, depth, key, samples):
    net = make_net(width, depth)
    x = jnp.ones((1, width), jnp.float32)
    return blocked(lambda: dl.sample(net, x, key, samples=samples, sampler="dense"))


def floor_fn(width, depth, key, samples=SAMPLES):
    size = samples * depth * width
    draw = jax.jit(lambda k: jax.random.normal(k, (size,), jnp.float32))
    return blocked(lambda: draw(key))


def dense_samples(width: int) -> int:
    if width in DENSE_SAMPLES:
        return DENSE_SAMPLES[width]
    per_sample = 1000 * (width * width + width)
    return int(min(SAMPLES, 2 ** max(0, math.floor(math.log2(1e9 / per_sample)))))


# -- the Gram factor (issue 18 item 5) ---------------------------------------------------
class FactorSampler(ExactSampler):
    """The exact sampler with another ``k x k`` Gram factor swapped in while its layer step
    is traced (the step reads ``blocks.psd_sqrt``); a new factor compiles anew."""

    factor: object = eqx.field(static=True)

    def apply(self, net, noise, X):
        saved, _blocks.psd_sqrt = _blocks.psd_sqrt, self.factor
        try:
            return super().apply(net, noise, X)
        finally:
            _blocks.psd_sqrt = saved


FACTORS = {"eigh (before)": eigh_sqrt, "cholesky, eigh fallback (now)": psd_sqrt,
           "no factor (Gram as its own)": lambda gram: gram}


def factor_inputs(k, n, repeated):
    x = jax.random.normal(jax.random.key(1), (k, n), jnp.float64)
    return x.at[1].set(x[0]) if repeated else x


def sampler_call(net, x, key, samples, factor):
    sampler = FactorSampler(factor)
    return blocked(lambda: dl.sample(net, x, key, samples=samples, sampler=sampler,
                                     dtype=jnp.float64))


def factors_call(grams, factor):
    run = jax.jit(jax.vmap(factor))
    return blocked(lambda: run(grams))


def factor_section(repeats):
    """Rows ``[case, variant, sampler s, x now, factors alone s]`` and raw timings."""
    rows, raw = [], {}
    for k, n, depth, samples, repeated in FACTOR_CASES:
        x, key = factor_inputs(k, n, repeated), jax.random.key(0)
        net = dl.ResNet(form="A", activation="relu", width=n, depth=depth)
        case = f"k = {k}, n = {n}, depth {depth}, {samples} samples, " + (
            "row 1 = row 0 (singular)" if repeated else "distinct inputs")
        fns = {name: sampler_call(net, x, key, samples, f) for name, f in FACTORS.items()}
        H = jnp.maximum(x, 0.0)  # Grams of one layer's kind, scaled per matrix
        scale = 1.0 + jax.random.uniform(jax.random.key(2), (samples * depth, 1, 1))
        grams = scale * (H @ H.T / n)[None]
        alone = {name: factors_call(grams, f) for name, f in FACTORS.items()}
        res = bench(fns | {"alone: " + n_: fn for n_, fn in alone.items()}, repeats)
        now = res["cholesky, eigh fallback (now)"]["wall"]
        raw[case] = {name: r["wall"] for name, r in res.items()}
        for name in FACTORS:
            rows.append([case, name, g(res[name]["wall"]), f"{res[name]['wall'] / now:.2f}",
                         g(res["alone: " + name]["wall"])])
        print(f"  {case} done", flush=True)
    return rows, raw


def write_factor_readme(info, load0, load1, repeats, rows) -> None:
    block = "\n".join([
        FACTOR_START,
        f"Machine: **{info['cpu']}**, {info['cores']} cores; deeplimits at commit "
        f"{info['commit']}; jax {info['jax']} ({info['backend']}); Python {info['python']}; "
        f"{info['date']}. Load average (1 min) {load0[0]:.2f} at start, {load1[0]:.2f} at "
        f"end. Median of {repeats} or more interleaved rounds after a warm-up; *x now*: "
        "sampler time over the new factor's; *factors alone*: the factor of the case's "
        "`samples * depth` Gram matrices under `vmap`, nothing else.",
        "",
        md_table(FACTOR_HEADER, rows),
        FACTOR_END,
    ])
    text = README.read_text()
    head, rest = text.split(FACTOR_START, 1)
    README.write_text(head + block + rest.split(FACTOR_END, 1)[1])
    print(f"factor results written to {README}")


# -- minimal loops for the profile -------------------------------------------------------
def minimal_loop(width, depth, key, *, step: bool, samples=SAMPLES):
    """``vmap`` over per-sample keys ``split(key, samples)`` of a ``lax.scan`` over layers
    drawing ``normal(fold_in(k_layers, l), (1, n))``, one key per layer as the samplers
    did before commit 27bf8c0 (``k_layers`` is the second of ``split(sample_key, 3)``).
    ``step=False``: ``X + z`` only; ``step=True``: the full form-A exact step written by
    hand (gram by a sum, no dot)."""
    net = make_net(width, depth)
    dt, s_w = net.param_dt, net.s_w
    x = jnp.ones((1, width), jnp.float32)

    def layer(k_layers, X, l):
        z = jax.random.normal(jax.random.fold_in(k_layers, l), X.shape, X.dtype)
        if not step:
            return X + z
        h = jnp.maximum(X, 0.0)
        gram = s_w**2 * jnp.sum(h * h, axis=-1, keepdims=True)
        return X + jnp.sqrt(dt * gram) * z

    @jax.jit
    def run(key):
        def one(k):
            _, k_layers, _ = jax.random.split(k, 3)
            return jax.lax.scan(lambda X, l: (layer(k_layers, X, l), None), x,
                                jnp.arange(depth))[0]

        return jax.vmap(one)(jax.random.split(key, samples))

    return blocked(lambda: run(key))


def block_size(width, depth, floats=1024) -> int:
    """Largest divisor of ``depth`` with ``block * width <= floats`` (per sample and input,
    so it depends on the network only, never on how the samples are chunked)."""
    return max(b for b in range(1, depth + 1) if depth % b == 0 and b * width <= floats)


def blocked_loop(width, depth, key, block, samples=SAMPLES):
    """Like ``minimal_loop(step=True)`` but one ``fold_in`` and one ``normal`` call per
    ``block`` layers (``(block, 1, n)`` normals per sample), as the samplers do since
    commit 27bf8c0 (which balances the blocks and folds the noise name in too)."""
    net = make_net(width, depth)
    dt, s_w = net.param_dt, net.s_w
    x = jnp.ones((1, width), jnp.float32)

    def step(X, z):
        h = jnp.maximum(X, 0.0)
        return X + jnp.sqrt(dt * s_w**2 * jnp.sum(h * h, axis=-1, keepdims=True)) * z

    @jax.jit
    def run(key):
        def one(k):
            _, k_layers, _ = jax.random.split(k, 3)

            def outer(X, b):
                Z = jax.random.normal(jax.random.fold_in(k_layers, b), (block,) + X.shape,
                                      X.dtype)
                return jax.lax.scan(lambda X, z: (step(X, z), None), X, Z)[0], None

            return jax.lax.scan(outer, x, jnp.arange(depth // block))[0]

        return jax.vmap(one)(jax.random.split(key, samples))

    return blocked(lambda: run(key))


def use_unrolled_threefry() -> None:
    """Lower Threefry on CPU with JAX's unrolled rule (its GPU default) instead of the CPU
    rolled ``fori_loop`` of 5 iterations. Private JAX API; same bits, different speed."""
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32 as tf

    mlir.register_lowering(tf.threefry2x32_p, tf._threefry2x32_lowering_rule, platform="cpu")


def child_unrolled(depth: int, repeats: int) -> None:
    use_unrolled_threefry()
    key = jax.random.key(0)
    out = {}
    for n in PROFILE_WIDTHS:
        exact = api_exact(n, depth, key)
        res = bench({"exact": exact, "floor": floor_fn(n, depth, key)}, repeats)
        out[n] = {k: v["wall"] for k, v in res.items()} | {
            "digest": digest(exact()), "exact_first_call": res["exact"]["first"]}
    print(json.dumps(out))


# -- machine -----------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jaxlib

    try:
        root = Path(__file__).resolve().parent.parent
        run = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True,
                                        text=True, check=True).stdout.strip()
        commit = run("rev-parse", "--short", "HEAD")
        if run("status", "--porcelain", "src"):
            commit += " (src/ modified)"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "commit": commit,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "prng": jax.config.jax_default_prng_impl,
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "python": platform.python_version(),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


# -- tables ------------------------------------------------------------------------------
def md_table(header, rows) -> str:
    def numeric(i):
        try:
            [float(str(row[i]).split(" ")[0] or 0) for row in rows]
            return True
        except ValueError:
            return False

    align = ["---:" if numeric(i) else ":---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header, rows) -> str:
    cols = list(zip(header, *rows, strict=True))
    widths = [max(len(str(c)) for c in col) for col in cols]
    fmt = lambda row: "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def g(x, digits=3) -> str:
    return f"{x:.{digits}g}" if x < 1000 else f"{x:.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="depth 100, 2 repeats (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3)")
    p.add_argument("--no-profile", action="store_true", help="skip the profile section")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="write results into benchmarks/README.md (default: full runs only)")
    p.add_argument("--json", metavar="PATH", help="also write the raw timings as JSON")
    p.add_argument("--factor", action="store_true",
                   help="only the Gram factor section (issue 18 item 5)")
    p.add_argument("--child-unrolled", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    depth = args.depth or (100 if args.quick else 1000)
    repeats = args.repeats or (2 if args.quick else 3)
    if args.child_unrolled:
        return child_unrolled(depth, repeats)
    write_readme = (not args.quick) if args.readme is None else args.readme

    t_start = time.perf_counter()
    info = machine()
    load0 = os.getloadavg()
    if args.factor:
        print(f"Gram factor, old against new; {info['cpu']}, {info['cores']} cores, jax "
              f"{info['jax']} ({info['backend']}), {info['date']}")
        rows, raw = factor_section(repeats)
        print(text_table(FACTOR_HEADER, rows))
        load1 = os.getloadavg()
        print(f"load average (1 min) {load0[0]:.2f} at start, {load1[0]:.2f} at end")
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "factor": raw}, indent=1))
        if write_readme:
            write_factor_readme(info, load0, load1, repeats, rows)
        return None
    print(f"deeplimits at commit {info['commit']}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']} / jaxlib "
          f"{info['jaxlib']} ({info['backend']}), PRNG {info['prng']}, {info['date']}")
    print(f"work: {SAMPLES} samples, depth {depth}, form A, ReLU, one input, float32; "
          f"median of {repeats} interleaved repeats after a warm-up\n")
    key = jax.random.key(0)

    # ---- main table --------------------------------------------------------------------
    rows, raw = [], {}
    for n in WIDTHS:
        sd = dense_samples(n)
        res = bench({
            "exact": api_exact(n, depth, key),
            "dense": api_dense(n, depth, key, sd),
            "floor": floor_fn(n, depth, key),
        }, repeats)
        exact, floor = res["exact"]["wall"], res["floor"]["wall"]
        dense = res["dense"]["wall"] * SAMPLES / sd
        raw[n] = {k: v["wall"] for k, v in res.items()} | {
            "dense_samples": sd, "dense_scaled": dense,
            "exact_first_call": res["exact"]["first"]}
        rows.append([n, g(exact), f"{g(dense)} ({sd})", g(dense / exact),
                     g(floor), f"{exact / floor:.2f}"])
        print(f"  width {n}: exact {exact:.3f} s, dense {res['dense']['wall']:.3f} s for "
              f"{sd} samples, floor {floor:.3f} s", flush=True)
    header = ["width", "exact s", "dense s / 1024 (timed on)", "dense/exact", "floor s",
              "exact/floor"]
    print()
    print(text_table(header, rows))
    print(f"\ndense is timed on the number of samples in brackets and scaled linearly to "
          f"{SAMPLES}: its cost is exactly linear in the samples (independent networks).")
    n_top = WIDTHS[-1]
    ratio = raw[n_top]["dense_scaled"] / raw[n_top]["exact"]
    worst = max(raw[n]["exact"] / raw[n]["floor"] for n in WIDTHS)
    verdict = (f"target exact >= 50x dense at width {n_top}: {ratio:.0f}x "
               f"({'met' if ratio >= 50 else 'NOT met'}); exact within 2x of the floor: "
               f"worst {worst:.2f}x ({'met' if worst <= 2 else 'NOT met'})")
    print(verdict)

    # ---- profile -----------------------------------------------------------------------
    prof_md, prof_rows, compile_notes = "", [], []
    if not args.no_profile:
        print(f"\nprofile of the exact sampler ({SAMPLES} samples, depth {depth}):")
        for n in PROFILE_WIDTHS:
            b = block_size(n, depth)
            exact = api_exact(n, depth, key)
            fns = {
                "exact sampler (API)": exact,
                "per-layer keys: normals only": minimal_loop(n, depth, key, step=False),
                "per-layer keys: full step": minimal_loop(n, depth, key, step=True),
                f"1 key per {b} layers: full step": blocked_loop(n, depth, key, b),
                "floor: one flat normal": floor_fn(n, depth, key),
            }
            res = bench(fns, repeats)
            floor = res["floor: one flat normal"]["wall"]
            normals = SAMPLES * depth * n
            raw[f"profile_{n}"] = {k: v["wall"] for k, v in res.items()}
            raw[f"profile_{n}"]["digest_api"] = digest(exact())
            raw[f"profile_{n}"]["exact_first_call"] = res["exact sampler (API)"]["first"]
            for name, r in res.items():
                prof_rows.append([n, name, g(r["wall"]), g(r["cpu"]),
                                  f"{r['wall'] / normals * 1e9:.2f}",
                                  f"{r['wall'] / floor:.2f}"])
            print(f"  width {n} done", flush=True)
        # the same API call and floor with JAX's unrolled Threefry lowering (child process:
        # the lowering is registered globally)
        cmd = [sys.executable, __file__, "--child-unrolled", "--depth", str(depth),
               "--repeats", str(repeats)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            unrolled = json.loads(out.stdout.strip().splitlines()[-1])
        except subprocess.CalledProcessError as err:
            print(f"  unrolled-Threefry child failed:\n{err.stderr[-2000:]}")
            unrolled = {}
        except (ValueError, IndexError) as err:
            print(f"  unrolled-Threefry child gave no result: {err}")
            unrolled = {}
        for n in PROFILE_WIDTHS:
            u = unrolled.get(str(n))
            if not u:
                continue
            raw[f"unrolled_{n}"] = u
            same = "bit-identical" if u["digest"] == raw[f"profile_{n}"]["digest_api"] \
                else "DIFFERENT bits"
            floor = raw[f"profile_{n}"]["floor: one flat normal"]
            normals = SAMPLES * depth * n
            for name, t in (("exact sampler, unrolled Threefry (" + same + ")", u["exact"]),
                            ("floor, unrolled Threefry", u["floor"])):
                prof_rows.append([n, name, g(t), "", f"{t / normals * 1e9:.2f}",
                                  f"{t / floor:.2f}"])
        for n in PROFILE_WIDTHS:
            if f"unrolled_{n}" in raw:
                note = (f"width {n}: first call of the exact sampler (compile + run) "
                        f"{raw[n]['exact_first_call']:.2f} s rolled, "
                        f"{raw[f'unrolled_{n}']['exact_first_call']:.2f} s unrolled")
                compile_notes.append(note)
                print("  " + note)
        prof_rows.sort(key=lambda r: r[0])
        pheader = ["width", "variant", "wall s", "cpu s", "ns / normal", "x floor"]
        print()
        print(text_table(pheader, prof_rows))
        prof_md = md_table(pheader, prof_rows)

    load1 = os.getloadavg()
    total = time.perf_counter() - t_start
    print(f"\nload average (1 min) {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
          f"total {total:.0f} s")

    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "depth": depth,
                                               "results": raw}, indent=1, default=str))
    if write_readme:
        block = "\n".join([
            START,
            f"Machine: **{info['cpu']}**, {info['cores']} cores, {platform.system()}; "
            f"deeplimits at commit {info['commit']}; "
            f"jax {info['jax']}, jaxlib {info['jaxlib']} ({info['backend']}); default PRNG "
            f"`{info['prng']}` (partitionable: {info['threefry_partitionable']}); Python "
            f"{info['python']}; {info['date']}. Load average (1 min) {load0[0]:.2f} at "
            f"start, {load1[0]:.2f} at end of the run; total {total:.0f} s.",
            "",
            f"Work: {SAMPLES} samples, depth {depth}, form A, ReLU, one input "
            f"`ones((1, n))`, float32; median of {repeats} interleaved repeats after a "
            "warm-up. Dense is timed on the number of samples in brackets and scaled "
            f"linearly to {SAMPLES} (its cost is exactly linear in the samples).",
            "",
            md_table(header, rows),
            "",
            verdict + ".",
            "",
            *(["Profile of the exact sampler (see the notes below for what each row is):",
               "", prof_md, "", *[f"- {c}" for c in compile_notes], ""] if prof_md else []),
            END,
        ])
        text = README.read_text() if README.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
        if START in text and END in text:
            head, rest = text.split(START, 1)
            text = head + block + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        README.write_text(text)
        print(f"results written to {README}")


if __name__ == "__main__":
    main()
