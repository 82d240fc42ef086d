"""deeplimits: very deep residual networks as diffusions.

Samplers of finite random ResNets whose parameters shrink with depth, their limiting SDEs,
closed-form laws, statistics, and a reproduction of the claims of Peluchetti & Favaro,
Hayou, and Cohen, Cont, Rossier & Xu. The mathematics is specified in ``shared/theory``.

Importing ``deeplimits`` enables JAX's float64 support: kernels, ODEs and statistics run in
float64 by default, and samplers choose their own ``dtype`` (float32 unless asked).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import (  # noqa: E402
    backward,
    closed_forms,
    conv,
    finite_width,
    inference,
    scaling,
    stats,
    sweeps,
)
from .activations import (  # noqa: E402
    Activation,
    activation_names,
    get_activation,
    register_activation,
)
from .blocks import Block, FormA, FormB, FormC, LayerParams, get_block  # noqa: E402
from .empirical import (  # noqa: E402
    EmpiricalKernel,
    empirical_nngp,
    empirical_ntk,
    standard_params,
)
from .estimators import ResNetKernel, ResNetKernelRegressor  # noqa: E402
from .kernels import Kernel, kernel, nngp, ntk  # noqa: E402
from .laws import CustomLaw, Gaussian, ParameterLaw, Rademacher, Uniform, get_law  # noqa: E402
from .networks import InputLayer, Readout, ResNet, ResNetParams, hayou_resnet  # noqa: E402
from .samplers import (  # noqa: E402
    DenseSampler,
    EulerMaruyama,
    ExactSampler,
    Sampler,
    get_sampler,
    sample,
    sample_sde,
)
from .sde import (  # noqa: E402
    ResNetSDE,
    brownian_increments,
    network_on_path,
    solve_sde,
)
from .sweeps import Sweep, collect, run_sweep  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Block",
    "CustomLaw",
    "DenseSampler",
    "EmpiricalKernel",
    "EulerMaruyama",
    "ExactSampler",
    "FormA",
    "FormB",
    "FormC",
    "Gaussian",
    "InputLayer",
    "Kernel",
    "LayerParams",
    "ParameterLaw",
    "Rademacher",
    "Readout",
    "ResNet",
    "ResNetParams",
    "ResNetKernel",
    "ResNetKernelRegressor",
    "ResNetSDE",
    "Sampler",
    "Sweep",
    "Uniform",
    "activation_names",
    "backward",
    "brownian_increments",
    "closed_forms",
    "collect",
    "conv",
    "empirical_nngp",
    "empirical_ntk",
    "finite_width",
    "get_activation",
    "get_block",
    "get_law",
    "get_sampler",
    "hayou_resnet",
    "inference",
    "kernel",
    "network_on_path",
    "nngp",
    "ntk",
    "register_activation",
    "run_sweep",
    "sample",
    "sample_sde",
    "scaling",
    "solve_sde",
    "standard_params",
    "stats",
    "sweeps",
]
