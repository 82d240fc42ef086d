"""neural-tangents side of ``bench_kernels_nt.py`` (issue 18); runs in its own venv.

Never imported by deeplimits: ``bench_kernels_nt.py`` starts it with the venv's Python as
``python _nt_worker.py DIR`` and drives it over stdin/stdout, one line per job, the data
going through files in ``DIR`` (JSON in, JSON and ``.npy`` out):

* parent writes ``DIR/job_<n>.json`` and sends the line ``<n>``;
* worker runs the job, writes ``DIR/result_<n>.json`` (and kernels as ``.npy``) and prints
  ``done <n>``; the line ``quit`` ends it.

Jobs (``"op"``):

* ``"info"``: versions and ``jax.default_backend()``;
* ``"build"``: builds the network of a case and jit-compiles its NNGP + NTK for the inputs in
  ``inputs`` (an ``.npy`` path); reports trace+compile seconds, the first call (compile and
  one run) and the number of compilations, and saves the kernels;
* ``"run"``: one steady-state call of a built case, timed.

The network is the one of ``deeplimits.ResNet(form="A", input_layer=InputLayer(d))`` with
the state readout, written as NT users write a ResNet, with ``stax.repeat``::

    block = serial(FanOut(2), parallel(Identity(), serial(act, Dense(n, sigma_w/sqrt(L),
                                                                     sigma_b/sqrt(L)))),
                   FanInSum())
    net = serial(Dense(n, W_std=1), repeat(block, L), Dense(1, W_std=1))

(NTK parametrisation, no input-layer or readout bias.)
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", module="neural_tangents")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import monitoring  # noqa: E402
from neural_tangents import stax  # noqa: E402

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_METER = {"seconds": 0.0, "compiles": 0}


def _listener(event, duration, **_):
    if event in _COMPILE_EVENTS:
        _METER["seconds"] += duration
        if event == _COMPILE_EVENTS[-1]:
            _METER["compiles"] += 1


monitoring.register_event_duration_secs_listener(_listener)


def activation(name: str, deg: int):
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()  # a * erf(b x) + c with a = b = 1, c = 0: deeplimits' "erf"
    if name == "tanh":
        return stax.ElementwiseNumerical(jnp.tanh, deg=deg)
    raise ValueError(f"no NT activation for {name!r}")


def resnet(act_name, depth, sigma_w, sigma_b, deg, width=512):
    dt = 1.0 / depth
    branch = stax.serial(activation(act_name, deg),
                         stax.Dense(width, W_std=sigma_w * math.sqrt(dt),
                                    b_std=sigma_b * math.sqrt(dt)))
    block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch),
                        stax.FanInSum())
    return stax.serial(stax.Dense(width, W_std=1.0), stax.repeat(block, depth),
                       stax.Dense(1, W_std=1.0))


_BUILT = {}


def _call(fn, x):
    out = fn(x)
    out.nngp.block_until_ready()
    out.ntk.block_until_ready()
    return out


def run_job(job, workdir):
    op = job["op"]
    if op == "info":
        import importlib.metadata as md
        return {"jax": jax.__version__, "jaxlib": md.version("jaxlib"),
                "neural_tangents": md.version("neural-tangents"),
                "numpy": np.__version__, "backend": jax.default_backend(),
                "devices": [str(d) for d in jax.devices()], "python": sys.version.split()[0]}
    if op == "build":
        x = jnp.asarray(np.load(job["inputs"]), jnp.float64)
        _, _, kernel_fn = resnet(job["activation"], job["depth"], job["sigma_w"],
                                 job["sigma_b"], job.get("deg", 25))
        fn = jax.jit(lambda x: kernel_fn(x, None, ("nngp", "ntk")))
        before = dict(_METER)
        t = time.perf_counter()
        compiled = fn.lower(x).compile()
        lower_compile = time.perf_counter() - t
        t = time.perf_counter()
        out = _call(compiled, x)
        first_run = time.perf_counter() - t
        _BUILT[job["key"]] = (compiled, x)
        stem = os.path.join(workdir, f"nt_{job['key']}")
        np.save(stem + "_nngp.npy", np.asarray(out.nngp))
        np.save(stem + "_ntk.npy", np.asarray(out.ntk))
        return {"compile_s": lower_compile, "first_run_s": first_run,
                "first_call_s": lower_compile + first_run,
                "compile_events_s": _METER["seconds"] - before["seconds"],
                "compiles": _METER["compiles"] - before["compiles"],
                "nngp": stem + "_nngp.npy", "ntk": stem + "_ntk.npy"}
    if op == "run":
        compiled, x = _BUILT[job["key"]]
        before = dict(_METER)
        t = time.perf_counter()
        _call(compiled, x)
        return {"seconds": time.perf_counter() - t,
                "compiles": _METER["compiles"] - before["compiles"]}
    if op == "drop":
        _BUILT.pop(job["key"], None)
        return {}
    raise ValueError(f"unknown op {op!r}")


def _exit_with_parent():
    """End this process if the benchmark that started it dies (it may be mid-job)."""
    import threading
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def main(workdir):
    _exit_with_parent()
    print("ready", flush=True)
    for line in sys.stdin:
        n = line.strip()
        if not n:
            continue
        if n == "quit":
            break
        with open(os.path.join(workdir, f"job_{n}.json")) as f:
            job = json.load(f)
        try:
            result = {"ok": True, **run_job(job, workdir)}
        except Exception as e:  # reported to the parent, which raises
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        with open(os.path.join(workdir, f"result_{n}.json"), "w") as f:
            json.dump(result, f)
        print(f"done {n}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
