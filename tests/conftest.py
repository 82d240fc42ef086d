"""Under pytest-xdist, each worker runs on its own share of the cores (as local sweep
workers do): XLA and BLAS would otherwise each start a thread per core in every worker,
and the oversubscribed pools spin."""

import os

from deeplimits._core.workers import core_shares, pin


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
