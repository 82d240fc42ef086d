"""Trained ResNet weights across depth (``trained_scaling.md``): models, data, training over a
depth grid, the scaling / regularity estimators and the regime verdict.

Typical use::

    from deeplimits import scaling
    config = scaling.TrainConfig(activation="tanh", delta="shared", data="synthetic")
    scaling.train_sweep("runs/tanh", config, scaling.depth_grid(200), seeds=range(3))
    cells = scaling.load_sweep("runs/tanh")
    result = scaling.analyze_weights(scaling.sweep_weights(cells))
    print(result.table()); print(result.regime)
"""

from deeplimits.analysis.weight_scaling import (
    DERIVED,
    REGIMES,
    STATISTICS,
    SYNTHETIC_KINDS,
    Band,
    Regime,
    ScalingAnalysis,
    SlopeFit,
    analyze_weights,
    check_weight_stacks,
    classify_regime,
    conv_singular_values,
    cumsum_norm,
    default_resolution,
    detrended_cumsum,
    fit_slope,
    gaussian_max_slope,
    h1_norm,
    increment,
    layer_norms,
    max_norm,
    mean_sq,
    partial_sum_rms,
    quadratic_variation,
    regime_bands,
    root_ssq,
    sequence_statistics,
    spectral_max,
    synthetic_weights,
)
from deeplimits.data.scaling import (
    CHECKPOINT_SUFFIXES,
    DIGITS_LAYERS,
    MNIST_LAYERS,
    ScalingData,
    checkpoint_stack,
    depth_grid,
    digits_embedding,
    load_checkpoints,
    load_npy_data,
    mnist_embedding,
    one_hot_targets,
    random_conv_embedding,
    read_checkpoint,
    synthetic_ode_data,
)
from deeplimits.experiments.scaling import (
    cell_key,
    cell_path,
    check_sweep_folder,
    is_sweep_folder,
    load_sweep,
    model_from_cell,
    sweep_branch_scale,
    sweep_weights,
    train_sweep,
)
from deeplimits.simulation.trained_limits import (
    OdeLimit,
    SdeLimit,
    brownian_weights,
    network_paths,
    ode_limit,
    sde_limit,
    solve_limit_ode,
    solve_limit_sde,
    sup_errors,
)
from deeplimits.simulation.training import (
    LOSSES,
    OPTIMIZERS,
    TrainConfig,
    depth_buckets,
    load_data,
    train_cells,
    train_depth,
    train_grid,
    train_marion,
)
from deeplimits.spec.trainable import (
    ACTIVATIONS,
    DELTA_VARIANTS,
    INITS,
    MARION_KINDS,
    WEIGHT_REGULARITIES,
    FCResNet,
    MarionResNet,
    TrendNoise,
    effective_weights,
    fgn,
    fgn_autocovariance,
    init_fc_resnet,
    init_marion,
    rbf_increments,
    trend_noise,
    with_weights,
)

__all__ = [
    "DIGITS_LAYERS", "MNIST_LAYERS", "ScalingData", "depth_grid", "digits_embedding",
    "load_npy_data", "mnist_embedding", "one_hot_targets", "random_conv_embedding",
    "synthetic_ode_data", "REGIMES", "STATISTICS", "Regime", "ScalingAnalysis", "SlopeFit",
    "analyze_weights", "check_weight_stacks", "classify_regime", "conv_singular_values",
    "cumsum_norm", "detrended_cumsum", "fit_slope", "h1_norm", "increment", "layer_norms",
    "max_norm", "mean_sq", "quadratic_variation", "root_ssq", "sequence_statistics",
    "spectral_max", "synthetic_weights", "ACTIVATIONS", "DELTA_VARIANTS", "INITS", "MARION_KINDS",
    "WEIGHT_REGULARITIES", "FCResNet", "MarionResNet", "TrendNoise", "effective_weights", "fgn",
    "fgn_autocovariance", "init_fc_resnet", "init_marion", "rbf_increments", "trend_noise",
    "with_weights", "LOSSES", "OPTIMIZERS", "TrainConfig", "cell_path", "depth_buckets",
    "load_data", "load_sweep", "model_from_cell", "sweep_weights", "train_cells", "train_depth",
    "train_grid", "train_marion", "train_sweep", "DERIVED", "SYNTHETIC_KINDS", "Band",
    "default_resolution", "gaussian_max_slope", "partial_sum_rms", "regime_bands",
    "sweep_branch_scale", "CHECKPOINT_SUFFIXES", "checkpoint_stack", "load_checkpoints",
    "read_checkpoint", "cell_key", "check_sweep_folder", "is_sweep_folder", "OdeLimit",
    "SdeLimit", "brownian_weights", "network_paths", "ode_limit", "sde_limit",
    "solve_limit_ode", "solve_limit_sde", "sup_errors",
]


