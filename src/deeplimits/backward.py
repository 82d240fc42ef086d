"""Gradients and Jacobians of deep shrinking ResNets (``backward.md``): the area's front door.

Re-exports :mod:`deeplimits.simulation.gradients`.
"""

from deeplimits.simulation.gradients import (
    LOSSES,
    METHODS,
    GradientMethod,
    check_method,
    get_loss,
    jacobian_log_norm_law,
    jacobian_moment_identity,
    orthonormal_rows,
    register_gradient_method,
    sample_gradients,
    sample_gradients_sweep,
)

__all__ = ["LOSSES", "METHODS", "GradientMethod", "check_method", "get_loss",
           "jacobian_log_norm_law", "jacobian_moment_identity", "orthonormal_rows",
           "register_gradient_method", "sample_gradients", "sample_gradients_sweep"]
