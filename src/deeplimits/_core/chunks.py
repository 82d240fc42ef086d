"""Vectorised sampling over fixed-size chunks of keys, shared by every sampler.

Sample ``s`` always uses ``keys[s]``, whatever the chunk size, so results do not depend on
chunking; the last chunk is padded with repeated keys so that every chunk reuses one
compilation, and the padding's outputs are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp

from deeplimits._core.validation import check_samples

__all__ = ["CHUNK_FLOATS", "chunk_size", "map_chunks", "check_sample_fits", "memory_bytes"]

# Floats that one chunk may hold: about 128 MB in float32, 256 MB in float64.
CHUNK_FLOATS = 2**25


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_sample_fits(floats_per_sample: int, itemsize: int, what: str) -> None:
    """``ValueError`` before any work when one sample alone needs more working memory than
    the machine has (a chunk can hold no fewer than one sample), naming the need."""
    need, have = floats_per_sample * itemsize, memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"one sample of {what} needs {need / 2**30:.3g} GiB of working "
                         f"memory and this machine has {have / 2**30:.3g} GiB")


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
