"""The digits convolutional ResNet of ``trained_scaling.md`` §8 and its trainer: padding
blocks are exact no-ops, training lowers the loss, bad input is refused."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from deeplimits.simulation.conv_training import digits_split, train_digits_conv
from deeplimits.spec.trainable_conv import init_digits_conv_resnet


def test_a_block_with_factor_zero_is_an_exact_no_op():
    x = jnp.asarray(digits_split(0, 64, 16)[0][:5])
    net = init_digits_conv_resnet(np.random.default_rng(0), 3, 4)
    short = init_digits_conv_resnet(np.random.default_rng(0), 3, 4)
    padded = type(net)(net.S, jnp.concatenate([net.A, 0 * net.A]),
                       jnp.concatenate([net.C, 0 * net.C]), net.W, net.w0)
    scale = jnp.asarray([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(padded(x, scale), short(x), rtol=1e-6)
    assert net(x).shape == (5, 10)
    # the branches matter: dropping them changes the logits
    assert not np.allclose(net(x, jnp.zeros(3)), net(x))


def test_training_lowers_the_loss_and_returns_the_kernels_per_cell():
    cells = train_digits_conv([1, 2], [0], channels=2, epochs=2, learning_rate=0.1)
    assert [c.attrs["depth"] for c in cells] == [1, 2]
    assert cells[1].A.shape == (2, 2, 2, 3, 3) and cells[1].C.shape == (2, 2, 2, 3, 3)
    for c in cells:
        assert c.loss.values[-1] < np.log(10.0)  # below the loss of uniform guessing
    with pytest.raises(ValueError, match="depths must be distinct"):
        train_digits_conv([2, 2], [0])
    with pytest.raises(ValueError, match="channels"):
        train_digits_conv([2], [0], channels=0)
