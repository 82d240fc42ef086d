r"""A small convolutional ResNet with the block of the CIFAR-10 model (``trained_scaling.md``
§8), for trained-weight scaling on scikit-learn's 8 x 8 digits.

* stem: ``h_0 = ReLU(S * x)``, ``S`` a 3 x 3 convolution (1 -> C channels);
* blocks ``k = 0..L-1``: ``h_{k+1} = ReLU(h_k + C_k * ReLU(A_k * h_k))``, ``A_k, C_k`` 3 x 3
  convolutions (C -> C) without bias, zero ("same") padding, stride 1: the post-activation
  block of §8, ``C_k`` playing a matrix-valued ``delta_k`` (one resolution and one width
  throughout, so no 1 x 1 shortcut is needed);
* head: a linear layer from the flattened C x 8 x 8 features to 10 classes *(choice)*:
  global average pooling, the CIFAR head, leaves too little of an 8 x 8 digit after a few
  3 x 3 convolutions for the network to train in a few epochs.

Kernels are stacked, ``A`` and ``C`` of shape (L, C, C, 3, 3) (the layout of
:func:`~deeplimits.analysis.weight_scaling.conv_singular_values`), and the blocks run as one
``lax.scan``. A block with layer factor 0 is an exact no-op (``h_k >= 0`` after a ReLU), which
is how networks of several depths are padded to one and trained together.
Initialisation: PyTorch's default, ``U(+-1/sqrt(fan_in))`` (fan-in ``C_in * 9`` for a kernel).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DigitsConvResNet", "init_digits_conv_resnet"]

_DIMS = ("NCHW", "OIHW", "NCHW")


def _conv(h: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(h, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)


class DigitsConvResNet(eqx.Module):
    """Stem ``S`` (C, 1, 3, 3), block kernels ``A``, ``C`` (L, C, C, 3, 3), head ``W``
    (10, C * H * W) and ``w0`` (10,). ``__call__(x, layer_scale)``: logits (n, 10) of
    images (n, 1, H, W); ``layer_scale`` (L,) multiplies each block's branch (default 1)."""

    S: jax.Array
    A: jax.Array
    C: jax.Array
    W: jax.Array
    w0: jax.Array

    @property
    def depth(self) -> int:
        return self.A.shape[0]

    def __call__(self, x: jax.Array, layer_scale: jax.Array | None = None) -> jax.Array:
        scale = jnp.ones(self.depth) if layer_scale is None else layer_scale
        scale = jnp.asarray(scale, self.A.dtype)  # the scan's carry keeps the kernels' dtype
        h = jax.nn.relu(_conv(jnp.asarray(x, self.A.dtype), self.S))

        def block(h, weights):
            A, C, c = weights
            return jax.nn.relu(h + c * _conv(jax.nn.relu(_conv(h, A)), C)), None

        h, _ = jax.lax.scan(block, h, (self.A, self.C, scale))
        return h.reshape(h.shape[0], -1) @ self.W.T + self.w0


def init_digits_conv_resnet(rng: np.random.Generator, depth: int, channels: int, *,
                            classes: int = 10, image_shape: tuple[int, int] = (8, 8),
                            dtype=jnp.float32) -> DigitsConvResNet:
    """A :class:`DigitsConvResNet` for images of ``image_shape`` with PyTorch's default
    initialisation, from a NumPy generator (no compilation per shape)."""
    for name, v in (("depth", depth), ("channels", channels), ("classes", classes)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")

    def uniform(shape, fan_in):
        b = 1.0 / math.sqrt(fan_in)
        return jnp.asarray(rng.uniform(-b, b, shape), dtype)

    c = int(channels)
    features = c * int(np.prod(image_shape))
    return DigitsConvResNet(uniform((c, 1, 3, 3), 9), uniform((depth, c, c, 3, 3), 9 * c),
                            uniform((depth, c, c, 3, 3), 9 * c),
                            uniform((classes, features), features),
                            uniform((classes,), features))
