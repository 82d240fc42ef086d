"""The package's shape (issue 13): a light import, the old module paths kept as deprecated
aliases, the version from the installed metadata, and form names normalised on
construction."""

import importlib.metadata
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import deeplimits as dl

HEAVY = ("xarray", "sklearn", "optax", "diffrax", "matplotlib", "scipy.stats", "dask",
         "deeplimits.wide", "deeplimits.experiments")


def test_import_loads_jax_and_nothing_heavy():
    code = ("import sys, deeplimits; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_help_loads_no_numerical_area():
    code = ("import sys; from deeplimits.cli import app; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_public_name_resolves():
    for name in dl.__all__:
        assert getattr(dl, name) is not None
    assert set(dl.__all__) <= set(dir(dl))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dl.nope  # noqa: B018


@pytest.mark.parametrize("old,new,name", [
    ("deeplimits.kernels", "deeplimits.wide.kernels", "kernel"),
    ("deeplimits.storage", "deeplimits.experiments.store", "load_dataset"),
    ("deeplimits.sde", "deeplimits.simulation.sde", "solve_sde"),
    ("deeplimits.sde", "deeplimits.spec.sde", "ResNetSDE"),
    ("deeplimits.claims.forward", "deeplimits.experiments.claims.forward", "ALPHA"),
    ("deeplimits.scaling.train", "deeplimits.experiments.scaling", "train_sweep"),
])
def test_old_module_paths_warn_and_forward(old, new, name):
    sys.modules.pop(old, None)
    module = importlib.import_module(new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and new.split(".")[1] in
               str(w.message) for w in caught)
    assert getattr(alias, name) is getattr(module, name)


def test_version_comes_from_the_installed_metadata():
    assert dl.__version__ == importlib.metadata.version("deeplimits")
    assert (Path(dl.__file__).parent / "py.typed").exists()


def test_form_names_normalise_on_construction():
    x = np.random.default_rng(0).standard_normal((3, 4))
    lower = dl.ResNet(form="c", width=4, depth=8, activation="relu", sigma_b=0.3)
    upper = dl.ResNet(form="C", width=4, depth=8, activation="relu", sigma_b=0.3)
    assert lower.form == "C" and lower == upper
    np.testing.assert_array_equal(dl.nngp(lower, x, depth=math.inf, steps=4),
                                  dl.nngp(upper, x, depth=math.inf, steps=4))
    with pytest.raises(ValueError, match="unknown block form 'D'"):
        dl.ResNet(form="D", width=4, depth=8)
