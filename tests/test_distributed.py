"""Kernels computed tile by tile on a Dask LocalCluster agree with the in-process ones."""

import math

import numpy as np
import pytest

import deeplimits as dl
from deeplimits._core.dask import dask_client
from deeplimits.wide.distributed import distributed_kernel


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def test_local_cluster_matches_in_process_and_writes_zarr(client, tmp_path):
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((37, 6)), rng.standard_normal((23, 6))
    net = dl.ResNet(width=6, depth=50, form="C", activation="erf", sigma_b=0.3)
    ref = dl.kernel(net, x1, x2, depth=math.inf)
    got = distributed_kernel(net, x1, x2, math.inf, client=client, tile=10)
    np.testing.assert_allclose(got.nngp, ref.nngp, rtol=1e-13)
    np.testing.assert_allclose(got.ntk, ref.ntk, rtol=1e-13)
    z = distributed_kernel(net, x1, x2, 20, client=client, tile=16,
                           zarr_path=tmp_path / "k.zarr", compute_ntk=False)
    import zarr

    stored = zarr.open_group(str(tmp_path / "k.zarr"), mode="r")
    np.testing.assert_allclose(stored["nngp"][:], dl.nngp(net, x1, x2, depth=20), rtol=1e-13)
    assert z.ntk is None and "ntk" not in stored


def test_unreachable_scheduler_is_a_clear_error_and_writes_nothing(tmp_path):
    net = dl.ResNet(width=3, depth=5, form="C", activation="relu")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        distributed_kernel(net, np.ones((2, 3)), scheduler="tcp://127.0.0.1:1", tile=4,
                           timeout=2, zarr_path=tmp_path / "k.zarr")
    assert not (tmp_path / "k.zarr").exists()


def test_bad_inputs_fail_before_a_cluster_starts():
    net = dl.ResNet(width=3, depth=5, form="C", activation="relu")
    with pytest.raises(ValueError, match="NaN"):
        distributed_kernel(net, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="tile"):
        distributed_kernel(net, np.ones((2, 3)), tile=0)
