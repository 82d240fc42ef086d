r"""Data for the trained-weight studies (``trained_scaling.md`` §3, §4).

* :func:`synthetic_ode_data`: the synthetic ODE data set (d = 10, N = 100 steps of size
  ``N^{-1/2}``, unit-normalised x and y; 1024 train, 256 test).
* :func:`random_conv_embedding`: a generic random, untrained convolution stack (Conv2d 1->1 with
  bias, weights and biases U(+-1/sqrt(fan_in)) from a fixed seed, no padding), flattened
  and normalised to unit norm. :func:`digits_embedding` applies kernels (3, 1), (2, 1) to
  scikit-learn's bundled 8x8 digits (8 -> 6 -> 5, d = 25); :func:`mnist_embedding` applies
  (5, 2), (3, 2) to 28x28 MNIST arrays a user supplies (28 -> 12 -> 5), the original one.
* :func:`load_npy_data`: any user (X, Y) arrays from ``.npy`` files.
* :func:`depth_grid`: the unique values of ``floor(1.2^k)`` in ``[min_depth, max_depth)``.
* :func:`load_checkpoints`: weight stacks of networks trained elsewhere (``.npz``,
  ``.safetensors``, PyTorch state dicts) with a name pattern naming the layer index.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ScalingData", "synthetic_ode_data", "random_conv_embedding", "one_hot_targets",
    "digits_embedding", "mnist_embedding", "load_npy_data", "depth_grid", "DIGITS_LAYERS",
    "MNIST_LAYERS", "CHECKPOINT_SUFFIXES", "read_checkpoint", "checkpoint_stack",
    "load_checkpoints"
]

DIGITS_LAYERS = ((3, 1), (2, 1))


MNIST_LAYERS = ((5, 2), (3, 2))


@dataclasses.dataclass(frozen=True)
class ScalingData:
    """Train/test arrays, float32, shapes (n, d) for inputs and targets (same d)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self):
        for a, b, split in ((self.x_train, self.y_train, "train"),
                            (self.x_test, self.y_test, "test")):
            if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape:
                raise ValueError(f"{split} inputs and targets must both be (n, d) arrays of one "
                                 f"shape (the ResNet keeps its width), got {a.shape}, {b.shape}")
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                raise ValueError(f"{split} data contain NaN or infinity")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ValueError("train and test data must have the same dimension")

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def synthetic_ode_data(seed: int = 0, *, n_train: int = 1024, n_test: int = 256, dim: int = 10,
                       steps: int = 100, label_noise: float = 0.0) -> ScalingData:
    """The synthetic ODE data set of §3.

    x ~ U(-1, 1)^d, ``z_{j+1} = z_j + N^{-1/2} tanh(sin(5 pi j/N) z_j + cos(5 pi j/N))`` for
    j < N (note the step ``N^{-1/2}``), ``y = z_N`` (+ Gaussian label noise of the given std),
    then ``x <- x/|x|`` and ``y <- y/|y|``. Computed in float64, returned as float32.
    """
    if n_train < 1 or n_test < 1 or dim < 1 or steps < 1:
        raise ValueError("n_train, n_test, dim and steps must be >= 1")
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_train + n_test, dim))
    z = x.copy()
    for j in range(steps):
        angle = 5 * math.pi * j / steps
        z = z + np.tanh(math.sin(angle) * z + math.cos(angle)) / math.sqrt(steps)
    y = z + label_noise * rng.standard_normal(z.shape)
    x, y = _unit_rows(x).astype(np.float32), _unit_rows(y).astype(np.float32)
    return ScalingData("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _conv2d(images: np.ndarray, weight: np.ndarray, bias: float, stride: int) -> np.ndarray:
    """Valid cross-correlation (n, H, W) * (k, k) with stride (PyTorch's Conv2d 1->1)."""
    k = weight.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]
    return np.einsum("nijab,ab->nij", windows, weight) + bias


def random_conv_embedding(images, layers: Sequence[tuple[int, int]] = DIGITS_LAYERS, *,
                          seed: int = 0) -> np.ndarray:
    """Embed images (n, H, W) by random untrained convolutions, flatten, unit-normalise.

    Each layer ``(kernel, stride)`` is a Conv2d(1 -> 1) with bias, weights and bias drawn once
    from U(+-1/sqrt(kernel^2)) with ``seed``; raw intensities, no padding. Returns (n, D)
    float64 with unit rows.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W), got {images.shape}")
    if not layers:
        raise ValueError("the embedding needs at least one (kernel, stride) layer")
    rng = np.random.default_rng(seed)
    out = images
    for kernel, stride in layers:
        if kernel < 1 or stride < 1 or kernel > min(out.shape[1:]):
            raise ValueError(f"layer (kernel={kernel}, stride={stride}) does not fit inputs of "
                             f"size {out.shape[1:]}")
        bound = 1.0 / kernel
        weight = rng.uniform(-bound, bound, (kernel, kernel))
        bias = rng.uniform(-bound, bound)
        out = _conv2d(out, weight, bias, stride)
    flat = out.reshape(out.shape[0], -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an embedded image is zero and cannot be normalised")
    return flat / norms


def one_hot_targets(labels, dim: int) -> np.ndarray:
    """One-hot targets in the first ``n_classes`` of ``dim`` coordinates, zeros elsewhere."""
    labels = np.asarray(labels).astype(int)
    n_classes = int(labels.max()) + 1
    if labels.min() < 0 or n_classes > dim:
        raise ValueError(f"labels must lie in 0..{dim - 1}")
    y = np.zeros((labels.size, dim))
    y[np.arange(labels.size), labels] = 1.0
    return y


def _embedded_split(name, images, labels, layers, seed, n_train, n_test) -> ScalingData:
    from sklearn.model_selection import train_test_split

    x = random_conv_embedding(images, layers, seed=seed)
    y = one_hot_targets(labels, x.shape[1])
    if n_train is None:
        return ScalingData(name, x.astype(np.float32), y.astype(np.float32), x[:0], y[:0])
    tr, te = train_test_split(np.arange(len(x)), train_size=n_train, test_size=n_test,
                              stratify=labels, random_state=seed)
    f = np.float32
    return ScalingData(name, x[tr].astype(f), y[tr].astype(f), x[te].astype(f), y[te].astype(f))


def digits_embedding(seed: int = 0, *, n_train: int = 1024, n_test: int = 256) -> ScalingData:
    """scikit-learn's 8x8 digits (intensities 0-16) embedded in d = 25 by
    :func:`random_conv_embedding` with kernels (3, 1), (2, 1); one-hot targets in the first
    10 coordinates; stratified ``n_train`` / ``n_test`` split (the MNIST stand-in, §3)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _embedded_split("digits", digits.images, digits.target, DIGITS_LAYERS, seed,
                           n_train, n_test)


def mnist_embedding(images_train, labels_train, images_test, labels_test, *, seed: int = 0
                    ) -> ScalingData:
    """The original embedding for user-supplied MNIST arrays (n, 28, 28), raw 0-255: kernels
    (5, 2), (3, 2) -> 5x5 -> d = 25, one-hot targets in the first 10 coordinates."""
    train = _embedded_split("mnist", images_train, labels_train, MNIST_LAYERS, seed, None, None)
    test = _embedded_split("mnist", images_test, labels_test, MNIST_LAYERS, seed, None, None)
    return ScalingData("mnist", train.x_train, train.y_train, test.x_train, test.y_train)


def load_npy_data(x_train: str | Path, y_train: str | Path, x_test: str | Path | None = None,
                  y_test: str | Path | None = None) -> ScalingData:
    """User data from ``.npy`` files, (n, d) inputs and targets of equal d (the width)."""
    paths = [p for p in (x_train, y_train, x_test, y_test) if p is not None]
    for p in paths:
        if Path(p).suffix != ".npy" or not Path(p).exists():
            raise ValueError(f"data file {p} must be an existing .npy file")
    xs, ys = np.load(x_train), np.load(y_train)
    xt = np.load(x_test) if x_test is not None else xs[:0]
    yt = np.load(y_test) if y_test is not None else ys[:0]
    f = np.float32
    return ScalingData("npy", xs.astype(f), ys.astype(f), xt.astype(f), yt.astype(f))


def depth_grid(max_depth: int = 1000, *, min_depth: int = 3, base: float = 1.2) -> list[int]:
    """The unique values of ``floor(base^k)`` with ``min_depth <= L < max_depth`` (§4):
    31 depths 3, 4, 5, 6, 7, 8, 10, 12, 15, ..., 850 below 1000."""
    if base <= 1:
        raise ValueError(f"base must be > 1, got {base}")
    if min_depth < 1 or max_depth <= min_depth:
        raise ValueError(f"need 1 <= min_depth < max_depth, got {min_depth}, {max_depth}")
    out, k = set(), 0
    while base**k < max_depth:
        L = math.floor(base**k)
        if L >= min_depth:
            out.add(L)
        k += 1
    return sorted(out)


# -- weights of networks trained elsewhere ------------------------------------------------------

CHECKPOINT_SUFFIXES = (".npz", ".safetensors", ".pt", ".pth", ".bin")


def _optional(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"reading {what} needs the optional package {module!r}: "
                         f"pip install 'deeplimits[checkpoints]' (or pip install {module})"
                         ) from e


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """``{name: array}`` of a checkpoint: ``.npz``, ``.safetensors`` (package ``safetensors``)
    or a PyTorch state dict ``.pt`` / ``.pth`` / ``.bin`` (package ``torch``; loaded with
    ``weights_only=True``; a dict holding a ``state_dict`` or ``model`` dict is unwrapped).
    The optional packages are the ``checkpoints`` extra and imported only here."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"{path.name}: a checkpoint must end in one of {CHECKPOINT_SUFFIXES}")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    if suffix == ".safetensors":
        st = _optional("safetensors.numpy", "a .safetensors checkpoint")
        try:
            return dict(st.load_file(str(path)))
        except Exception as e:  # bfloat16 tensors have no numpy dtype: retry through torch
            if "bf16" not in str(e).lower() and "bfloat16" not in str(e).lower():
                raise ValueError(f"{path.name}: not a readable safetensors file ({e})") from e
            torch = _optional("torch", "a bfloat16 .safetensors checkpoint")
            from safetensors.torch import load_file
            return {k: v.to(torch.float32).numpy() for k, v in load_file(str(path)).items()}
    torch = _optional("torch", "a PyTorch state dict")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path.name}: not a readable PyTorch state dict ({e})") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name}: expected a state dict (name -> tensor), got "
                         f"{type(obj).__name__}")
    return {str(k): v.detach().to(torch.float64).cpu().numpy() for k, v in obj.items()
            if hasattr(v, "detach")}


def _pattern_regex(pattern: str):
    import re

    if not isinstance(pattern, str) or pattern.count("{k}") != 1:
        raise ValueError(f"--pattern must contain the layer index placeholder '{{k}}' exactly "
                         f"once, e.g. 'layers.{{k}}.mlp.fc1.weight'; got {pattern!r}")
    if "{" in pattern.replace("{k}", "") or "}" in pattern.replace("{k}", ""):
        raise ValueError(f"--pattern may contain no braces other than '{{k}}', got {pattern!r}")
    head, tail = pattern.split("{k}")
    return re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")


def checkpoint_stack(tensors: dict[str, np.ndarray], pattern: str, *, name: str = "checkpoint"
                     ) -> np.ndarray:
    """(L, ...) float64 stack of the tensors whose names match ``pattern`` (``{k}`` is the
    layer index, which must run over 0..L-1 with none missing, every layer of one shape)."""
    regex = _pattern_regex(pattern)
    found = {}
    for key, value in tensors.items():
        m = regex.match(key)
        if m:
            found[int(m.group(1))] = np.asarray(value)
    if not found:
        sample = ", ".join(sorted(tensors)[:8]) + (", ..." if len(tensors) > 8 else "")
        raise ValueError(f"{name}: no tensor matches --pattern {pattern!r}; names are "
                         f"{sample or '(none)'}")
    L = max(found) + 1
    missing = sorted(set(range(L)) - set(found))
    if missing:
        raise ValueError(f"{name}: layers {missing} of 0..{L - 1} are missing for --pattern "
                         f"{pattern!r}")
    shapes = {k: found[k].shape for k in range(L)}
    if len(set(shapes.values())) != 1:
        by_shape: dict = {}
        for k, sh in shapes.items():
            by_shape.setdefault(sh, []).append(k)
        raise ValueError(f"{name}: the layers matching {pattern!r} have ragged shapes "
                         f"{ {sh: ks[:6] for sh, ks in by_shape.items()} } (shape: layers)")
    if found[0].ndim < 1:
        raise ValueError(f"{name}: the tensors matching {pattern!r} are scalars; the analysis "
                         "needs at least one axis per layer")
    return np.stack([found[k].astype(np.float64) for k in range(L)])


def load_checkpoints(paths: Sequence[str | Path], pattern: str) -> dict[int, np.ndarray]:
    """``{L: (n_networks, L, ...)}`` from checkpoint files (or folders of them), one network
    per file, the layers named by ``pattern``; networks of equal depth are pooled as seeds.
    The pattern is checked before any file is read."""
    _pattern_regex(pattern)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in CHECKPOINT_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p} is neither a folder nor an existing file")
    if not files:
        raise ValueError(f"no checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}) found in "
                         f"{[str(p) for p in paths]}")
    by_depth: dict[int, list[tuple[Path, np.ndarray]]] = {}
    for f in files:
        stack = checkpoint_stack(read_checkpoint(f), pattern, name=f.name)
        by_depth.setdefault(stack.shape[0], []).append((f, stack))
    shapes = {(f.name, s.shape[1:]) for parts in by_depth.values() for f, s in parts}
    if len({sh for _, sh in shapes}) != 1:
        raise ValueError(f"the checkpoints' layers have different shapes: {sorted(shapes)}")
    return {L: np.stack([s for _, s in parts]) for L, parts in sorted(by_depth.items())}
