"""Convolutional ResNets (``conv.md``): the area's front door.

Re-exports the network (:mod:`deeplimits.spec.conv`), its samplers
(:mod:`deeplimits.simulation.conv`), its wide-channel kernels
(:mod:`deeplimits.wide.conv_kernels`) and the bundled digits images
(:mod:`deeplimits.data.images`).
"""

from deeplimits.data.images import digits_images
from deeplimits.simulation.conv import (
    SAMPLERS,
    ConvSampler,
    network_on_increments,
    register_conv_sampler,
    sample_conv,
)
from deeplimits.spec.conv import READOUTS, ConvParams, ConvResNet, conv_apply, patch_gram, patches
from deeplimits.wide.conv_kernels import ConvKernel, conv_kernel, empirical_conv_kernel

__all__ = ["READOUTS", "SAMPLERS", "ConvKernel", "ConvParams", "ConvResNet", "ConvSampler",
           "conv_apply", "conv_kernel", "digits_images", "empirical_conv_kernel",
           "network_on_increments", "patch_gram", "patches", "register_conv_sampler",
           "sample_conv"]
