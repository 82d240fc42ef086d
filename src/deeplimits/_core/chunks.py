"""Vectorised sampling over fixed-size chunks of keys, shared by every sampler.

Sample ``s`` always uses ``keys[s]``, whatever the chunk size, so results do not depend on
chunking; the last chunk is padded with repeated keys so that every chunk reuses one
compilation, and the padding's outputs are dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from deeplimits._core.validation import check_samples

__all__ = ["CHUNK_FLOATS", "chunk_size", "map_chunks"]

# Floats that one chunk may hold: about 128 MB in float32, 256 MB in float64.
CHUNK_FLOATS = 2**25


def chunk_size(requested: int | None, samples: int, floats_per_sample: int) -> int:
    """``requested`` (validated), or as many samples as fit :data:`CHUNK_FLOATS`; never
    more than ``samples``."""
    if requested is None:
        requested = max(1, min(samples, CHUNK_FLOATS // max(1, floats_per_sample)))
    return min(check_samples(requested, "chunk_size"), samples)


def map_chunks(fn: Callable, keys: jax.Array, size: int, advance: Callable[[int], None]):
    """``fn`` on consecutive chunks of ``size`` keys; its outputs (arrays, or pytrees of
    arrays, with a leading sample axis) concatenated over the samples. ``advance(count)``
    is called after each chunk."""
    samples = keys.shape[0]
    parts = []
    for start in range(0, samples, size):
        chunk = keys[start : start + size]
        count = chunk.shape[0]
        if count < size:
            chunk = jnp.concatenate([chunk, keys[: size - count]])
        parts.append(jax.tree.map(lambda v, count=count: v[:count], fn(chunk)))
        advance(count)
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda *vs: jnp.concatenate(vs), *parts)
