"""Draw docs/assets/conv_regime.png: the regime of the digits convolutional ResNet's trained
kernels across depth (trained_scaling.md §8.1), with deeplimits itself.

Trains the §8.1 stand-in (C = 4 channels, 3 x 3 kernels, SGD with momentum 0.9, weight decay
5e-4, cosine schedule, 4 epochs at rate 0.02, batch 64) at depths 4, 8, 16, 32, 64 with 3
seeds each, then runs the FFT-singular-value estimators and the regime classifier of §6.1 on
the block kernels A_k and C_k separately. Rerun with ``python3 docs/assets/conv_regime.py``
(about 8 minutes of wall time measured on the shared 2-core machine at load 10-15).
"""

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deeplimits.analysis.weight_scaling import analyze_weights  # noqa: E402
from deeplimits.simulation.conv_training import train_digits_conv  # noqa: E402

OUT = Path(__file__).with_name("conv_regime.png")
DEPTHS, SEEDS = (4, 8, 16, 32, 64), (0, 1, 2)
SETTINGS = {"channels": 4, "epochs": 4, "learning_rate": 0.02}


def train() -> dict[str, dict[int, np.ndarray]]:
    """``{"A" | "C": {L: (seeds, L, C, C, 3, 3)}}``, one depth per call (no padding)."""
    kernels: dict[str, dict[int, np.ndarray]] = {"A": {}, "C": {}}
    for L in DEPTHS:
        cells = train_digits_conv([L], list(SEEDS), **SETTINGS)
        accuracy = [round(c.attrs["test_accuracy"], 3) for c in cells]
        print(f"L = {L}: test accuracy {accuracy}")
        for name in kernels:
            kernels[name][L] = np.stack([c[name].values for c in cells])
    return kernels


def draw(kernels: dict[str, dict[int, np.ndarray]], out: Path = OUT) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), constrained_layout=True)
    for name, marker in (("A", "o"), ("C", "s")):
        a = analyze_weights(kernels[name], norm="spectral", input_shape=(8, 8), n_boot=500,
                            seed=0)
        print(f"{name}: {a.regime.regime}: {a.regime.reason}")
        print(a.table())
        depth = np.asarray(a.values.depth)
        for ax, stat in zip(axes, ("BranchSize", "Roughness", "Hurst"), strict=True):
            v = np.exp(np.log(a.values.value.sel(statistic=stat)).mean("seed").values)
            f = a.slopes[stat]
            dots, = ax.loglog(depth, v, marker, label=f"{name}: slope {f.slope:+.2f} "
                              f"[{f.lo:+.2f}, {f.hi:+.2f}]")
            icpt = np.mean(np.log(v)) - f.slope * np.mean(np.log(depth))
            ax.loglog(depth, np.exp(icpt) * depth ** f.slope, "-", lw=0.8,
                      color=dots.get_color())
        axes[0].set_title(f"{name}: {a.regime.regime}" if name == "A" else
                          f"{axes[0].get_title()}, {name}: {a.regime.regime}", fontsize=8)
    labels = {"BranchSize": "RMS layer size (slope -beta; L^-1/2 needs -0.5)",
              "Roughness": "max increment / RMS size (smooth needs -1)",
              "Hurst": "RMS partial sum / RMS size (Brownian: 0.5)"}
    for ax, stat in zip(axes, labels, strict=True):
        ax.set_xlabel("depth L (blocks)")
        ax.set_ylabel(labels[stat], fontsize=7)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
        ax.set_xticks(DEPTHS, [str(L) for L in DEPTHS])
        ax.legend(fontsize=6)
    fig.suptitle("digits conv ResNet, trained kernels (FFT singular values), 3 seeds", fontsize=9)
    fig.savefig(out, dpi=130)


if __name__ == "__main__":
    draw(train())
