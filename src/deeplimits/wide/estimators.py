r"""scikit-learn front ends for wide-ResNet kernels.

* :class:`ResNetKernelRegressor`: kernel regression with the NNGP (weakly trained) or the
  NTK (fully trained) of an infinitely wide ResNet at any depth, by the formulas of
  ``kernels.md`` §8 (:mod:`deeplimits.inference`). Works with ``clone``, ``GridSearchCV``,
  ``cross_val_score`` and pipelines.
* :class:`ResNetKernel`: the NNGP as a :class:`sklearn.gaussian_process.kernels.Kernel`, so
  that ``GaussianProcessRegressor(kernel=ResNetKernel() + WhiteKernel())`` fits ``sigma_w``
  and ``sigma_b`` by marginal likelihood.

Kernel values are computed by :func:`deeplimits.kernel`. The network scales are passed to it
as 0-d JAX arrays, so that new values of ``sigma_w``/``sigma_b`` reuse the compiled
dynamics instead of recompiling (important inside an optimiser or a grid search).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.gaussian_process.kernels import Hyperparameter
from sklearn.gaussian_process.kernels import Kernel as _SkKernel
from sklearn.utils.validation import check_is_fitted, validate_data

from deeplimits.spec.blocks import get_block
from deeplimits.spec.networks import InputLayer, Readout, ResNet
from deeplimits.wide import inference
from deeplimits.wide.depth_flow import DEFAULT_RTOL
from deeplimits.wide.kernels import kernel as _kernel

__all__ = ["ResNetKernelRegressor", "ResNetKernel", "KernelCache", "resnet_for_kernel"]

FORMS = ("A", "B", "C")


TRAININGS = ("weakly", "fully")


_DIAG_BLOCK = 64


def _check_positive(value, name: str, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return v


def _check_depth(depth):
    if isinstance(depth, numbers.Integral) and not isinstance(depth, bool) and depth > 0:
        return int(depth)
    if isinstance(depth, numbers.Real) and math.isinf(depth) and depth > 0:
        return math.inf
    raise ValueError(f"depth must be a positive integer or math.inf, got {depth!r}")


def _check_numeric_targets(y) -> None:
    """``TypeError`` naming ``y`` unless it holds real numbers (before any kernel work):
    scikit-learn's ``y_numeric`` converts only object arrays, and NumPy would parse numeric
    strings ("1.0") as floats or fail with a message that names neither ``y`` nor the rule."""
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError):
        return  # a ragged y: validate_data names what is wrong with its shape
    kind = arr.dtype.kind
    if kind in "USc" or (kind == "O" and not all(isinstance(v, numbers.Real)
                                                 for v in arr.ravel())):
        raise TypeError(f"y must hold real numbers (regression targets), got an array of "
                        f"dtype {arr.dtype}")


def resnet_for_kernel(
    n_features: int,
    *,
    form: str = "A",
    activation="relu",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    sigma_u: float = 1.0,
    input_layer: bool = True,
    sigma_A: float = 1.0,
    sigma_a: float = 0.0,
    sigma_v: float = 1.0,
    sigma_v0: float = 0.0,
    post_activation: bool = False,
    horizon: float = 1.0,
) -> ResNet:
    """The :class:`~deeplimits.ResNet` whose wide limit a kernel estimator uses.

    Its width is a placeholder (kernels ignore it) except without an input layer, where the
    width is the input dimension. ``sigma_w``/``sigma_b`` become 0-d JAX arrays (no recompile
    when they change).
    """
    block = get_block(form)  # normalises the case; unknown forms raise naming the choices
    if block.kernel_needs_input_layer and not input_layer:
        raise ValueError(f"form {block.name} kernels need an input layer (input_layer=True): "
                         "without one the states are not Gaussian (kernels.md §7)")
    sw = _check_positive(sigma_w, "sigma_w")
    sb = _check_positive(sigma_b, "sigma_b")
    layer = None
    if input_layer:
        layer = InputLayer(int(n_features), sigma_A=_check_positive(sigma_A, "sigma_A"),
                           sigma_a=_check_positive(sigma_a, "sigma_a"))
    readout = Readout(sigma_v=_check_positive(sigma_v, "sigma_v"),
                      sigma_v0=_check_positive(sigma_v0, "sigma_v0"),
                      post_activation=bool(post_activation))
    return ResNet(width=1 if input_layer else int(n_features), depth=1, form=block.name,
                  activation=activation, sigma_w=jnp.asarray(sw, jnp.float64),
                  sigma_b=jnp.asarray(sb, jnp.float64),
                  sigma_u=_check_positive(sigma_u, "sigma_u"),
                  horizon=_check_positive(horizon, "horizon", allow_zero=False),
                  input_layer=layer, readout=readout)


def _bucket(n: int) -> int:
    """``n`` rounded up to a multiple of ``2^(floor(log2 n) - 2)`` (at least 16): at most
    25 % more rows, and few distinct sizes."""
    if n <= 16:
        return 16
    step = 2 ** (int(math.log2(n)) - 2)
    return -(-n // step) * step


def _pad(X: np.ndarray) -> np.ndarray:
    extra = _bucket(len(X)) - len(X)
    return np.concatenate([X, np.repeat(X[:1], extra, 0)]) if extra else X


def _padded_kernel(net, X1, X2=None, **kwargs):
    """:func:`deeplimits.kernel` on inputs padded (by repeating their first row) to bucketed
    sizes, then sliced: the compiled dynamics are specialised to array shapes, so this bounds
    the recompilations in cross-validation loops (one per bucket instead of one per size)."""
    n1 = len(X1)
    k = _kernel(net, _pad(X1), None if X2 is None else _pad(X2), **kwargs)
    n2 = n1 if X2 is None else len(X2)
    cut = lambda a: None if a is None else np.ascontiguousarray(a[:n1, :n2])  # noqa: E731
    return dataclasses.replace(k, nngp=cut(k.nngp), ntk=cut(k.ntk))


def _kernel_diag(net, X, compute_ntk, **kwargs):
    """Diagonals of the NNGP (and NTK) by square blocks along the diagonal."""
    k = np.empty(len(X))
    t = np.empty(len(X)) if compute_ntk else None
    for i in range(0, len(X), _DIAG_BLOCK):
        blk = _padded_kernel(net, X[i : i + _DIAG_BLOCK], compute_ntk=compute_ntk, **kwargs)
        k[i : i + _DIAG_BLOCK] = np.diag(blk.nngp)
        if compute_ntk:
            t[i : i + _DIAG_BLOCK] = np.diag(blk.ntk)
    return k, t


def _key_value(v):
    """A hashable stand-in for a hyperparameter value (callables by identity)."""
    if isinstance(v, str | numbers.Number | bool | type(None)):
        return v
    return (type(v).__name__, id(v))


class KernelCache:
    """Kernels of one set of inputs, kept per hyperparameter setting and sliced on demand.

    ``GridSearchCV`` and ``cross_val_score`` fit and score a clone of the estimator on every
    fold; each fold's kernels are blocks of the kernel of all the inputs. Pass
    ``cache=KernelCache(X)`` (``X``: every input the search will see) and each hyperparameter
    setting computes the full kernel of ``X`` once, at its first request; every later fit
    and predict of that setting slices it. Requests for rows not in the cache (or a cache
    made without ``X``) compute the kernel of the union of all rows seen so far, so
    results stay exact. ``clone`` and ``copy`` share one cache instead of copying it.

    Attributes:
        evaluations: number of kernel computations made (cache misses).
        max_settings: hyperparameter settings kept (least recently used ones are dropped).
    """

    def __init__(self, X=None, max_settings: int = 16):
        if not (isinstance(max_settings, numbers.Integral) and max_settings > 0):
            raise ValueError(f"max_settings must be a positive integer, got {max_settings!r}")
        self.max_settings = int(max_settings)
        self.evaluations = 0
        self._X = np.empty((0, 0))
        self._index: dict[bytes, int] = {}
        self._store: dict = {}
        if X is not None:
            self._add(np.asarray(X, dtype=np.float64))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return (f"KernelCache({len(self._index)} inputs, {len(self._store)} settings, "
                f"{self.evaluations} evaluations)")

    def _add(self, X: np.ndarray) -> bool:
        if X.ndim != 2:
            raise ValueError(f"cached inputs must have shape (inputs, features), got {X.shape}")
        if self._X.size and X.shape[1] != self._X.shape[1]:
            raise ValueError(f"the cache holds inputs of {self._X.shape[1]} features, got "
                             f"{X.shape[1]}")
        new = [row for row in np.unique(X, axis=0) if row.tobytes() not in self._index]
        if not new:
            return False
        base = len(self._index)
        self._X = np.concatenate([self._X.reshape(-1, X.shape[1]), np.asarray(new)])
        for i, row in enumerate(new):
            self._index[row.tobytes()] = base + i
        self._store.clear()  # kernels of the old rows no longer cover the universe
        return True

    def rows(self, X: np.ndarray) -> np.ndarray:
        return np.fromiter((self._index[r.tobytes()] for r in X), int, len(X))

    def kernel(self, key, net, X1, X2=None, *, compute_ntk: bool, **kwargs):
        """The kernel of ``X1`` by ``X2`` for the setting ``key`` (hashable; it must
        determine ``net`` and ``kwargs``), sliced from the cached full kernel."""
        self._add(np.asarray(X1, np.float64) if X2 is None
                  else np.concatenate([X1, X2]).astype(np.float64))
        entry = self._store.pop(key, None)
        if entry is None or (compute_ntk and entry.ntk is None):
            entry = _kernel(net, self._X, compute_ntk=compute_ntk, **kwargs)
            self.evaluations += 1
        self._store[key] = entry
        while len(self._store) > self.max_settings:
            self._store.pop(next(iter(self._store)))
        r1 = self.rows(X1)
        r2 = r1 if X2 is None else self.rows(X2)
        cut = lambda a: None if a is None else a[np.ix_(r1, r2)]  # noqa: E731
        return dataclasses.replace(entry, nngp=cut(entry.nngp),
                                   ntk=cut(entry.ntk) if compute_ntk else None)


class ResNetKernelRegressor(RegressorMixin, BaseEstimator):
    """Regression with an infinitely wide ResNet trained by gradient flow (``kernels.md`` §8).

    ``training="weakly"`` trains the readout only: at ``time=inf`` this is the GP posterior
    with the NNGP ``K``. ``training="fully"`` trains every layer: the mean is
    ``Theta_*X (Theta + lambda I)^-1 E_t Y`` and the covariance that of §8.

    Parameters:
        form: ``"A"`` (needs ``input_layer=True``), ``"B"`` or ``"C"``.
        activation: activation name or callable.
        depth: a positive integer (width-first limit at that depth) or ``math.inf`` (ODE).
        sigma_w, sigma_b: weight and bias scales of the residual blocks; ``sigma_u``: the
            outer scale of form C.
        training: ``"weakly"`` or ``"fully"``.
        ridge: diagonal term ``lambda`` added to the training kernel (also used as label
            noise ``sigma_n^2`` on ``K_XX`` in the covariance).
        ridge_mode: ``"relative"`` (``ridge`` times the mean of the kernel's diagonal) or
            ``"absolute"``.
        time, learning_rate: training time ``t`` (``math.inf``: converged) and rate ``eta``.
        input_layer: use a Gaussian input layer ``K_0 = sigma_a^2 + sigma_A^2 <x,x'>/d``;
            ``False`` uses ``K_0 = <x,x'>/d`` directly (forms B and C only).
        train_input_layer: whether the input layer's parameters count in the NTK.
        sigma_v, sigma_v0, post_activation: the readout.
        horizon: the depth horizon ``T``.
        normalize_y: centre and scale the targets before fitting (as scikit-learn's GP does).
        cache: a :class:`KernelCache` shared by the clones of a grid search, so that each
            kernel setting is computed once for all folds (``None``: no cache).
        steps: RK4 steps at infinite depth (``None``, the default: chosen from ``rtol``).
        rtol: target relative error of the kernels at infinite depth (default
            :data:`~deeplimits.wide.depth_flow.DEFAULT_RTOL` = 1e-9); the estimate reached
            is ``kernel_error_``.

    Learned attributes: ``X_train_``, ``y_train_`` (after normalisation), ``alpha_``
    (``mean = Theta_*X @ alpha_``, in normalised units), ``kernel_train_`` (``K_XX``),
    ``kernel_steps_`` and ``kernel_error_`` (RK4 steps and estimated relative error of the
    training kernels at infinite depth, ``None`` at finite depth),
    ``ntk_train_`` (``Theta_XX`` or ``None``), ``ridge_`` and ``noise_`` (absolute diagonal
    terms), ``n_features_in_``, ``model_`` (:class:`~deeplimits.inference.TrainedKernelModel`).
    """

    def __init__(
        self,
        form="A",
        activation="relu",
        depth=math.inf,
        sigma_w=1.0,
        sigma_b=0.0,
        training="weakly",
        ridge=1e-6,
        ridge_mode="relative",
        time=math.inf,
        learning_rate=1.0,
        input_layer=True,
        train_input_layer=True,
        sigma_u=1.0,
        sigma_A=1.0,
        sigma_a=0.0,
        sigma_v=1.0,
        sigma_v0=0.0,
        post_activation=False,
        horizon=1.0,
        normalize_y=False,
        steps=None,
        rtol=DEFAULT_RTOL,
        cache=None,
    ):
        self.form = form
        self.activation = activation
        self.depth = depth
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b
        self.training = training
        self.ridge = ridge
        self.ridge_mode = ridge_mode
        self.time = time
        self.learning_rate = learning_rate
        self.input_layer = input_layer
        self.train_input_layer = train_input_layer
        self.sigma_u = sigma_u
        self.sigma_A = sigma_A
        self.sigma_a = sigma_a
        self.sigma_v = sigma_v
        self.sigma_v0 = sigma_v0
        self.post_activation = post_activation
        self.horizon = horizon
        self.normalize_y = normalize_y
        self.steps = steps
        self.rtol = rtol
        self.cache = cache

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.allow_nan = False
        return tags

    # -- helpers ----------------------------------------------------------------------------
    def _network(self, n_features: int) -> ResNet:
        return resnet_for_kernel(
            n_features, form=self.form, activation=self.activation, sigma_w=self.sigma_w,
            sigma_b=self.sigma_b, sigma_u=self.sigma_u, input_layer=self.input_layer,
            sigma_A=self.sigma_A, sigma_a=self.sigma_a, sigma_v=self.sigma_v,
            sigma_v0=self.sigma_v0, post_activation=self.post_activation, horizon=self.horizon)

    def _kernel_kwargs(self):
        return {"depth": self._depth, "train_input_layer": bool(self.train_input_layer),
                "steps": None if self.steps is None else int(self.steps),
                "rtol": float(self.rtol)}

    _NOT_KERNEL = ("training", "ridge", "ridge_mode", "time", "learning_rate", "normalize_y",
                   "cache")

    def _compute(self, net, X1, X2=None, **kw):
        """A kernel, through the cache if there is one (padded to bucketed sizes if not)."""
        if self.cache is None:
            return _padded_kernel(net, X1, X2, **kw)
        params = self.get_params(deep=False)
        key = tuple((name, _key_value(params[name])) for name in sorted(params)
                    if name not in self._NOT_KERNEL)
        return self.cache.kernel(key, net, X1, X2, **kw)

    def _validate_params(self):
        if self.cache is not None and not isinstance(self.cache, KernelCache):
            raise TypeError(f"cache must be a KernelCache or None, got "
                            f"{type(self.cache).__name__}")
        if self.training not in TRAININGS:
            raise ValueError(f"training must be one of {TRAININGS}, got {self.training!r}")
        if self.ridge_mode not in ("relative", "absolute"):
            raise ValueError(f"ridge_mode must be 'relative' or 'absolute', got "
                             f"{self.ridge_mode!r}")
        _check_positive(self.ridge, "ridge")
        _check_positive(self.learning_rate, "learning_rate", allow_zero=False)
        t = self.time
        if not (isinstance(t, numbers.Real) and not isinstance(t, bool)
                and (t >= 0) and not math.isnan(t)):
            raise ValueError(f"time must be >= 0 or math.inf, got {t!r}")
        if self.steps is not None and not (isinstance(self.steps, numbers.Integral)
                                           and self.steps > 0):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}")
        _check_positive(self.rtol, "rtol", allow_zero=False)
        self._depth = _check_depth(self.depth)

    # -- API --------------------------------------------------------------------------------
    def fit(self, X, y):
        """Compute the training kernel(s) and the gradient-flow solution."""
        self._validate_params()
        _check_numeric_targets(y)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=np.float64, ensure_all_finite=True)
        net = self._network(X.shape[1])
        y = np.asarray(y, dtype=np.float64)
        if self.normalize_y:
            self._y_mean = y.mean(0)
            std = y.std(0)
            self._y_std = np.where(std > 0, std, 1.0)
        else:
            self._y_mean = np.zeros(y.shape[1:])
            self._y_std = np.ones(y.shape[1:])
        yn = (y - self._y_mean) / self._y_std
        fully = self.training == "fully"
        k = self._compute(net, X, compute_ntk=fully, **self._kernel_kwargs())
        self.model_ = inference.fit_gradient_flow(
            k.nngp, yn, k.ntk if fully else None, time=self.time,
            learning_rate=self.learning_rate, ridge=self.ridge,
            relative=self.ridge_mode == "relative")
        self.X_train_ = X
        self.y_train_ = yn
        self.kernel_train_ = k.nngp
        self.ntk_train_ = k.ntk if fully else None
        self.kernel_steps_, self.kernel_error_ = k.steps, k.error
        self.alpha_ = self.model_.alpha[:, 0] if yn.ndim == 1 else self.model_.alpha
        self.ridge_ = self.model_.ridge
        self.noise_ = self.model_.noise
        return self

    def predict(self, X, return_std=False, return_cov=False):
        """Predictive mean; with ``return_std`` or ``return_cov`` also its spread.

        Shapes follow :class:`~sklearn.gaussian_process.GaussianProcessRegressor`: ``std``
        is ``(M,)`` for 1-D targets and ``(M, k)`` otherwise, ``cov`` ``(M, M)`` or
        ``(M, M, k)`` (the outputs share one covariance up to ``normalize_y`` scaling).
        """
        if return_std and return_cov:
            raise ValueError("at most one of return_std and return_cov can be requested")
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=True)
        self._validate_params()
        net = self._network(X.shape[1])
        fully = self.training == "fully"
        kw = self._kernel_kwargs()
        cross = self._compute(net, X, self.X_train_, compute_ntk=fully, **kw)
        k_test = None
        if return_cov:
            k_test = self._compute(net, X, compute_ntk=False, **kw).nngp
        elif return_std:
            k_test = (np.diag(self._compute(net, X, compute_ntk=False, **kw).nngp).copy()
                      if self.cache is not None
                      else _kernel_diag(net, X, compute_ntk=False, **kw)[0])
        post = self.model_.predict(cross.nngp, k_test, cross.ntk if fully else None)
        mean = post.mean * self._y_std + self._y_mean
        if not (return_std or return_cov):
            return mean
        multi = self.y_train_.ndim == 2
        if return_std:
            std = post.std
            return mean, (std[:, None] * self._y_std if multi else std * self._y_std)
        cov = post.cov
        return mean, (cov[..., None] * self._y_std**2 if multi else cov * self._y_std**2)


class ResNetKernel(_SkKernel):
    r"""The NNGP of a wide ResNet as a scikit-learn GP kernel.

    Hyperparameters (optimised in log space, as scikit-learn does): ``sigma_w`` and
    ``sigma_b``. Fixed settings: ``form``, ``activation``, ``depth``, ``input_layer``
    (with ``sigma_A``, ``sigma_a``), ``sigma_u``, ``sigma_v``, ``steps`` (``None``: chosen
    from ``rtol``, default 1e-9). Use
    ``ConstantKernel() * ResNetKernel()`` for a free amplitude and ``+ WhiteKernel()`` for
    noise.

    ``sigma_b = 0`` has no logarithm: while ``sigma_b_bounds`` is not ``"fixed"``, ``theta``
    reports ``log(max(sigma_b, lower bound))``, so an optimiser starts from the lower bound
    (default ``1e-4``, where the kernel equals the ``sigma_b = 0`` one to about ``1e-8``).
    Set ``sigma_b_bounds="fixed"`` to keep ``sigma_b = 0`` exactly (which also enables the
    fast homogeneous kernel evaluation for ReLU forms A and C).

    **Gradient**: ``eval_gradient=True`` returns ``dK/dlog(sigma)`` by central finite
    differences in log space (step ``fd_step = 1e-4``, float64; truncation error about
    ``fd_step^2 / 6`` relative, rounding about ``1e-16 / fd_step`` relative), i.e. 4 extra
    kernel evaluations. The kernel is the RK4 discretisation of the depth ODE with the step
    count chosen at the base point (from ``rtol`` unless ``steps`` is given) and kept for
    the shifted points, which is smooth in the hyperparameters, so these are derivatives
    of the kernel actually used.
    """

    def __init__(
        self,
        sigma_w=1.0,
        sigma_b=0.1,
        sigma_w_bounds=(1e-2, 1e2),
        sigma_b_bounds=(1e-4, 1e2),
        form="A",
        activation="relu",
        depth=math.inf,
        input_layer=True,
        sigma_A=1.0,
        sigma_a=0.0,
        sigma_u=1.0,
        sigma_v=1.0,
        steps=None,
        rtol=DEFAULT_RTOL,
        fd_step=1e-4,
    ):
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b
        self.sigma_w_bounds = sigma_w_bounds
        self.sigma_b_bounds = sigma_b_bounds
        self.form = form
        self.activation = activation
        self.depth = depth
        self.input_layer = input_layer
        self.sigma_A = sigma_A
        self.sigma_a = sigma_a
        self.sigma_u = sigma_u
        self.sigma_v = sigma_v
        self.steps = steps
        self.rtol = rtol
        self.fd_step = fd_step

    @property
    def hyperparameter_sigma_w(self):
        return Hyperparameter("sigma_w", "numeric", self.sigma_w_bounds)

    @property
    def hyperparameter_sigma_b(self):
        return Hyperparameter("sigma_b", "numeric", self.sigma_b_bounds)

    @property
    def theta(self):
        values = []
        for hp in self.hyperparameters:
            if hp.fixed:
                continue
            v = float(getattr(self, hp.name))
            lower = float(np.asarray(hp.bounds, dtype=float).ravel()[0])
            if v < 0 or not math.isfinite(v):
                raise ValueError(f"{hp.name} must be a finite number >= 0, got {v!r}")
            values.append(max(v, lower))
        return np.log(np.asarray(values, dtype=float)) if values else np.array([])

    @theta.setter
    def theta(self, theta):
        _SkKernel.theta.fset(self, theta)

    def _net(self, n_features, sigma_w=None, sigma_b=None):
        return resnet_for_kernel(
            n_features, form=self.form, activation=self.activation,
            sigma_w=self.sigma_w if sigma_w is None else sigma_w,
            sigma_b=self.sigma_b if sigma_b is None else sigma_b, sigma_u=self.sigma_u,
            input_layer=self.input_layer, sigma_A=self.sigma_A, sigma_a=self.sigma_a,
            sigma_v=self.sigma_v)

    def _kw(self):
        if self.steps is not None and not (isinstance(self.steps, numbers.Integral)
                                           and self.steps > 0):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}")
        return {"depth": _check_depth(self.depth),
                "steps": None if self.steps is None else int(self.steps),
                "rtol": _check_positive(self.rtol, "rtol", allow_zero=False),
                "compute_ntk": False}

    @staticmethod
    def _inputs(X, name):
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"{name} must have shape (samples, features), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        return arr

    def __call__(self, X, Y=None, eval_gradient=False):
        X = self._inputs(X, "X")
        if Y is not None:
            if eval_gradient:
                raise ValueError("gradient can only be evaluated when Y is None")
            Y = self._inputs(Y, "Y")
            if Y.shape[1] != X.shape[1]:
                raise ValueError(f"X has {X.shape[1]} features but Y has {Y.shape[1]}")
        d = X.shape[1]
        base_kernel = _padded_kernel(self._net(d), X, Y, **self._kw())
        K = base_kernel.nngp
        if not eval_gradient:
            return K
        # the shifted kernels use the base point's step count: a count chosen afresh from
        # rtol could differ between them and the difference quotient would see the jump
        fixed = self._kw() | {"steps": base_kernel.steps}
        grads = []
        h = float(self.fd_step)
        for hp in self.hyperparameters:
            if hp.fixed:
                continue
            base = math.exp(self.theta[[p.name for p in self.hyperparameters
                                         if not p.fixed].index(hp.name)])
            vals = {}
            for sign in (1, -1):
                kw = {hp.name: base * math.exp(sign * h)}
                vals[sign] = _padded_kernel(self._net(d, **kw), X, **fixed).nngp
            grads.append((vals[1] - vals[-1]) / (2 * h))
        G = np.stack(grads, -1) if grads else np.empty(K.shape + (0,))
        return K, G

    def diag(self, X):
        X = self._inputs(X, "X")
        kw = self._kw()
        return _kernel_diag(self._net(X.shape[1]), X, **kw)[0]

    def is_stationary(self):
        return False

    @property
    def requires_vector_input(self):
        return True

    def __repr__(self):
        return (f"{type(self).__name__}(sigma_w={self.sigma_w:.3g}, sigma_b={self.sigma_b:.3g}, "
                f"form={self.form!r}, activation={self.activation!r}, depth={self.depth})")
