"""Jacobians and gradients of shrinking ResNets, three ways (``backward.md``).

For inputs ``x^(a)`` (rows of ``x``, shape ``(k, n)``, all sharing one parameter draw), a
tangent direction ``u^(a)`` per input and a loss ``l: R^n -> R`` applied to each output
separately, every method returns, per sample, the same quantities:

* ``x``: the outputs ``x_L`` (or ``X_T``), ``(k, n)``;
* ``jvp``: the Jacobian-vector products ``J_L u = (dx_L / dx_0) u``, ``(k, n)``;
* ``grad``: the back-propagated gradients ``g_0 = dl(x_L) / dx_0``, ``(k, n)``;
* ``weight_grad_sq``: ``sum_l |dl / dE_l|_F^2`` for the standardised weights
  ``W_l = M dt + s_w sqrt(dt) E_l``, ``(k,)`` (``backward.md`` §3);
* ``bias_grad_sq``: ``sum_l |dl / d eps^b_l|^2``, ``(k,)``.

Methods:

* ``"autodiff"``: ``jax.jvp`` / ``jax.vjp`` through ``net.apply`` of a dense network (the
  reference; any parameter law, every form);
* ``"sde"``: Euler-Maruyama of the joint SDE of ``(X, J u)`` and of its adjoint, driven by
  the matrix Brownian motion of the forward pass (forms A and B, ``backward.md`` §2). The
  tangent step is the derivative of the forward step, so the block's own ``drift`` and
  ``noise`` define it; the parameter gradients are the derivatives with respect to the
  Brownian increments;
* ``"exact"``: the joint forward-backward sampler of ``backward.md`` §4 (Gaussian
  parameters, ``M = None``). Each layer conditions the weight matrix on its products with
  the vectors the forward pass multiplies (``phi(x)`` and the tangent ``phi'(x) u`` for
  every input), then draws ``W^T g`` from the Gaussian conditional law. Cost
  ``O(n m^2 + m^3)`` per layer with ``m = 2k`` such vectors: ``O(n)`` for one input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.chunks import check_sample_fits, map_chunks
from deeplimits._core.chunks import chunk_size as chunk_size_for
from deeplimits._core.linalg import psd_sqrt
from deeplimits._core.progress import progress_callback
from deeplimits._core.registry import Registry
from deeplimits._core.validation import check_inputs, check_samples
from deeplimits.spec.activations import Activation
from deeplimits.spec.blocks import Block, FormA
from deeplimits.spec.laws import Gaussian
from deeplimits.spec.networks import ResNet, ResNetParams

__all__ = [
    "METHODS", "LOSSES", "get_loss", "check_method", "sample_gradients", "sample_gradients_sweep",
    "GradientMethod", "Autodiff", "JointSDE", "ExactGradients", "register_gradient_method",
    "get_gradient_method",
    "orthonormal_rows", "jacobian_moment_identity", "jacobian_log_norm_law"
]

OUTPUTS = ("x", "jvp", "grad", "weight_grad_sq", "bias_grad_sq")


LOSSES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sin": lambda x: jnp.sum(jnp.sin(x)),  # nonlinear: g_L depends on x_L (backward.md §4)
    "square": lambda x: 0.5 * jnp.sum(x * x),
    "mean": lambda x: jnp.mean(x),  # linear: g_L = 1/n, g_0 = J^T 1 / n
}
_LOSSES: Registry[str] = Registry("loss", lambda name: name, case_sensitive=False)
for _name in LOSSES:
    _LOSSES.register(_name)


def get_loss(spec: str | Callable) -> Callable[[jax.Array], jax.Array]:
    """A loss ``R^n -> R``: a name in :data:`LOSSES` or a JAX-traceable callable."""
    if callable(spec):
        return spec
    return LOSSES[_LOSSES.get(spec)]


def orthonormal_rows(F: jax.Array) -> jax.Array:
    """Rows ``Psi`` (``(m, d)``), each orthonormal or zero, whose span contains that of ``F``.

    Classical Gram-Schmidt twice, unrolled over the ``m`` rows (``O(d m^2)``, no LAPACK
    call). A row is dropped (zero) when the second pass removes more than half of what the
    first left ("twice is enough", Kahan-Parlett): its residual is rounding within the span
    of the previous rows (dead ReLU coordinates, duplicate inputs). Any orthonormal set
    whose span contains ``span(F)`` makes the conditioning exact, so nothing else is cut.
    """
    rows = []
    for a in range(F.shape[0]):
        passes = [F[a]]
        for _ in range(2):
            r = passes[-1]
            for q in rows:
                r = r - jnp.dot(q, r) * q
            passes.append(r)
        first, second = (jnp.sqrt(jnp.sum(v * v)) for v in passes[1:])
        keep = (second > 0.5 * first) & (second > 0)
        rows.append(jnp.where(keep, passes[-1] / jnp.where(keep, second, 1.0), 0.0))
    return jnp.stack(rows)


def _forward_products(F, Psi, Z):
    """``F E^T`` for a standard Gaussian ``E`` (``(n, d)``) given ``Y = Psi E^T = Z``:
    ``E f = sum_j <f, psi_j> E psi_j``, exact because ``span F`` lies in ``span Psi``."""
    return (F @ Psi.T) @ Z


def _backward_products(G, Psi, Z, xi, conditioned=True):
    """``G E`` (rows ``E^T g``) drawn from its law given ``Psi E^T = Z`` (``backward.md`` §4).

    ``E = Z^T Psi + E' (I - Psi^T Psi)`` with ``E'`` independent of ``Z``, so
    ``E^T g = Psi^T Z g + (I - Psi^T Psi) E'^T g`` and the rows of ``E'^T G`` have the law of
    ``R xi`` with ``R R^T = G G^T``. Shapes: ``G (k, n)``, ``Psi (m, d)``, ``Z (m, n)``,
    ``xi (k, d)``; returns ``(k, d)``. One input costs ``O(d m)``: ``R = |g|``.
    ``conditioned=False`` is the negative control ``E^T g = R xi``, independent of ``Z``.
    """
    if G.shape[0] == 1:
        fresh = jnp.sqrt(jnp.sum(G * G)) * xi
    else:
        fresh = psd_sqrt(G @ G.T).astype(G.dtype) @ xi
    fresh_orthogonal = fresh - (fresh @ Psi.T) @ Psi
    # the negative control draws E^T g independently of the forward pass
    return jnp.where(conditioned, (G @ Z.T) @ Psi + fresh_orthogonal, fresh)


class _ExactLayer(eqx.Module):
    """One layer of the exact joint sampler, in standardised noise: the block's features
    ``F`` of the states and tangents (:meth:`Block.tangent_features`) condition the
    standard weight matrix on its products with an orthonormal basis of these ``m = 2k``
    vectors; the block applies the products (forward) and takes the cotangents back.

    The scales are arrays (traced under ``jit``), so networks that differ only in depth,
    scaling or ``sigma``'s share one compilation.
    """

    activation: Activation
    block: Block
    width: int
    conditioned: jax.Array  # bool; an array so that the negative control shares the compile
    scale: jax.Array  # s = s_w sqrt(dt)
    bias_scale: jax.Array  # s_b = sigma_b sqrt(dt)
    mean: jax.Array  # mu_b dt

    @classmethod
    def of(cls, net: ResNet, conditioned: bool = True) -> _ExactLayer:
        dt = net.param_dt
        return cls(net.activation, net.block, net.width, jnp.asarray(conditioned),
                   jnp.asarray(net.s_w * math.sqrt(dt)), jnp.asarray(net.sigma_b * math.sqrt(dt)),
                   jnp.asarray(net.mu_b * dt))

    def dim(self) -> int:
        """Columns ``d`` of the standard matrix that the layer conditions."""
        return self.block.tangent_columns(self.width)

    def _scales(self, dtype):
        return (self.scale.astype(dtype), self.bias_scale.astype(dtype),
                self.mean.astype(dtype))

    def forward(self, X, T, noise):
        """``(X, T) -> (X', T')`` and what the backward pass needs."""
        s, s_b, mean = self._scales(X.dtype)
        F = self.block.tangent_features(self.activation, X, T, s, s_b)
        Psi = orthonormal_rows(F)
        V = _forward_products(F, Psi, noise["z"])
        Xn, Tn, saved = self.block.tangent_forward(self.activation, X, T, V, noise, s_b, mean)
        return Xn, Tn, (saved, Psi, noise["z"])

    def backward(self, G, saved, xi):
        """``g_l -> g_{l-1}`` and the layer's ``|dl/dE_l|_F^2``, ``|dl/d eps^b_l|^2``."""
        s, s_b, _ = self._scales(G.dtype)
        block_saved, Psi, Z = saved
        H = self.block.cotangent(self.activation, G, block_saved)
        back = _backward_products(H, Psi, Z, xi, self.conditioned)
        return self.block.tangent_backward(self.activation, G, back, block_saved, s, s_b)


def _exact_one(layer: _ExactLayer, loss, x, U, key, depth, length: int):
    """One sample of the exact joint forward-backward sampler (``O(n)`` per layer and
    input); the forward pass stores ``O(n L)`` floats for the backward pass. The scans run
    ``length >= depth`` layers; layers ``l >= depth`` are the identity, and layer ``l``
    draws from ``fold_in(key, l)``, so the result does not depend on ``length``."""
    k, n = x.shape
    m, d = 2 * k, layer.dim()
    k_fwd, k_bwd = jax.random.split(key)

    def fwd(carry, l):
        X, T = carry
        kz, kb = jax.random.split(jax.random.fold_in(k_fwd, l))
        noise = {"z": jax.random.normal(kz, (m, n), X.dtype),
                 "b": jax.random.normal(kb, (n,), X.dtype)}
        Xn, Tn, saved = layer.forward(X, T, noise)
        live = l < depth
        return (jnp.where(live, Xn, X), jnp.where(live, Tn, T)), saved

    (XL, TL), saved = jax.lax.scan(fwd, (x, U), jnp.arange(length))
    GL = jax.vmap(jax.grad(loss))(XL)

    def bwd(carry, item):
        l, layer_saved = item
        xi = jax.random.normal(jax.random.fold_in(k_bwd, l), (k, d), x.dtype)
        Gn, dw, db = layer.backward(carry[0], layer_saved, xi)
        live = l < depth
        new = (Gn, carry[1] + dw, carry[2] + db)
        return jax.tree.map(lambda a, b: jnp.where(live, a, b), new, carry), None

    zeros = jnp.zeros((k,), x.dtype)
    (G0, w_sq, b_sq), _ = jax.lax.scan(bwd, (GL, zeros, zeros),
                                       (jnp.arange(length), saved), reverse=True)
    return {"x": XL, "jvp": TL, "grad": G0, "weight_grad_sq": w_sq, "bias_grad_sq": b_sq}


@eqx.filter_jit
def _exact_chunk(layer: _ExactLayer, loss, x, U, keys, depth, length: int):
    return jax.vmap(lambda k: _exact_one(layer, loss, x, U, k, depth, length))(keys)


def _differentiate(run, loss, x, U, params):
    """``run(x0, params) -> x_L`` for one input ``(n,)``, differentiated per input: the
    output, ``J u`` (``jax.jvp``) and ``dl/dx_0``, ``dl/dparams`` (one ``jax.vjp``)."""

    def per_input(xa, ua):
        XL, TL = jax.jvp(lambda x0: run(x0, params), (xa,), (ua,))
        _, pullback = jax.vjp(run, xa, params)
        G0, dparams = pullback(jax.grad(loss)(XL))
        return XL, TL, G0, dparams

    return jax.vmap(per_input)(x, U)


def _autodiff_one(net: ResNet, loss, x, U, key):
    """One dense network: ``jax.jvp`` and ``jax.vjp`` through ``net.apply``; with
    ``W = M dt + s_w sqrt(dt) E``, ``dl/dE = s_w sqrt(dt) dl/dW``."""
    params = net.init(key, x.dtype)
    run = lambda x0, blocks: net.apply(
        ResNetParams(blocks=blocks, embed_key=params.embed_key), x0[None])[0]
    XL, TL, G0, d = _differentiate(run, loss, x, U, params.blocks)
    dt = net.param_dt
    w_sq = net.s_w**2 * dt * jnp.sum(d.W**2, axis=(1, 2, 3))
    b_sq = net.sigma_b**2 * dt * jnp.sum(d.b**2, axis=(1, 2))
    return {"x": XL, "jvp": TL, "grad": G0, "weight_grad_sq": w_sq, "bias_grad_sq": b_sq}


def _sde_one(net: ResNet, loss, x, U, key, steps: int):
    """Euler-Maruyama of ``(X, J u)`` on one Brownian path and its discrete adjoint.

    The step is ``X + h a(X) + noise(X, dB)``; its derivative in ``X`` is the step of
    ``dJ = Da(X) J dt + D noise(X, dB) J``: for form A ``s_w dB^W diag(phi'(X)) J`` plus
    ``M diag(phi'(X)) J dt``, for form B ``[p1 M + p2 s_w^2 1 X^T] J dt + p1 s_w dB^W J``
    (``backward.md`` §2), both with the forward pass's own ``dB``. With ``W = s_w dB^W``
    and ``E = dB^W / sqrt(h)``, ``dl/dE = sqrt(h) dl/d(dB^W)``.
    """
    sde = net.sde()
    h = net.horizon / steps
    shapes = sorted(sde.brownian_shapes().items())
    keys = jax.random.split(key, len(shapes))
    dB = {name: math.sqrt(h) * Gaussian().sample(kk, (steps, *shape), x.dtype)
          for kk, (name, shape) in zip(keys, shapes, strict=True)}

    def run(x0, dB):
        step = lambda X, db: (X + h * sde.drift(X) + sde.noise(X, db), None)
        return jax.lax.scan(step, x0[None], dB)[0][0]

    XL, TL, G0, d = _differentiate(run, loss, x, U, dB)
    w_sq = h * jnp.sum(d["W"] ** 2, axis=(1, 2, 3))
    b_sq = h * jnp.sum(d["b"] ** 2, axis=(1, 2))
    return {"x": XL, "jvp": TL, "grad": G0, "weight_grad_sq": w_sq, "bias_grad_sq": b_sq}


class GradientMethod(eqx.Module):
    """How :func:`sample_gradients` differentiates one network: a strategy registered by
    ``name`` (:func:`register_gradient_method`)."""

    name: ClassVar[str]

    def check(self, net: ResNet) -> None:
        """Raise ``ValueError`` if the method cannot differentiate ``net``."""
        if net.input_layer is not None:
            raise ValueError("gradients are taken with respect to x_0: use a network "
                             "without an input layer (input_layer=None)")

    def layers(self, net: ResNet, steps: int) -> int:
        """Layers (or steps) one sample runs through."""
        return net.depth

    def floats_per_sample(self, net: ResNet, k: int, length: int) -> int:
        """Working memory of one sample (floats) over ``length`` layers."""
        n = net.width
        return (2 + k) * length * (n * n + n) + 4 * k * n * length

    def memory_subject(self, net: ResNet, length: int) -> str:
        """What a too-large sample is named in the memory check's error."""
        return f"the {self.name} gradient sampler over {length} layers"

    def chunk_fn(self, net: ResNet, loss, x, U, steps: int, conditioned: bool):
        """``keys (c,) -> outputs of c samples`` (one compiled program per shape)."""
        return lambda keys: _dense_chunk(self, net, loss, x, U, keys, steps)

    def one(self, net: ResNet, loss, x, U, key, steps: int):
        raise NotImplementedError


class Autodiff(GradientMethod):
    """``jax.jvp`` / ``jax.vjp`` through a dense network: the reference (any law, form)."""

    name: ClassVar[str] = "autodiff"

    def one(self, net, loss, x, U, key, steps):
        return _autodiff_one(net, loss, x, U, key)


class JointSDE(GradientMethod):
    """Euler-Maruyama of the joint SDE of ``(X, J u)`` and its adjoint (forms A, B)."""

    name: ClassVar[str] = "sde"

    def check(self, net):
        super().check(net)
        net.sde()  # the i.i.d. baseline has no limit: raises
        net.block.brownian_shapes(net)  # form C has no pathwise (Jacobian) SDE: raises

    def layers(self, net, steps):
        return steps

    def one(self, net, loss, x, U, key, steps):
        return _sde_one(net, loss, x, U, key, steps)


class ExactGradients(GradientMethod):
    """The joint forward-backward sampler, exact in law (Gaussian law, ``M = None``)."""

    name: ClassVar[str] = "exact"

    def check(self, net):
        super().check(net)
        if not net.law.is_gaussian:
            raise ValueError(f"the exact sampler is exact only for Gaussian parameters, not "
                             f"law={net.law.name!r}; use method='autodiff'")
        if net.M is not None:
            raise ValueError("the exact gradient sampler needs M=None (a mean weight matrix "
                             "costs O(n^2) per layer); use method='autodiff'")
        net.block.tangent_columns(net.width)  # raises for forms without an exact step (C)

    def layers(self, net, steps):
        # scans run a power-of-two number of layers, so nearby depths share a compilation
        return 1 << (net.depth - 1).bit_length()

    def floats_per_sample(self, net, k, length):
        n = net.width
        return length * (3 * k * n + 2 * k * (n + 1)) + 8 * k * n

    def memory_subject(self, net, length):
        return (f"the exact gradient sampler at depth {net.depth} (its forward pass keeps "
                f"O(width x depth) numbers for the backward pass; use a smaller depth, or "
                f"method='sde' with fewer steps)")

    def chunk_fn(self, net, loss, x, U, steps, conditioned):
        layer, depth = _ExactLayer.of(net, conditioned), jnp.asarray(net.depth)
        length = self.layers(net, steps)
        return lambda keys: _exact_chunk(layer, loss, x, U, keys, depth, length)


_METHODS: Registry[type[GradientMethod]] = Registry(
    "method", lambda cls: cls.name, case_sensitive=False)


def register_gradient_method(method: type[GradientMethod], *,
                             overwrite: bool = False) -> type[GradientMethod]:
    """Make a :class:`GradientMethod` subclass available by its ``name``
    (``sample_gradients(..., method=name)``)."""
    return _METHODS.register(method, overwrite=overwrite)


for _method in (Autodiff, JointSDE, ExactGradients):
    register_gradient_method(_method)
METHODS = tuple(_METHODS.all())  # the built-in names


def get_gradient_method(spec: str | GradientMethod) -> GradientMethod:
    """A registered method by name (``"exact"``, ``"autodiff"``, ``"sde"``), or ``spec``."""
    return spec if isinstance(spec, GradientMethod) else _METHODS.get(spec)()


@eqx.filter_jit
def _dense_chunk(method: GradientMethod, net: ResNet, loss, x, U, keys, steps: int):
    return jax.vmap(lambda k: method.one(net, loss, x, U, k, steps))(keys)


def check_method(net: ResNet, method: str | GradientMethod) -> None:
    """Raise ``ValueError`` if ``method`` cannot differentiate ``net``."""
    get_gradient_method(method).check(net)


def _tangents(u, k: int, n: int, dtype) -> jax.Array:
    if u is None:
        return jnp.full((k, n), 1.0 / math.sqrt(n), dtype)
    u_arr = np.asarray(u, dtype=np.float64)
    if u_arr.shape not in ((n,), (k, n)) or not np.all(np.isfinite(u_arr)):
        raise ValueError(f"u must be finite with shape ({n},) or ({k}, {n}), got "
                         f"{u_arr.shape}")
    return jnp.broadcast_to(jnp.asarray(u_arr, dtype), (k, n))


def sample_gradients(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    samples: int,
    method: str | GradientMethod = "exact",
    loss: str | Callable = "sin",
    u=None,
    steps: int | None = None,
    dtype=jnp.float32,
    chunk_size: int | None = None,
    progress: bool | Callable[[int], None] = False,
    conditioned: bool = True,
) -> dict[str, jax.Array]:
    """Sample outputs, Jacobian-vector products and gradients of independent networks.

    Args:
        net: the network (no input layer: derivatives are with respect to ``x_0``).
        x: inputs ``(k, n)`` (a 1-D array is one input), sharing each sample's parameters.
        key: JAX key; sample ``s`` uses ``jax.random.split(key, samples)[s]``.
        samples: number of independent networks (or Brownian paths).
        method: ``"exact"`` (default), ``"autodiff"``, ``"sde"``, a name given to
            :func:`register_gradient_method`, or a :class:`GradientMethod`.
        loss: a name in :data:`LOSSES` (``"sin"``: ``sum_i sin(x_i)``) or a callable
            ``R^n -> R``, applied to each input's output separately.
        u: tangent direction(s), ``(n,)`` or ``(k, n)``; default ``ones(n) / sqrt(n)``.
        steps: Euler-Maruyama steps of ``"sde"`` (default: the depth).
        dtype: floating type (float32 by default).
        chunk_size: samples per compiled batch (default: bounded working memory).
        progress: ``True`` for a progress bar, or a callback taking the samples just done.
        conditioned: ``False`` turns ``"exact"`` into a negative control that draws each
            ``W^T g`` independently of the forward pass (right marginal scale, wrong joint
            law); tests must reject it.

    Returns:
        ``{"x", "jvp", "grad"}`` of shape ``(samples, k, n)`` and ``{"weight_grad_sq",
        "bias_grad_sq"}`` of shape ``(samples, k)`` (see the module docstring).
    """
    strategy = get_gradient_method(method)
    strategy.check(net)
    samples = check_samples(samples)
    loss_fn = get_loss(loss)
    steps = check_samples(net.depth if steps is None else steps, "steps")
    x = check_inputs(net, x, dtype)
    k, n = x.shape
    U = _tangents(u, k, n, dtype)
    keys = jax.random.split(key, samples)
    length = strategy.layers(net, steps)
    per_sample = strategy.floats_per_sample(net, k, length)
    check_sample_fits(per_sample, jnp.dtype(dtype).itemsize,
                      strategy.memory_subject(net, length))
    size = chunk_size_for(chunk_size, samples, per_sample)
    chunk_fn = strategy.chunk_fn(net, loss_fn, x, U, steps, conditioned)
    with progress_callback(progress, samples, f"{strategy.name} gradients") as advance:
        return map_chunks(chunk_fn, keys, size, advance)


def sample_gradients_sweep(
    nets: Sequence[ResNet],
    x,
    key: jax.Array,
    *,
    samples: int,
    loss: str | Callable = "sin",
    u=None,
    dtype=jnp.float32,
    chunk_size: int | None = None,
    progress: bool | Callable[[int], None] = False,
) -> list[dict[str, jax.Array]]:
    """:func:`sample_gradients` with the exact sampler for several networks that differ only
    in depth, horizon, scaling, ``sigma_w``, ``sigma_b`` or ``mu_b`` (same form, activation
    and width), compiled once: depth sweeps, and the i.i.d. baseline beside the shrinking
    law. Network ``i`` uses the key ``jax.random.fold_in(key, i)``.
    """
    nets = list(nets)
    if not nets:
        raise ValueError("give at least one network")
    for net in nets:
        check_method(net, "exact")
        if (net.form, net.activation, net.width) != (
                nets[0].form, nets[0].activation, nets[0].width):
            raise ValueError("a sweep needs networks of one form, activation and width")
    samples = check_samples(samples)
    loss_fn = get_loss(loss)
    x = check_inputs(nets[0], x, dtype)
    k, n = x.shape
    U = _tangents(u, k, n, dtype)
    length = max(net.depth for net in nets)
    size = chunk_size_for(chunk_size, samples,
                          ExactGradients().floats_per_sample(nets[0], k, length))
    out = []
    with progress_callback(progress, samples * len(nets), "exact gradients") as advance:
        for i, net in enumerate(nets):
            layer, depth = _ExactLayer.of(net), jnp.asarray(net.depth)
            keys = jax.random.split(jax.random.fold_in(key, i), samples)
            out.append(map_chunks(lambda c, layer=layer, depth=depth: _exact_chunk(
                layer, loss_fn, x, U, c, depth, length), keys, size, advance))
    return out


def jacobian_moment_identity(net: ResNet, u) -> tuple[float, float]:
    """``E |J_L u|^2`` for form A, ``phi = id``, ``mu_b = 0``, ``M = None`` (``backward.md``
    §2): exactly ``|u|^2 (1 + n s_w^2 dt)^L`` at depth ``L`` (each layer multiplies the
    second moment by ``E|(I + W) y|^2 / |y|^2 = 1 + n s_w^2 dt``), and ``|u|^2 exp(n s_w^2 T)``
    in the limit. Returns ``(finite_L, limit)``."""
    if not isinstance(net.block, FormA) or net.activation.name not in ("identity", "linear", "id") \
            or net.M is not None or np.any(np.asarray(net.mu_b) != 0):
        raise ValueError("the closed form needs form A, the identity activation, mu_b = 0 "
                         "and M = None")
    u2 = float(np.sum(np.asarray(u, dtype=np.float64) ** 2))
    rate = net.width * net.s_w**2
    return (u2 * (1 + rate * net.param_dt) ** net.depth,
            u2 * math.exp(rate * net.horizon) if net.scaling == "shrinking" else math.inf)


def jacobian_log_norm_law(net: ResNet):
    """Law of ``log(|J_T u| / |u|)`` in the limit (form A, ``phi = id``, no bias or mean):
    ``d(J u) = s_w dB^W (J u)`` is the forward norm process, so it is
    ``N((n s_w^2 / 2 - s_w^2) T, s_w^2 T)`` -- ``N((1/2 - 1/n) T, T / n)`` when width-scaled
    with ``sigma_w = 1`` (``backward.md`` §2, ``forward.md`` §6.2)."""
    from scipy import stats as st

    jacobian_moment_identity(net, np.ones(1))  # same preconditions (the bias never enters J)
    s2, T, n = net.s_w**2, net.horizon, net.width
    return st.norm((0.5 * n * s2 - s2) * T, math.sqrt(s2 * T))
