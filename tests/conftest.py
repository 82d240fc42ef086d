"""Under pytest-xdist, each worker runs on its own share of the cores (as local sweep
workers do): XLA and BLAS would otherwise each start a thread per core in every worker,
and the oversubscribed pools spin."""

import os
import shutil
import tempfile

# One persistent JAX compilation cache per test run, shared by the xdist workers and by the
# processes the tests start (CLI, local and dask sweep workers inherit the environment).
# Programs that several processes compile, and jitted closures that a library function
# re-creates on every call (same HLO, new Python function), then compile once per run. The
# folder is new and empty for every run, so the suite is timed from a cold cache, as on a
# fresh CI machine; set JAX_COMPILATION_CACHE_DIR yourself (empty: no cache) to override.
# It is set here, at import, before jax is imported and before xdist starts its workers.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="deeplimits-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

from deeplimits._core.workers import core_shares, pin  # noqa: E402


def pytest_configure(config):
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...
    if worker:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        pin(core_shares(count)[int(worker[2:]) % count])


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when the marker expression names them (``-m slow``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    import pytest

    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# Hypothesis profiles for the property-based tests (tests/test_fuzz_*.py): "ci" runs in the
# default suite (25 examples per test, no deadline: the first example of a test compiles
# JAX code, and the machine is shared; derandomized, so that CI sees the same examples on
# every run and a red run is a change, not a new draw); "slow" (300 random examples, a new
# draw each run: the exploring profile) is chosen by `pytest -m slow` or
# HYPOTHESIS_PROFILE=slow.
try:
    from hypothesis import HealthCheck
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile(
        "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hypothesis_settings.register_profile(
        "slow", max_examples=300, deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a test extra; tests that need it import it themselves
    pass


def pytest_sessionstart(session):
    """``-m slow`` selects the larger hypothesis profile (unless HYPOTHESIS_PROFILE says)."""
    if "slow" in (session.config.getoption("markexpr") or "") and \
            "HYPOTHESIS_PROFILE" not in os.environ:
        try:
            from hypothesis import settings
        except ImportError:
            return
        settings.load_profile("slow")


def pytest_unconfigure(config):
    """The process that made the run's compilation cache removes it (xdist workers share
    the controller's folder and leave it alone)."""
    if _OWN_CACHE is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
