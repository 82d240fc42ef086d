"""Split from ``deeplimits.conv``."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.chunks import chunk_size as chunk_size_for
from deeplimits._core.chunks import map_chunks
from deeplimits._core.linalg import psd_sqrt
from deeplimits._core.progress import progress_callback
from deeplimits._core.validation import check_samples
from deeplimits.simulation.samplers import noise_per_key, run_layers
from deeplimits.spec.conv import ConvResNet, patch_gram
from deeplimits.spec.laws import Gaussian

__all__ = ["sample_conv", "network_on_increments", "SAMPLERS"]

SAMPLERS = ("dense", "exact", "sde")


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
            shapes = [("z", (shape[0] * net.positions, net.channels))]
            out = run_layers(
                lambda eps, X: _gaussian_step(net, eps["z"], X, h, exact=sampler == "exact"),
                X0, k_layers, steps, shapes, Gaussian(), noise_per_key(shapes), trajectory)
            XT, path = (out[-1], out[1:]) if trajectory else (out, None)
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
