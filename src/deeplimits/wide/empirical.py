r"""Empirical NNGP and NTK of finite random ResNets (``kernels.md`` §2, §5 and "Monte Carlo
agreement").

* :func:`empirical_nngp`: the covariance ``E[f(x) f(x')]`` of the readout over independent
  networks (``f`` has mean zero, so this is its covariance), estimated either from the
  outputs themselves (``estimator="readout"``) or, with less variance and the same
  expectation, from the conditional covariance given the final states,
  ``sigma_v^2 <r(X_T), r(X'_T)> / n + sigma_v0^2`` (``estimator="state"``). Networks are
  drawn by :func:`deeplimits.sample`, by default with the exact Gram sampler.
* :func:`empirical_ntk_samples`: the NTKs of many independent networks in one compiled,
  vectorised program (the Monte Carlo mean and its standard error, as for the NNGP).
* :func:`empirical_ntk`: the neural tangent kernel of *one* finite network,
  ``Theta(x, x') = sum_theta df(x)/dtheta df(x')/dtheta`` over every trained parameter, in
  NTK parametrisation: the derivatives are taken with respect to the *standard* variables
  (``E_l``, ``eps_l``, ``E2_l``, the input layer's ``A`` and ``a``, the readout's ``v`` and
  ``v_0``), whose scales sit in the forward pass.

The NTK never forms a Jacobian. Every parameter gradient is rank-structured, e.g. in form A
``df/dE_l = s_w sqrt(dt) g_l phi(x_{l-1})^T`` with ``g_l = df/dx_l``, so

    <df(x)/dE_l, df(x')/dE_l> = s_w^2 dt <g_l(x), g_l(x')> <phi(x_{l-1}), phi(x'_{l-1})>.

The per-input, per-layer backward vectors are obtained by autodiff (one ``jax.vjp`` of the
summed outputs through the scanned network with zero per-input perturbations of every
layer's bias and output: inputs do not interact, so the gradient with respect to input
``i``'s perturbation is ``df(x_i)/d(.)``). Layer weights are regenerated from their keys
inside a checkpointed scan, so memory is ``O(n^2 + L k n)`` rather than ``O(L n^2)``.

Standard variables of one network (:func:`standard_params`), with ``dt = net.param_dt``:

====================  ================================================================
form A / B block l    ``W_l = s_w sqrt(dt) E_l + dt M``, ``b_l = sigma_b sqrt(dt) eps_l
                      + dt mu_b``
form C block l        ``W_l = sigma_w / sqrt(n) E_l``, ``b_l = sigma_b eps_l``,
                      ``U_l = sqrt(dt) sigma_u / sqrt(n) E2_l``
input layer           ``x_0 = sigma_A A x / sqrt(d) + sigma_a a``
readout               ``f(x) = sigma_v <v, r(X_T)> / sqrt(n) + sigma_v0 v_0``
====================  ================================================================

The block variables use the keys of :meth:`ResNet.init`, so ``scaled_params(net,
standard_params(net, key))`` holds the blocks that ``net.init(key)`` draws; the input layer
and the readout are drawn from the embedding key (``net.init`` never materialises them).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.validation import check_inputs, check_samples
from deeplimits.simulation.samplers import sample
from deeplimits.spec.blocks import LayerParams
from deeplimits.spec.networks import Readout, ResNet, ResNetParams

__all__ = [
    "EmpiricalKernel", "StandardParams", "empirical_nngp", "empirical_ntk", "empirical_ntk_parts",
    "empirical_ntk_samples", "network_output", "scaled_params", "standard_params"
]

ESTIMATORS = ("state", "readout")


@dataclasses.dataclass(frozen=True)
class EmpiricalKernel:
    """A Monte Carlo kernel estimate over independent networks.

    Attributes:
        mean: the estimate, float64 ``(k, k)``.
        stderr: its entrywise standard error, ``std / sqrt(samples)``.
        draws: the per-network estimates ``(samples, k, k)`` (their mean is ``mean``).
    """

    mean: np.ndarray
    stderr: np.ndarray
    draws: np.ndarray

    @property
    def samples(self) -> int:
        return self.draws.shape[0]


def _readout(net: ResNet) -> Readout:
    return net.readout if net.readout is not None else Readout()


def empirical_nngp(
    net: ResNet,
    x,
    key: jax.Array,
    samples: int,
    *,
    estimator: str = "state",
    sampler="exact",
    dtype=jnp.float64,
    chunk_size: int | None = None,
    progress=False,
) -> EmpiricalKernel:
    """Monte Carlo NNGP ``E[f(x) f(x')]`` of ``net`` over ``samples`` independent networks.

    Args:
        net: the network (a missing readout means ``Readout()``).
        x: inputs ``(k, input_dim)``.
        key: JAX key; network ``s`` is ``sample``'s network ``s`` for this key, whichever
            estimator is used.
        samples: number of independent networks.
        estimator: ``"state"`` (default): per network ``sigma_v^2 <r(X_T), r(X'_T)>/n
            + sigma_v0^2``, the covariance of ``f`` given the network's final states, whose
            error is ``O(n^{-1/2})`` per network; ``"readout"``: per network ``f(x) f(x')``
            from ``sample(..., output="readout")``, whose error does not shrink with width.
            Both are unbiased for the finite-width NNGP.
        sampler: passed to :func:`deeplimits.sample` (``"exact"``: the Gram sampler, exact in
            law for Gaussian parameters, ``O(n k^2)`` per layer; ``"dense"`` for other laws).
        dtype, chunk_size, progress: passed to :func:`deeplimits.sample`.
    """
    samples = check_samples(samples)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    readout = _readout(net)
    run = net if net.readout is not None else net.replace(readout=readout)
    kwargs = dict(samples=samples, sampler=sampler, dtype=dtype, chunk_size=chunk_size,
                  progress=progress)
    if estimator == "readout":
        f = np.asarray(sample(run, x, key, output="readout", **kwargs), dtype=np.float64)
        draws = f[:, :, None] * f[:, None, :]
    else:
        X = sample(run, x, key, output="state", **kwargs)
        r = net.activation(X) if readout.post_activation else X
        r = np.asarray(r, dtype=np.float64)
        draws = (readout.sigma_v**2 * np.einsum("sin,sjn->sij", r, r) / net.width
                 + readout.sigma_v0**2)
    mean = draws.mean(0)
    stderr = (draws.std(0, ddof=1) / math.sqrt(samples) if samples > 1
              else np.full_like(mean, np.inf))
    return EmpiricalKernel(mean=mean, stderr=stderr, draws=draws)


class StandardParams(eqx.Module):
    """Every trained parameter of one network as a standard variable (NTK parametrisation).

    ``E`` (``(L, n, n)``), ``eps`` (``(L, n)``) and, for form C, ``E2`` (``(L, n, n)``) are
    the blocks' variables; ``A`` (``(n, d)``) and ``a`` (``(n,)``) the input layer's (``None``
    without one); ``v`` (``(n,)``) and ``v0`` (scalar) the readout's.
    """

    E: jax.Array
    eps: jax.Array
    E2: jax.Array | None
    A: jax.Array | None
    a: jax.Array | None
    v: jax.Array
    v0: jax.Array


def _check_net(net: ResNet) -> None:
    # the form's own conditions, again: a network edited after construction is refused too
    net.block.check(net)


def _sampler(net: ResNet, dtype, draw_dtype):
    return lambda key, shape: net.law.sample(key, shape, draw_dtype).astype(dtype)


def _draw_layer(net: ResNet, key, dtype, draw_dtype):
    """One block's standard variables ``(E, eps, E2)`` (``Block.standard_draw``)."""
    return net.block.standard_draw(net, key, _sampler(net, dtype, draw_dtype))


def _layer_keys(net: ResNet, key):
    _, k_blocks = jax.random.split(key)
    return jax.random.split(k_blocks, net.depth)


def _draw_outer(net: ResNet, key, dtype, draw_dtype):
    """``(A, a, v, v0)`` from the embedding key of :meth:`ResNet.init`."""
    k_embed, _ = jax.random.split(key)
    kA, ka, kv, kv0 = jax.random.split(k_embed, 4)
    n, draw = net.width, _sampler(net, dtype, draw_dtype)
    A = a = None
    if net.input_layer is not None:
        A, a = draw(kA, (n, net.input_layer.dim)), draw(ka, (n,))
    return A, a, draw(kv, (n,)), draw(kv0, ())


def standard_params(net: ResNet, key: jax.Array, dtype=jnp.float64,
                    draw_dtype=jnp.float32) -> StandardParams:
    """Draw one network's standard variables (materialised: ``O(L n^2)`` memory).

    The variables are drawn in ``draw_dtype`` (float32 by default, like
    :meth:`ResNet.init`: cheaper, and standard in law up to float32 rounding) and stored in
    ``dtype``.
    """
    _check_net(net)
    E, eps, E2 = jax.vmap(lambda k: _draw_layer(net, k, dtype, draw_dtype))(
        _layer_keys(net, key))
    A, a, v, v0 = _draw_outer(net, key, dtype, draw_dtype)
    return StandardParams(E=E, eps=eps, E2=E2, A=A, a=a, v=v, v0=v0)


def _scales(net: ResNet) -> tuple[float, float, float | None]:
    """``(c_W, c_b, c_U)``: the factors by which the standard variables enter a block."""
    return net.block.standard_scales(net)


def _layer_params(net: ResNet, E, eps, E2) -> LayerParams:
    return net.block.standard_layer(net, E, eps, E2)


def scaled_params(net: ResNet, params: StandardParams) -> ResNetParams:
    """The dense block parameters (as :meth:`ResNet.init` stores them) of ``params``."""
    blocks = jax.vmap(lambda E, eps, E2: _layer_params(net, E, eps, E2))(
        params.E, params.eps, params.E2)
    return ResNetParams(blocks=blocks, embed_key=None)


def _embed(net: ResNet, A, a, x):
    layer = net.input_layer
    if layer is None:
        return x
    return layer.sigma_A * x @ A.T / math.sqrt(layer.dim) + layer.sigma_a * a


def _read(net: ResNet, v, v0, XT):
    readout = _readout(net)
    r = net.activation(XT) if readout.post_activation else XT
    return readout.sigma_v * r @ v / math.sqrt(net.width) + readout.sigma_v0 * v0


def network_output(net: ResNet, params: StandardParams, x) -> jax.Array:
    """``f(x)`` (``(k,)``) of the network with standard variables ``params``, through
    :meth:`ResNet.apply` on the rebuilt dense parameters: differentiable in ``params``."""
    x = check_inputs(net, x, params.v.dtype)
    X0 = _embed(net, params.A, params.a, x)
    XT = net.replace(input_layer=None).apply(scaled_params(net, params), X0)
    return _read(net, params.v, params.v0, XT)


def _gram(u):
    return jnp.einsum("...in,...jn->...ij", u, u)


@eqx.filter_jit
def _ntk_parts(net: ResNet, x, outer, layers, lazy: bool, train_input: bool, draw_dtype):
    A, a, v, v0 = outer
    act = net.activation
    n, L, k = net.width, net.depth, x.shape[0]
    cW, cb, cU = _scales(net)

    def body(X, xs):
        src, bump_b, bump_x = xs
        E, eps, E2 = _draw_layer(net, src, X.dtype, draw_dtype) if lazy else src
        p = _layer_params(net, E, eps, E2)
        p = LayerParams(W=p.W, b=p.b + bump_b, U=p.U)  # per-input bias: (k, n)
        Y = net.block.apply(net, p, X) + bump_x
        # what E_l multiplies, and what an outer weight E2_l multiplies (or None)
        z, post = net.block.ntk_features(net, p, X)
        return Y, (z, post)

    if lazy:  # regenerate each layer's weights in the backward pass instead of storing them
        body = jax.checkpoint(body)

    def total(X0, bump_b, bump_x):
        XT, (z, post) = jax.lax.scan(body, X0, (layers, bump_b, bump_x))
        readout = _readout(net)
        r = act(XT) if readout.post_activation else XT
        return _read(net, v, v0, XT).sum(), (z, post, r)

    X0 = _embed(net, A, a, x)
    zeros = jnp.zeros((L, k, n), x.dtype)
    _, vjp, (z, post, r) = jax.vjp(total, X0, zeros, zeros, has_aux=True)
    # g0 = df/dx_0, h_l = df/d(bias of block l), g_l = df/dx_l, one row per input
    g0, h, g = vjp(jnp.ones((), x.dtype))

    readout = _readout(net)
    parts = {
        "blocks.E": cW**2 * jnp.sum(_gram(h) * _gram(z), 0),
        "blocks.eps": cb**2 * jnp.sum(_gram(h), 0),
    }
    if cU is not None:
        parts["blocks.E2"] = cU**2 * jnp.sum(_gram(g) * _gram(post), 0)
    if net.input_layer is not None and train_input:
        layer = net.input_layer
        G0 = _gram(g0)
        parts["input.A"] = layer.sigma_A**2 * G0 * (x @ x.T) / layer.dim
        parts["input.a"] = layer.sigma_a**2 * G0
    parts["readout.v"] = readout.sigma_v**2 * _gram(r) / n
    parts["readout.v0"] = jnp.full((k, k), readout.sigma_v0**2, x.dtype)
    return parts


def empirical_ntk_parts(
    net: ResNet,
    x,
    key: jax.Array | None = None,
    *,
    params: StandardParams | None = None,
    train_input_layer: bool = True,
    dtype=jnp.float64,
    draw_dtype=jnp.float32,
) -> dict[str, np.ndarray]:
    """The empirical NTK of one network split by parameter group.

    Keys: ``"blocks.E"``, ``"blocks.eps"``, ``"blocks.E2"`` (form C), ``"input.A"`` and
    ``"input.a"`` (a trained input layer), ``"readout.v"``, ``"readout.v0"``; each value is a
    float64 ``(k, k)`` array and they sum to :func:`empirical_ntk`. Arguments as there.
    """
    _check_net(net)
    if (key is None) == (params is None):
        raise ValueError("pass exactly one of key (draw the network) or params")
    if params is not None:
        dtype = params.v.dtype
    x = check_inputs(net, x, dtype)
    if params is None:
        outer = _draw_outer(net, key, dtype, draw_dtype)
        layers, lazy = _layer_keys(net, key), True
    else:
        outer = (params.A, params.a, params.v, params.v0)
        layers, lazy = (params.E, params.eps, params.E2), False
    parts = _ntk_parts(net, x, outer, layers, lazy, bool(train_input_layer), draw_dtype)
    return {name: np.asarray(val, dtype=np.float64) for name, val in parts.items()}


def empirical_ntk(
    net: ResNet,
    x,
    key: jax.Array | None = None,
    *,
    params: StandardParams | None = None,
    train_input_layer: bool = True,
    dtype=jnp.float64,
    draw_dtype=jnp.float32,
) -> np.ndarray:
    """The neural tangent kernel of one finite network, float64 ``(k, k)``.

    ``Theta(x, x') = sum_theta df(x)/dtheta df(x')/dtheta`` over the standard variables of
    every trained parameter: the blocks' ``E_l``, ``eps_l`` (and ``E2_l`` in form C), the
    input layer's ``A`` and ``a`` when ``train_input_layer``, and the readout's ``v`` and
    ``v_0`` (the readout bias always counts, as in :func:`deeplimits.kernel`). Its
    expectation tends to ``kernel(net, x, depth=net.depth, train_input_layer=...).ntk`` as
    the width grows, with fluctuations ``O(n^{-1/2})``.

    Args:
        net: the network (a missing readout means ``Readout()``).
        x: inputs ``(k, input_dim)``.
        key: draw the network's standard variables as :func:`standard_params` would, one
            layer at a time (memory ``O(n^2 + L k n)``); or
        params: a :class:`StandardParams` (e.g. trained ones) to use instead.
        train_input_layer: count the input layer's parameters.
        dtype: floating type of the computation (with ``key``).
        draw_dtype: floating type in which the standard variables are drawn (with ``key``;
            as in :func:`standard_params`).
    """
    parts = empirical_ntk_parts(net, x, key, params=params,
                                train_input_layer=train_input_layer, dtype=dtype,
                                draw_dtype=draw_dtype)
    return sum(parts.values())


@eqx.filter_jit
def _ntk_batch(net: ResNet, x, keys, train_input: bool, draw_dtype):
    def one(key):
        outer = _draw_outer(net, key, x.dtype, draw_dtype)
        parts = _ntk_parts(net, x, outer, _layer_keys(net, key), True, train_input,
                           draw_dtype)
        return sum(parts.values())

    return jax.vmap(one)(keys)


def empirical_ntk_samples(
    net: ResNet,
    x,
    key: jax.Array,
    samples: int,
    *,
    train_input_layer: bool = True,
    dtype=jnp.float64,
    draw_dtype=jnp.float32,
) -> EmpiricalKernel:
    """Monte Carlo mean of the NTK over ``samples`` independent networks.

    Network ``s`` is the network :func:`empirical_ntk` draws from key
    ``jax.random.split(key, samples)[s]``; all of them run in one compiled program
    vectorised over networks (memory ``O(samples (n^2 + L k n))``), so a Monte Carlo
    estimate costs one compilation per network shape rather than one call per network.
    ``draws`` is ``(samples, k, k)``; its mean tends to ``kernel(net, x,
    depth=net.depth).ntk`` with a bias ``O(1/n)`` and a per-network spread
    ``O(n^{-1/2})``. Other arguments as in :func:`empirical_ntk`.
    """
    _check_net(net)
    samples = check_samples(samples)
    x = check_inputs(net, x, dtype)
    keys = jax.random.split(key, samples)
    draws = np.asarray(_ntk_batch(net, x, keys, bool(train_input_layer), draw_dtype),
                       dtype=np.float64)
    mean = draws.mean(0)
    stderr = (draws.std(0, ddof=1) / math.sqrt(samples) if samples > 1
              else np.full_like(mean, np.inf))
    return EmpiricalKernel(mean=mean, stderr=stderr, draws=draws)
