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

import abc
import dataclasses
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.registry import Registry
from deeplimits._core.validation import as_int as _as_int
from deeplimits._core.validation import is_positive_int as _positive_int
from deeplimits._core.validation import require as _require
from deeplimits.spec.activations import Activation, get_activation
from deeplimits.spec.blocks import check_shallow_activation
from deeplimits.spec.laws import ParameterLaw, get_law
from deeplimits.spec.networks import DepthSteps

__all__ = ["ConvResNet", "ConvParams", "ConvForm", "ConvFormA", "ConvFormB", "get_conv_form",
           "patch_gram", "READOUTS"]

READOUTS = ("flatten", "gap")


class ConvForm(abc.ABC):
    """One convolutional residual block form (``conv.md`` §2): the dense block and its
    Gaussian step. Stateless: all numbers live on the network.

    The filter bank ``W`` sees :meth:`branch_input` of the states ``X`` (``(k, C, *S)``);
    with Gaussian parameters the bank's output is, given ``X``, channels i.i.d.
    ``N(0, cov)`` over (input, position) with ``cov = sigma_b^2 11^T + s_w^2 S(Y)``
    (``Y`` the branch input), which :meth:`gaussian_step` turns into the layer increment.
    """

    name: str

    def check(self, net: ConvResNet) -> None:
        """Raise ``ValueError`` if the form does not apply to ``net``."""

    @abc.abstractmethod
    def apply(self, net: ConvResNet, W: jax.Array, bias: jax.Array, X: jax.Array):
        """One dense block; ``bias`` is shaped ``(C, 1, ..., 1)``."""

    @abc.abstractmethod
    def branch_input(self, net: ConvResNet, X: jax.Array) -> jax.Array:
        """What the filters are applied to."""

    @abc.abstractmethod
    def gaussian_step(self, net: ConvResNet, X, noise, cov, h: float, exact: bool):
        """``X`` after one layer exactly in law (``exact``) or one Euler-Maruyama step of
        size ``h``, given ``noise`` ~ channels i.i.d. ``N(0, cov)``, shaped like ``X``."""


class ConvFormA(ConvForm):
    """``x_l = x_{l-1} + b_l + W_l * phi(x_{l-1})``: the network is its own Euler scheme."""

    name = "A"

    def apply(self, net, W, bias, X):
        return X + bias + conv_apply(net, W, net.activation(X))

    def branch_input(self, net, X):
        return net.activation(X)

    def gaussian_step(self, net, X, noise, cov, h, exact):
        return X + math.sqrt(h) * noise


class ConvFormB(ConvForm):
    """``x_l = x_{l-1} + phi(b_l + W_l * x_{l-1})``; limit drift
    ``p2/2 (sigma_b^2 + s_w^2 S(X)_pp)`` and covariance ``p1^2 cov``."""

    name = "B"

    def check(self, net):
        check_shallow_activation(net.activation, "B")

    def apply(self, net, W, bias, X):
        return X + net.activation(bias + conv_apply(net, W, X))

    def branch_input(self, net, X):
        return X

    def gaussian_step(self, net, X, noise, cov, h, exact):
        act = net.activation
        if exact:
            return X + act(math.sqrt(h) * noise)
        drift = 0.5 * act.p2 * jnp.diagonal(cov).reshape(X.shape[0], 1, *X.shape[2:])
        return X + h * drift + math.sqrt(h) * act.p1 * noise


_CONV_FORMS: Registry[ConvForm] = Registry("conv block form", lambda form: form.name,
                                           case_sensitive=False, upper=True)
for _form in (ConvFormA(), ConvFormB()):
    _CONV_FORMS.register(_form)
_FORMS = tuple(_CONV_FORMS.all())


def get_conv_form(form: str) -> ConvForm:
    """The conv block form ``"A"`` or ``"B"`` (any case)."""
    return _CONV_FORMS.get(str(form))


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
    form: str = eqx.field(default="A", converter=lambda f: str(f).upper())  # "b" -> "B"
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
        self.conv_form.check(self)

    @property
    def conv_form(self) -> ConvForm:
        """The block form's mathematics (:class:`ConvForm`)."""
        return get_conv_form(self.form)

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
        return self.conv_form.apply(self, W, b.reshape(-1, *self._ones), X)

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
