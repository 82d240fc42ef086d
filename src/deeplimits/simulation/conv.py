"""Monte Carlo conv ResNets: independent networks (or SDE paths) at shared images, drawn
by a :class:`ConvSampler` strategy chosen by name (dense parameters, exact-in-law layers, or
Euler-Maruyama of the limit), plus the dense network driven by given Brownian increments."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.chunks import chunk_size as chunk_size_for
from deeplimits._core.chunks import map_chunks
from deeplimits._core.linalg import psd_sqrt
from deeplimits._core.progress import progress_callback
from deeplimits._core.registry import Registry
from deeplimits._core.validation import check_samples
from deeplimits.simulation.samplers import noise_per_key, run_layers
from deeplimits.spec.conv import ConvResNet, patch_gram
from deeplimits.spec.laws import Gaussian

__all__ = ["sample_conv", "network_on_increments", "SAMPLERS", "ConvSampler", "ConvDense",
           "ConvExact", "ConvEuler", "register_conv_sampler"]


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
    form = net.conv_form
    cov = _noise_cov(net, form.branch_input(net, X))
    return form.gaussian_step(net, X, _channel_normal(cov, z, X.shape), cov, h, exact)


class ConvSampler(eqx.Module):
    """How :func:`sample_conv` draws one conv network's layers: a strategy registered by
    ``name`` (:func:`register_conv_sampler`).

    ``layers`` maps ``(net, k_embed, k_layers, X0 images, steps, trajectory)`` to the
    embedded input ``X0`` ``(k, C, *S)`` and the final state ``X_T`` (with ``trajectory``,
    also every later layer's state ``(steps, k, C, *S)``).
    """

    name: ClassVar[str]
    gaussian_only: ClassVar[bool] = True  # draws Gaussian increments, not ``net.law``
    exact: ClassVar[bool] = True  # Gaussian layers: exact in law, or one Euler step

    def check(self, net: ConvResNet, steps: int | None) -> int:
        """Raise ``ValueError`` if the sampler cannot draw ``net``; the number of layers
        (or steps) it runs."""
        if self.gaussian_only and not net.law.is_gaussian:
            raise ValueError(f"the {self.name!r} sampler draws Gaussian increments; the law "
                             f"{net.law.name!r} needs sampler='dense'")
        if steps is not None:
            raise ValueError("steps applies to the 'sde' sampler only")
        return net.depth

    def floats_per_sample(self, net: ConvResNet, k: int) -> int:
        """Working memory of one sample (floats), without the trajectory."""
        state = k * net.channels * net.positions
        return (k * net.positions) ** 2 * 4 + 4 * state + state * net.patch_size

    def layer_dt(self, net: ConvResNet, steps: int) -> float:
        return net.param_dt

    def layers(self, net, k_embed, k_layers, images, steps, trajectory):
        X0 = net.embed(net.init_input_layer(k_embed, images.dtype), images)
        shape = (images.shape[0], net.channels, *net.image_shape)
        h = self.layer_dt(net, steps)
        shapes = [("z", (shape[0] * net.positions, net.channels))]
        out = run_layers(
            lambda eps, X: _gaussian_step(net, eps["z"], X, h, exact=self.exact),
            X0, k_layers, steps, shapes, Gaussian(), noise_per_key(shapes), trajectory)
        return (X0, out[-1], out[1:]) if trajectory else (X0, out, None)


class ConvDense(ConvSampler):
    """Parameters materialised, any law: ``O(C^2 |K|)`` per layer and position."""

    name: ClassVar[str] = "dense"
    gaussian_only: ClassVar[bool] = False

    def floats_per_sample(self, net, k):
        return net.depth * (net.channels**2 * net.patch_size + net.channels) \
            + 4 * k * net.channels * net.positions

    def layers(self, net, k_embed, k_layers, images, steps, trajectory):
        params = net.init(k_layers, images.dtype)
        X0 = net.embed(params, images)

        def layer(X, p):
            Y = net.block(p[0], p[1], X)
            return Y, (Y if trajectory else None)

        XT, path = jax.lax.scan(layer, X0, (params.W, params.b))
        return X0, XT, path


class ConvExact(ConvSampler):
    """One layer exactly in law (Gaussian law): ``O((kP)^3 + C |K| (kP)^2)`` per layer."""

    name: ClassVar[str] = "exact"


class ConvEuler(ConvSampler):
    """Euler-Maruyama of the limiting SDE with ``steps`` steps (default ``depth``)."""

    name: ClassVar[str] = "sde"
    exact: ClassVar[bool] = False

    def check(self, net, steps):
        super().check(net, None)
        if net.scaling != "shrinking":
            raise ValueError("the i.i.d. baseline has no limiting SDE; use scaling='shrinking'")
        return check_samples(net.depth if steps is None else steps, "steps")

    def layer_dt(self, net, steps):
        return net.horizon / steps


_CONV_SAMPLERS: Registry[type[ConvSampler]] = Registry(
    "sampler", lambda cls: cls.name, case_sensitive=False)


def register_conv_sampler(sampler: type[ConvSampler], *,
                          overwrite: bool = False) -> type[ConvSampler]:
    """Make a :class:`ConvSampler` subclass available by its ``name`` in
    :func:`sample_conv`."""
    return _CONV_SAMPLERS.register(sampler, overwrite=overwrite)


for _sampler in (ConvDense, ConvExact, ConvEuler):
    register_conv_sampler(_sampler)
SAMPLERS = tuple(_CONV_SAMPLERS.all())  # the built-in names


@eqx.filter_jit
def _run_chunk(net: ConvResNet, images, keys, sampler: ConvSampler, steps: int,
               trajectory: bool, output: str):
    def one(key):
        k_embed, k_layers, k_out = jax.random.split(key, 3)
        X0, XT, path = sampler.layers(net, k_embed, k_layers, images, steps, trajectory)
        if output == "readout":
            return net.output(net.law.sample(k_out, net.readout_shape(), images.dtype), XT)
        return jnp.concatenate([X0[None], path]) if trajectory else XT

    return jax.vmap(one)(keys)


def sample_conv(
    net: ConvResNet,
    images,
    key: jax.Array,
    *,
    samples: int,
    sampler: str | ConvSampler = "dense",
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
            ``"sde"`` (Euler-Maruyama of the limit with ``steps`` steps, default ``depth``),
            any name given to :func:`register_conv_sampler`, or a :class:`ConvSampler`.
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
    strategy = sampler if isinstance(sampler, ConvSampler) else _CONV_SAMPLERS.get(sampler)()
    steps = strategy.check(net, steps)
    if output not in ("state", "readout"):
        raise ValueError(f"output must be 'state' or 'readout', got {output!r}")
    if output == "readout" and trajectory:
        raise ValueError("trajectory=True returns states; it cannot be combined with readout")
    images = net.check_images(images, dtype)
    k = images.shape[0]
    per = strategy.floats_per_sample(net, k)
    if trajectory:
        per += (steps + 1) * k * net.channels * net.positions
    size = chunk_size_for(chunk_size, samples, per)
    with progress_callback(progress, samples, f"conv {strategy.name} sampler") as advance:
        return map_chunks(
            lambda keys: _run_chunk(net, images, keys, strategy, steps, trajectory, output),
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
