"""Draw docs/assets/front_figure.png, the README's figure, with deeplimits itself.

Hayou's 1/sqrt(L) network at width n = 4 and depth L = 1000, phi(x) = 2x + 1 (a GBM-family
activation, finite_width.md §5): the simulated law of log|phi(X_1)|/|phi(X_0)| from 20 000
exact samples against its closed form N(a^2 (1/2 - 1/n) t, a^2 t/n). Rerun with
``python3 docs/assets/front_figure.py`` (28 s measured on two shared CPU cores).
"""

from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import deeplimits as dl  # noqa: E402
from deeplimits import closed_forms, finite_width  # noqa: E402

OUT = Path(__file__).with_name("front_figure.png")


def main(out: Path = OUT, samples: int = 20_000):
    width, depth = 4, 1000
    phi = lambda x: 2 * x + 1
    net = dl.hayou_resnet(width, depth, phi, input_dim=width)
    paths = finite_width.simulate_paths(net, np.ones((1, width)), jax.random.key(0),
                                        samples=samples)
    log_ratio = np.asarray(paths.log_phi_norm.isel(time=-1, input=0)
                           - paths.log_phi_norm.isel(time=0, input=0))
    law = closed_forms.gbm_log_norm_law(phi, width=width, t=1.0)
    grid = np.linspace(law.ppf(1e-4), law.ppf(1 - 1e-4), 400)
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    ax.hist(log_ratio, bins=80, density=True, color="#8fb3d9",
            label=f"network, width {width}, depth {depth} ({samples:,} samples)")
    ax.plot(grid, law.pdf(grid), color="#b2182b", lw=2,
            label=r"closed form $N(a^2(1/2-1/n)\,t,\ a^2 t/n)$")
    ax.set_xlabel(r"$\log|\phi(X_1)|/|\phi(X_0)|$,  $\phi(x) = 2x + 1$")
    ax.set_ylabel("density")
    ax.set_title("A narrow, very deep ResNet is a diffusion with a known law", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    ax.set_ylim(0, 1.3 * law.pdf(law.mean()))
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out, log_ratio, law


if __name__ == "__main__":
    path, _, _ = main()
    print(path)
