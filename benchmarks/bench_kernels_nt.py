"""deeplimits' NNGP + NTK against neural-tangents on the same network (issue 18).

The network: ``dl.ResNet(form="A", activation=act, depth=L, sigma_w=1, sigma_b=0.5,
input_layer=dl.InputLayer(d))`` with the state readout, i.e. ``x_0 = A x / sqrt(d)``,
``x_l = x_{l-1} + b_l + W_l phi(x_{l-1})`` with ``b_l ~ N(0, sigma_b^2 / L)``, ``W_l`` of
entry variance ``sigma_w^2 / (n L)``, readout ``<v, x_L> / sqrt(n)``; every parameter
trained (NTK parametrisation). neural-tangents 0.6.5 computes it as its users write a
ResNet, ``stax.repeat(block, L)`` (see ``_nt_worker.py``), in a separate venv that this
script creates if missing (never a project dependency) and drives as a subprocess.

For each case and input count, in interleaved rounds (NT, deeplimits at L, at depth = inf
with the default steps and with ``--steps-small``, NT, deeplimits, ...):

* first call (trace + compile + one run) and the compile seconds inside it (JAX
  monitoring events), then the median of ``--repeats`` steady-state calls;
* agreement of deeplimits at L with NT at L, and the error of depth = inf at each step
  count against a fine reference (``--ref-steps``, default 4096, on the first
  ``--ref-inputs`` inputs: every entry of these kernels is the flow of its own pair, so a
  sub-block is exact for its entries).

Errors are ``max_ij |A_ij - B_ij| / sqrt(B_ii B_jj)`` (scale-free, and fair to entries
near zero), for the NNGP and the NTK.

Usage::

    python benchmarks/bench_kernels_nt.py                      # quick subset
    python benchmarks/bench_kernels_nt.py --full --json out.json
    python benchmarks/bench_kernels_nt.py --cases relu,erf --inputs 1024 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_nt_worker.py"
# what pip resolved for these pins on this machine: see benchmarks/README.md
NT_PINS = ["neural-tangents==0.6.5", "jax==0.4.26", "jaxlib==0.4.26"]

CASES = {
    "relu": dict(activation="relu", sigma_b=0.5),
    "erf": dict(activation="erf", sigma_b=0.5),
    "tanh": dict(activation="tanh", sigma_b=0.5),
}
QUICK = [("relu", 256), ("erf", 256), ("tanh", 256)]


# -- the neural-tangents venv and its worker ---------------------------------------------------


def ensure_venv(venv: Path, device: str) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import neural_tangents, jax; print(jax.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with {' '.join(NT_PINS)} (one time, a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = list(NT_PINS)
    if device == "gpu":
        pins[-1] = "jax[cuda12]==0.4.26"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    subprocess.run(probe, check=True, capture_output=True)
    return python


class NTWorker:
    """The worker process in the NT venv: jobs as JSON files, one stdin line each."""

    def __init__(self, python: Path, workdir: Path, device: str):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS=device,
                   PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
        self.dir = workdir
        self.proc = subprocess.Popen([str(python), str(WORKER), str(workdir)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=str(workdir))
        self.n = 0
        self._expect("ready")

    def _expect(self, word):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the neural-tangents worker exited")
            if line.strip() == word:
                return

    def __call__(self, **job):
        self.n += 1
        (self.dir / f"job_{self.n}.json").write_text(json.dumps(job))
        self.proc.stdin.write(f"{self.n}\n")
        self.proc.stdin.flush()
        self._expect(f"done {self.n}")
        result = json.loads((self.dir / f"result_{self.n}.json").read_text())
        if not result.pop("ok"):
            raise RuntimeError(f"neural-tangents worker: {result['error']}")
        return result

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


# -- deeplimits side ---------------------------------------------------------------------------


class CompileMeter:
    """Seconds and number of compilations reported by JAX's monitoring events."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
              "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        from jax import monitoring
        self.seconds, self.compiles = 0.0, 0
        monitoring.register_event_duration_secs_listener(self._on)

    def _on(self, event, duration, **_):
        if event in self.EVENTS:
            self.seconds += duration
            self.compiles += event == self.EVENTS[-1]

    def snapshot(self):
        return self.seconds, self.compiles


def scaled_error(a, b):
    """``max |a - b| / sqrt(b_ii b_jj)`` for square kernels of the same inputs."""
    import numpy as np
    d = np.sqrt(np.abs(np.diag(b)))
    return float(np.max(np.abs(a - b) / np.outer(d, d)))


def inputs(n, dim, seed, equal_norms):
    import numpy as np
    x = np.random.default_rng(seed).standard_normal((n, dim))
    if equal_norms:
        x *= math.sqrt(dim) / np.linalg.norm(x, axis=1, keepdims=True)
    return x


def fmt(s):
    if s is None:
        return ""
    if s >= 100:
        return f"{s:.0f}"
    if s >= 10:
        return f"{s:.1f}"
    return f"{s:.3g}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true",
                   help="every case at 256 and 1024 inputs (default: 256, all cases)")
    p.add_argument("--cases", default=None, help="comma list of " + ",".join(CASES))
    p.add_argument("--inputs", default=None, help="comma list of input counts")
    p.add_argument("--repeats", type=int, default=3, help="steady-state calls per timing")
    p.add_argument("--max-call-s", type=float, default=150.0,
                   help="a first call slower than this gets 1 steady repeat only")
    p.add_argument("--depth", type=int, default=1000)
    p.add_argument("--steps-small", type=int, default=16)
    p.add_argument("--ref-steps", type=int, default=4096)
    p.add_argument("--ref-inputs", type=int, default=64)
    p.add_argument("--dim", type=int, default=32, help="input features d")
    p.add_argument("--equal-norms", action="store_true", help="rows of norm sqrt(d)")
    p.add_argument("--tanh-deg", type=int, default=25,
                   help="Gauss-Hermite points of NT's ElementwiseNumerical for tanh")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--venv", default="/tmp/nt-venv")
    p.add_argument("--no-nt", action="store_true", help="deeplimits only")
    p.add_argument("--nt-max-inputs", type=int, default=None,
                   help="skip NT for larger input counts (NT's tanh costs deg^2 per entry)")
    p.add_argument("--general", action="store_true",
                   help="also time deeplimits' general path (table=False) at L and depth = inf")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    os.environ.setdefault("JAX_PLATFORMS", args.device if args.device == "cpu" else "cuda")
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import deeplimits as dl

    if args.cases or args.inputs:
        cases = (args.cases or ",".join(CASES)).split(",")
        ns = [int(n) for n in (args.inputs or "256").split(",")]
        grid = [(c, n) for n in ns for c in cases]
    elif args.full:
        grid = [(c, n) for n in (256, 1024) for c in CASES]
    else:
        grid = QUICK
    meter = CompileMeter()
    git = lambda *a: subprocess.run(["git", "-C", str(HERE), *a], capture_output=True,
                                    text=True).stdout.strip()
    meta = {
        "deeplimits_commit": git("rev-parse", "--short", "HEAD"),
        "deeplimits_src_dirty": bool(git("status", "--porcelain", "--", "../src")),
        "deeplimits_file": dl.__file__,
        "jax": jax.__version__, "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()], "python": platform.python_version(),
        "cpus": os.cpu_count(), "load_start": os.getloadavg()[0],
        "time_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": vars(args),
    }
    print(f"deeplimits backend: {jax.default_backend()} ({meta['devices']})", flush=True)
    worker = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-nt-")
    if not args.no_nt:
        python = ensure_venv(Path(args.venv), args.device)
        worker = NTWorker(python, Path(tmp.name), "cuda" if args.device == "gpu" else "cpu")
        meta["nt"] = worker(op="info")
        print(f"neural-tangents {meta['nt']['neural_tangents']}, jax {meta['nt']['jax']}, "
              f"backend: {meta['nt']['backend']}", flush=True)

    rows = []
    L = args.depth
    for case, n in grid:
        spec = CASES[case]
        net = dl.ResNet(form="A", activation=spec["activation"], width=1, depth=L,
                        sigma_w=1.0, sigma_b=spec["sigma_b"],
                        input_layer=dl.InputLayer(dim=args.dim))
        x = inputs(n, args.dim, 0, args.equal_norms)
        xpath = Path(tmp.name) / f"x_{case}_{n}.npy"
        np.save(xpath, x)
        key = f"{case}_{n}"
        runners = {}
        if worker is not None and (args.nt_max_inputs is None or n <= args.nt_max_inputs):
            runners["nt"] = None
        variants = {"dl_L": dict(depth=L), "dl_inf": dict(depth=math.inf),
                    "dl_inf_small": dict(depth=math.inf, steps=args.steps_small)}
        if args.general:
            variants.update(dl_L_general=dict(depth=L, table=False),
                            dl_inf_general=dict(depth=math.inf, table=False))
        runners.update(variants)
        row = {"case": case, "inputs": n, "sigma_b": spec["sigma_b"], "depth": L,
               "equal_norms": args.equal_norms}
        first, steady, compile_s, compiles, out, info = {}, {}, {}, {}, {}, {}

        def dl_call(kw, net=net, x=x):
            return dl.kernel(net, x, **kw)

        # round 0: first calls (compile), in the interleaved order
        for name in runners:
            print(f"[{case} n={n}] first call {name} ...", flush=True)
            if name == "nt":
                r = worker(op="build", key=key, inputs=str(xpath), activation=spec["activation"],
                           depth=L, sigma_w=1.0, sigma_b=spec["sigma_b"], deg=args.tanh_deg)
                first[name], compile_s[name], compiles[name] = (r["first_call_s"],
                                                                r["compile_s"], r["compiles"])
                out[name] = (np.load(r["nngp"]), np.load(r["ntk"]))
            else:
                s0, c0 = meter.snapshot()
                t = time.perf_counter()
                k = dl_call(runners[name])
                first[name] = time.perf_counter() - t
                s1, c1 = meter.snapshot()
                compile_s[name], compiles[name] = s1 - s0, c1 - c0
                out[name] = (k.nngp, k.ntk)
                info[name] = dict(steps=k.steps, error=k.error, table_error=k.table_error)
            print(f"    {first[name]:.3g} s (compile {compile_s[name]:.3g} s, "
                  f"{compiles[name]} compilations)", flush=True)
        repeats = args.repeats
        if max(first.values()) > args.max_call_s:
            repeats = 1
        times = {name: [] for name in runners}
        steady_compiles = {name: 0 for name in runners}
        for rnd in range(repeats):
            for name in runners:
                if name == "nt":
                    r = worker(op="run", key=key)
                    times[name].append(r["seconds"])
                    steady_compiles[name] += r["compiles"]
                else:
                    c0 = meter.snapshot()[1]
                    t = time.perf_counter()
                    dl_call(runners[name])
                    times[name].append(time.perf_counter() - t)
                    steady_compiles[name] += meter.snapshot()[1] - c0
            print(f"[{case} n={n}] round {rnd + 1}/{repeats}: "
                  + ", ".join(f"{k} {v[-1]:.3g}s" for k, v in times.items()), flush=True)
        for name in runners:
            steady[name] = float(np.median(times[name]))
        if "nt" in runners:
            worker(op="drop", key=key)
        # accuracy
        errs = {}
        if "nt" in out:
            errs["dl_L_vs_nt"] = [scaled_error(out["dl_L"][i], out["nt"][i]) for i in (0, 1)]
        m = min(n, args.ref_inputs)
        print(f"[{case} n={n}] reference: depth=inf, {args.ref_steps} steps, {m} inputs ...",
              flush=True)
        t = time.perf_counter()
        ref = dl.kernel(net, x[:m], depth=math.inf, steps=args.ref_steps)
        ref_s = time.perf_counter() - t
        for name in [v for v in variants if v.startswith("dl_inf")]:
            errs[f"{name}_vs_ref"] = [scaled_error(out[name][i][:m, :m], r)
                                      for i, r in enumerate((ref.nngp, ref.ntk))]
        # L = 1000 against depth = inf: the O(1/L) gap of the finite network
        errs["dl_L_vs_ref"] = [scaled_error(out["dl_L"][i][:m, :m], r)
                               for i, r in enumerate((ref.nngp, ref.ntk))]
        if "dl_L_general" in out:  # the table against the general path, every entry
            errs["dl_L_vs_general"] = [scaled_error(out["dl_L"][i], out["dl_L_general"][i])
                                       for i in (0, 1)]
            errs["dl_inf_vs_general"] = [
                scaled_error(out["dl_inf"][i], out["dl_inf_general"][i]) for i in (0, 1)]
        row.update(first_call_s=first, compile_s=compile_s, compiles=compiles,
                   steady_s=steady, steady_all_s=times, steady_compiles=steady_compiles,
                   repeats=repeats, errors=errs, ref_steps=args.ref_steps, ref_inputs=m,
                   ref_seconds=ref_s, entries=n * n, steps_small=args.steps_small,
                   kernel_info=info)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("steady_s", "errors", "kernel_info")}),
              flush=True)
        if args.json:  # after every row, so that an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if worker is not None:
        worker.close()
    meta["load_end"] = os.getloadavg()[0]
    table = markdown(rows, args)
    print()
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    tmp.cleanup()
    return rows


def markdown(rows, args):
    has_nt = any("nt" in r["steady_s"] for r in rows)
    has_gen = any("dl_L_general" in r["steady_s"] for r in rows)
    head = ["case", "inputs"]
    if has_nt:
        head += [f"NT, L = {args.depth}"]
    head += [f"deeplimits, L = {args.depth}", "depth = inf (rtol 1e-9)"]
    if has_gen:
        head += ["general path: L; inf"]
    head += [f"depth = inf, {args.steps_small} steps",
             "first call / compile s (NT; dl L; dl inf)", "dl L vs NT (NNGP, NTK)",
             "inf err vs ref", "steps; est. error; table error (L; inf)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    e2 = lambda v: f"{v[0]:.1e}, {v[1]:.1e}"
    g = lambda v: "-" if v is None else f"{v:.1e}"
    for r in rows:
        s, f, c, e, info = (r["steady_s"], r["first_call_s"], r["compile_s"], r["errors"],
                            r.get("kernel_info", {}))
        nt = s.get("nt")
        ratio = lambda v, nt=nt: f"{fmt(v)} ({nt / v:.2f}x)" if nt else fmt(v)
        cells = [f"{r['case']}, sigma_b = {r['sigma_b']}", str(r["inputs"])]
        if has_nt:
            cells.append(fmt(nt))
        cells += [ratio(s["dl_L"]), ratio(s["dl_inf"])]
        if has_gen:
            cells.append(f"{fmt(s.get('dl_L_general'))}; {fmt(s.get('dl_inf_general'))}")
        cells.append(ratio(s["dl_inf_small"]))
        fc = "; ".join(f"{fmt(f[k])} / {fmt(c[k])}" for k in ("nt", "dl_L", "dl_inf") if k in f)
        inf = info.get("dl_inf", {})
        cells += [fc, e2(e["dl_L_vs_nt"]) if "dl_L_vs_nt" in e else "",
                  e2(e["dl_inf_vs_ref"]),
                  f"{inf.get('steps')}; {g(inf.get('error'))}; "
                  f"{g(info.get('dl_L', {}).get('table_error'))}; {g(inf.get('table_error'))}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
