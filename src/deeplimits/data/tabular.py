r"""Wide-ResNet kernels on real data: a regression/classification table (``kernels.md`` §4.3, §8).

:func:`regression_table` fits, on scikit-learn's bundled data sets (no download), the kernel
predictors of infinitely deep and wide ResNets

* form A, ReLU, Gaussian input layer;
* form B, tanh, no input layer (its kernel is affine in ``<x, x'>``: linear regression);
* form C, ReLU, no input layer;

each weakly trained (NNGP, GP posterior mean) and fully trained (NTK, gradient flow to
convergence), beside an RBF-kernel GP (scikit-learn, hyperparameters by marginal likelihood)
and linear ridge regression (``RidgeCV``). Kernel hyperparameters (``sigma_w``, ``sigma_b``
and the relative ridge) are chosen by k-fold cross-validation on the training set (mean
squared error on the targets); the kernel on all points is computed once per
``(sigma_w, sigma_b)`` and sliced for the folds. Classification sets are regressed on
one-hot targets and scored by the accuracy of the argmax; ``diabetes`` by the RMSE.

The table also reports, per model, ``affine_residual``: how far the chosen training kernel
is from ``alpha <x,x'>/d + gamma`` (relative Frobenius residual of the least-squares fit
about the kernel's mean). Form B gives rounding-level residuals, forms A and C do not: the
limited expressivity of shallow residual blocks (PF21) seen on data.

Requires scikit-learn.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn import datasets as _skdata
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

__all__ = ["DATASETS", "DataSplit", "load_split", "split_arrays"]

DATASETS = {
    "digits": (_skdata.load_digits, "classification"),
    "breast_cancer": (_skdata.load_breast_cancer, "classification"),
    "wine": (_skdata.load_wine, "classification"),
    "diabetes": (_skdata.load_diabetes, "regression"),
}


SCALES = {
    "quick": {"max_samples": 400, "folds": 3, "steps": None, "sigma_w": (0.5, 1.0, 2.0),
              "sigma_b": (0.0, 0.5), "ridge": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)},
    "full": {"max_samples": None, "folds": 5, "steps": None, "sigma_w": (0.5, 1.0, 1.5, 2.0, 3.0),
             "sigma_b": (0.0, 0.25, 0.5, 1.0),
             "ridge": (1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)},
}


@dataclasses.dataclass(frozen=True)
class DataSplit:
    """A standardised train/test split.

    ``Y_*`` are the regression targets (one-hot for classification, one column otherwise);
    ``y_*`` the raw labels or targets; ``n_available`` the samples before subsampling.
    """

    name: str
    task: str
    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray | None
    #: samples before the subsampling to ``max_samples`` (train + test are what was kept)
    n_available: int | None = None

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def split_arrays(name: str, X, y, *, task: str = "auto", test_size: float = 0.25,
                 seed: int = 0, max_samples: int | None = None) -> DataSplit:
    """A :class:`DataSplit` of user arrays (``X``: ``(samples, features)``, ``y``: labels or
    targets). ``task="auto"`` takes integer labels with few distinct values as classes."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or len(X) < 4:
        raise ValueError(f"need X of shape (samples, features) and y of shape (samples,) with "
                         f"at least 4 samples; got {X.shape} and {y.shape}")
    if not np.all(np.isfinite(X)) or (y.dtype.kind == "f" and not np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite (found NaN or infinity)")
    names = y.dtype.kind in "USO"  # class names such as "benign"
    if task == "auto":
        integer = names or y.dtype.kind in "iub" or np.all(np.mod(y, 1) == 0)
        task = ("classification" if names or (integer and len(np.unique(y)) <= 20)
                else "regression")
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification', 'regression' or 'auto', got {task!r}")
    if names and task == "regression":
        raise ValueError("regression needs numeric targets, got class names in y")
    if task == "classification":
        counts = np.unique(y, return_counts=True)[1]
        if len(counts) < 2 or counts.min() < 2:
            raise ValueError(f"classification needs at least 2 classes with at least 2 samples "
                             f"each, got class sizes {sorted(counts.tolist())}")
    return _make_split(name, task, X, y, test_size=test_size, seed=seed,
                       max_samples=max_samples)


def load_split(name: str, *, max_samples: int | None = None, test_size: float = 0.25,
               seed: int = 0) -> DataSplit:
    """Load a bundled scikit-learn data set, optionally subsample (stratified for
    classification), split with a fixed seed and standardise the features on the training
    part (constant features keep scale 1)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {tuple(DATASETS)}")
    loader, task = DATASETS[name]
    X, y = loader(return_X_y=True)
    return _make_split(name, task, np.asarray(X, dtype=np.float64), y, test_size=test_size,
                       seed=seed, max_samples=max_samples)


def _make_split(name, task, X, y, *, test_size, seed, max_samples) -> DataSplit:
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(
            max_samples, int | np.integer) or max_samples < 4):
        raise ValueError(f"max_samples must be an integer >= 4 or None (every sample), got "
                         f"{max_samples!r}")
    n_available = len(X)
    strat = y if task == "classification" else None
    if max_samples is not None and max_samples < len(X):
        X, _, y, _ = train_test_split(X, y, train_size=max_samples, random_state=seed,
                                      stratify=strat)
        strat = y if task == "classification" else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed,
                                              stratify=strat)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    if task == "classification":
        classes = np.unique(y_tr)
        Y_tr = (y_tr[:, None] == classes[None, :]).astype(np.float64)
        Y_te = (y_te[:, None] == classes[None, :]).astype(np.float64)
    else:
        classes = None
        Y_tr = np.asarray(y_tr, dtype=np.float64)[:, None]
        Y_te = np.asarray(y_te, dtype=np.float64)[:, None]
    return DataSplit(name, task, X_tr, X_te, Y_tr, Y_te, np.asarray(y_tr), np.asarray(y_te),
                     classes, n_available)
