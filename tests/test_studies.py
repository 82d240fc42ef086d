"""Experiments as cells of the one sweep machinery: the regression table, ``simulate`` and
trained networks run as studies, and the registries that name samplers and executors."""

from __future__ import annotations

import numpy as np
import pytest

import deeplimits as dl
from deeplimits.experiments.regression import regression_table
from deeplimits.experiments.store import load_dataset
from deeplimits.experiments.sweeps import (
    EXECUTORS,
    InProcess,
    Sweep,
    get_executor,
    register_executor,
    run_sweep,
)
from deeplimits.simulation.samplers import ExactSampler, get_sampler, register_sampler


def test_a_regression_sweep_gives_the_rows_of_the_table(tmp_path):
    # the baselines on wine: cheap, and exactly what the table's own cells compute
    table = regression_table(("wine",), models=(), seed=3)
    report = run_sweep(Sweep("regression", grid={"model": ["ridge", "rbf-gp"]},
                             config={"dataset": "wine"}, seeds=(3,)),
                       tmp_path, executor="inprocess", progress=False)
    assert report.complete and not report.failed
    cells = sorted(tmp_path.rglob("*.nc"))
    assert len(cells) == 2
    for path in cells:
        ds = load_dataset(path)
        for row in ds.model.values:
            assert float(ds.score.sel(model=row)) == float(table.score.sel(dataset="wine",
                                                                           model=row))
        assert ds.pred.shape[1] == int(table.n_test.sel(dataset="wine"))


def test_a_bad_regression_cell_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'iris'"):
        Sweep("regression", config={"dataset": "iris", "model": "A"}).cells()
    with pytest.raises(ValueError, match="unknown kernel model 'D'"):
        Sweep("regression", config={"dataset": "wine", "model": "D"}).cells()
    with pytest.raises(ValueError, match="kernel model B .*with activation .relu."):
        Sweep("regression", config={"dataset": "wine", "model": "B",
                                    "activation": "relu"}).cells()
    assert not any(tmp_path.iterdir())


def test_simulate_as_a_study_equals_the_function(tmp_path):
    from deeplimits.experiments.simulate import default_inputs, simulate

    sweep = Sweep("simulate", config={"width": 3, "depth": 16, "samples": 50}, seeds=(2,))
    run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    ds = load_dataset(next(tmp_path.rglob("*.nc")))
    net = dl.ResNet(width=3, depth=16, activation="relu")
    direct = simulate(net, default_inputs(3, 1, 2), samples=50, seed=2)
    np.testing.assert_array_equal(ds.x.values, direct.x.values)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        Sweep("simulate", config={"samples": 0}).cells()


def test_a_training_cell_as_a_study_equals_train_cells(tmp_path):
    from deeplimits.simulation.training import TrainConfig, train_cells

    sweep = Sweep("train", grid={"depth": [3, 5]}, seeds=(1,), config={"max_epochs": 3})
    report = run_sweep(sweep, tmp_path, executor="inprocess", progress=False)
    assert report.complete and not report.failed
    # a cell of the study is trained alone (no padding), so it equals train_cells on it
    direct = {L: train_cells(TrainConfig(max_epochs=3), [(L, 1)])[0] for L in (3, 5)}
    cells = [load_dataset(p) for p in sorted(tmp_path.rglob("*.nc"))]
    assert sorted(int(c.attrs["depth"]) for c in cells) == [3, 5]
    for ds in cells:
        ref = direct[int(ds.attrs["depth"])]
        for name in ("A", "b", "delta", "loss"):
            np.testing.assert_array_equal(ds[name].values, ref[name].values)
        assert ds.attrs["status"] == ref.attrs["status"]


def test_a_bad_training_cell_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        Sweep("train", config={"depth": 0}).cells()
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Sweep("train", config={"depth": 4, "optimizer": "lbfgs"}).cells()
    assert not any(tmp_path.iterdir())


def test_samplers_and_executors_are_found_by_name_in_one_registry():
    net = dl.ResNet(width=2, depth=3)
    assert isinstance(get_sampler("EXACT", net), ExactSampler)
    with pytest.raises(ValueError, match="unknown sampler 'gibbs'; choose one of"):
        get_sampler("gibbs", net)

    class Gibbs(ExactSampler):  # a new sampler touches one place: its class
        name = "gibbs"

    register_sampler(Gibbs)
    try:
        assert isinstance(get_sampler("gibbs", net), Gibbs)
        with pytest.raises(ValueError, match="already registered"):
            register_sampler(Gibbs)
    finally:
        from deeplimits.simulation import samplers

        samplers._SAMPLERS._items.pop("gibbs")

    assert EXECUTORS[0] == "inprocess"
    assert isinstance(get_executor("local", workers=1), InProcess)
    with pytest.raises(ValueError, match="scheduler address needs the dask executor"):
        get_executor("local", scheduler="tcp://x:1")
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        get_executor("slurm")
    with pytest.raises(ValueError, match="already registered"):
        register_executor(InProcess)


def test_activation_names_fold_case_at_registration():
    act = dl.Activation("MyTanhForCase", lambda x: np.tanh(x))
    dl.register_activation(act)
    try:
        assert dl.ResNet(width=2, depth=2, activation="mytanhforcase").activation is act
        assert dl.ResNet(width=2, depth=2, activation="MYTANHFORCASE").activation is act
    finally:
        from deeplimits.spec import activations

        activations._ACTIVATIONS._items.pop("mytanhforcase")
