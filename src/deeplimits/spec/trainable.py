r"""Residual networks whose trained weights are studied across depth (``trained_scaling.md``).

* :class:`FCResNet`: the fully connected recursion of §2,
  ``h_{k+1} = h_k + m delta_k sigma(A_k h_k + b_k)``, ``k = 0..L-1``, column-vector convention,
  no input or readout layer. The weights are stacked, ``A`` of shape (L, d, d) and ``b`` of
  shape (L, d), so the depth loop is one ``lax.scan`` (:meth:`FCResNet.__call__`);
  :meth:`FCResNet.apply_loop` is the same map as a plain Python loop over layers.
  ``delta`` is ``None`` (variant ``none``, delta = 1), a trainable scalar whose absolute value
  enters the forward pass (``shared``), or a trainable (L,) vector (``per-layer``).
  ``m`` is a fixed branch multiplier (1, or ``1/sqrt(L)`` under the depth-scaled rule, §10).
* :class:`MarionResNet`: res-1 ``h_{k+1} = h_k + L^{-beta} V_{k+1} sigma(h_k)`` and res-3
  ``h_{k+1} = h_k + L^{-beta} V_{k+1} sigma(W_{k+1} h_k)`` with ``h_0 = A x`` and output
  ``B h_L`` (§9), with i.i.d., smooth (increments of an RBF Gaussian process) or rough
  (fractional Gaussian noise) weight sequences.
* :func:`fgn`: exact fractional Gaussian noise (Davies-Harte circulant embedding).
* :func:`trend_noise`: the trend / noise decomposition of §5 and :func:`with_weights` to
  rebuild a network from the trend weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.validation import check_int

__all__ = [
    "DELTA_VARIANTS", "INITS", "ACTIVATIONS", "FCResNet", "init_fc_resnet", "effective_weights",
    "MarionResNet", "MARION_KINDS", "WEIGHT_REGULARITIES", "init_marion", "fgn",
    "fgn_autocovariance", "rbf_increments", "TrendNoise", "trend_noise", "with_weights"
]

DELTA_VARIANTS = ("none", "shared", "per-layer")


INITS = ("xavier", "xavier-depth")


ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "linear": lambda u: u}


MARION_KINDS = ("res-1", "res-3")


WEIGHT_REGULARITIES = ("iid", "smooth", "rough")


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _normal(key, shape) -> np.ndarray:
    """Standard normals, float64, from a JAX key or a ``numpy.random.Generator`` (the latter
    needs no compilation per shape)."""
    if isinstance(key, np.random.Generator):
        return key.standard_normal(shape)
    return np.asarray(jax.random.normal(key, shape, jnp.float32), dtype=np.float64)


def _split(key, n: int) -> list:
    if isinstance(key, np.random.Generator):
        return key.spawn(n)
    return list(jax.random.split(key, n))


class FCResNet(eqx.Module):
    """``h_{k+1} = h_k + m delta_k sigma(A_k h_k + b_k)`` (§2), weights stacked over layers.

    Attributes:
        A: (L, d, d) weight matrices.
        b: (L, d) biases.
        delta: ``None`` (delta = 1), a 0-d array (shared; the forward pass uses ``|delta|``)
            or an (L,) array (per layer).
        activation: ``"tanh"``, ``"relu"`` or ``"linear"``.
        multiplier: fixed branch multiplier ``m`` (not trained).
    """

    A: jax.Array
    b: jax.Array
    delta: jax.Array | None
    activation: str = eqx.field(static=True, default="tanh")
    multiplier: float = eqx.field(static=True, default=1.0)

    @property
    def depth(self) -> int:
        return self.A.shape[-3]

    @property
    def width(self) -> int:
        return self.A.shape[-1]

    @property
    def delta_variant(self) -> str:
        if self.delta is None:
            return "none"
        return "shared" if self.delta.ndim == 0 else "per-layer"

    def deltas(self) -> jax.Array:
        """The (L,) factors ``m delta_k`` used by the forward pass (``|delta|`` if shared)."""
        one = jnp.ones(self.depth, self.A.dtype)
        if self.delta is None:
            return self.multiplier * one
        if self.delta.ndim == 0:
            return self.multiplier * jnp.abs(self.delta) * one
        return self.multiplier * self.delta

    def __call__(self, x: jax.Array, layer_scale: jax.Array | None = None) -> jax.Array:
        """``h_L`` for inputs ``x`` of shape (batch, d), by a ``lax.scan`` over layers.

        ``layer_scale`` (L,) multiplies each layer's factor; zeros make layers exact no-ops
        (how networks of several depths are padded to one and trained together).
        """
        sigma = _activation(self.activation)
        deltas = self.deltas() if layer_scale is None else self.deltas() * layer_scale

        def layer(h, weights):
            A, b, d = weights
            return h + d * sigma(h @ A.T + b), None

        h, _ = jax.lax.scan(layer, x, (self.A, self.b, deltas))
        return h

    def apply_loop(self, x: jax.Array) -> jax.Array:
        """The same map as :meth:`__call__`, as a plain Python loop over layers."""
        sigma = _activation(self.activation)
        deltas = self.deltas()
        h = x
        for k in range(self.depth):
            h = h + deltas[k] * sigma(h @ self.A[k].T + self.b[k])
        return h


def init_fc_resnet(key: jax.Array, depth: int, width: int, *, activation: str = "tanh",
                   delta: str = "shared", init: str = "xavier", scale: float = 1e-4,
                   multiplier: float = 1.0, dtype=jnp.float32) -> FCResNet:
    """An :class:`FCResNet` with the initialisation of §2.

    ``key`` is a JAX key or a ``numpy.random.Generator`` (no compilation per shape: what the
    training loop uses, since every depth is a new shape).

    ``xavier``: ``A_k`` entries N(0, (s/d)^2), ``b_k`` entries N(0, (s/sqrt d)^2);
    ``xavier-depth``: both divided by L. ``delta``: ``none``; ``shared`` = 1/L;
    ``per-layer`` delta_k ~ N(0, 1/L^2) (random signs).
    """
    depth = check_int(depth, "depth")
    width = check_int(width, "width")
    _activation(activation)
    if delta not in DELTA_VARIANTS:
        raise ValueError(f"delta must be one of {DELTA_VARIANTS}, got {delta!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    if isinstance(key, np.random.Generator):
        normal = lambda shape: jnp.asarray(key.standard_normal(shape), dtype)
    else:
        keys = iter(jax.random.split(key, 3))
        normal = lambda shape: jax.random.normal(next(keys), shape, dtype)
    s = scale / depth if init == "xavier-depth" else scale
    A = normal((depth, width, width)) * (s / width)
    b = normal((depth, width)) * (s / math.sqrt(width))
    if delta == "none":
        d = None
    elif delta == "shared":
        d = jnp.asarray(1.0 / depth, dtype)
    else:
        d = normal((depth,)) / depth
    return FCResNet(A, b, d, activation=activation, multiplier=float(multiplier))


def effective_weights(model: FCResNet) -> tuple[jax.Array, jax.Array]:
    """``(|delta_k| A_k, |delta_k| b_k)`` (§2, "effective weights"): the weights that the
    statistics see for ReLU or per-layer delta. Shapes (..., L, d, d) and (..., L, d)."""
    if model.delta is None:
        return model.A, model.b
    scale = jnp.abs(model.delta)
    if model.delta.ndim >= 1 and model.delta.shape[-1] == model.A.shape[-3]:
        return model.A * scale[..., None, None], model.b * scale[..., None]
    return model.A * scale[..., None, None, None], model.b * scale[..., None, None]


class MarionResNet(eqx.Module):
    """res-1 / res-3 of §9: ``h_0 = A x``, ``h_{k+1} = h_k + L^{-beta} V_k sigma(W_k h_k)``
    (res-3) or ``... V_k sigma(h_k)`` (res-1, ``W = None``), output ``B h_L``.

    Shapes: A (width, d_in), V and W (L, width, width), B (d_out, width).
    """

    A: jax.Array
    V: jax.Array
    W: jax.Array | None
    B: jax.Array
    beta: float = eqx.field(static=True, default=0.5)
    activation: str = eqx.field(static=True, default="relu")

    @property
    def depth(self) -> int:
        return self.V.shape[-3]

    def hidden(self, x: jax.Array, layer_scale: jax.Array | None = None) -> jax.Array:
        """``h_L`` (batch, width) for x (batch, d_in). ``layer_scale`` (L,) replaces the
        factors ``L^{-beta}`` (zeros pad a network with no-op layers)."""
        sigma = _activation(self.activation)
        if layer_scale is None:
            layer_scale = jnp.full(self.depth, self.depth ** (-self.beta), self.V.dtype)

        def layer(h, weights):
            V, W, c = weights
            pre = h if W is None else h @ W.T
            return h + c * sigma(pre) @ V.T, None

        h, _ = jax.lax.scan(layer, x @ self.A.T, (self.V, self.W, layer_scale))
        return h

    def __call__(self, x: jax.Array, layer_scale: jax.Array | None = None) -> jax.Array:
        return self.hidden(x, layer_scale) @ self.B.T


def fgn_autocovariance(n: int, hurst: float) -> np.ndarray:
    """gamma(k) = (|k+1|^{2H} - 2|k|^{2H} + |k-1|^{2H}) / 2 for k = 0..n-1 (unit variance)."""
    k = np.arange(n, dtype=np.float64)
    h2 = 2.0 * hurst
    return 0.5 * (np.abs(k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)


def fgn(key: jax.Array, n: int, hurst: float, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Exact fractional Gaussian noise: (n, *shape) float64, unit-variance increments of a
    fractional Brownian motion with Hurst index ``hurst``, independent across ``shape``
    (``key``: a JAX key or a ``numpy.random.Generator``).

    Davies-Harte: the autocovariance is embedded in a circulant of size 2n, whose eigenvalues
    (an FFT) are non-negative for fGn; ``Re FFT(sqrt(lambda / 2n) (X + iY))`` then has exactly
    the circulant covariance, whose leading n x n block is the fGn covariance.
    """
    n = check_int(n, "n")
    if not 0 < hurst < 1:
        raise ValueError(f"hurst must lie in (0, 1), got {hurst!r}")
    gamma = fgn_autocovariance(n + 1, hurst)
    row = np.concatenate([gamma, gamma[-2:0:-1]])  # length 2n
    lam = np.fft.fft(row).real
    lam = np.where(lam < 0, 0.0, lam)  # rounding only: fGn embeddings are non-negative
    m = row.size
    z = _normal(key, (2, m, *shape))
    coeff = np.sqrt(lam / m).reshape((m,) + (1,) * len(shape))
    w = np.fft.fft(coeff * (z[0] + 1j * z[1]), axis=0)
    return w.real[:n]


def rbf_increments(key: jax.Array, n: int, shape: tuple[int, ...], lengthscale: float
                   ) -> np.ndarray:
    """(n, *shape) increments ``G(t_{k+1}) - G(t_k)`` of independent Gaussian processes on
    ``t_k = k/n`` (k = 0..n) with covariance ``exp(-(s-t)^2 / (2 lengthscale))`` (§9: the
    length scale acts as a squared length scale), float64. Sampled through the eigen
    decomposition of the covariance (robust where the RBF covariance is near singular)."""
    n = check_int(n, "n")
    if not lengthscale > 0:
        raise ValueError(f"lengthscale must be > 0, got {lengthscale!r}")
    t = np.arange(n + 1) / n
    cov = np.exp(-((t[:, None] - t[None, :]) ** 2) / (2 * lengthscale))
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    g = root @ _normal(key, (n + 1, int(np.prod(shape, dtype=int))))
    return np.diff(g, axis=0).reshape((n, *shape))


def _uniform(key, shape, fan_in: int) -> np.ndarray:
    """U(+-sqrt(3/fan_in)) entries (variance 1/fan_in), float64."""
    bound = math.sqrt(3.0 / fan_in)
    if isinstance(key, np.random.Generator):
        return key.uniform(-bound, bound, shape)
    return np.asarray(jax.random.uniform(key, shape, jnp.float32, -bound, bound), np.float64)


def _weight_sequence(key, depth: int, width: int, regularity: str, lengthscale: float,
                     hurst: float) -> np.ndarray:
    """(L, width, width) float64 weight sequence with entries of order width^{-1/2} (§9)."""
    shape = (width, width)
    if regularity == "iid":
        return _uniform(key, (depth, *shape), width)
    if regularity == "smooth":
        inc = rbf_increments(key, depth, shape, lengthscale)
        c = inc.reshape(depth, -1).std(axis=1).mean()
        return inc / (c * math.sqrt(width))
    return fgn(key, depth, hurst, shape) / math.sqrt(width)


def init_marion(key: jax.Array, depth: int, width: int, d_in: int, d_out: int, *,
                kind: str = "res-1", regularity: str = "iid", beta: float | None = None,
                activation: str = "relu", lengthscale: float = 0.1, hurst: float = 0.5,
                dtype=jnp.float32) -> MarionResNet:
    """A res-1 / res-3 network of §9 (``key``: a JAX key or a ``numpy.random.Generator``).

    ``A``, ``B`` (and ``W``, ``V`` when i.i.d.) have entries U(+-sqrt(3/fan_in)). ``V`` (and
    ``W`` for res-3) follow ``regularity``: ``iid``, ``smooth`` (RBF-GP increments normalised
    to entries of order width^{-1/2}) or ``rough`` (fGn with Hurst ``hurst`` / sqrt(width)).
    ``beta`` defaults to the critical scaling: 1/2 (iid), 1 (smooth), max(H, 1/2) (rough).
    """
    depth = check_int(depth, "depth")
    width = check_int(width, "width")
    d_in = check_int(d_in, "d_in")
    d_out = check_int(d_out, "d_out")
    if kind not in MARION_KINDS:
        raise ValueError(f"kind must be one of {MARION_KINDS}, got {kind!r}")
    if regularity not in WEIGHT_REGULARITIES:
        raise ValueError(f"regularity must be one of {WEIGHT_REGULARITIES}, got {regularity!r}")
    _activation(activation)
    if not 0 < hurst < 1:
        raise ValueError(f"hurst must lie in (0, 1), got {hurst!r}")
    if beta is None:
        beta = {"iid": 0.5, "smooth": 1.0, "rough": max(hurst, 0.5)}[regularity]
    kA, kB, kV, kW = _split(key, 4)

    def uniform(k, shape, fan_in):
        return jnp.asarray(_uniform(k, shape, fan_in), dtype)

    V = jnp.asarray(_weight_sequence(kV, depth, width, regularity, lengthscale, hurst), dtype)
    W = None
    if kind == "res-3":
        W = jnp.asarray(_weight_sequence(kW, depth, width, regularity, lengthscale, hurst), dtype)
    return MarionResNet(uniform(kA, (width, d_in), d_in), V, W, uniform(kB, (d_out, width), width),
                        beta=float(beta), activation=activation)


@dataclasses.dataclass(frozen=True)
class TrendNoise:
    """Result of :func:`trend_noise`.

    Attributes:
        grid: (G+1,) times ``t_i = i/G``.
        mean_integral: (G+1, ...) ``I-bar``, the mean of ``L^{beta-1} sum_{k < L t_i} A_k``
            over the averaging depths.
        trend: ``{L: (L, ...)}`` trend weights ``L^{-beta} G (I-bar(t_{i+1}) - I-bar(t_i))``,
            ``i = floor(G k / L)``.
        noise: ``{L: (L+1, ...)}`` noise paths ``L^{beta-1} sum_{j<k} (A_j - trend_j)``.
        averaged_depths: the depths averaged into ``mean_integral``.
    """

    grid: np.ndarray
    mean_integral: np.ndarray
    trend: dict[int, np.ndarray]
    noise: dict[int, np.ndarray]
    averaged_depths: tuple[int, ...]


def _scaled_integral(A: np.ndarray, beta: float, grid: int) -> np.ndarray:
    L = A.shape[0]
    W = np.concatenate([np.zeros((1,) + A.shape[1:]), np.cumsum(A, axis=0)])  # W_k = sum_{j<k}
    # W linearly interpolated between the layer boundaries k/L (see trend_noise)
    pos = L * np.arange(grid + 1) / grid
    idx = np.minimum(np.floor(pos).astype(int), L - 1)
    frac = (pos - idx).reshape((-1,) + (1,) * (A.ndim - 1))
    return L ** (beta - 1.0) * (W[idx] + frac * (W[idx + 1] - W[idx]))


def trend_noise(weights: Mapping[int, np.ndarray], beta: float, *, min_depth: int = 500,
                n_average: int = 4, grid: int = 500) -> TrendNoise:
    """The trend / noise decomposition of ``trained_scaling.md`` §5.

    ``I_L(t) = L^{beta-1} sum_{k < L t} A_k`` is evaluated with the partial sums linearly
    interpolated between the layer boundaries ``k/L`` *(choice)*: the step version of the
    reference code quantises the trend when L is close to the grid size (each grid interval
    then holds one or two layers, a trend error up to ~60%); both agree at the boundaries.

    Args:
        weights: ``{L: (L, ...)}`` one weight sequence per depth (float64).
        beta: the scaling exponent (normally beta-hat of MaxNorm).
        min_depth: only depths ``L > min_depth`` enter the average (500 in the spec).
        n_average: how many of the largest such depths are averaged into ``I-bar`` (4).
        grid: number ``G`` of grid intervals (500).
    """
    big = sorted(L for L in weights if L > min_depth)
    if not big:
        raise ValueError(f"trend_noise needs at least one depth > min_depth={min_depth}; "
                         f"got depths {sorted(weights)}")
    shapes = {np.shape(w)[1:] for w in weights.values()}
    if len(shapes) != 1:
        raise ValueError(f"weight stacks must share their per-layer shape, got {shapes}")
    for L, w in weights.items():
        if np.shape(w)[0] != L:
            raise ValueError(f"the stack for depth {L} has {np.shape(w)[0]} layers")
    averaged = tuple(big[-n_average:])
    mean_integral = np.mean([_scaled_integral(np.asarray(weights[L], np.float64), beta, grid)
                             for L in averaged], axis=0)
    trend, noise = {}, {}
    for L, w in weights.items():
        w = np.asarray(w, np.float64)
        i = np.floor(grid * np.arange(L) / L).astype(int)
        trend[L] = L ** (-beta) * grid * (mean_integral[i + 1] - mean_integral[i])
        resid = np.cumsum(w - trend[L], axis=0)
        noise[L] = L ** (beta - 1.0) * np.concatenate([np.zeros((1,) + w.shape[1:]), resid])
    return TrendNoise(np.arange(grid + 1) / grid, mean_integral, trend, noise, averaged)


def with_weights(model: FCResNet, A, b) -> FCResNet:
    """``model`` with its weights replaced (e.g. by trend weights), delta kept."""
    A = jnp.asarray(A, model.A.dtype)
    b = jnp.asarray(b, model.b.dtype)
    if A.shape != model.A.shape or b.shape != model.b.shape:
        raise ValueError(f"weights of shapes {A.shape}, {b.shape} do not fit a model with "
                         f"{model.A.shape}, {model.b.shape}")
    return eqx.tree_at(lambda m: (m.A, m.b), model, (A, b))
