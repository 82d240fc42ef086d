r"""The limit equations of trained ResNets (``trained_scaling.md`` §7), float64.

The network of §2 is ``h_{k+1} = h_k + delta_k sigma(A_k h_k + b_k)``, ``k = 0..L-1``, with
inputs ``x`` of shape (k, d) (rows are inputs), ``A`` (L, d, d), ``b`` (L, d) and layer
factors ``delta`` (L,) (a shared delta repeated; 1 for effective weights that absorb it).

* :func:`network_paths`: the hidden states ``h_0..h_L`` and the backpropagated gradients
  ``p_k = dl/dh_k`` of ``l = 1/2 sum_inputs |h_L - y|^2`` (by autodiff through additive
  perturbations of each state, so the gradients are those backpropagation computes), for a
  batch of networks padded with no-op layers (factor 0) to one depth: one compilation.

**Hypothesis 1** (smooth weights, ``A_k = L^{-beta} A-bar(k/L)``, shared ``delta ~ L^{-alpha}``,
``alpha + beta = 1``):

* :func:`ode_limit` extracts :class:`OdeLimit` from a sweep: ``A-bar`` and ``b-bar`` on ``G``
  intervals of [0, 1] from the trend of §5 (:func:`~deeplimits.spec.trainable.trend_noise`,
  the depth-averaged integral ``I-bar(t) = L^{beta-1} sum_{k<Lt} A_k``, ``A-bar = dI-bar/dt``)
  and ``delta-bar = mean L^{1-beta} |delta|``;
* :func:`solve_limit_ode`: ``dH/dt = delta-bar sigma'(0) (A-bar_t H + b-bar_t)`` (the *linear*
  ODE, ``beta > 0``) or ``dH/dt = delta-bar sigma(A-bar_t H + b-bar_t)`` (the classical neural
  ODE, ``beta = 0``), ``H_0 = x``; and the backward equation
  ``dP/dt = -(df/dH)^T P``, ``P_1 = H_1 - y`` (``-delta-bar sigma'(0) A-bar^T P`` when linear),
  both by diffrax (Tsit5, constant steps). ``A-bar`` enters as the linear interpolation of
  its interval values at the interval midpoints (continuous in t).

**Hypothesis 2** (effective weights of size ``L^{-1/2}``, ``delta`` absorbed):

* :func:`sde_limit` extracts :class:`SdeLimit` from the finest network of a sweep: the path
  ``X_t = sum_{k<Lt} (A_k, b_k)`` (the trend ``int A-bar`` plus the noise ``W``) and, per row
  ``i`` and coarse interval, the rate of the realised covariation of
  ``xi^i_k = (A^{i,1..d}_k, b^i_k)``: ``c^i = sum_k xi^i_k xi^{iT}_k / dt``, (d, d+1, d+1);
* :func:`solve_limit_sde`: the Itô SDE of §7 driven pathwise by that ``X``,
  ``dH^i = sigma'(0) (dX^A H + dX^b)^i + 1/2 sigma''(0) [H; 1]^T c^i_t [H; 1] dt``,
  by diffrax (Euler on the grid of ``X``: the left-point Itô sum; ``drift=False`` drops the
  covariation term); and the backward equation
  ``P_t = P_1 + int_t^1 sigma'(0) (dX^A)^T P + sigma''(0) int_t^1 dC``,
  ``dC^j = sum_i P^i (c^i [H; 1])_j dt``, a backward (right-point) integral: Euler in
  reversed time.

:func:`sup_errors`: ``max_k |h_k - H_{k/L}|`` per input (Euclidean over coordinates) on
each network's own grid *(choice: between grid points the limit moves by its modulus of
continuity, a property of H, not of the convergence)*.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import diffrax
import jax
import jax.numpy as jnp
import lineax
import numpy as np

from deeplimits._core.validation import check_samples
from deeplimits.spec.activations import Activation, get_activation
from deeplimits.spec.trainable import trend_noise

__all__ = [
    "network_paths", "OdeLimit", "ode_limit", "solve_limit_ode", "SdeLimit", "sde_limit",
    "solve_limit_sde", "sup_errors", "brownian_weights", "midpoint_values",
]


def _check_batch(A, b, delta, x, y=None):
    A, b, delta, x = (np.asarray(v, np.float64) for v in (A, b, delta, x))
    if A.ndim != 4 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must have shape (networks, L, d, d), got {A.shape}")
    n, L, d = A.shape[:3]
    if b.shape != (n, L, d) or delta.shape != (n, L):
        raise ValueError(f"b must have shape {(n, L, d)} and delta {(n, L)}, got {b.shape} "
                         f"and {delta.shape}")
    if x.ndim != 3 or x.shape[0] != n or x.shape[2] != d:
        raise ValueError(f"x must have shape ({n}, inputs, {d}), got {x.shape}")
    arrays = [A, b, delta, x]
    if y is not None:
        y = np.asarray(y, np.float64)
        if y.shape != x.shape:
            raise ValueError(f"y must have the shape of x {x.shape}, got {y.shape}")
        arrays.append(y)
    if not all(np.all(np.isfinite(v)) for v in arrays):
        raise ValueError("weights, inputs and targets must be finite")
    return arrays


@functools.lru_cache(maxsize=16)
def _paths_fn(activation: Activation):
    sigma = activation.fn

    def forward(A, b, delta, x, eps):
        def layer(h, w):
            A_k, b_k, d_k, e_k = w
            h = h + e_k + d_k * sigma(h @ A_k.T + b_k)
            return h, h

        _, hs = jax.lax.scan(layer, x, (A, b, delta, eps))
        return jnp.concatenate([x[None], hs])

    def one(A, b, delta, x, y):
        eps = jnp.zeros((A.shape[0],) + x.shape, x.dtype)
        hs = forward(A, b, delta, x, eps)
        loss = lambda x0, e: 0.5 * jnp.sum((forward(A, b, delta, x0, e)[-1] - y) ** 2)
        g0, ge = jax.grad(loss, argnums=(0, 1))(x, eps)
        # d loss / d eps_k = d loss / d h_{k+1}; d loss / d x = p_0
        return hs, jnp.concatenate([g0[None], ge])

    return jax.jit(jax.vmap(one))


def network_paths(A, b, delta, x, y, activation: str | Activation = "tanh"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states and backpropagated gradients of a batch of networks.

    Args:
        A: (n, L, d, d) weights; b: (n, L, d); delta: (n, L) layer factors (0 makes a layer
            an exact no-op: how networks of several depths share one compilation).
        x: (n, k, d) inputs (k rows per network); y: (n, k, d) targets.

    Returns:
        ``(h, p)``, both (n, L+1, k, d): ``h_0 = x``, ``h_{j+1} = h_j + delta_j sigma(A_j h_j +
        b_j)``, and ``p_j = dl/dh_j`` for ``l = 1/2 sum |h_L - y|^2``.
    """
    act = get_activation(activation)
    A, b, delta, x, y = _check_batch(A, b, delta, x, y)
    h, p = _paths_fn(act)(*(jnp.asarray(v) for v in (A, b, delta, x, y)))
    return np.asarray(h), np.asarray(p)


# -- hypothesis 1 -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OdeLimit:
    """Limit weights under hypothesis 1 (§7), from :func:`ode_limit`.

    Attributes:
        A: (G, d, d) ``A-bar`` on the intervals ``[i/G, (i+1)/G)`` (``lim L^beta A_{floor(Lt)}``).
        b: (G, d) ``b-bar`` likewise.
        delta: ``delta-bar = lim L^{1-beta} |delta|`` (1 for weights that absorb delta).
        beta: the exponent used.
        linear: the linear ODE (``beta > 0``: only ``sigma'(0)`` survives) or the classical one.
        averaged_depths: the depths whose trend was averaged.
    """

    A: np.ndarray
    b: np.ndarray
    delta: float
    beta: float
    linear: bool
    averaged_depths: tuple[int, ...]

    @property
    def grid(self) -> np.ndarray:
        return np.arange(self.A.shape[0] + 1) / self.A.shape[0]


def ode_limit(weights: Mapping[int, tuple], beta: float, *, linear: bool, min_depth: int = 0,
              n_average: int = 4, grid: int = 500) -> OdeLimit:
    """The hypothesis-1 limit weights of one weight sequence per depth.

    Args:
        weights: ``{L: (A (L, d, d), b (L, d), delta)}``, delta a scalar (shared) or ``None``
            (delta = 1).
        beta: the exponent of ``A_k ~ L^{-beta}`` (normally beta-hat of the sweep).
        linear: which limit (``beta > 0``: linear; ``beta = 0``: classical), decided by the
            caller from the interval of beta-hat.
        min_depth, n_average, grid: as :func:`~deeplimits.spec.trainable.trend_noise` (the
            ``n_average`` largest depths above ``min_depth`` are averaged).
    """
    if not weights:
        raise ValueError("ode_limit needs at least one depth")
    if not (np.isfinite(beta) and 0 <= beta < 1):
        raise ValueError(f"beta must lie in [0, 1) (hypothesis 1), got {beta}")
    A = {int(L): np.asarray(w[0], np.float64) for L, w in weights.items()}
    b = {int(L): np.asarray(w[1], np.float64) for L, w in weights.items()}
    tA = trend_noise(A, beta, min_depth=min_depth, n_average=n_average, grid=grid)
    tb = trend_noise(b, beta, min_depth=min_depth, n_average=n_average, grid=grid)
    deltas = []
    for L in tA.averaged_depths:
        d = weights[L][2]
        d = 1.0 if d is None else float(np.abs(np.asarray(d, np.float64)))
        deltas.append(L ** (1.0 - beta) * d)
    return OdeLimit(grid * np.diff(tA.mean_integral, axis=0), grid * np.diff(tb.mean_integral,
                                                                             axis=0),
                    float(np.mean(deltas)), float(beta), bool(linear), tA.averaged_depths)


def _midpoint_path(values: jax.Array) -> diffrax.LinearInterpolation:
    """Interval values (G, ...) as a continuous path: linear between interval midpoints,
    constant on the outer half intervals."""
    G = values.shape[0]
    ts = jnp.concatenate([jnp.zeros(1), (jnp.arange(G) + 0.5) / G, jnp.ones(1)])
    ys = jnp.concatenate([values[:1], values, values[-1:]])
    return diffrax.LinearInterpolation(ts=ts, ys=ys)


def midpoint_values(values, t) -> np.ndarray:
    """Interval values (G, ...) at times ``t`` (m,), as :func:`solve_limit_ode` sees them
    (linear between interval midpoints, constant on the outer half intervals): (m, ...)."""
    path = _midpoint_path(jnp.asarray(values, jnp.float64))
    return np.asarray(jax.vmap(path.evaluate)(jnp.asarray(t, jnp.float64)))


@functools.lru_cache(maxsize=16)
def _ode_fn(activation: Activation, steps: int):
    sigma, p1 = activation.fn, activation.p1

    def field(A, b, delta, linear):
        pa, pb = _midpoint_path(A), _midpoint_path(b)

        def f(t, H, args):
            u = H @ pa.evaluate(t).T + pb.evaluate(t)
            return delta * jnp.where(linear, p1 * u, sigma(u))

        return f

    def one(A, b, delta, linear, x, y, ts):
        f = field(A, b, delta, linear)
        fwd = diffrax.diffeqsolve(diffrax.ODETerm(f), diffrax.Tsit5(), 0.0, 1.0, 1.0 / steps,
                                  x, saveat=diffrax.SaveAt(ts=ts, dense=True),
                                  stepsize_controller=diffrax.ConstantStepSize(),
                                  max_steps=steps + 1)

        def adjoint(t, P, args):
            _, vjp = jax.vjp(lambda H: f(t, H, None), fwd.evaluate(t))
            return -vjp(P)[0]

        P1 = fwd.ys[-1] - y
        bwd = diffrax.diffeqsolve(diffrax.ODETerm(adjoint), diffrax.Tsit5(), 1.0, 0.0,
                                  -1.0 / steps, P1, saveat=diffrax.SaveAt(ts=ts[::-1]),
                                  stepsize_controller=diffrax.ConstantStepSize(),
                                  max_steps=steps + 1)
        return fwd.ys, bwd.ys[::-1]

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, None)))


def solve_limit_ode(limits: Sequence[OdeLimit], x, y, ts, *, activation: str | Activation
                    = "tanh", steps: int | None = None, linear: Sequence[bool] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Solve the hypothesis-1 limit ODE and its backward equation for each limit.

    Args:
        limits: n :class:`OdeLimit` of one grid size and width.
        x, y: (n, k, d) inputs and targets (``P_1 = H_1 - y``).
        ts: increasing times in [0, 1], starting at 0 and ending at 1, where to save.
        steps: constant Tsit5 steps (default ``8 G``: the coefficients are piecewise linear
            on the grid, so a few steps per interval make the solver error negligible).
        linear: overrides each limit's ``linear`` (e.g. to judge a network against the
            other hypothesis' ODE, a negative control).

    Returns:
        ``(H, P)``, both (n, len(ts), k, d).
    """
    if not limits:
        raise ValueError("solve_limit_ode needs at least one limit")
    if len({lim.A.shape for lim in limits}) != 1:
        raise ValueError("the limits must share their grid and width")
    ts = np.asarray(ts, np.float64)
    if ts.ndim != 1 or ts[0] != 0.0 or ts[-1] != 1.0 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must increase strictly from 0 to 1")
    G = limits[0].A.shape[0]
    steps = 8 * G if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    flags = [lim.linear for lim in limits] if linear is None else list(linear)
    if len(flags) != len(limits):
        raise ValueError("linear must give one flag per limit")
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 3 or x.shape[0] != len(limits):
        raise ValueError(f"x and y must have shape ({len(limits)}, inputs, d), got {x.shape}, "
                         f"{y.shape}")
    args = (np.stack([lim.A for lim in limits]), np.stack([lim.b for lim in limits]),
            np.array([lim.delta for lim in limits]), np.array(flags, bool), x, y)
    H, P = _ode_fn(get_activation(activation), steps)(*(jnp.asarray(a) for a in args),
                                                       jnp.asarray(ts))
    return np.asarray(H), np.asarray(P)


# -- hypothesis 2 -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SdeLimit:
    """Limit weights under hypothesis 2 (§7), from :func:`sde_limit`.

    Attributes:
        path_A: (N+1, d, d) ``X^A_{n/N} = sum_{k<n} A_k``: the trend integral plus the noise.
        path_b: (N+1, d) likewise for the biases.
        covariation: (G, d, d+1, d+1) per coarse interval and row ``i``, the rate of the
            realised covariation of ``(X^{A,i.}, X^{b,i})`` (``d[X^{A,ij}, X^{A,il}]/dt`` in
            ``[:, i, j, l]``, the cross terms with b in the last row and column).
    """

    path_A: np.ndarray
    path_b: np.ndarray
    covariation: np.ndarray

    @property
    def steps(self) -> int:
        return self.path_A.shape[0] - 1


def sde_limit(A, b, *, grid: int = 8) -> SdeLimit:
    """The hypothesis-2 limit weights of one network's effective weights ``A`` (N, d, d),
    ``b`` (N, d): the partial-sum path, and the realised covariation rate on ``grid``
    intervals (``N`` must be a multiple of ``grid``)."""
    A, b = np.asarray(A, np.float64), np.asarray(b, np.float64)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or b.shape != A.shape[:2]:
        raise ValueError(f"A must be (N, d, d) and b (N, d), got {A.shape}, {b.shape}")
    N, d = A.shape[:2]
    if grid < 1 or N % grid:
        raise ValueError(f"the depth {N} must be a multiple of grid={grid}")
    zero = lambda a: np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    xi = np.concatenate([A, b[:, :, None]], axis=2)  # (N, i, d+1): row i and its bias
    outer = np.einsum("nip,niq->nipq", xi, xi)
    rate = outer.reshape(grid, N // grid, d, d + 1, d + 1).sum(axis=1) * grid
    return SdeLimit(zero(A), zero(b), rate)


@functools.lru_cache(maxsize=16)
def _sde_fn(activation: Activation, steps: int, solver: str):
    p1, p2 = activation.p1, activation.p2
    ts = jnp.linspace(0.0, 1.0, steps + 1)

    def one(path_A, path_b, cov, x, y, drift):
        # one (d, d+1) path [X^A | X^b]: the noise of row i acts on [H; 1]
        path = diffrax.LinearInterpolation(ts=ts, ys=jnp.concatenate([path_A, path_b[..., None]],
                                                                     axis=-1))
        rate, rate_back = _steps_path(cov, right=True), _steps_path(cov, right=False)
        structure = jax.eval_shape(lambda: path.evaluate(0.0, 1.0))

        def fwd_drift(t, H, args):
            Hb = _with_one(H)
            return drift * 0.5 * p2 * jnp.einsum("kp,ipq,kq->ki", Hb, rate(t), Hb)

        def fwd_noise(t, H, args):
            return lineax.FunctionLinearOperator(lambda dX: p1 * (_with_one(H) @ dX.T),
                                                 structure)

        terms = diffrax.MultiTerm(diffrax.ODETerm(fwd_drift),
                                  diffrax.ControlTerm(fwd_noise, path))
        method = diffrax.Euler() if solver == "euler" else diffrax.Heun()
        H = diffrax.diffeqsolve(terms, method, 0.0, 1.0, None, x,
                                saveat=diffrax.SaveAt(ts=ts), max_steps=steps + 1,
                                stepsize_controller=diffrax.StepTo(ts)).ys
        Hpath = diffrax.LinearInterpolation(ts=ts, ys=H)

        # reversed time: a step from t_{n+1} to t_n has dt = -1/N and control increment
        # X(t_n) - X(t_{n+1}) = -dX_n, so the signs below give the right-point sums
        # P_n = P_{n+1} + sigma'(0) dX_n^T P_{n+1} + sigma''(0) dC_n
        def bwd_drift(t, P, args):
            Hb = _with_one(Hpath.evaluate(t))
            dC = jnp.einsum("ki,ipq,kq->kp", P, rate_back(t), Hb)[..., :-1]
            return -drift * p2 * dC

        def bwd_noise(t, P, args):
            return lineax.FunctionLinearOperator(lambda dX: -p1 * (P @ dX[..., :-1]),
                                                 structure)

        bterms = diffrax.MultiTerm(diffrax.ODETerm(bwd_drift),
                                   diffrax.ControlTerm(bwd_noise, path))
        P = diffrax.diffeqsolve(bterms, method, 1.0, 0.0, None, H[-1] - y,
                                saveat=diffrax.SaveAt(ts=ts[::-1]), max_steps=steps + 1,
                                stepsize_controller=diffrax.StepTo(ts[::-1])).ys[::-1]
        return H, P

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None)))


def _with_one(H: jax.Array) -> jax.Array:
    """``[H, 1]``: the states with a constant coordinate appended (the bias column)."""
    return jnp.concatenate([H, jnp.ones(H.shape[:-1] + (1,), H.dtype)], axis=-1)


def _steps_path(values: jax.Array, right: bool):
    """Interval values (G, ...) as a step function of t in [0, 1]: right-continuous (a
    forward Euler step from t_n reads the interval it starts in) or left-continuous (a
    reversed step from t_{n+1}). The 1e-9 keeps a grid time that rounds across a boundary
    k/G in the interval of its step."""
    G = values.shape[0]
    shift = 1e-9 if right else -1e-9
    return lambda t: values[jnp.clip(jnp.floor(t * G + shift), 0, G - 1).astype(int)]


def solve_limit_sde(limits: Sequence[SdeLimit], x, y, *, activation: str | Activation = "swish",
                    drift: bool = True, solver: str = "euler") -> tuple[np.ndarray, np.ndarray]:
    """Solve the hypothesis-2 Itô SDE and its backward equation pathwise, each driven by its
    limit's own path, on the path's grid.

    Args:
        limits: n :class:`SdeLimit` of one size.
        x, y: (n, k, d) inputs and targets (``P_1 = H_1 - y``).
        drift: keep the ``1/2 sigma''(0)`` covariation drift (``False``: the SDE without it,
            a negative control; identical when ``sigma''(0) = 0``).
        solver: ``"euler"`` (Itô, left point: the SDE of §7) or ``"heun"`` (the same equation
            read as Stratonovich: a different limit when the noise is multiplicative).

    Returns:
        ``(H, P)``, both (n, N+1, k, d) on the grid ``n/N``.
    """
    if not limits:
        raise ValueError("solve_limit_sde needs at least one limit")
    if len({(lim.path_A.shape, lim.covariation.shape) for lim in limits}) != 1:
        raise ValueError("the limits must share their steps, grid and width")
    if solver not in ("euler", "heun"):
        raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = limits[0].path_b.shape[1]
    if x.shape != y.shape or x.ndim != 3 or x.shape[0] != len(limits) or x.shape[2] != d:
        raise ValueError(f"x and y must have shape ({len(limits)}, inputs, {d}), got "
                         f"{x.shape}, {y.shape}")
    fn = _sde_fn(get_activation(activation), limits[0].steps, solver)
    H, P = fn(jnp.asarray(np.stack([lim.path_A for lim in limits])),
              jnp.asarray(np.stack([lim.path_b for lim in limits])),
              jnp.asarray(np.stack([lim.covariation for lim in limits])), jnp.asarray(x),
              jnp.asarray(y), jnp.float64(1.0 if drift else 0.0))
    return np.asarray(H), np.asarray(P)


def brownian_weights(rng: np.random.Generator, steps: int, width: int, *, scale: float = 1.0,
                     bias_scale: float = 1.0, trend: np.ndarray | None = None,
                     bias_trend: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Effective weights of hypothesis 2 on the finest grid: ``A_n = A-bar(n/N)/N +
    scale (dB^A_n) / sqrt(d)``, ``b_n = b-bar(n/N)/N + bias_scale dB^b_n`` with Brownian
    increments of variance ``1/N``; ``(A (N, d, d), b (N, d))``. Summing groups of ``N/L``
    consecutive layers gives the depth-L network of the same path."""
    N, d = check_samples(steps, "steps"), check_samples(width, "width")
    if not all(np.isfinite(v) and v >= 0 for v in (scale, bias_scale)):
        raise ValueError(f"scale and bias_scale must be finite and >= 0, got {scale}, "
                         f"{bias_scale}")
    A = rng.standard_normal((N, d, d)) * (scale / np.sqrt(d * N))
    b = rng.standard_normal((N, d)) * (bias_scale / np.sqrt(N))
    if trend is not None:
        A = A + np.asarray(trend, np.float64) / N
    if bias_trend is not None:
        b = b + np.asarray(bias_trend, np.float64) / N
    return A, b


def sup_errors(network: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``max_j |network_j - limit_{j/L}|`` (Euclidean over coordinates), (n, k): per network
    and input.

    Args:
        network: (n, L+1, k, d) states of depth-L networks on ``j/L``.
        limit: (n, M+1, k, d) the limit on ``i/M``, with ``L`` dividing ``M``.
    """
    L, M = network.shape[1] - 1, limit.shape[1] - 1
    if M % L:
        raise ValueError(f"the limit's grid ({M} steps) must be a multiple of the depth {L}")
    diff = network - limit[:, :: M // L]
    return np.sqrt((diff ** 2).sum(-1)).max(axis=1)
