r"""Training the digits convolutional ResNet (:mod:`deeplimits.spec.trainable_conv`) across
depth, the stand-in for the CIFAR-10 experiment of ``trained_scaling.md`` §8.

Protocol (§8, scaled down *(choice)*): SGD with momentum 0.9, weight decay 5e-4 and a cosine
learning-rate schedule over the run, batch 64, cross-entropy, on scikit-learn's 8 x 8
digits (normalised per image, :func:`~deeplimits.data.images.digits_images`) with a
stratified 1024 / 256 train / test split. No augmentation (8 x 8 digits are not CIFAR).

:func:`train_digits_conv` trains every (depth, seed) cell at once: cells are padded with
exact no-op blocks (zero kernels, factor 0) to the largest depth, and one compiled, vmapped
epoch function trains them; a cell's initialisation and batch order depend on (seed, depth)
only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from deeplimits._core.keys import seed_key
from deeplimits._core.provenance import provenance
from deeplimits.data.images import digits_images
from deeplimits.spec.trainable_conv import DigitsConvResNet, init_digits_conv_resnet

__all__ = ["digits_split", "train_digits_conv"]


def digits_split(seed: int = 0, n_train: int = 1024, n_test: int = 256):
    """``(x_train, y_train, x_test, y_test)``: images (n, 1, 8, 8) float32 and integer labels,
    a stratified split with ``random_state=seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x = digits_images().astype(np.float32)
    y = load_digits().target
    tr, te = train_test_split(np.arange(len(x)), train_size=n_train, test_size=n_test,
                              stratify=y, random_state=seed)
    return x[tr], y[tr], x[te], y[te]


def _optimizer(learning_rate: float, momentum: float, weight_decay: float, steps: int):
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1))
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum))


def _loss(model: DigitsConvResNet, x, y, scale):
    return optax.softmax_cross_entropy_with_integer_labels(model(x, scale), y).mean()


@functools.lru_cache(maxsize=8)
def _epoch_fn(learning_rate, momentum, weight_decay, steps, batch_size, n):
    opt = _optimizer(learning_rate, momentum, weight_decay, steps)
    nb = n // batch_size

    def one(model, state, key, epoch, scale, x, y):
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)[: nb * batch_size]

        def step(carry, idx):
            m, s = carry
            value, g = jax.value_and_grad(_loss)(m, x[idx], y[idx], scale)
            u, s = opt.update(g, s, m)
            return (optax.apply_updates(m, u), s), value

        (model, state), values = jax.lax.scan(step, (model, state),
                                              perm.reshape(nb, batch_size))
        return model, state, values.mean()

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, 0, None, None))), opt


def _evaluate(model, scale, x, y):
    logits = jax.vmap(lambda m, c: m(x, c))(model, scale)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[None]).mean(axis=1)
    return loss, (jnp.argmax(logits, axis=-1) == y[None]).mean(axis=1)


def train_digits_conv(depths: Sequence[int], seeds: Sequence[int], *, channels: int = 4,
                      epochs: int = 3, learning_rate: float = 0.05, momentum: float = 0.9,
                      weight_decay: float = 5e-4, batch_size: int = 64,
                      data_seed: int = 0) -> list[xr.Dataset]:
    """Train every (depth, seed) cell; one dataset per cell with the trained kernels ``A``
    and ``C`` (layer, out, in, kh, kw), ``loss`` (epoch; epoch-mean training loss), and
    attributes ``train_loss``, ``test_loss``, ``test_accuracy``, ``depth``, ``seed`` and the
    configuration (provenance).

    Raises:
        ValueError: for empty, repeated or non-positive depths, empty seeds, or a bad
            channel count, epoch count or learning rate; before any training.
    """
    depths, seeds = [int(L) for L in depths], [int(s) for s in seeds]
    if not depths or min(depths) < 1 or len(set(depths)) != len(depths):
        raise ValueError(f"depths must be distinct integers >= 1, got {depths}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds}")
    for name, v in (("channels", channels), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not (learning_rate > 0 and 0 <= momentum < 1 and weight_decay >= 0):
        raise ValueError("learning_rate must be > 0, momentum in [0, 1) and weight_decay >= 0")
    x, y, x_test, y_test = (jnp.asarray(a) for a in digits_split(data_seed))
    n, pad = x.shape[0], max(depths)
    cells = [(L, s) for L in depths for s in seeds]
    models = []
    for L, s in cells:
        m = init_digits_conv_resnet(np.random.default_rng([s, L]), L, channels)
        zeros = jnp.zeros((pad - L,) + m.A.shape[1:], m.A.dtype)
        models.append(eqx.tree_at(lambda t: (t.A, t.C), m, (jnp.concatenate([m.A, zeros]),
                                                            jnp.concatenate([m.C, zeros]))))
    model = jax.tree.map(lambda *a: jnp.stack(a), *models)
    scale = jnp.asarray([[1.0 if k < L else 0.0 for k in range(pad)] for L, _ in cells],
                        jnp.float32)
    epoch, opt = _epoch_fn(learning_rate, momentum, weight_decay, epochs * (n // batch_size),
                           batch_size, n)
    state = jax.vmap(opt.init)(model)
    keys = jax.random.wrap_key_data(jnp.stack([jax.random.key_data(seed_key(s, L))
                                               for L, s in cells]))
    curves = np.empty((len(cells), epochs))
    for e in range(epochs):
        model, state, value = epoch(model, state, keys, jnp.int32(e + 1), scale, x, y)
        curves[:, e] = np.asarray(value)
    train_loss, _ = (np.asarray(v) for v in _evaluate(model, scale, x, y))
    test_loss, test_acc = (np.asarray(v) for v in _evaluate(model, scale, x_test, y_test))
    config = dict(channels=channels, epochs=epochs, learning_rate=learning_rate,
                  momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
                  data_seed=data_seed)
    out = []
    for c, (L, s) in enumerate(cells):
        A, C = (np.asarray(getattr(model, k)[c, :L]) for k in ("A", "C"))
        attrs = provenance(config, s)
        attrs.update(depth=L, train_loss=float(train_loss[c]), test_loss=float(test_loss[c]),
                     test_accuracy=float(test_acc[c]), data="digits 8x8")
        dims = ("layer", "out", "in", "kh", "kw")
        out.append(xr.Dataset({"A": (dims, A), "C": (dims, C), "loss": (("epoch",), curves[c])},
                              coords={"epoch": np.arange(1, epochs + 1)}, attrs=attrs))
    return out
