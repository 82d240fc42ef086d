"""Sweeps under the faults of real machines and clusters (issue 17): a Dask worker killed
mid-sweep, two sweeps started on one folder, a full disk or a read-only folder, and a
scheduler that goes away. Each ends with a clear error or a finished sweep, and a results
folder that is consistent: every cell file loads, each cell is written once, the manifest
agrees with the files, and a rerun completes exactly the missing cells."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import xarray as xr

from deeplimits.experiments.store import ResultStore, load_dataset
from deeplimits.experiments.sweeps import DaskExecutor, SchedulerLost, Sweep, run_sweep

SMALL = Sweep("forward", grid={"width": [2, 3]}, seeds=tuple(range(6)),
              config={"depth": 32, "samples": 2000})


def _consistent(out, sweep=SMALL):
    """Every cell file loads, and the manifest's statuses are the files'."""
    files = {p.stem for p in (out / "data").glob("*.nc")}
    assert not list((out / "data").glob(".*")), "a temporary file was left behind"
    for key in files:
        assert "log_norm_var" in load_dataset(out / "data" / f"{key}.nc")
    cells = json.loads((out / "manifest.json").read_text())["cells"]
    assert set(cells) == {c.key for c in sweep.cells()}
    for key, entry in cells.items():
        assert (entry["status"] == "done") == (key in files), (key, entry["status"])
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_gone_mid_sweep_is_a_clear_error_and_finished_cells_are_kept(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    scheduler = subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port",
                                  str(port), "--no-dashboard"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(["dask", "worker", address, "--nthreads", "1", "--nworkers",
                               "1", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []

    def kill_scheduler(cell, outcome):
        seen.append(cell.key)
        if len(seen) == 2:
            scheduler.send_signal(signal.SIGKILL)

    try:
        with pytest.raises(SchedulerLost, match=f"lost the Dask scheduler at {address}"):
            run_sweep(SMALL, tmp_path / "run", executor=DaskExecutor(address, timeout=60),
                      progress=False, on_cell=kill_scheduler)
    finally:
        for proc in (worker, scheduler):
            proc.kill()
            proc.wait()
    finished = _consistent(tmp_path / "run")
    assert set(seen) <= finished | set(seen) and 2 <= len(finished) < 12
    assert finished <= set(seen)


def test_a_dask_worker_killed_mid_sweep_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL one of two LocalCluster workers after the second cell: the nanny restarts
    it, the scheduler reruns its task, and every cell is written exactly once."""
    executor = DaskExecutor(workers=2)
    arrived, killed = [], []

    def kill_a_worker(cell, outcome):
        arrived.append(cell.key)
        if len(arrived) == 2:
            pids = executor.client.run(os.getpid)  # worker address -> pid
            pid = next(iter(pids.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    report = run_sweep(SMALL, tmp_path / "run", executor=executor, progress=False,
                       on_cell=kill_a_worker)
    assert killed and report.complete and not report.failed
    assert sorted(arrived) == sorted(c.key for c in SMALL.cells())  # each cell once
    assert len(_consistent(tmp_path / "run")) == 12


QUICK = Sweep("forward", grid={"width": [2, 3]}, seeds=(0, 1, 2),
              config={"depth": 4, "samples": 32})


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "the disk is full"),
                                        (errno.EACCES, "permission denied")])
def test_a_write_that_fails_is_a_clear_error_no_partial_file_and_a_rerun_completes(
        tmp_path, monkeypatch, code, says):
    """The third cell's write fails half-way (bytes already on disk): the error names the
    file and the cause, nothing partial is left, and the rerun computes only the rest."""
    writes = []
    real = xr.Dataset.to_netcdf

    def failing(self, path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 3:
            with open(path, "wb") as f:
                f.write(b"\x89HDF half a file")
            raise OSError(code, os.strerror(code))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing)
    out = tmp_path / "run"
    with pytest.raises(OSError, match=f"cannot write {out}/data/.*\\.nc: {says}") as info:
        run_sweep(QUICK, out, executor="inprocess", progress=False)
    assert info.value.errno == code and "rerun" in str(info.value)
    assert len(_consistent(out, QUICK)) == 2  # the two cells before the fault, intact
    monkeypatch.setattr(xr.Dataset, "to_netcdf", real)
    ran = []
    report = run_sweep(QUICK, out, executor="inprocess", progress=False,
                       on_cell=lambda cell, outcome: ran.append(cell.key))
    assert report.complete and len(ran) == 4 and len(report.skipped) == 2
    assert len(_consistent(out, QUICK)) == 6


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Tests run as root, where chmod does not stop a write: the folder's refusal is
    simulated at the system call that creates files (mkstemp), as EACCES."""
    import tempfile

    from typer.testing import CliRunner

    from deeplimits.cli import app

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    ran = []
    with pytest.raises(PermissionError, match="cannot write into the results folder"):
        run_sweep(QUICK, tmp_path / "run", executor="inprocess", progress=False,
                  on_cell=lambda cell, outcome: ran.append(cell))
    assert ran == [] and not list((tmp_path / "run" / "data").glob("*"))
    spec = tmp_path / "s.toml"
    spec.write_text('study = "forward"\n[config]\ndepth = 4\nsamples = 32\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "cli"),
                                      "--executor", "inprocess"])
    assert result.exit_code == 1 and "permission denied" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_second_sweep_on_a_folder_in_use_is_refused_clearly(tmp_path):
    from typer.testing import CliRunner

    from deeplimits.cli import app

    out = tmp_path / "run"
    spec = tmp_path / "s.toml"
    spec.write_text('study = "forward"\n[config]\ndepth = 4\nsamples = 32\n')
    with ResultStore(out).lock():  # another sweep holds the folder
        with pytest.raises(ValueError, match="is in use by another deeplimits sweep \\(pid"):
            run_sweep(QUICK, out, executor="inprocess", progress=False)
        result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(out),
                                          "--executor", "inprocess"])
        assert result.exit_code == 2 and "in use by another deeplimits sweep" in result.output
        assert not (out / "data").exists()
    assert run_sweep(QUICK, out, executor="inprocess", progress=False).complete


def test_two_sweep_processes_on_one_folder_end_consistent(tmp_path):
    """Started together: either one refuses (status 2, saying the folder is in use) while
    the other computes everything, or the second starts after the first and finds every
    cell done; never two writers."""
    spec = tmp_path / "s.toml"
    spec.write_text('study = "forward"\nseeds = [0, 1, 2]\n[grid]\nwidth = [2, 3]\n'
                    '[config]\ndepth = 4\nsamples = 32\n')
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from deeplimits.cli import app; app()", "sweep", str(spec),
           "--out", str(out), "--executor", "inprocess", "--collect", "none"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("in use by another deeplimits sweep" in " ".join(text.split())
                   for _, text in results), results
    assert len(_consistent(out, QUICK)) == 6


def test_a_folder_being_created_by_a_sweep_reads_as_in_use_not_foreign(tmp_path):
    """The race of the test above, made deterministic: a sweep holds the folder and has made
    ``data/`` but not yet its manifest. Another process's check says "in use"; the holder's
    own check, and anyone's once the lock is gone, say "no manifest"."""
    out = tmp_path / "run"
    holder = ResultStore(out)
    with holder.lock():
        (out / "data").mkdir()
        probe = ("from deeplimits.experiments.store import ResultStore\n"
                 f"ResultStore({str(out)!r}).check()")
        other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert other.returncode == 1 and "is in use by another deeplimits sweep" in other.stderr
        with pytest.raises(ValueError, match="has results but no manifest"):
            holder.check()
    with pytest.raises(ValueError, match="has results but no manifest"):
        ResultStore(out).check()


def test_an_interrupt_sent_from_another_thread_waits_until_the_file_is_in_place(tmp_path):
    """A process signal may be delivered to any thread (XLA's, an executor's); Python then
    runs the handler in the main thread at once, so a mask set in the main thread alone
    does not hold it. ``atomic_path`` holds it until the file is renamed into place."""
    import threading
    import time

    from deeplimits.experiments.store import atomic_path

    target = tmp_path / "cell.nc"
    inside = threading.Event()

    def send():
        inside.wait(10)
        os.kill(os.getpid(), signal.SIGINT)  # lands on a thread that does not block it

    sender = threading.Thread(target=send)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            inside.set()
            sender.join(10)
            time.sleep(0.2)  # the handler would run here, inside the write
            tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert not list(tmp_path.glob(".*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_signal_reaches_the_handler_it_would_have_reached(tmp_path):
    from deeplimits.experiments.store import signals_held

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)  # default handler: KeyboardInterrupt, later
            assert seen == []
            seen.append("inside")
    except KeyboardInterrupt:
        seen.append("interrupt")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["inside", signal.SIGTERM, "interrupt"]
