"""Sweeps: deterministic cells, executors that agree bit for bit, a store that survives
SIGKILL, failures reported and retried, and bad input refused before any work."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from deeplimits.experiments.store import ResultStore, load_dataset
from deeplimits.experiments.sweeps import (
    DaskExecutor,
    Study,
    Sweep,
    collect,
    get_executor,
    register_study,
    run_sweep,
    save_collected,
)

TINY = {"study": "forward", "seeds": [0, 1], "grid": {"width": [2, 3]},
        "config": {"depth": 8, "samples": 64}}


def _values(folder):
    """Every stored cell's data, by key (attributes such as timings excluded)."""
    out = {}
    for path in sorted((folder / "data").glob("*.nc")):
        ds = load_dataset(path)
        out[path.stem] = {k: v.values for k, v in ds.data_vars.items()}
    return out


def test_cells_are_deterministic_and_distinct():
    sweep = Sweep.from_dict(TINY)
    a, b = sweep.cells(), Sweep.from_dict(json.loads(json.dumps(TINY))).cells()
    assert [c.key for c in a] == [c.key for c in b] and len({c.key for c in a}) == 4
    assert a[0].key.startswith("forward-2-s0-")
    keys = [np.asarray(__import__("jax").random.key_data(c.jax_key())) for c in a]
    assert len({k.tobytes() for k in keys}) == 4  # no two cells share randomness
    # the fixed parameters enter the identity: another depth is another cell
    other = Sweep.from_dict(TINY | {"config": {"depth": 9, "samples": 64}}).cells()
    assert not {c.key for c in a} & {c.key for c in other}


def test_executors_agree_bit_for_bit_and_collect(tmp_path):
    sweep = Sweep.from_dict(TINY)
    serial = run_sweep(sweep, tmp_path / "serial", executor="inprocess", progress=False)
    assert len(serial.computed) == 4 and serial.complete
    with_dask = run_sweep(sweep, tmp_path / "dask", executor=DaskExecutor(workers=2),
                          progress=False)
    assert with_dask.complete
    a, b = _values(tmp_path / "serial"), _values(tmp_path / "dask")
    assert a.keys() == b.keys()
    for key in a:
        for name in a[key]:
            np.testing.assert_array_equal(a[key][name], b[key][name])
    ds = collect(tmp_path / "serial")
    assert dict(ds.sizes) == {"width": 2, "seed": 2, "quantile": 9}
    assert ds.attrs["cells_finished"] == 4 and "version_deeplimits" in ds.attrs
    # netCDF and Zarr hold the same numbers
    for name in ("c.nc", "c.zarr"):
        back = load_dataset(save_collected(ds, tmp_path / name))
        xr.testing.assert_equal(back.log_norm_var, ds.log_norm_var)
    # rerunning computes nothing
    again = run_sweep(sweep, tmp_path / "serial", executor="inprocess", progress=False)
    assert again.computed == () and len(again.skipped) == 4


def test_local_processes_match_in_process(tmp_path):
    sweep = Sweep.from_dict(TINY | {"seeds": [0]})
    run_sweep(sweep, tmp_path / "a", executor="inprocess", progress=False)
    run_sweep(sweep, tmp_path / "b", executor=get_executor("local", workers=2), progress=False)
    a, b = _values(tmp_path / "a"), _values(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key]["neuron_quantile"], b[key]["neuron_quantile"])


SPEC = """
study = "forward"
seeds = [0, 1, 2, 3]
[grid]
width = [2, 3, 4]
[config]
depth = 64
samples = 4000
"""


def test_sigkill_then_rerun_completes_only_the_missing_cells(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from deeplimits.cli import app; app()", "sweep", str(spec),
           "--out", str(out), "--executor", "inprocess", "--collect", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while len(list((out / "data").glob("*.nc"))) < 3:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    survived = {p.stem for p in (out / "data").glob("*.nc")}
    assert 3 <= len(survived) < 12, "the kill must land mid-sweep"
    for key in survived:  # every visible file is a complete dataset
        assert "log_norm_var" in load_dataset(out / "data" / f"{key}.nc")
    ran = []
    report = run_sweep(Sweep.from_toml(spec), out, executor="inprocess", progress=False,
                       on_cell=lambda cell, outcome: ran.append(cell.key))
    assert set(ran) == {c.key for c in report.cells} - survived  # exactly the missing ones
    assert report.complete and not list((out / "data").glob(".*.tmp"))
    # and the resumed results equal an uninterrupted run's
    clean = tmp_path / "clean"
    run_sweep(Sweep.from_toml(spec).__class__(**{**Sweep.from_toml(spec).__dict__,
                                                 "seeds": (0,)}), clean,
              executor="inprocess", progress=False)
    resumed, fresh = _values(out), _values(clean)
    for key in fresh:
        np.testing.assert_array_equal(resumed[key]["neuron_quantile"],
                                      fresh[key]["neuron_quantile"])


_FAIL = {"armed": True}


def _flaky(cell):
    if cell.parameters["x"] == 2 and _FAIL["armed"]:
        raise RuntimeError("cell two is broken")
    return xr.Dataset({"y": cell.parameters["x"] ** 2})


register_study(Study("test-flaky", _flaky, {"x": 0}))


def test_failed_cells_are_reported_kept_out_and_retried_on_request(tmp_path):
    sweep = Sweep("test-flaky", grid={"x": [1, 2, 3]})
    _FAIL["armed"] = True
    first = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    (key,) = first.failed
    assert "cell two is broken" in first.failed[key] and len(first.computed) == 2
    record = ResultStore(tmp_path).failure(key)
    assert record["params"]["x"] == 2 and "RuntimeError" in record["traceback"]
    assert ResultStore(tmp_path).manifest()["cells"][key]["status"] == "failed"
    _FAIL["armed"] = False
    skipped = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    assert skipped.computed == () and key in skipped.failed  # not retried unasked
    partial = collect(tmp_path)
    assert np.isnan(partial.y.sel(x=2, seed=0)) and partial.y.sel(x=3, seed=0) == 9
    retried = run_sweep(sweep, tmp_path, executor="inprocess", progress=False,
                        retry_failed=True)
    assert retried.computed == (key,) and retried.complete
    assert ResultStore(tmp_path).failure(key) is None


register_study(Study("test-config-attr", lambda cell: xr.Dataset(
    {"y": cell.parameters["x"]}, attrs={"config": "mine", "seed": cell.seed}), {"x": 0}))


def test_a_study_attribute_that_provenance_would_overwrite_fails_the_cell(tmp_path):
    """The store writes ``config``, ``seed``, versions ... into every cell: a study's own
    attribute of that name with another value would be silently lost, so the cell fails and
    says so (the same value, as a claim's ``seed``, is fine)."""
    report = run_sweep(Sweep("test-config-attr", grid={"x": [1]}), tmp_path,
                       executor="inprocess", progress=False)
    (error,) = report.failed.values()
    assert "['config']" in error and "provenance" in error and report.computed == ()


@pytest.mark.parametrize("spec, message", [
    ({"study": "nope"}, "unknown study"),
    ({"study": "forward", "grid": {"colour": [1]}}, "not a parameter of study"),
    ({"study": "forward", "grid": {"width": []}}, "non-empty list"),
    ({"study": "forward", "seeds": [-1]}, "non-negative integers"),
    ({"study": "forward", "grid": {"width": [0]}}, "width"),
    ({"study": "forward", "grid": {"depth": [4]}, "config": {"depth": 4}}, "both in grid"),
    ({"study": "claim"}, "needs ['claim']"),
    ({"study": "claim", "grid": {"claim": ["Z9"]}}, "unknown claim"),
    ({"study": "forward", "speed": 3}, "unknown sweep entries"),
])
def test_bad_sweeps_are_refused_before_any_work(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_sweep(Sweep.from_dict(spec), tmp_path / "out", executor="inprocess")
    assert not (tmp_path / "out").exists()


def test_folder_of_another_version_and_unreachable_scheduler(tmp_path):
    old = tmp_path / "old"
    (old / "data").mkdir(parents=True)
    manifest = {"deeplimits_version": "0.0.1", "cells": {}}
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="written by deeplimits 0.0.1"):
        run_sweep(Sweep.from_dict(TINY), old, executor="inprocess")
    assert json.loads((old / "manifest.json").read_text()) == manifest
    assert not list((old / "data").iterdir())
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        run_sweep(Sweep.from_dict(TINY), tmp_path / "new",
                  executor=DaskExecutor("tcp://127.0.0.1:9", timeout=1))
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="needs the dask executor"):
        get_executor("local", scheduler="tcp://127.0.0.1:9")


# --------------------------------------------------------------------------------------
# issue 19 item 8: output files follow the umask, as any other program's would
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    from deeplimits.experiments.store import save_dataset, write_json

    old = os.umask(umask)
    try:
        run_sweep(Sweep("test-flaky", grid={"x": [1, 3]}), tmp_path / "run",
                  executor="inprocess", progress=False)
        files = [*(tmp_path / "run" / "data").glob("*.nc"), tmp_path / "run" / "manifest.json",
                 save_dataset(xr.Dataset({"y": 1.0}), tmp_path / "one.nc"),
                 write_json(tmp_path / "one.json", {"a": 1})]
    finally:
        os.umask(old)
    assert len(files) == 5
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


# --------------------------------------------------------------------------------------
# issue 19 item 4: a cell is known by what its activation computes, not by its name
# --------------------------------------------------------------------------------------
def test_a_callable_parameter_is_refused_naming_it():
    import jax.numpy as jnp

    for spec in ({"grid": {"activation": ["relu", jnp.tanh]}},
                 {"config": {"activation": lambda x: x}}):
        with pytest.raises(TypeError, match="'activation' is a callable.*register_activation"):
            Sweep("forward", **spec).validate()
    with pytest.raises(TypeError, match="'width' is a object"):
        Sweep("forward", config={"width": object()}).validate()


def test_an_activation_registered_again_under_its_name_makes_new_cells(tmp_path):
    import jax.numpy as jnp

    from deeplimits.spec.activations import Activation, register_activation

    name = "test-redefined"
    sweep = Sweep("forward", grid={"activation": [name]},
                  config={"depth": 4, "samples": 16, "width": 2})
    register_activation(Activation(name, jnp.tanh), overwrite=True)
    first = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    again = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    assert len(first.computed) == 1 and again.computed == ()  # same function: reused
    register_activation(Activation(name, lambda x: jnp.tanh(x) + 1e-6 * x), overwrite=True)
    redefined = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    assert len(redefined.computed) == 1 and redefined.skipped == ()  # not the stale result
    assert redefined.computed != first.computed
    # the same function object again (another Activation) finds its cell
    register_activation(Activation(name, jnp.tanh), overwrite=True)
    assert run_sweep(sweep, tmp_path, executor="inprocess", progress=False).computed == ()


# --------------------------------------------------------------------------------------
# issue 19 item 7: kill and Ctrl-C end the workers, say how to resume, manifest agrees
# --------------------------------------------------------------------------------------
SLOW_SPEC = """
study = "forward"
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
[grid]
width = [2, 3]
[config]
depth = 64
samples = 4000
"""


def _start_sweep(tmp_path, *args):
    spec = tmp_path / "s.toml"
    spec.write_text(SLOW_SPEC)
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from deeplimits.cli import app; app()", "sweep", str(spec),
           "--out", str(out), "--collect", "none", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, out


def _wait_for_cells(proc, out, count, seconds=240):
    deadline = time.monotonic() + seconds
    while len(list((out / "data").glob("*.nc"))) < count:
        assert proc.poll() is None, f"the sweep ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.02)


def _manifest_agrees(out):
    files = {p.stem for p in (out / "data").glob("*.nc")}
    cells = json.loads((out / "manifest.json").read_text())["cells"]
    assert len(cells) == 16
    for key, entry in cells.items():
        assert (entry["status"] == "done") == (key in files), (key, entry["status"])
    return files


@pytest.mark.parametrize("how", ["kill", pytest.param("ctrl-c", marks=pytest.mark.slow)])
def test_a_signal_ends_the_workers_says_how_to_resume_and_the_manifest_agrees(tmp_path, how):
    import psutil

    proc, out = _start_sweep(tmp_path, "--executor", "local", "--workers", "2")
    try:
        _wait_for_cells(proc, out, 1)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers, "the local executor runs worker processes"
        if how == "kill":
            os.kill(proc.pid, signal.SIGTERM)  # `kill PID`: the sweep's process only
        else:
            os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the process group
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    (line,) = [t for t in stderr.splitlines() if "rerun" in t]  # one line, not wrapped
    assert "rerun the same command to compute the other" in line
    gone = psutil.wait_procs(workers, timeout=30)[1]
    assert not gone, f"workers left running: {gone}"
    finished = _manifest_agrees(out)
    assert 1 <= len(finished) < 16


@pytest.mark.slow
def test_workers_die_with_a_sweep_killed_by_sigkill(tmp_path):
    """No handler runs on SIGKILL: the workers are told by the kernel (PR_SET_PDEATHSIG),
    and the next run brings the manifest back in line with the files."""
    import psutil

    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux only")
    proc, out = _start_sweep(tmp_path, "--executor", "local", "--workers", "2")
    try:
        _wait_for_cells(proc, out, 1)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    gone = psutil.wait_procs(workers, timeout=30)[1]
    assert not gone, f"workers left running: {gone}"
    ResultStore(out).open()  # what any later run does first
    _manifest_agrees(out)


# --------------------------------------------------------------------------------------
# issue 19 item 13: a categorical axis is not joined by lines, and the x axis is chosen
# --------------------------------------------------------------------------------------
def _collected():
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"v": (("activation", "width", "seed"), rng.normal(size=(2, 3, 2)))},
        coords={"activation": ["relu", "tanh"], "width": [2, 4, 8], "seed": [0, 1]},
        attrs={"cells_total": 12, "cells_finished": 12})


def test_sweep_figure_puts_a_numeric_axis_on_x_and_never_joins_categories(tmp_path):
    from typer.testing import CliRunner

    from deeplimits.cli import app
    from deeplimits.experiments.figures import sweep_figure

    ds = _collected()
    def data_lines(ax):  # the line of each errorbar series (not its caps and bars)
        return [container.lines[0] for container in ax.containers]

    (ax, *_) = sweep_figure(ds).axes  # default: the numeric axis, points joined
    assert ax.get_xlabel() == "width" and len(data_lines(ax)) == 2
    assert all(line.get_linestyle() == "-" for line in data_lines(ax))
    np.testing.assert_array_equal(data_lines(ax)[0].get_xdata(), [2, 4, 8])
    (ax, *_) = sweep_figure(ds, x="activation").axes
    assert ax.get_xlabel() == "activation" and len(data_lines(ax)) == 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "tanh"]
    assert all(line.get_linestyle() == "None" for line in data_lines(ax))
    with pytest.raises(ValueError, match="x must be one of the sweep's grid axes"):
        sweep_figure(ds, x="depth")
    path = tmp_path / "c.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    result = CliRunner().invoke(app, ["plot", str(path), "--x", "activation"])
    assert result.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 1000
    result = CliRunner().invoke(app, ["plot", str(path), "--x", "colour"])
    assert result.exit_code == 2 and "grid axes" in result.output


@pytest.mark.parametrize("study, grid, config, variable", [
    ("gradient", {"width": [2, 3]}, {"depth": 4, "samples": 16}, "weight_grad_sq_mean"),
    ("paths", {"width": [2, 3]}, {"depth": 4, "samples": 16}, "log_norm_var"),
])
def test_the_gradient_and_finite_width_studies_sweep_and_collect(tmp_path, study, grid, config,
                                                                 variable):
    report = run_sweep(Sweep(study, grid=grid, seeds=(0, 1), config=config), tmp_path,
                       executor="inprocess", progress=False)
    assert report.complete and len(report.computed) == 4
    ds = collect(tmp_path)
    assert dict(ds[variable].sizes) == {"width": 2, "seed": 2}
    assert np.all(np.isfinite(ds[variable]))
    with pytest.raises(ValueError, match="samples must be an integer >= 2"):
        Sweep(study, config={"samples": 1}).validate()


def test_collect_when_only_the_seed_varies(tmp_path):
    """A sweep over seeds alone collects to a dataset with a seed dimension (it raised
    'cannot unstack dimensions that do not have exactly one multi-index')."""
    sweep = Sweep("forward", grid={"width": [4]}, seeds=[0, 1, 2],
                  config={"depth": 16, "samples": 50})
    run_sweep(sweep, tmp_path / "r", executor="inprocess", progress=False)
    ds = collect(tmp_path / "r")
    assert ds.sizes["seed"] == 3 and list(ds.seed.values) == [0, 1, 2]
    assert "cell" not in ds.dims
