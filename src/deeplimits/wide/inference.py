r"""Inference with wide-network kernels: GP posterior and gradient flow (``kernels.md`` §8).

Pure NumPy/SciPy functions on kernel matrices (float64). Notation: training inputs ``X``
(``N`` points), targets ``Y`` (``(N,)`` or ``(N, k)``: several outputs share the kernel,
``K ⊗ I``), test inputs ``*`` (``M`` points); ``K`` is the NNGP ``K_f`` and ``Theta`` the NTK.

* **Weakly trained** (readout only; the gradient kernel is ``K`` itself):
  ``t = inf`` is the GP posterior ``N(K_*X K^-1 Y, K_** - K_*X K^-1 K_X*)``; at finite ``t``
  the mean is ``K_*X K^-1 (I - exp(-eta K t)) Y``.
* **Fully trained** (all layers): with ``E_t = I - exp(-eta Theta t)`` the mean is
  ``Theta_*X Theta^-1 E_t Y`` and the covariance
  ``K_** + B K B^T - (B K_X* + K_*X B^T)`` with ``B = Theta_*X Theta^-1 E_t``.
  ``Theta = K`` gives the weakly trained case, ``t = inf`` gives ``E_t = I`` (LEE19).

**Ridge and label noise.** ``Theta_XX + lambda I`` replaces ``Theta_XX`` everywhere (in
``E_t`` too: it is gradient flow with weight decay towards the initialisation) and
``K_XX + sigma_n^2 I`` replaces ``K_XX`` in the covariance. By default ``sigma_n^2`` is the
ridge itself, so that ``Theta = K`` is exactly the noisy GP posterior; ``noise=0`` gives
the spread of gradient flow from a random initialisation with fixed targets. With
``relative=True`` each value is multiplied by the mean of its matrix's diagonal.

**Numerics.** ``t = inf``: Cholesky factorisation; failure raises
:class:`NotPositiveDefiniteError` naming the jitter (the ridge) that was added. Finite
``t``: eigendecomposition ``Theta = Q diag(l) Q^T`` with ``Theta^-1 E_t =
Q diag((1 - exp(-eta l t)) / l) Q^T``, evaluated as ``eta t phi_1(eta l t)``,
``phi_1(x) = (1 - e^-x)/x`` (so the ``l -> 0`` limit ``eta t`` is exact); an eigenvalue
below ``-1e-10 trace`` raises. Inputs are checked for NaN/inf, shapes and signs;
predictive variances that are negative beyond rounding raise instead of returning NaN.

The scikit-learn estimator :class:`~deeplimits.estimators.ResNetKernelRegressor` and the
GP kernel :class:`~deeplimits.estimators.ResNetKernel` live in :mod:`deeplimits.estimators`
(they need scikit-learn); they are re-exported here lazily.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.linalg as sla

__all__ = [
    "NotPositiveDefiniteError", "Posterior", "TrainedKernelModel", "fit_gradient_flow",
    "gp_posterior", "weakly_trained", "fully_trained", "regularisation"
]

_EIG_TOL = 1e-10  # kernels.md §9: smallest eigenvalue >= -1e-10 trace


_VAR_TOL = 1e-9  # relative size of a negative variance that is still rounding


_SYM_TOL = 1e-8


class NotPositiveDefiniteError(ValueError):
    """A kernel matrix (plus its jitter) is not numerically positive definite."""


@dataclasses.dataclass(frozen=True)
class Posterior:
    """Predictive distribution at the test inputs.

    Attributes:
        mean: ``(M,)`` or ``(M, k)`` (same trailing shape as the targets).
        cov: ``(M, M)`` covariance shared by all outputs, when the full test kernel was given.
        var: ``(M,)`` variances (the diagonal of ``cov``), when any test kernel was given.
    """

    mean: np.ndarray
    cov: np.ndarray | None = None
    var: np.ndarray | None = None

    @property
    def std(self) -> np.ndarray | None:
        return None if self.var is None else np.sqrt(self.var)


def _finite(a, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _square(a, name: str) -> np.ndarray:
    arr = _finite(a, name, (2,))
    if arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {arr.shape}")
    scale = max(np.abs(arr).max(), np.finfo(float).tiny)
    if np.abs(arr - arr.T).max() > _SYM_TOL * scale:
        raise ValueError(f"{name} is not symmetric")
    return 0.5 * (arr + arr.T)


def _nonneg(value, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _check_time(time, learning_rate) -> tuple[float, float]:
    t = float(time)
    if math.isnan(t) or t < 0:
        raise ValueError(f"time must be >= 0 or math.inf, got {time!r}")
    eta = float(learning_rate)
    if not (math.isfinite(eta) and eta > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    return t, eta


def regularisation(matrix, value: float, relative: bool) -> float:
    """The absolute diagonal term: ``value``, times ``mean(diag(matrix))`` if ``relative``."""
    value = _nonneg(value, "ridge")
    if not relative:
        return value
    return value * float(np.mean(np.diag(np.asarray(matrix))))


def _phi1(x: np.ndarray) -> np.ndarray:
    """``(1 - exp(-x)) / x`` with the value 1 at ``x = 0`` (accurate for small ``|x|``)."""
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 - 0.5 * x, -np.expm1(-safe) / safe)


@dataclasses.dataclass(frozen=True)
class TrainedKernelModel:
    """Everything gradient flow (or GP conditioning) keeps from the training set.

    Build it with :func:`fit_gradient_flow`; :meth:`predict` takes cross and test kernels.
    At ``t = inf`` ``chol`` is the lower Cholesky factor of ``Theta_XX + lambda I`` (of
    ``K_XX + sigma_n^2 I`` when weakly trained: then the covariance takes the GP form
    ``K_** - V^T V``); at finite ``t`` ``gain`` is the symmetric ``Theta^-1 E_t``.
    """

    alpha: np.ndarray  # (N, k): mean = Theta_*X @ alpha
    k_noisy: np.ndarray  # K_XX + sigma_n^2 I
    chol: np.ndarray | None
    gain: np.ndarray | None
    uses_ntk: bool
    ridge: float  # absolute lambda added to Theta_XX
    noise: float  # absolute sigma_n^2 added to K_XX
    squeeze: bool  # targets were 1-D

    @property
    def n_train(self) -> int:
        return self.k_noisy.shape[0]

    def predict(self, k_cross, k_test=None, ntk_cross=None) -> Posterior:
        """Predictive mean (and covariance) at test inputs.

        Args:
            k_cross: NNGP between test and training inputs, ``(M, N)``.
            k_test: optional NNGP at the test inputs: ``(M, M)`` for the covariance, or its
                diagonal ``(M,)`` for the variances only.
            ntk_cross: NTK between test and training inputs, needed for fully trained models.
        """
        N = self.n_train
        k_cross = _finite(k_cross, "k_cross", (2,))
        if k_cross.shape[1] != N:
            raise ValueError(f"k_cross must have {N} columns (training points), got shape "
                             f"{k_cross.shape}")
        M = k_cross.shape[0]
        if self.uses_ntk:
            if ntk_cross is None:
                raise ValueError("a fully trained model needs ntk_cross")
            t_cross = _finite(ntk_cross, "ntk_cross", (2,))
            if t_cross.shape != k_cross.shape:
                raise ValueError(f"ntk_cross has shape {t_cross.shape}, expected {k_cross.shape}")
        else:
            t_cross = k_cross
        mean = t_cross @ self.alpha
        _check_output(mean, "predictive mean")
        if self.squeeze:
            mean = mean[:, 0]
        if k_test is None:
            return Posterior(mean=mean)
        k_test = _finite(k_test, "k_test", (1, 2))
        full = k_test.ndim == 2
        if (full and k_test.shape != (M, M)) or (not full and k_test.shape != (M,)):
            raise ValueError(f"k_test must have shape ({M}, {M}) or ({M},), got {k_test.shape}")
        prior = np.diag(k_test) if full else k_test
        if self.chol is not None and not self.uses_ntk:
            V = sla.solve_triangular(self.chol, k_cross.T, lower=True, check_finite=False)
            var = prior - np.sum(V * V, 0)
            scale = np.abs(prior) + np.sum(V * V, 0)
            cov = 0.5 * (k_test + k_test.T) - V.T @ V if full else None
        else:
            if self.gain is not None:
                B = t_cross @ self.gain
            else:  # t = inf: B = Theta_*X (Theta_XX + lambda I)^-1
                B = sla.cho_solve((self.chol, True), t_cross.T, check_finite=False).T
            BK = B @ self.k_noisy
            BKx = B @ k_cross.T  # B K_X*
            var = prior + np.sum(BK * B, 1) - 2 * np.diag(BKx)
            scale = np.abs(prior) + np.abs(np.sum(BK * B, 1)) + 2 * np.abs(np.diag(BKx))
            if full:
                cov = k_test + BK @ B.T - BKx - BKx.T
                cov = 0.5 * (cov + cov.T)
            else:
                cov = None
        var = _clip_variances(var, scale)
        if cov is not None:
            cov[np.diag_indices(M)] = var
        return Posterior(mean=mean, cov=cov, var=var)


def _check_output(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise FloatingPointError(f"the {what} has non-finite entries (overflow in a nearly "
                                 "singular solve? increase the ridge)")


def _clip_variances(var: np.ndarray, scale: np.ndarray) -> np.ndarray:
    _check_output(var, "predictive variance")
    bad = var < -_VAR_TOL * np.maximum(scale, np.finfo(float).tiny)
    if np.any(bad):
        i = int(np.argmin(var))
        raise NotPositiveDefiniteError(
            f"negative predictive variance {var[i]:.3g} (test point {i}) beyond rounding: "
            "the kernel matrices are not positive semi-definite or not consistent with "
            "each other")
    return np.maximum(var, 0.0)


def _cholesky(a: np.ndarray, name: str, jitter: float) -> np.ndarray:
    try:
        return sla.cholesky(a, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        lam_min = float(sla.eigvalsh(a, subset_by_index=[0, 0], check_finite=False)[0])
        raise NotPositiveDefiniteError(
            f"{name} plus jitter {jitter:.3g} on the diagonal is not positive definite "
            f"(Cholesky failed; smallest eigenvalue {lam_min:.3g}): increase the ridge/noise"
        ) from None


def _gain(theta: np.ndarray, time: float, eta: float, name: str, jitter: float) -> np.ndarray:
    """``Theta^-1 (I - exp(-eta Theta t))`` by eigendecomposition (finite ``t``)."""
    lam, Q = sla.eigh(theta, check_finite=False)
    tol = _EIG_TOL * max(float(np.abs(lam).sum()), np.finfo(float).tiny)
    if lam[0] < -tol:
        raise NotPositiveDefiniteError(
            f"{name} plus jitter {jitter:.3g} on the diagonal has eigenvalue {lam[0]:.3g} < "
            f"-1e-10 trace: not positive semi-definite")
    lam = np.maximum(lam, 0.0)
    g = eta * time * _phi1(eta * time * lam)
    return (Q * g) @ Q.T


def fit_gradient_flow(
    k_train,
    y,
    ntk_train=None,
    *,
    time: float = math.inf,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    noise: float | None = None,
    relative: bool = False,
) -> TrainedKernelModel:
    """Condition on (or train by gradient flow on) the training set.

    Args:
        k_train: NNGP ``K_XX`` ``(N, N)``.
        y: targets ``(N,)`` or ``(N, k)``.
        ntk_train: NTK ``Theta_XX`` for a fully trained network; ``None`` for weakly trained
            (then ``Theta = K``).
        time: training time ``t`` (``math.inf`` for convergence).
        learning_rate: gradient-flow rate ``eta``.
        ridge: ``lambda`` added to ``Theta_XX`` (``K_XX`` when weakly trained).
        noise: ``sigma_n^2`` added to ``K_XX`` in the covariance; ``None``: the same as
            ``ridge`` (relative to ``K_XX`` if ``relative``).
        relative: scale ``ridge`` and ``noise`` by the mean of their matrix's diagonal.
    """
    K = _square(k_train, "k_train")
    N = K.shape[0]
    Y = _finite(y, "y", (1, 2))
    if Y.shape[0] != N:
        raise ValueError(f"y has {Y.shape[0]} rows, k_train is {N} x {N}")
    squeeze = Y.ndim == 1
    Y = Y[:, None] if squeeze else Y
    t, eta = _check_time(time, learning_rate)
    uses_ntk = ntk_train is not None
    Theta = _square(ntk_train, "ntk_train") if uses_ntk else K
    if Theta.shape != K.shape:
        raise ValueError(f"ntk_train has shape {Theta.shape}, k_train {K.shape}")
    lam = regularisation(Theta, ridge, relative)
    sn2 = regularisation(K, ridge if noise is None else noise, relative)
    if not uses_ntk:
        lam = sn2  # one matrix: one diagonal term
    K_noisy = K + sn2 * np.eye(N)
    Theta_reg = K_noisy if not uses_ntk else Theta + lam * np.eye(N)
    name = "the NTK Theta_XX" if uses_ntk else "the NNGP K_XX"
    chol = gain = None
    if math.isinf(t):
        chol = _cholesky(Theta_reg, name, lam)
        alpha = sla.cho_solve((chol, True), Y, check_finite=False)
    else:
        gain = _gain(Theta_reg, t, eta, name, lam)
        alpha = gain @ Y
    _check_output(alpha, "training weights")
    return TrainedKernelModel(alpha=alpha, k_noisy=K_noisy, chol=chol, gain=gain,
                              uses_ntk=uses_ntk, ridge=lam, noise=sn2, squeeze=squeeze)


def gp_posterior(k_train, k_cross, y, k_test=None, *, noise: float = 0.0,
                 relative: bool = False) -> Posterior:
    """GP posterior ``N(K_*X (K + s I)^-1 Y, K_** - K_*X (K + s I)^-1 K_X*)`` (Cholesky).

    This is the weakly trained network at ``t = inf``; ``noise`` is ``s = sigma_n^2``
    (times ``mean(diag K)`` if ``relative``).
    """
    return fit_gradient_flow(k_train, y, ridge=noise, relative=relative).predict(k_cross, k_test)


def weakly_trained(k_train, k_cross, y, k_test=None, *, time: float = math.inf,
                   learning_rate: float = 1.0, ridge: float = 0.0,
                   relative: bool = False) -> Posterior:
    """Readout-only gradient flow for time ``t``: mean ``K_*X K^-1 (I - e^{-eta K t}) Y``
    (``K`` including the ridge); the GP posterior at ``t = inf``."""
    model = fit_gradient_flow(k_train, y, time=time, learning_rate=learning_rate, ridge=ridge,
                              relative=relative)
    return model.predict(k_cross, k_test)


def fully_trained(k_train, k_cross, ntk_train, ntk_cross, y, k_test=None, *,
                  time: float = math.inf, learning_rate: float = 1.0, ridge: float = 0.0,
                  noise: float | None = None, relative: bool = False) -> Posterior:
    """Gradient flow on all layers (linearised, NTK ``Theta``) for time ``t``.

    Mean ``Theta_*X Theta^-1 E_t Y`` and covariance ``K_** + B K B^T - (B K_X* + K_*X B^T)``,
    ``B = Theta_*X Theta^-1 E_t``, ``E_t = I - exp(-eta Theta t)``; ``Theta_XX`` carries
    the ridge, ``K_XX`` the noise (default: the ridge).
    """
    model = fit_gradient_flow(k_train, y, ntk_train, time=time, learning_rate=learning_rate,
                              ridge=ridge, noise=noise, relative=relative)
    return model.predict(k_cross, k_test, ntk_cross)
