r"""Convolutional ResNets with shrinking parameters, their SDEs and wide-channel kernels
(``conv.md``).

The state of one input is ``X in R^{C x P}``: ``C`` channels over a discrete torus of
positions (``P`` or ``P1 x P2``; circular padding). Filters have offsets ``K`` (a centred
box, e.g. ``{-1, 0, 1}^2``), per layer ``W_l in R^{C x C x |K|}`` and ``b_l in R^C``:

* form A: ``x_{l,c,p} = x_{l-1,c,p} + b_{l,c} + sum_{c',k} W_{l,c,c',k} phi(x_{l-1,c',p+k})``
* form B: ``x_{l,c,p} = x_{l-1,c,p} + phi(b_{l,c} + sum_{c',k} W_{l,c,c',k} x_{l-1,c',p+k})``

with ``b = sigma_b sqrt(dt) eps`` and ``W = s_w sqrt(dt) E``, ``s_w^2 = sigma_w^2 / (C |K|)``
(fan-in scaling; ``dt = 1`` for the i.i.d. baseline). An input layer (a random convolution
of the image, §3) maps ``(C_in, *spatial)`` images to ``x_0``.

Given the state, the channels of one layer's increment are i.i.d. and, over the stacked
(input, position) index, Gaussian with covariance ``dt Sigma`` (§2):
``Sigma = sigma_b^2 11^T + s_w^2 S_phi(X)`` with the patch Gram matrix
``S_phi(X)_{(a,p),(a',q)} = sum_{c',k} phi(X^a_{c',p+k}) phi(X^{a'}_{c',q+k})`` (form A),
and for the pre-activation of form B the same with ``phi = id``. This gives

* :func:`sample_conv` ``sampler="dense"``: the network itself (the reference; any law);
* ``sampler="exact"``: one layer drawn exactly in law from that Gaussian (Gaussian laws);
* ``sampler="sde"``: Euler-Maruyama of the limiting SDE (form A drift 0 and covariance
  ``Sigma``; form B drift ``p2/2 (sigma_b^2 + s_w^2 S_lin(X)_{pp})`` and covariance
  ``p1^2 Sigma_lin``). For form A with Gaussian parameters the network *is* this scheme.

:func:`conv_kernel` integrates the wide-channel NNGP and NTK of form A in continuous depth
(RK4, float64) or runs their exact finite-depth recursion (Euler steps, §3-§4):

    dK/dt = sigma_b^2 + sigma_w^2 T(V_phi(K)),
    dH/dt = dK/dt + sigma_w^2 T(V_phi'(K) * H),
    (T M)(p, q) = |K|^{-1} sum_k M(p + k, q + k),

with readouts ``flatten`` (``K_f = sigma_v^2 mean_q K(q, q)``) and ``gap`` (global average
pooling, ``K_f = sigma_v^2 mean_{q,q'} K(q, q')``), ``Theta`` likewise from ``K + H``.
Under ``flatten`` the diagonal ``K(q, q)`` closes on itself and only it is integrated.
Mean parameters (``mu_b``, ``M``) are not modelled (zero).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._chunks import chunk_size as chunk_size_for
from ._chunks import map_chunks
from ._depth_flow import flow, step_plan, traced_floats
from ._linalg import psd_sqrt
from ._progress import progress_callback
from ._validation import as_int as _as_int
from ._validation import check_samples
from ._validation import is_positive_int as _positive_int
from ._validation import require as _require
from .activations import Activation, get_activation
from .laws import ParameterLaw, get_law
from .networks import DepthSteps

__all__ = ["ConvResNet", "ConvParams", "ConvKernel", "sample_conv", "conv_kernel",
           "empirical_conv_kernel", "digits_images", "network_on_increments", "patch_gram",
           "READOUTS", "SAMPLERS"]

READOUTS = ("flatten", "gap")
SAMPLERS = ("dense", "exact", "sde")
_FORMS = ("A", "B")
_SCALINGS = ("shrinking", "iid")


def _as_tuple(value):
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return (int(value),)
    try:
        return tuple(_as_int(v) for v in value)
    except TypeError:
        return value


class ConvParams(eqx.Module):
    """Dense parameters of a conv network, blocks stacked on a leading depth axis.

    ``W``: ``(L, C, C, |K|)``, ``b``: ``(L, C)`` (already scaled); ``A``: ``(C, C_in, |K|)``
    and ``a``: ``(C,)`` of the input layer (already scaled), or ``None`` without one.
    """

    W: jax.Array
    b: jax.Array
    A: jax.Array | None = None
    a: jax.Array | None = None


class ConvResNet(DepthSteps, eqx.Module):
    """A convolutional ResNet with shrinking (or i.i.d.) random parameters (``conv.md``).

    Args:
        channels: ``C`` (plays the role of the width).
        depth: number of residual blocks ``L``.
        image_shape: spatial shape, ``(P,)`` (1-D) or ``(P1, P2)`` (2-D); an int is 1-D.
        kernel_size: filter size per spatial dimension (an int is used for every one);
            offsets are ``-(k // 2), ..., k - 1 - k // 2`` (centred for odd ``k``).
        form: ``"A"`` or ``"B"``.
        activation: a registered name or callable (:mod:`deeplimits.activations`).
        sigma_w, sigma_b: weight and bias scales (``s_w^2 = sigma_w^2 / (C |K|)``).
        in_channels: channels ``C_in`` of the input images, mapped by a random input
            convolution ``x_0 = sigma_A/sqrt(C_in |K|) A * img + sigma_a a``; ``None`` for
            no input layer (images then have ``channels`` channels and are ``x_0``).
        sigma_A, sigma_a: input-layer scales.
        readout: ``"flatten"`` or ``"gap"`` (global average pooling), with scale sigma_v.
        law: standardised parameter noise (``"gaussian"``, ``"rademacher"``, ...).
        scaling: ``"shrinking"`` (``dt = T / L``) or ``"iid"`` (``dt = 1``).
        horizon: the time ``T`` that the depth discretises.
    """

    channels: int = eqx.field(converter=_as_int)
    depth: int = eqx.field(converter=_as_int)
    image_shape: tuple[int, ...] = eqx.field(converter=_as_tuple)
    kernel_size: int | tuple[int, ...] = 3
    form: str = "A"
    activation: Activation = eqx.field(default="tanh", converter=get_activation)
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    in_channels: int | None = 1
    sigma_A: float = 1.0
    sigma_a: float = 0.0
    readout: str = "flatten"
    sigma_v: float = 1.0
    law: ParameterLaw = eqx.field(default="gaussian", converter=get_law)
    scaling: str = "shrinking"
    horizon: float = 1.0

    def __check_init__(self):
        _require(_positive_int(self.channels),
                 f"channels must be a positive integer, got {self.channels!r}")
        _require(_positive_int(self.depth),
                 f"depth must be a positive integer, got {self.depth!r}")
        shape = self.image_shape
        _require(isinstance(shape, tuple) and len(shape) in (1, 2)
                 and all(_positive_int(s) for s in shape),
                 f"image_shape must be (P,) or (P1, P2) of positive integers (1-D or 2-D "
                 f"images), got {shape!r}")
        ks = self.kernel
        _require(len(ks) == len(shape) and all(_positive_int(k) for k in ks),
                 f"kernel_size must be a positive integer or {len(shape)} of them, got "
                 f"{self.kernel_size!r}")
        _require(all(k <= s for k, s in zip(ks, shape, strict=True)),
                 f"kernel_size {ks} is larger than the image {shape}: a circular filter "
                 "cannot be wider than the torus it runs on")
        _require(self.form in _FORMS, f"form must be one of {_FORMS} for conv networks, "
                 f"got {self.form!r}")
        _require(self.in_channels is None or _positive_int(self.in_channels),
                 f"in_channels must be a positive integer or None, got {self.in_channels!r}")
        for name in ("sigma_w", "sigma_b", "sigma_A", "sigma_a", "sigma_v"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                     f"{name} must be a finite number >= 0, got {value!r}")
        _require(self.readout in READOUTS,
                 f"readout must be one of {READOUTS}, got {self.readout!r}")
        _require(self.scaling in _SCALINGS,
                 f"scaling must be one of {_SCALINGS}, got {self.scaling!r}")
        _require(math.isfinite(self.horizon) and self.horizon > 0,
                 f"horizon must be > 0, got {self.horizon!r}")
        if self.form == "B":
            act = self.activation
            _require(act.smooth, f"form B needs an activation that is C^2 at 0; "
                     f"{act.name!r} is not (forward.md §4.3)")
            _require(abs(act.phi0) <= 1e-12, f"form B needs phi(0) = 0, but {act.name!r} has "
                     f"phi(0) = {act.phi0:.6g}")

    # -- geometry -----------------------------------------------------------------------
    @property
    def kernel(self) -> tuple[int, ...]:
        """Filter size per spatial dimension."""
        ks = _as_tuple(self.kernel_size)
        if isinstance(ks, tuple) and len(ks) == 1 and len(self.image_shape) == 2:
            ks = ks * 2
        return ks

    @property
    def spatial_dims(self) -> int:
        return len(self.image_shape)

    @property
    def positions(self) -> int:
        """``P``, the number of positions."""
        return math.prod(self.image_shape)

    @property
    def offsets(self) -> np.ndarray:
        """The filter offsets ``K``, integer array ``(|K|, spatial_dims)``."""
        ranges = [range(-(k // 2), k - k // 2) for k in self.kernel]
        return np.array(list(itertools.product(*ranges)), dtype=int).reshape(-1, len(ranges))

    @property
    def patch_size(self) -> int:
        """``|K|``."""
        return math.prod(self.kernel)

    @property
    def image_channels(self) -> int:
        """Channels of the images the network accepts."""
        return self.channels if self.in_channels is None else self.in_channels

    # -- scales -------------------------------------------------------------------------
    @property
    def s_w(self) -> float:
        """``sigma_w / sqrt(C |K|)``."""
        return self.sigma_w / math.sqrt(self.channels * self.patch_size)

    def replace(self, **changes) -> ConvResNet:
        """A copy with some hyperparameters changed (validated again)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(changes)
        return ConvResNet(**fields)

    def config(self) -> dict:
        """A JSON-ready description of the hyperparameters."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(activation=self.activation.name, law=self.law.name,
                   image_shape=list(self.image_shape), kernel_size=list(self.kernel))
        return out

    # -- inputs -------------------------------------------------------------------------
    def check_images(self, images, dtype=jnp.float32) -> jax.Array:
        """Images as ``(k, C_in, *image_shape)``; one image ``(C_in, *image_shape)`` is
        accepted too. Raises ``ValueError`` naming the expected shape otherwise."""
        arr = np.asarray(images)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"images must be numeric, got dtype {arr.dtype}")
        want = (self.image_channels, *self.image_shape)
        if arr.shape == want:
            arr = arr[None]
        if arr.ndim != len(want) + 1 or arr.shape[1:] != want or arr.shape[0] == 0:
            raise ValueError(
                f"images must have shape (images, {', '.join(map(str, want))}) = (images, "
                f"channels, *image_shape) (rank {len(want) + 1}), or {want} for one image; "
                f"got shape {arr.shape} (rank {arr.ndim})")
        if not np.all(np.isfinite(arr)):
            raise ValueError("images contain NaN or infinite values")
        return jnp.asarray(arr, dtype)

    # -- dense network ------------------------------------------------------------------
    def init(self, key: jax.Array, dtype=jnp.float32) -> ConvParams:
        """Draw every block's parameters (and the input layer's) from the law."""
        k_blocks, k_embed = jax.random.split(key)
        kW, kb = jax.random.split(k_blocks)
        C, L, K = self.channels, self.depth, self.patch_size
        theta = {"W": self.law.sample(kW, (L, C, C, K), dtype),
                 "b": self.law.sample(kb, (L, C), dtype)}
        return self.scale_params(theta | self._input_noise(k_embed, dtype))

    def _input_noise(self, key: jax.Array, dtype) -> dict[str, jax.Array]:
        if self.in_channels is None:
            return {}
        kA, ka = jax.random.split(key)
        shape = (self.channels, self.in_channels, self.patch_size)
        return {"A": self.law.sample(kA, shape, dtype),
                "a": self.law.sample(ka, (self.channels,), dtype)}

    def init_input_layer(self, key: jax.Array, dtype=jnp.float32) -> ConvParams:
        """Only the input layer's parameters (``W``, ``b`` empty)."""
        empty = jnp.zeros((0,), dtype)
        return self.scale_params({"W": empty, "b": empty} | self._input_noise(key, dtype))

    def scale_params(self, theta: dict[str, jax.Array]) -> ConvParams:
        """Scale standardised noise ``theta`` (keys ``W``, ``b``, and ``A``, ``a`` with an
        input layer) into parameters: ``W = s_w sqrt(dt) E``, ``b = sigma_b sqrt(dt) eps``,
        ``A = sigma_A / sqrt(C_in |K|) A``, ``a = sigma_a a``."""
        h = math.sqrt(self.param_dt)
        A = a = None
        if self.in_channels is not None:
            A = self.sigma_A / math.sqrt(self.in_channels * self.patch_size) * theta["A"]
            a = self.sigma_a * theta["a"]
        return ConvParams(W=self.s_w * h * theta["W"], b=self.sigma_b * h * theta["b"],
                          A=A, a=a)

    def params_from_increments(self, dW: jax.Array, db: jax.Array,
                               embed: ConvParams | None = None) -> ConvParams:
        """Parameters ``W_l = s_w dB^W_l``, ``b_l = sigma_b dB^b_l`` from Brownian
        increments (``dW``: ``(L, C, C, |K|)``, ``db``: ``(L, C)``); the input layer is
        taken from ``embed``. Form A run on them is Euler-Maruyama of the matrix-BM SDE
        ``dX = sigma_b dB^b + s_w dB^W * phi(X)`` driven by the same increments."""
        A = None if embed is None else embed.A
        a = None if embed is None else embed.a
        return ConvParams(W=self.s_w * dW, b=self.sigma_b * db, A=A, a=a)

    def embed(self, params: ConvParams, images: jax.Array) -> jax.Array:
        """``x_0`` of shape ``(k, C, *image_shape)`` from checked images."""
        if self.in_channels is None:
            return images
        return conv_apply(self, params.A, images) + params.a.reshape(-1, *self._ones)

    @property
    def _ones(self) -> tuple[int, ...]:
        return (1,) * self.spatial_dims

    def block(self, W: jax.Array, b: jax.Array, X: jax.Array) -> jax.Array:
        """One dense residual block on ``X`` of shape ``(k, C, *image_shape)``."""
        bias = b.reshape(-1, *self._ones)
        if self.form == "A":
            return X + bias + conv_apply(self, W, self.activation(X))
        return X + self.activation(bias + conv_apply(self, W, X))

    def apply(self, params: ConvParams, images, *, trajectory: bool = False) -> jax.Array:
        """The dense network on images: ``(k, C, *image_shape)`` (``(L + 1, ...)`` with
        ``trajectory``)."""
        X0 = self.embed(params, jnp.asarray(images))

        def layer(X, p):
            Y = self.block(p[0], p[1], X)
            return Y, (Y if trajectory else None)

        XL, path = jax.lax.scan(layer, X0, (params.W, params.b))
        return jnp.concatenate([X0[None], path]) if trajectory else XL

    def output(self, v: jax.Array, X: jax.Array) -> jax.Array:
        """Readout ``(k, C, *S) -> (k,)`` with standardised ``v`` (``(C, P)`` for flatten,
        ``(C,)`` for gap): ``sigma_v <v, X>/sqrt(C P)`` or ``sigma_v <v, mean_p X>/sqrt(C)``."""
        flat = X.reshape(X.shape[0], self.channels, -1)
        if self.readout == "flatten":
            return self.sigma_v * jnp.einsum("kcp,cp->k", flat, v) / math.sqrt(flat[0].size)
        return self.sigma_v * flat.mean(-1) @ v / math.sqrt(self.channels)

    def readout_shape(self) -> tuple[int, ...]:
        return (self.channels, self.positions) if self.readout == "flatten" else (
            self.channels,)


# -- convolution, patches, Gram matrices --------------------------------------------------


def patches(net: ConvResNet, X: jax.Array) -> jax.Array:
    """``(k, C, *S) -> (k, C, |K|, *S)`` with ``out[a, c, j, p] = X[a, c, p + offset_j]``
    (circular)."""
    axes = tuple(range(2, 2 + net.spatial_dims))
    return jnp.stack([jnp.roll(X, tuple(-int(o) for o in off), axes)
                      for off in net.offsets], axis=2)


def conv_apply(net: ConvResNet, W: jax.Array, X: jax.Array) -> jax.Array:
    """``(sum_{c',k} W[c, c', k] X[c', p + k])``: ``W (C_out, C_in, |K|)``, ``X (k, C_in,
    *S) -> (k, C_out, *S)``; a dense contraction over rolled patches (circular padding)."""
    pat = patches(net, X)
    k, cin = X.shape[:2]
    flat = pat.reshape(k, cin * net.patch_size, -1)
    out = jnp.einsum("oi,kip->kop", W.reshape(W.shape[0], -1), flat)
    return out.reshape(k, W.shape[0], *X.shape[2:])


def patch_gram(net: ConvResNet, Y: jax.Array) -> jax.Array:
    """Patch Gram matrix over stacked ``(input, position)`` indices: ``(k, C, *S) ->
    (k P, k P)``, ``S_{(a,p),(a',q)} = sum_{c',k} Y^a_{c',p+k} Y^{a'}_{c',q+k}``."""
    pat = patches(net, Y)
    rows = pat.reshape(Y.shape[0], -1, net.positions)  # (k, C |K|, P)
    rows = jnp.swapaxes(rows, 1, 2).reshape(-1, rows.shape[1])  # (k P, C |K|)
    return rows @ rows.T


def _noise_cov(net: ConvResNet, Y: jax.Array) -> jax.Array:
    """``sigma_b^2 11^T + s_w^2 S(Y)`` over stacked (input, position)."""
    return net.sigma_b**2 + net.s_w**2 * patch_gram(net, Y)


def _channel_normal(cov: jax.Array, z: jax.Array, shape) -> jax.Array:
    """Channels i.i.d. ``N(0, cov)`` over (input, position): ``z`` is ``(k P, C)``
    standard normal; returns ``(k, C, *S)``."""
    k, C = shape[0], shape[1]
    draw = psd_sqrt(cov).astype(z.dtype) @ z  # (k P, C)
    return jnp.swapaxes(draw.reshape(k, -1, C), 1, 2).reshape(shape)


def _gaussian_step(net: ConvResNet, z: jax.Array, X: jax.Array, h: float, exact: bool):
    """One layer exactly in law (``exact``) or one Euler-Maruyama step of size ``h``."""
    act = net.activation
    if net.form == "A":
        return X + math.sqrt(h) * _channel_normal(_noise_cov(net, act(X)), z, X.shape)
    pre_cov = _noise_cov(net, X)
    if exact:
        return X + act(math.sqrt(h) * _channel_normal(pre_cov, z, X.shape))
    # form B limit: drift p2/2 (sigma_b^2 + s_w^2 S_lin(X)_pp), covariance p1^2 Sigma_lin
    drift = 0.5 * act.p2 * jnp.diagonal(pre_cov).reshape(X.shape[0], 1, *X.shape[2:])
    return X + h * drift + math.sqrt(h) * act.p1 * _channel_normal(pre_cov, z, X.shape)


# -- sampling -----------------------------------------------------------------------------


def _check_sampler(net: ConvResNet, sampler: str, steps: int | None) -> int:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if sampler != "dense" and not net.law.is_gaussian:
        raise ValueError(f"the {sampler!r} sampler draws Gaussian increments; the law "
                         f"{net.law.name!r} needs sampler='dense'")
    if sampler == "sde" and net.scaling != "shrinking":
        raise ValueError("the i.i.d. baseline has no limiting SDE; use scaling='shrinking'")
    if steps is not None and sampler != "sde":
        raise ValueError("steps applies to the 'sde' sampler only")
    return check_samples(net.depth if steps is None else steps, "steps") \
        if sampler == "sde" else net.depth


@eqx.filter_jit
def _run_chunk(net: ConvResNet, images, keys, sampler: str, steps: int, trajectory: bool,
               output: str):
    shape = (images.shape[0], net.channels, *net.image_shape)
    dtype = images.dtype
    h = net.horizon / steps if sampler == "sde" else net.param_dt

    def one(key):
        k_embed, k_layers, k_out = jax.random.split(key, 3)
        if sampler == "dense":
            params = net.init(k_layers, dtype)
            X0 = net.embed(params, images)

            def layer(X, p):
                Y = net.block(p[0], p[1], X)
                return Y, (Y if trajectory else None)

            XT, path = jax.lax.scan(layer, X0, (params.W, params.b))
        else:
            X0 = net.embed(net.init_input_layer(k_embed, dtype), images)

            def layer(X, lkey):
                z = jax.random.normal(lkey, (shape[0] * net.positions, net.channels), dtype)
                Y = _gaussian_step(net, z, X, h, exact=sampler == "exact")
                return Y, (Y if trajectory else None)

            XT, path = jax.lax.scan(layer, X0, jax.random.split(k_layers, steps))
        if output == "readout":
            return net.output(net.law.sample(k_out, net.readout_shape(), dtype), XT)
        return jnp.concatenate([X0[None], path]) if trajectory else XT

    return jax.vmap(one)(keys)


def sample_conv(
    net: ConvResNet,
    images,
    key: jax.Array,
    *,
    samples: int,
    sampler: str = "dense",
    steps: int | None = None,
    trajectory: bool = False,
    output: str = "state",
    dtype=jnp.float32,
    chunk_size: int | None = None,
    progress: bool | Callable[[int], None] = False,
) -> jax.Array:
    """Independent conv networks (or SDE paths) at shared images.

    Args:
        net: the network.
        images: ``(k, C_in, *image_shape)`` (or one image without the leading axis); all
            images of one sample share its parameters (or its Brownian motion).
        key: JAX PRNG key; ``samples`` independent draws are split from it, so results do
            not depend on ``chunk_size``.
        sampler: ``"dense"`` (parameters materialised, any law), ``"exact"`` (one layer
            exactly in law, Gaussian law, ``O((kP)^3 + C |K| (kP)^2)`` per layer), or
            ``"sde"`` (Euler-Maruyama of the limit with ``steps`` steps, default ``depth``).
        trajectory: return every layer's state.
        output: ``"state"`` or ``"readout"`` (the network output with a random readout).
        dtype: float type of the simulation (float32 by default).
        chunk_size: samples per compiled batch (default: bounded working memory).
        progress: ``True`` for a progress bar, or a callback taking the samples just done.

    Returns:
        ``(samples, k, C, *image_shape)``; with ``trajectory`` ``(samples, steps + 1, k, C,
        *image_shape)``; with ``output="readout"`` ``(samples, k)``.
    """
    samples = check_samples(samples)
    steps = _check_sampler(net, sampler, steps)
    if output not in ("state", "readout"):
        raise ValueError(f"output must be 'state' or 'readout', got {output!r}")
    if output == "readout" and trajectory:
        raise ValueError("trajectory=True returns states; it cannot be combined with readout")
    images = net.check_images(images, dtype)
    k = images.shape[0]
    state = k * net.channels * net.positions
    per = net.depth * (net.channels**2 * net.patch_size + net.channels) + 4 * state \
        if sampler == "dense" else (k * net.positions) ** 2 * 4 + 4 * state \
        + state * net.patch_size
    if trajectory:
        per += (steps + 1) * state
    size = chunk_size_for(chunk_size, samples, per)
    with progress_callback(progress, samples, f"conv {sampler} sampler") as advance:
        return map_chunks(
            lambda keys: _run_chunk(net, images, keys, sampler, steps, trajectory, output),
            jax.random.split(key, samples), size, advance)


@eqx.filter_jit
def _grouped_run(net: ConvResNet, X0, dW, db, group):
    def fine(carry, inc):
        X, accW, accb, j = carry
        accW, accb = accW + inc[0], accb + inc[1]
        done = (j + 1) % group == 0
        Y = net.block(net.s_w * accW, net.sigma_b * accb, X)
        X = jnp.where(done, Y, X)
        keep = jnp.where(done, 0.0, 1.0).astype(accW.dtype)
        return (X, keep * accW, keep * accb, j + 1), None

    init = (X0.astype(dW.dtype), jnp.zeros_like(dW[0]), jnp.zeros_like(db[0]), jnp.asarray(0))
    return jax.lax.scan(fine, init, (dW, db))[0][0]


def network_on_increments(net: ConvResNet, X0, dW, db, group: int = 1) -> jax.Array:
    """The dense network driven by Brownian increments, coarsened by ``group``.

    ``dW`` ``(S, C, C, |K|)`` and ``db`` ``(S, C)`` are increments of the matrix and vector
    Brownian motions on a grid of ``S`` steps of ``T / S`` (i.e. ``N(0, T/S)``). Layer ``l``
    uses the sum of the ``group`` increments of its interval: ``W_l = s_w dB^W``, ``b_l =
    sigma_b dB^b``, so the result is the depth-``S/group`` network with Gaussian parameters
    (form A: Euler-Maruyama of ``dX = sigma_b dB^b + s_w dB^W * phi(X)``), all depths
    coupled to one Brownian path. ``X0``: ``(k, C, *S)``. ``group`` is traced (one
    compilation for every depth); it must divide ``S``. A leading sample axis on ``X0``,
    ``dW`` and ``db`` runs independent paths.
    """
    batched = dW.ndim == 5
    steps = dW.shape[1 if batched else 0]
    if not (isinstance(group, int) and group > 0 and steps % group == 0):
        raise ValueError(f"group must be a positive divisor of the {steps} fine steps, "
                         f"got {group!r}")
    if batched:
        return _grouped_batch(net, X0, dW, db, jnp.asarray(group))
    return _grouped_run(net, X0, dW, db, jnp.asarray(group))


@eqx.filter_jit
def _grouped_batch(net, X0, dW, db, group):
    return jax.vmap(lambda x, w, b: _grouped_run(net, x, w, b, group))(X0, dW, db)


# -- wide-channel kernels -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConvKernel:
    """Output kernels of the infinitely wide conv network for images ``x1`` (rows) and
    ``x2`` (columns): ``nngp`` and ``ntk`` (float64 ``(N1, N2)``; ``ntk`` may be ``None``)
    at ``depth`` (``math.inf`` for the ODE)."""

    nngp: np.ndarray
    ntk: np.ndarray | None
    depth: float


class _ConvDynamics(eqx.Module):
    """State ``(d1, d2, k, h)``: per-image diagonal variances ``(N, *S)`` and the cross
    kernel and NTK accumulator, ``(N1, N2, *S, *S)`` (full) or ``(N1, N2, *S)`` (diagonal
    closure, ``full=False``)."""

    net: ConvResNet
    full: bool = eqx.field(static=True)

    def _patch_mean(self, M, lead: int, paired: bool):
        """``T M``: the mean over offsets of ``M`` shifted by the offset on every position
        axis (both sets of axes when ``paired``)."""
        dims = self.net.spatial_dims
        axes = tuple(range(lead, lead + dims * (2 if paired else 1)))
        # materialise M once: otherwise XLA fuses its (costly) dual map into every shift
        M = jax.lax.optimization_barrier(M)
        total = 0.0
        for off in self.net.offsets:
            shift = tuple(-int(o) for o in off) * (2 if paired else 1)
            total = total + jnp.roll(M, shift, axes)
        return total / self.net.patch_size

    def _pair(self, d1, d2):
        n1, n2, dims = d1.shape[0], d2.shape[0], self.net.spatial_dims
        S = self.net.image_shape
        if not self.full:
            return d1[:, None], d2[None, :]
        return (d1.reshape(n1, 1, *S, *(1,) * dims), d2.reshape(1, n2, *(1,) * dims, *S))

    def field(self, state):
        d1, d2, k, h = state
        net, act = self.net, self.net.activation
        sb2, sw2 = net.sigma_b**2, net.sigma_w**2
        F1 = sb2 + sw2 * self._patch_mean(act.dual(d1, d1, d1), 1, False)
        F2 = sb2 + sw2 * self._patch_mean(act.dual(d2, d2, d2), 1, False)
        a, b = self._pair(d1, d2)
        F = sb2 + sw2 * self._patch_mean(act.dual(a, b, k), 2, self.full)
        G = F + sw2 * self._patch_mean(act.dual_deriv(a, b, k) * h, 2, self.full)
        return (F1, F2, F, G)

    def layer(self, state, dt):
        # the finite-depth wide network is exactly the explicit Euler scheme (§3)
        return jax.tree.map(lambda s, f: s + dt * f, state, self.field(state))

    def outputs(self, state):
        """``(K_f, Theta) / sigma_v^2`` per image pair."""
        k, h = state[2], state[3]
        dims, P = self.net.spatial_dims, self.net.positions
        n1, n2 = k.shape[:2]
        if not self.full:  # flatten: mean over the diagonal
            return (k.reshape(n1, n2, P).mean(-1), (k + h).reshape(n1, n2, P).mean(-1))
        kk = k.reshape(n1, n2, P, P)
        hh = h.reshape(n1, n2, P, P)
        if self.net.readout == "flatten":
            return (jnp.diagonal(kk, axis1=2, axis2=3).mean(-1),
                    jnp.diagonal(kk + hh, axis1=2, axis2=3).mean(-1))
        del dims
        return kk.mean((2, 3)), (kk + hh).mean((2, 3))


@eqx.filter_jit
def _kernel_block(dyn: _ConvDynamics, init, count, h, rk4: bool):
    return dyn.outputs(flow(dyn, init, count, h, rk4))


def _initial_state(net: ConvResNet, full: bool, img1, img2, train_input: bool):
    """``K_0(p, q; x, x') = sigma_a^2 + sigma_A^2 / (C_in |K|) sum_{c',k} x_{c',p+k}
    x'_{c',q+k}`` (§3); its diagonals; ``H_0 = K_0`` when the input layer is trained."""
    scale = net.sigma_A**2 / (net.in_channels * net.patch_size)
    p1 = patches(net, img1).reshape(img1.shape[0], -1, *net.image_shape)
    p2 = patches(net, img2).reshape(img2.shape[0], -1, *net.image_shape)
    d1 = net.sigma_a**2 + scale * jnp.sum(p1 * p1, 1)
    d2 = net.sigma_a**2 + scale * jnp.sum(p2 * p2, 1)
    f1 = p1.reshape(p1.shape[0], p1.shape[1], -1)
    f2 = p2.reshape(p2.shape[0], p2.shape[1], -1)
    if full:
        k = jnp.einsum("aip,biq->abpq", f1, f2).reshape(
            p1.shape[0], p2.shape[0], *net.image_shape, *net.image_shape)
    else:
        k = jnp.einsum("aip,bip->abp", f1, f2).reshape(p1.shape[0], p2.shape[0],
                                                       *net.image_shape)
    k = net.sigma_a**2 + scale * k
    h = k if train_input else jnp.zeros_like(k)
    return (d1, d2, k, h)


def _check_kernel_net(net: ConvResNet) -> None:
    if net.form != "A":
        raise ValueError("conv kernels are specified for form A only (conv.md §3-§4)")
    if net.in_channels is None:
        raise ValueError("conv kernels need an input layer (in_channels): without one the "
                         "channels of x_0 are not i.i.d. Gaussian")
    if net.scaling != "shrinking":
        raise ValueError("the i.i.d. baseline has no infinite-depth kernel; use "
                         "scaling='shrinking'")


def conv_kernel(
    net: ConvResNet,
    x1,
    x2=None,
    depth: int | float | None = None,
    *,
    steps: int = 256,
    compute_ntk: bool = True,
    train_input_layer: bool = True,
    full: bool | None = None,
    max_memory: int = 2**29,
    progress: bool | Callable[[int], None] = False,
) -> ConvKernel:
    """NNGP and NTK of the infinitely wide (``C -> oo``) conv network, form A (§3-§4).

    Args:
        net: the network (its channel count is ignored); form A with an input layer.
        x1, x2: images ``(N, C_in, *image_shape)`` (``x2`` defaults to ``x1``).
        depth: ``None`` for ``net.depth``, an integer (the exact width-first recursion), or
            ``math.inf`` (the ODE, ``steps`` RK4 steps on ``[0, T]``).
        compute_ntk: also return the NTK (the forward ``H`` form of §4).
        train_input_layer: whether the input layer's parameters count in the NTK.
        full: integrate the whole ``P x P`` position kernel (default: only for ``gap``;
            ``flatten`` needs the diagonal only, which closes on itself).
        max_memory: bound in bytes on one tile of image pairs.
        progress: ``True`` for a progress bar over tiles, or a callback.

    Returns:
        A :class:`ConvKernel` of float64 arrays.
    """
    _check_kernel_net(net)
    depth = net.depth if depth is None else depth
    if not (math.isinf(depth) or (isinstance(depth, int | np.integer)
                                  and not isinstance(depth, bool) and depth > 0)):
        raise ValueError(f"depth must be a positive integer or math.inf, got {depth!r}")
    steps = check_samples(steps, "steps")
    full = net.readout == "gap" if full is None else bool(full)
    if net.readout == "gap" and not full:
        raise ValueError("the gap readout needs the full P x P kernel (full=True)")
    img1 = net.check_images(x1, jnp.float64)
    img2 = img1 if x2 is None else net.check_images(x2, jnp.float64)
    dyn = _ConvDynamics(net, full)
    P = net.positions
    per_pair = 8 * 40 * (P * P if full else P)  # RK4 stages and dual temporaries
    rows = max(1, min(img1.shape[0], max_memory // (per_pair * img2.shape[0])))
    N1, N2 = img1.shape[0], img2.shape[0]
    K, T = np.empty((N1, N2)), np.empty((N1, N2))
    tiles = list(range(0, N1, rows))
    plan = step_plan(depth, steps, net.horizon)
    dyn = traced_floats(dyn)
    with progress_callback(progress, len(tiles), "conv kernel tiles") as advance:
        for i in tiles:
            init = _initial_state(net, full, img1[i : i + rows], img2, train_input_layer)
            R, Th = _kernel_block(dyn, init, *plan)
            K[i : i + rows] = net.sigma_v**2 * np.asarray(R)
            T[i : i + rows] = net.sigma_v**2 * np.asarray(Th)
            advance(1)
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(T)):
        raise FloatingPointError("the conv kernel has non-finite entries: the dynamics blew "
                                 "up (try a smaller horizon or sigma_w)")
    return ConvKernel(nngp=K, ntk=T if compute_ntk else None, depth=depth)


# -- empirical kernels of finite networks -------------------------------------------------


def _standard_shapes(net: ConvResNet) -> dict[str, tuple[int, ...]]:
    C, K, L = net.channels, net.patch_size, net.depth
    return {"W": (L, C, C, K), "b": (L, C), "A": (C, net.in_channels, K), "a": (C,),
            "v": net.readout_shape()}


def _empirical_one(net: ConvResNet, key, images, compute_ntk: bool, train_input: bool):
    shapes = _standard_shapes(net)
    keys = jax.random.split(key, len(shapes))
    theta = {name: net.law.sample(k, shape, images.dtype)
             for k, (name, shape) in zip(keys, shapes.items(), strict=True)}
    # NNGP with the readout averaged analytically: K_f = sigma_v^2 <P_T, X X'^T / C>
    X = net.apply(net.scale_params(theta), images).reshape(images.shape[0], net.channels, -1)
    if net.readout == "flatten":
        nngp = jnp.einsum("acp,bcp->ab", X, X) / (net.channels * net.positions)
    else:
        m = X.mean(-1)
        nngp = m @ m.T / net.channels
    nngp = net.sigma_v**2 * nngp
    if not compute_ntk:
        return nngp, jnp.zeros_like(nngp)
    f = lambda th: net.output(th["v"], net.apply(net.scale_params(th), images))
    jac = jax.jacrev(f)(theta)
    names = [n for n in shapes if train_input or n not in ("A", "a")]
    rows = jnp.concatenate([jac[n].reshape(images.shape[0], -1) for n in names], axis=1)
    return nngp, rows @ rows.T


def empirical_conv_kernel(
    net: ConvResNet,
    images,
    key: jax.Array,
    *,
    samples: int = 1,
    compute_ntk: bool = True,
    train_input_layer: bool = True,
    dtype=jnp.float32,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Empirical NNGP and NTK of ``samples`` independent finite conv networks.

    The NNGP averages the readout analytically: ``sigma_v^2 <P_T, X_T X_T'^T / C>``; the
    NTK is ``J J^T`` over all standardised parameters (NTK parametrisation; the input layer
    only if ``train_input_layer``). Both converge to :func:`conv_kernel` at the same depth
    as ``C -> oo`` with fluctuations ``O(C^{-1/2})``. Needs form A with an input layer.

    Returns:
        ``(nngp, ntk)``, float64 ``(samples, N, N)`` each (``ntk`` is ``None`` unless
        ``compute_ntk``).
    """
    _check_kernel_net(net)
    samples = check_samples(samples)
    images = net.check_images(images, dtype)
    keys = jax.random.split(key, samples)
    nngp, ntk = _empirical_batch(net, keys, images, compute_ntk, train_input_layer)
    return np.asarray(nngp, np.float64), (np.asarray(ntk, np.float64) if compute_ntk
                                          else None)


@eqx.filter_jit
def _empirical_batch(net, keys, images, compute_ntk, train_input):
    return jax.vmap(lambda k: _empirical_one(net, k, images, compute_ntk, train_input))(keys)


# -- real images --------------------------------------------------------------------------


def digits_images(indices=None, *, normalise: bool = True) -> np.ndarray:
    """scikit-learn's bundled 8 x 8 digits as ``(k, 1, 8, 8)`` float64 images.

    ``normalise`` maps the pixel values ``0..16`` to zero mean and unit mean square per
    image (so that ``K_0`` is of order one). ``indices`` selects images (default: all).
    """
    from sklearn.datasets import load_digits

    imgs = np.asarray(load_digits().images, dtype=np.float64)
    if indices is not None:
        idx = np.asarray(indices, dtype=int).ravel()
        if idx.size == 0 or idx.min() < -len(imgs) or idx.max() >= len(imgs):
            raise ValueError(f"digit indices must lie in [0, {len(imgs)}), got "
                             f"{idx.tolist()}")
        imgs = imgs[idx]
    if normalise:
        imgs = imgs - imgs.mean((1, 2), keepdims=True)
        imgs = imgs / np.sqrt((imgs**2).mean((1, 2), keepdims=True))
    return imgs[:, None]
