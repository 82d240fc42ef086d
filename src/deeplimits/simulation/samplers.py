"""Samplers of random ResNets and of their limiting SDEs (``forward.md`` §5).

A :class:`Sampler` is a Markov transition ``X_{l-1} -> X_l`` on the stacked states of all
inputs (shape ``(k, n)``); :func:`sample` runs it for many independent networks at once,
vectorised over samples and inputs, and reproducibly from one JAX key:

* :class:`DenseSampler`: draws every weight matrix (the reference; any parameter law);
* :class:`ExactSampler`: draws each layer's increment from its exact Gaussian law given
  the current states, through the ``k x k`` Gram matrix: ``O(n k^2 + k^3)`` per layer
  instead of ``O(n^2 k)``. It needs Gaussian parameters;
* :class:`EulerMaruyama`: the limiting SDE with its own number of steps, every input
  driven by the same noise (in law, through the same Gram matrix).

Sample ``s`` uses ``jax.random.split(key, samples)[s]``; the noise of a block of
consecutive layers (up to 16, as many as fit 1024 floats) is drawn from that key folded with
the block's index, so the noise does not depend on how the samples are chunked (the values
agree to rounding: XLA may round float32 differently for different batch sizes).

The depth (or the SDE's step count) and the network's float hyperparameters are traced:
one compilation serves every depth of a depth sweep and every point of a ``sigma`` grid.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.chunks import chunk_size as chunk_size_for
from deeplimits._core.chunks import map_chunks
from deeplimits._core.progress import progress_callback
from deeplimits._core.registry import Registry
from deeplimits._core.tracing import traced_floats
from deeplimits._core.validation import check_inputs, check_samples
from deeplimits.spec.laws import Gaussian, ParameterLaw
from deeplimits.spec.networks import ResNet

__all__ = [
    "Sampler", "DenseSampler", "ExactSampler", "EulerMaruyama", "get_sampler",
    "register_sampler", "sample", "sample_sde"
]

OUTPUTS = ("state", "readout")


# Noise floats drawn from one key: several layers per key for narrow networks, where
# deriving a key per layer would cost more than the normals themselves; at most
# _LAYERS_PER_KEY layers, which bounds the work wasted past the depth in the last block.
_NOISE_PER_KEY = 1024


_LAYERS_PER_KEY = 16


class Sampler(eqx.Module):
    """A one-layer transition of the stacked states ``(k, n)`` of one network, split into
    state-independent standardised noise and its application, so that the noise of many
    layers can be drawn in one call.

    Inside the compiled loop the network's depth and float hyperparameters are traced
    arrays: ``apply`` may compute with them but not branch on them in Python; shapes come
    from the width and the number of inputs only.
    """

    name: ClassVar[str]

    @classmethod
    def of(cls, net: ResNet, steps: int | None = None) -> Sampler:
        """The sampler for ``net``; ``steps`` matters only to samplers that take steps."""
        return cls()

    def check(self, net: ResNet) -> None:
        """Raise ``ValueError`` if this sampler cannot sample ``net``."""

    @abc.abstractmethod
    def steps(self, net: ResNet) -> int:
        """Number of transitions from ``t = 0`` to ``t = T``."""

    def noise_law(self, net: ResNet) -> ParameterLaw:
        """Law of the standardised noise entries (Gaussian unless stated)."""
        return Gaussian()

    @abc.abstractmethod
    def noise_shapes(self, net: ResNet, inputs: int) -> dict[str, tuple[int, ...]]:
        """Shapes of one transition's noise."""

    @abc.abstractmethod
    def apply(self, net: ResNet, noise: dict[str, jax.Array], X: jax.Array) -> jax.Array:
        """One transition of the states ``X`` (``(k, n)``) given its noise."""

    def floats_per_layer(self, net: ResNet, inputs: int) -> int:
        """Working memory of one transition for one sample, in floats."""
        noise = sum(math.prod(s) for s in self.noise_shapes(net, inputs).values())
        return noise + 4 * inputs * net.width + inputs * inputs


class DenseSampler(Sampler):
    """Materialise every layer's parameters and apply the block (any law)."""

    name: ClassVar[str] = "dense"

    def steps(self, net):
        return net.depth

    def noise_law(self, net):
        return net.law

    def noise_shapes(self, net, inputs):
        return net.block.param_shapes(net)

    def apply(self, net, noise, X):
        return net.block.apply(net, net.block.params(net, noise), X)


class ExactSampler(Sampler):
    """Each layer's increment drawn from its exact conditional law (Gaussian parameters)."""

    name: ClassVar[str] = "exact"

    def check(self, net):
        if not net.law.is_gaussian:
            raise ValueError(
                f"the exact sampler is exact only for Gaussian parameters, not law="
                f"{net.law.name!r}; use sampler='dense' for other laws"
            )

    def steps(self, net):
        return net.depth

    def noise_shapes(self, net, inputs):
        return net.block.exact_shapes(net, inputs)

    def apply(self, net, noise, X):
        return net.block.exact_apply(net, noise, X)


class EulerMaruyama(Sampler):
    """Euler-Maruyama of the limiting SDE with ``steps`` constant steps on ``[0, T]``."""

    num_steps: int
    name: ClassVar[str] = "sde"

    @classmethod
    def of(cls, net, steps=None):
        return cls(check_samples(net.depth if steps is None else steps, "steps"))

    def check(self, net):
        net.sde()  # the i.i.d. baseline has no limit: raises

    def steps(self, net):
        return self.num_steps

    def noise_shapes(self, net, inputs):
        return {"z": (inputs, net.width)}

    def apply(self, net, noise, X):
        return net.block.euler_apply(net, noise, X, net.horizon / self.num_steps)


def get_sampler(spec: str | Sampler, net: ResNet, steps: int | None = None) -> Sampler:
    """``"dense"``, ``"exact"``, ``"sde"`` (with ``steps``, default the depth) or a sampler."""
    if isinstance(spec, Sampler):
        return spec
    return _SAMPLERS.get(spec).of(net, steps)


def register_sampler(sampler: type[Sampler], *, overwrite: bool = False) -> type[Sampler]:
    """Make a :class:`Sampler` subclass available by its ``name`` (``sample(...,
    sampler=name)``, sweeps, the CLI)."""
    return _SAMPLERS.register(sampler, overwrite=overwrite)


_SAMPLERS: Registry[type[Sampler]] = Registry("sampler", lambda cls: cls.name,
                                              case_sensitive=False)
for _sampler in (DenseSampler, ExactSampler, EulerMaruyama):
    register_sampler(_sampler)


def layers_per_key(sampler: Sampler, net: ResNet, inputs: int) -> int:
    """Transitions whose noise one key draws at once: as many as fit ``_NOISE_PER_KEY``
    floats, at most ``_LAYERS_PER_KEY``. Depends on the shapes only, never on the depth (so
    that the depth can be traced) or on chunking."""
    return noise_per_key(sampler.noise_shapes(net, inputs).items())


def _with_traced_numbers(sampler: Sampler, net: ResNet, depth: bool):
    """``(sampler, net)`` with their float hyperparameters traced (:func:`traced_floats`),
    and with ``depth`` also the network's depth and the SDE sampler's step count."""
    sampler, net = traced_floats((sampler, net))
    if depth:
        net = eqx.tree_at(lambda n: n.depth, net, jnp.asarray(net.depth))
        if isinstance(sampler, EulerMaruyama):
            sampler = eqx.tree_at(lambda s: s.num_steps, sampler,
                                  jnp.asarray(sampler.num_steps))
    return sampler, net


def noise_per_key(shapes) -> int:
    """Layers whose noise one key draws at once, for one layer's noise ``shapes``: as many
    as fit ``_NOISE_PER_KEY`` floats, at most ``_LAYERS_PER_KEY``."""
    per_step = sum(math.prod(shape) for _, shape in shapes)
    return max(1, min(_LAYERS_PER_KEY, _NOISE_PER_KEY // per_step))


def run_layers(apply: Callable, X0: jax.Array, key: jax.Array, steps, shapes, law,
               per_key: int, trajectory: bool) -> jax.Array:
    """The layer loop of every exact-in-law and Euler sampler: ``steps`` transitions
    ``X -> apply(noise, X)`` from ``X0``, where one layer's ``noise`` is a dict of arrays of
    the given ``shapes`` (``[(name, shape), ...]``) with entries from ``law``.

    The noise of ``per_key`` consecutive layers is drawn in one call from
    ``fold_in(key, block)`` (entry ``i`` of ``shapes`` from ``fold_in(block_key, i)``), so a
    layer's noise depends on its index only, never on chunking; ``steps`` may be traced (a
    loop bound), and the last block's overhang is masked. Returns the final states, or with
    ``trajectory`` (a static ``steps``) every state, ``(steps + 1, *X0.shape)``.
    """
    blocks = (steps + per_key - 1) // per_key

    def block(X, b):
        bkey = jax.random.fold_in(key, b)
        noise = {name: law.sample(jax.random.fold_in(bkey, i), (per_key, *shape), X.dtype)
                 for i, (name, shape) in enumerate(shapes)}

        def layer(X, item):
            l, eps = item
            Y = apply(eps, X)
            Y = jnp.where(l < steps, Y, X)  # the last block may overhang the depth
            return Y, (Y if trajectory else None)

        return jax.lax.scan(layer, X, (b * per_key + jnp.arange(per_key), noise))

    if not trajectory:
        return jax.lax.fori_loop(0, blocks, lambda b, X: block(X, b)[0], X0)
    _, path = jax.lax.scan(block, X0, jnp.arange(blocks))
    path = path.reshape(blocks * per_key, *X0.shape)[:steps]
    return jnp.concatenate([X0[None], path])


@eqx.filter_jit
def _run_chunk(sampler: Sampler, net: ResNet, x, keys, trajectory: bool, output: str):
    steps = sampler.steps(net)  # a traced integer, except for trajectories
    inputs = x.shape[0]
    per_key = layers_per_key(sampler, net, inputs)
    shapes = sorted(sampler.noise_shapes(net, inputs).items())
    law = sampler.noise_law(net)

    def one(key):
        k_embed, k_layers, k_out = jax.random.split(key, 3)
        X0 = net.embed(k_embed, x)
        out = run_layers(lambda eps, X: sampler.apply(net, eps, X), X0, k_layers, steps,
                         shapes, law, per_key, trajectory)
        if output == "readout" and not trajectory:
            return net.readout.apply(k_out, out, net.activation, net.law)
        return out

    return jax.vmap(one)(keys)


def sample(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    samples: int,
    sampler: str | Sampler = "exact",
    steps: int | None = None,
    trajectory: bool = False,
    output: str = "state",
    dtype=jnp.float32,
    chunk_size: int | None = None,
    progress: bool | Callable[[int], None] = False,
) -> jax.Array:
    """Sample independent networks (or SDE paths) at the inputs ``x``.

    Args:
        net: the network description.
        x: inputs, ``(inputs, input_dim)``; a 1-D array is one input. All inputs of one
            sample share its parameters (or its Brownian motion).
        key: JAX PRNG key.
        samples: number of independent networks.
        sampler: ``"exact"`` (default), ``"dense"``, ``"sde"`` or a :class:`Sampler`.
        steps: steps of the ``"sde"`` sampler (default: the depth).
        trajectory: return every layer's state, not only the last.
        output: ``"state"`` (states ``X_T``) or ``"readout"`` (the network outputs; needs
            ``net.readout``).
        dtype: floating type of the simulation (float32 by default: Monte Carlo error
            dominates rounding; pass ``jnp.float64`` for more).
        chunk_size: samples per compiled batch (default: bounded working memory).
        progress: ``True`` for a progress bar, or a callback taking the samples just done.

    Returns:
        ``(samples, inputs, width)``; with ``trajectory``, ``(samples, steps + 1, inputs,
        width)``; with ``output="readout"``, ``(samples, inputs)``.
    """
    samples = check_samples(samples)
    sampler = get_sampler(sampler, net, steps)
    sampler.check(net)
    x = check_inputs(net, x, dtype)
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "readout" and net.readout is None:
        raise ValueError("output='readout' needs a network with a readout (net.readout)")
    if output == "readout" and trajectory:
        raise ValueError("trajectory=True returns states; it cannot be combined with readout")
    per_sample = sampler.floats_per_layer(net, x.shape[0])
    if trajectory:
        per_sample += (sampler.steps(net) + 1) * x.shape[0] * net.width
    size = chunk_size_for(chunk_size, samples, per_sample)
    # trajectories have one row per step: their length, so the depth, stays static
    traced = _with_traced_numbers(sampler, net, depth=not trajectory)
    with progress_callback(progress, samples, f"{sampler.name} sampler") as advance:
        return map_chunks(lambda keys: _run_chunk(*traced, x, keys, trajectory, output),
                          jax.random.split(key, samples), size, advance)


def sample_sde(
    net: ResNet, x, key: jax.Array, *, samples: int, steps: int | None = None, **kwargs
) -> jax.Array:
    """Euler-Maruyama samples of the network's limiting SDE at ``t = T`` (or its path).

    Same arguments and shapes as :func:`sample` with ``sampler="sde"``.
    """
    return sample(net, x, key, samples=samples, sampler="sde", steps=steps, **kwargs)
