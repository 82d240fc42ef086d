"""deeplimits: very deep residual networks as diffusions.

Samplers of finite random ResNets whose parameters shrink with depth, their limiting SDEs,
wide-network kernels with inference, finite-width laws, trained-weight scaling, and a
reproduction of the claims of Peluchetti & Favaro, Hayou, and Cohen, Cont, Rossier & Xu.
The mathematics is in the documentation's theory pages (``docs/theory``).

The package is layered; each layer imports only from the layers below it (enforced by
import-linter, see ``pyproject.toml``):

==========================  ===============================================================
``deeplimits.cli``          the ``deeplimits`` command
``deeplimits.conv``,        area front doors: one import per research area, re-exporting
``.finite_width``,          from the layers below
``.backward``, ``.scaling``
``deeplimits.experiments``  store, sweeps and executors, studies, claims, figures, report
``deeplimits.wide``         infinite width: kernels, empirical kernels, inference, sklearn
``deeplimits.simulation``   samplers, SDE solutions, gradients, finite-width paths, training
``deeplimits.analysis``     statistics, closed forms, weight-scaling estimators
``deeplimits.spec``         what a network is: activations, laws, blocks, networks, SDEs
``deeplimits.data``         bundled data loaders
``deeplimits._core``        validation, keys, chunks, progress, registries, workers
==========================  ===============================================================

Every top-level name is imported on first use, so ``import deeplimits`` costs little more
than ``import jax``. Importing ``deeplimits`` enables JAX's float64 support: kernels, ODEs
and statistics run in float64 by default, and samplers choose their own ``dtype``.
"""

from importlib.metadata import PackageNotFoundError as _NotFound
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

import jax as _jax

from deeplimits._core.lazy import alias_modules as _alias_modules
from deeplimits._core.lazy import lazy_attributes as _lazy_attributes

_jax.config.update("jax_enable_x64", True)

try:
    __version__ = _version("deeplimits")
except _NotFound:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_NAMES = {
    "Sweep": "deeplimits.experiments.sweeps",
    "collect": "deeplimits.experiments.sweeps",
    "run_sweep": "deeplimits.experiments.sweeps",
    "DenseSampler": "deeplimits.simulation.samplers",
    "EulerMaruyama": "deeplimits.simulation.samplers",
    "ExactSampler": "deeplimits.simulation.samplers",
    "Sampler": "deeplimits.simulation.samplers",
    "get_sampler": "deeplimits.simulation.samplers",
    "sample": "deeplimits.simulation.samplers",
    "sample_sde": "deeplimits.simulation.samplers",
    "brownian_increments": "deeplimits.simulation.sde",
    "network_on_path": "deeplimits.simulation.sde",
    "solve_sde": "deeplimits.simulation.sde",
    "Activation": "deeplimits.spec.activations",
    "activation_names": "deeplimits.spec.activations",
    "get_activation": "deeplimits.spec.activations",
    "register_activation": "deeplimits.spec.activations",
    "Block": "deeplimits.spec.blocks",
    "FormA": "deeplimits.spec.blocks",
    "FormB": "deeplimits.spec.blocks",
    "FormC": "deeplimits.spec.blocks",
    "LayerParams": "deeplimits.spec.blocks",
    "get_block": "deeplimits.spec.blocks",
    "CustomLaw": "deeplimits.spec.laws",
    "Gaussian": "deeplimits.spec.laws",
    "ParameterLaw": "deeplimits.spec.laws",
    "Rademacher": "deeplimits.spec.laws",
    "Uniform": "deeplimits.spec.laws",
    "get_law": "deeplimits.spec.laws",
    "InputLayer": "deeplimits.spec.networks",
    "Readout": "deeplimits.spec.networks",
    "ResNet": "deeplimits.spec.networks",
    "ResNetParams": "deeplimits.spec.networks",
    "hayou_resnet": "deeplimits.spec.networks",
    "ResNetSDE": "deeplimits.spec.sde",
    "EmpiricalKernel": "deeplimits.wide.empirical",
    "empirical_nngp": "deeplimits.wide.empirical",
    "empirical_ntk": "deeplimits.wide.empirical",
    "standard_params": "deeplimits.wide.empirical",
    "KernelCache": "deeplimits.wide.estimators",
    "ResNetKernel": "deeplimits.wide.estimators",
    "ResNetKernelRegressor": "deeplimits.wide.estimators",
    "Kernel": "deeplimits.wide.kernels",
    "kernel": "deeplimits.wide.kernels",
    "nngp": "deeplimits.wide.kernels",
    "ntk": "deeplimits.wide.kernels",
    "backward": "module:deeplimits.backward",
    "closed_forms": "module:deeplimits.analysis.closed_forms",
    "conv": "module:deeplimits.conv",
    "finite_width": "module:deeplimits.finite_width",
    "inference": "module:deeplimits.wide.inference",
    "scaling": "module:deeplimits.scaling",
    "stats": "module:deeplimits.analysis.stats",
    "sweeps": "module:deeplimits.experiments.sweeps",
}

__getattr__, __dir__ = _lazy_attributes(__name__, _NAMES)
__all__ = sorted(_NAMES)

# module paths before the layered layout (deeplimits 0.1): importable, with a warning
_alias_modules({
    "deeplimits.activations": ('deeplimits.spec.activations',),
    "deeplimits.laws": ('deeplimits.spec.laws',),
    "deeplimits.blocks": ('deeplimits.spec.blocks',),
    "deeplimits.networks": ('deeplimits.spec.networks',),
    "deeplimits.sde": ('deeplimits.spec.sde', 'deeplimits.simulation.sde'),
    "deeplimits.samplers": ('deeplimits.simulation.samplers',),
    "deeplimits.kernels": ('deeplimits.wide.kernels',),
    "deeplimits.empirical": ('deeplimits.wide.empirical',),
    "deeplimits.inference": ('deeplimits.wide.inference',),
    "deeplimits.estimators": ('deeplimits.wide.estimators',),
    "deeplimits.distributed": ('deeplimits.wide.distributed', 'deeplimits._core.dask'),
    "deeplimits.stats": ('deeplimits.analysis.stats',),
    "deeplimits.closed_forms": ('deeplimits.analysis.closed_forms',),
    "deeplimits.storage": ('deeplimits.experiments.store',),
    "deeplimits.datasets": ('deeplimits.data.tabular', 'deeplimits.experiments.regression'),
    "deeplimits.plotting": ('deeplimits.experiments.figures',),
    "deeplimits.report": ('deeplimits.experiments.report',),
    "deeplimits.reproduce": ('deeplimits.experiments.reproduce',),
    "deeplimits.studies": ('deeplimits.experiments.studies',),
    "deeplimits.simulate": ('deeplimits.experiments.simulate',),
    "deeplimits.sweeps": ('deeplimits.experiments.sweeps',),
    "deeplimits.claims": ('deeplimits.experiments.claims',),
    "deeplimits.scaling.train": ('deeplimits.simulation.training',
                                 'deeplimits.experiments.scaling'),
    "deeplimits.scaling.estimators": ('deeplimits.analysis.weight_scaling',),
    "deeplimits.scaling.models": ('deeplimits.spec.trainable',),
    "deeplimits.scaling.data": ('deeplimits.data.scaling',),
}, prefixes={"deeplimits.claims": "deeplimits.experiments.claims"})

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from deeplimits import backward, conv, finite_width, scaling
    from deeplimits.analysis import closed_forms, stats
    from deeplimits.experiments import sweeps
    from deeplimits.experiments.sweeps import Sweep, collect, run_sweep
    from deeplimits.simulation.samplers import (
        DenseSampler,
        EulerMaruyama,
        ExactSampler,
        Sampler,
        get_sampler,
        sample,
        sample_sde,
    )
    from deeplimits.simulation.sde import brownian_increments, network_on_path, solve_sde
    from deeplimits.spec.activations import (
        Activation,
        activation_names,
        get_activation,
        register_activation,
    )
    from deeplimits.spec.blocks import Block, FormA, FormB, FormC, LayerParams, get_block
    from deeplimits.spec.laws import CustomLaw, Gaussian, ParameterLaw, Rademacher, Uniform, get_law
    from deeplimits.spec.networks import InputLayer, Readout, ResNet, ResNetParams, hayou_resnet
    from deeplimits.spec.sde import ResNetSDE
    from deeplimits.wide import inference
    from deeplimits.wide.empirical import (
        EmpiricalKernel,
        empirical_nngp,
        empirical_ntk,
        standard_params,
    )
    from deeplimits.wide.estimators import KernelCache, ResNetKernel, ResNetKernelRegressor
    from deeplimits.wide.kernels import Kernel, kernel, nngp, ntk
