"""Fixed width, infinite depth: studies of Hayou's ``1/sqrt(L)`` ResNet (``finite_width.md``).

The network is ``Y_l = Y_{l-1} + W_l phi(Y_{l-1})`` with ``W_l[i, j] ~ N(0, sigma_w^2/(nL))``
(``hayou_resnet``). For one input its layer increment is exactly ``(s_w |phi(Y)| sqrt(dt)) G``
with ``G ~ N(0, I_n)``, so a path costs ``O(n)`` per layer (``forward.md`` §5); for ``k``
inputs the Gram trick costs ``O(n k^2)``. The dense network (``sampler="dense"``: the
``n x n`` matrix ``W_l`` drawn and applied, ``O(n^2)`` per layer) is the independent
implementation the exact sampler is checked against.

* :func:`simulate_paths`: many paths of the exact sampler, recording at chosen times the
  post-activation log-norm, the Gram matrix of the inputs and the two parts of Ito's
  formula for ``log |phi(Y)|`` (martingale and compensator, §4-§5), without storing the
  trajectory;
* :func:`gbm_law_study`: the geometric-BM family ``a x + b``, ``a |x - c|`` against
  :func:`~deeplimits.closed_forms.gbm_log_norm_law` (§4);
* :func:`relu_identity_study`: the ReLU identity with the active count, pathwise (§5);
* :func:`regime_study`: the width 3 -> 4 regime change on several horizons (§6-§7);
* :func:`dead_orthant_study`: dead starts and collapse at finite depth (§8);
* :func:`covariance_grid` and :func:`nongaussian_study`: the order of limits (§9).

Every study is a pure function of its arguments and a seed and returns an
``xarray.Dataset`` whose attributes hold its configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits._core.linalg import psd_sqrt
from deeplimits._core.progress import progress_callback
from deeplimits._core.validation import check_inputs
from deeplimits.simulation.samplers import DenseSampler, ExactSampler, get_sampler
from deeplimits.spec.activations import Activation
from deeplimits.spec.blocks import FormA
from deeplimits.spec.laws import Gaussian
from deeplimits.spec.networks import ResNet

__all__ = ["simulate_paths"]

# Floats of state that one compiled chunk of paths holds (16 MB in float32), and at most
# this many paths per chunk (fewer samples: the next power of two). A fixed chunk lets
# studies with different sample counts share one compilation; paths are reproducible from
# (key, samples).
_CHUNK_FLOATS = 2**22


_CHUNK_PATHS = 4096


# States are always recorded up to this padded width (then dropped unless asked for), so
# that keep_state does not split the compilations of narrow networks.
STATE_WIDTH = 64




def positive_ints(values, name: str) -> list[int]:
    out = [int(v) for v in np.atleast_1d(values)]
    if not out or any(v < 1 or v != w for v, w in zip(out, np.atleast_1d(values), strict=True)):
        raise ValueError(f"{name} must be positive integers, got {values!r}")
    return out


def check_path_samples(samples) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    return int(samples)


def _check_hayou(net: ResNet) -> None:
    if not isinstance(net.block, FormA) or net.scaling != "shrinking" or net.M is not None:
        raise ValueError("the path studies need Hayou's network: form A, shrinking scaling, "
                         "no mean weight M (use hayou_resnet)")
    if net.sigma_b != 0 or np.any(np.asarray(net.mu_b) != 0):
        raise ValueError("the path studies need sigma_b = 0 and mu_b = 0 (no biases)")
    ExactSampler().check(net)


def padded_width(n: int) -> int:
    """Widths share one compiled program per power of two (at least 8): the padding
    coordinates are masked out, so a sweep over widths compiles a handful of times."""
    return max(8, 1 << (n - 1).bit_length())


@eqx.filter_jit
def _run_paths(act: Activation, X0, width, sigma_w, key, h, bounds, keep_state: bool,
               ito: bool, dense: bool = False, antithetic: bool = False, coarsen: int = 1):
    """Paths of Hayou's network from ``X0`` (``(S, k, m)``, zero-padded beyond ``width``)
    with step ``h``, recording after ``bounds[r + 1]`` layers.

    One layer is the exact step of form A without biases (``FormA.euler_apply``): given
    ``Y``, the increment is ``sqrt(h) s_w R Z`` with ``R R^T = <phi(Y_a), phi(Y_b)>`` the
    ``k x k`` Gram matrix and ``Z`` standard normal ``(k, n)``. Per sample and input it
    records log |phi(Y)|, the Gram matrix ``<Y_a, Y_b> / n``, the occupation integral
    ``sum h N`` of the number of positive coordinates and, with ``ito``, the martingale
    ``M = sum <phi phi' / |phi|^2, dY>`` and compensator
    ``A = (s_w^2 / 2) sum h (sum_i [phi'^2 + phi phi''] - 2 |phi phi'|^2 / |phi|^2)``.
    With ``dense`` the layer is the dense network's ``Y + sqrt(h) s_w E phi(Y)`` with a
    standard normal ``n x n`` matrix ``E`` shared by the inputs. With ``antithetic`` the
    paths come in adjacent pairs ``(2j, 2j + 1)`` (same ``X0``, given by the caller) whose
    noise ``Z`` (or ``E``) is the same draw with opposite signs. With ``coarsen = c`` layer
    ``l``'s noise is ``c^-1/2`` times the sum of the draws of layers ``c l, ..., c l + c - 1``
    of the same key: the path is the network with ``c`` times fewer layers driven by the
    same Brownian increments as the finer one (a coupled pair for the step bias).
    """
    dtype = X0.dtype
    mask = (jnp.arange(X0.shape[-1]) < width).astype(dtype)
    s_w = (sigma_w / jnp.sqrt(width)).astype(dtype)
    h = h.astype(dtype)

    def phi(X):
        return act(X) * mask

    def draw(l, shape):
        if not antithetic:
            return Gaussian().sample(jax.random.fold_in(key, l), shape, dtype)
        half = Gaussian().sample(jax.random.fold_in(key, l), (shape[0] // 2, *shape[1:]), dtype)
        # the sign flip is exact: -Z has the law of Z, so each path keeps its law
        return jnp.stack([half, -half], axis=1).reshape(shape)

    def noise(l, shape):
        if coarsen == 1:
            return draw(l, shape)
        return sum(draw(coarsen * l + i, shape) for i in range(coarsen)) / math.sqrt(coarsen)

    def layer(l, carry):
        X, M, A, N = carry
        f = phi(X)
        if dense:
            m = X.shape[-1]
            E = noise(l, (X.shape[0], m, m))
            Xn = X + jnp.sqrt(h) * s_w * jnp.einsum("sab,skb->ska", E, f) * mask
        else:
            z = noise(l, X.shape) * mask
            root = jax.vmap(psd_sqrt)(jnp.einsum("ska,sja->skj", f, f))
            Xn = X + jnp.sqrt(h) * s_w * jnp.einsum("skj,sja->ska", root, z)
        N = N + h * jnp.sum((X > 0) * mask, -1)
        if not ito:
            return Xn, M, A, N
        d = act.deriv(X) * mask
        ff = f * d
        norm2 = jnp.sum(f * f, -1)
        alive = norm2 > 0
        safe = jnp.where(alive, norm2, 1.0)
        dM = jnp.sum(ff * (Xn - X), -1) / safe
        rate = jnp.sum(d * d + f * act.second_deriv(X), -1) - 2 * jnp.sum(ff * ff, -1) / safe
        A = A + jnp.where(alive, 0.5 * s_w**2 * h * rate, 0.0)
        return Xn, M + jnp.where(alive, dM, 0.0), A, N

    def record(X, M, A, N):
        f = phi(X)
        norm2 = jnp.sum(f * f, -1)
        positive = jnp.where(norm2 > 0, norm2, 1.0)
        out = {"log_phi_norm": jnp.where(norm2 > 0, 0.5 * jnp.log(positive), -jnp.inf),
               "log_norm": 0.5 * jnp.log(jnp.sum(X * X, -1)),
               "gram": jnp.einsum("ska,sja->skj", X, X) / width, "occupation": N}
        if ito:
            out.update(martingale=M, compensator=A)
        if keep_state:
            out["state"] = X
        return out

    zeros = jnp.zeros(X0.shape[:2], dtype)
    init = (X0, zeros, zeros, zeros)

    def segment(carry, r):
        carry = jax.lax.fori_loop(bounds[r], bounds[r + 1], layer, carry)
        return carry, record(*carry)

    first = record(*init)
    _, rest = jax.lax.scan(segment, init, jnp.arange(bounds.shape[0] - 1))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)


def simulate_paths(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    samples: int,
    times: Sequence[float] | None = None,
    keep_state: bool = False,
    ito: bool = False,
    dtype=jnp.float32,
    pad_width: int | None = None,
    sampler: str = "exact",
    antithetic: bool = False,
    coarsen: int = 1,
    progress: bool | Callable[[int], None] = False,
) -> xr.Dataset:
    """Paths of Hayou's network from the exact sampler (or the dense network), recorded at
    ``times``.

    Args:
        net: a Hayou network (:func:`~deeplimits.networks.hayou_resnet`): form A, no biases,
            Gaussian weights; ``dt = horizon / depth``.
        x: inputs ``(k, input_dim)`` (one row: one input); ``Y_0 = W_in x`` for each path.
        key: JAX key; the paths are reproducible from it and ``samples``.
        samples: number of independent networks.
        times: times in ``(0, horizon]``, each a multiple of ``dt`` (default: the horizon).
            Time 0 is always recorded first.
        keep_state: also return the states ``Y_t`` (``(sample, time, input, neuron)``).
        ito: also accumulate the martingale and compensator of Ito's formula (about twice
            the cost per layer).
        dtype: simulation precision (float32: Monte Carlo error dominates rounding).
        pad_width: simulate in this padded width (default: the next power of two, at least
            8); a sweep over widths can pass its largest to compile once.
        sampler: ``"exact"`` (the Gram sampler, ``O(n k^2)`` per layer) or ``"dense"`` (the
            network with its ``n x n`` weight matrices drawn, ``O(n^2 k)`` per layer; the
            same law).
        antithetic: paths in adjacent pairs ``(2j, 2j + 1)`` with the same start ``Y_0``
            and opposite noise (every Gaussian draw negated in the second path). Each path
            keeps its law (the noise is symmetric) and the pairs are independent, so the mean
            of a pair is an unbiased sample with its own variance (an exact variance
            reduction for statistics odd in the noise, such as the martingale part of a
            log-ratio). ``samples`` must be even.
        coarsen: drive each layer with the normalised sum of ``coarsen`` consecutive draws
            of the network with ``coarsen`` times as many layers and the same ``key``: the
            same law as the default (a sum of ``c`` standard normals over ``sqrt(c)`` is
            standard normal), and with the same key and samples the paths are that finer
            network's, run with the step ``coarsen`` times larger on the same Brownian
            increments, so ``fine - coarse`` has a small variance (the step bias).
        progress: a bar (``True``) or a callback taking the number of paths done.

    Returns:
        Dataset over ``(sample, time, input)``: ``log_phi_norm`` (``-inf`` when
        ``phi(Y) = 0``), ``log_norm``, ``gram`` (``<Y(x), Y(x')>/n``, with dim ``input2``),
        with ``ito`` the ``martingale`` ``M_t`` and ``compensator`` ``A_t`` with
        ``log|phi(Y_t)| - log|phi(Y_0)| = M_t + A_t + O(dt^(1/2))`` pathwise (Ito, §4-§5),
        ``occupation`` ``int_0^t N_s ds`` with ``N`` the number of positive coordinates.
        For ReLU ``A_t = (s_w^2 / 2)(occupation - 2t)`` while alive. Cost: ``O(samples n k^2)``
        per layer.
    """
    _check_hayou(net)
    # the recorder runs its own layer loop (statistics kept at segment bounds, so depth
    # 10^6 stays O(1) in memory), with the steps of these two samplers
    strategy = get_sampler(sampler, net)
    if type(strategy) not in (ExactSampler, DenseSampler):
        raise ValueError(f"paths are recorded for sampler 'exact' or 'dense', got {sampler!r}")
    dense = isinstance(strategy, DenseSampler)
    samples = check_path_samples(samples)
    if antithetic and samples % 2:
        raise ValueError(f"antithetic paths come in pairs: samples must be even, got {samples}")
    coarsen = positive_ints(coarsen, "coarsen")[0]
    x = check_inputs(net, x, dtype)
    if not bool(jnp.all(jnp.any(x != 0, axis=-1))):
        raise ValueError("inputs must be non-zero: a zero input stays at 0, and its log-norm "
                         "ratio is -inf")
    dt = net.horizon / net.depth
    times = [net.horizon] if times is None else [float(t) for t in np.atleast_1d(times)]
    layers = []
    for t in times:
        layer = round(t / dt)
        if not (0 < t <= net.horizon * (1 + 1e-9)) or abs(layer * dt - t) > 1e-6 * max(t, 1):
            raise ValueError(f"every time must be a multiple of dt = {dt:g} in (0, "
                             f"{net.horizon:g}], got {t!r}")
        layers.append(layer)
    if any(b <= a for a, b in zip(layers, layers[1:], strict=False)):
        raise ValueError(f"times must be increasing, got {times}")
    k, n = x.shape[0], net.width
    m = padded_width(n) if pad_width is None else int(pad_width)
    if m < n:
        raise ValueError(f"pad_width must be >= the width {n}, got {pad_width}")
    chunk = max(1, min(_CHUNK_PATHS, _CHUNK_FLOATS // (k * m), 1 << (samples - 1).bit_length()))
    record_state = keep_state or m <= STATE_WIDTH
    # the number of records is padded to a power of two (>= 4) with empty segments, so that
    # studies with different numbers of times share one compilation
    slots = max(4, 1 << (len(layers) - 1).bit_length())
    bounds = jnp.asarray([0, *layers] + [layers[-1]] * (slots - len(layers)), jnp.int32)
    k_embed, k_layers = jax.random.split(key)
    parts = []
    with progress_callback(progress, samples, f"paths n={n}") as advance:
        for c, start in enumerate(range(0, samples, chunk)):  # the last chunk is padded
            keys = jax.random.split(jax.random.fold_in(k_embed, c), chunk)
            if antithetic:  # one start per pair (chunk is even: a power of two >= 2)
                keys = jnp.repeat(keys[: chunk // 2], 2, axis=0)
            X0 = jax.vmap(lambda kk: net.embed(kk, x))(keys).astype(dtype)
            X0 = jnp.pad(X0, ((0, 0), (0, 0), (0, m - n)))
            # width, sigma_w and the step are traced: one compile per (activation, shape)
            out = _run_paths(net.activation, X0, jnp.asarray(n), jnp.asarray(net.sigma_w),
                             jax.random.fold_in(k_layers, c), jnp.asarray(dt), bounds,
                             record_state, ito, dense, antithetic, coarsen)
            size = min(chunk, samples - start)
            part = {name: np.asarray(a[: len(layers) + 1, :size]) for name, a in out.items()}
            if keep_state:
                part["state"] = part["state"][..., :n]
            else:
                part.pop("state", None)
            parts.append(part)
            advance(size)
    data = {name: np.concatenate([p[name] for p in parts], axis=1) for name in parts[0]}
    dims = {"gram": ("time", "sample", "input", "input2"),
            "state": ("time", "sample", "input", "neuron")}
    ds = xr.Dataset(
        {name: (dims.get(name, ("time", "sample", "input")), value)
         for name, value in data.items()},
        coords={"time": [0.0, *times]})
    ds = ds.transpose("sample", "time", ...)
    ds.attrs.update(width=n, depth=net.depth, horizon=net.horizon, sigma_w=net.sigma_w,
                    activation=net.activation.name, samples=samples, dt=dt,
                    sampler=strategy.name, antithetic=int(antithetic), coarsen=coarsen)
    return ds
