"""The one mapping from a seed (and a tag naming a use) to a JAX key."""

from __future__ import annotations

import zlib

import jax

__all__ = ["seed_key"]


def seed_key(seed: int, tag: str | int | None = None) -> jax.Array:
    """``jax.random.key(seed)``, folded with ``tag`` when given: an integer as it is, a
    string through its CRC-32, so that each named use of one seed draws its own stream."""
    key = jax.random.key(int(seed))
    if tag is None:
        return key
    return jax.random.fold_in(key, tag if isinstance(tag, int) else zlib.crc32(tag.encode()))
