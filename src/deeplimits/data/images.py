"""Split from ``deeplimits.conv``."""

from __future__ import annotations

import numpy as np

__all__ = ["digits_images"]

def digits_images(indices=None, *, normalise: bool = True) -> np.ndarray:
    """scikit-learn's bundled 8 x 8 digits as ``(k, 1, 8, 8)`` float64 images.

    ``normalise`` maps the pixel values ``0..16`` to zero mean and unit mean square per
    image (so that ``K_0`` is of order one). ``indices`` selects images (default: all).
    """
    from sklearn.datasets import load_digits

    imgs = np.asarray(load_digits().images, dtype=np.float64)
    if indices is not None:
        idx = np.asarray(indices, dtype=int).ravel()
        if idx.size == 0 or idx.min() < -len(imgs) or idx.max() >= len(imgs):
            raise ValueError(f"digit indices must lie in [0, {len(imgs)}), got "
                             f"{idx.tolist()}")
        imgs = imgs[idx]
    if normalise:
        imgs = imgs - imgs.mean((1, 2), keepdims=True)
        imgs = imgs / np.sqrt((imgs**2).mean((1, 2), keepdims=True))
    return imgs[:, None]
