"""Residual block forms A, B and C (``forward.md`` §3-5).

Each form is one :class:`Block` that knows, for a network ``net`` and a stack of states
``X`` of shape ``(k, n)`` (one row per input, all sharing the parameter draw):

* ``param_shapes`` / ``params`` / ``apply``: the dense layer from standardised parameter
  noise, parameters materialised (the reference);
* ``exact_shapes`` / ``exact_apply``: one layer drawn exactly in law from the Gaussian
  conditional law of the increment given ``X``, from standard normals (needs Gaussian
  parameters);
* ``drift`` / ``gram``: the limiting SDE ``dX = a(X) dt + noise``, where the noise columns
  (coordinates) are i.i.d. with the ``(k, k)`` cross-input covariance rate ``gram(X)``;
* ``noise``: the pathwise (matrix Brownian motion) form of the noise, for strong
  comparisons, where the limit has one (forms A and B).

The step ``dt`` used for the parameters is ``net.param_dt``: ``T / L`` when shrinking and
``1`` for the i.i.d. baseline, so one mechanism covers both scalings.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.linalg import psd_sqrt
from deeplimits._core.registry import Registry

__all__ = ["Block", "FormA", "FormB", "FormC", "LayerParams", "get_block",
           "check_shallow_activation"]

if TYPE_CHECKING:
    from deeplimits.spec.activations import Activation
    from deeplimits.spec.networks import ResNet

# Scales of the difference quotients that look for a kink at 0 (see _kink_at_zero).
_KINK_SCALES = (1e-3, 1e-4)


@functools.lru_cache(maxsize=256)
def _kink_at_zero(fn) -> tuple[float, float] | None:
    """``None`` if ``fn`` looks C^2 at 0, else the spreads of its quotients at the two scales.

    At each scale ``h`` three quotients of phi' (by autodiff, in float64) estimate
    ``phi''(0)``: the centred ``(phi'(h) - phi'(-h)) / 2h`` and the one-sided
    ``(phi'(2h) - phi'(h)) / h`` and ``(phi'(-h) - phi'(-2h)) / h``. If phi is C^3 near 0
    they differ by ``O(h)`` (times the third derivative), so their spread falls tenfold from
    ``h = 1e-3`` to ``1e-4``. A jump of phi' at 0 (ReLU, |x|, leaky ReLU) makes the centred
    quotient grow like 1/h, and a jump of phi'' (ELU) keeps the one-sided ones apart: the
    spread does not fall. Spreads below ``1e-6 (1 + |quotients|)`` (far above the float64
    rounding of ``phi' / h``) count as zero.
    """
    d = jax.grad(fn)
    spreads, size = [], 0.0
    with jax.ensure_compile_time_eval():
        for h in _KINK_SCALES:
            h = jnp.float64(h)
            q = [float((d(h) - d(-h)) / (2 * h)), float((d(2 * h) - d(h)) / h),
                 float((d(-h) - d(-2 * h)) / h)]
            spreads.append(max(q) - min(q))
            size = max(size, *(abs(v) for v in q))
    coarse, fine = spreads
    finite = all(v == v and abs(v) != float("inf") for v in (*spreads, size))
    if finite and (fine <= 1e-6 * (1 + size) or fine < 0.5 * coarse):
        return None
    return coarse, fine


def check_shallow_activation(act: Activation, form: str = "B") -> None:
    """Raise ``ValueError`` unless ``act`` suits a shallow block (form B, dense or conv):
    phi(0) = 0 and phi C^2 at 0 (``forward.md`` §3-4).

    Named activations state their smoothness (``Activation.smooth``); for every other one
    (callables, user ``Activation`` objects) a kink at 0 is also looked for numerically, so
    ``lambda x: jnp.maximum(x, 0)`` is refused like ``"relu"``.
    """
    why = ("its O(sqrt(dt)) mean increment accumulates to O(sqrt(L)), so the network has no "
           "diffusion limit; use form A or C, or an activation that is smooth at 0 (tanh, "
           "erf, gelu, swish, sin, softplus_shifted)")
    if not act.smooth:
        raise ValueError(f"form {form} needs an activation that is C^2 at 0; {act.name!r} is "
                         f"not: {why}")
    try:
        try:
            kink = _kink_at_zero(act.fn)
        except TypeError as exc:
            if "unhashable" not in str(exc):
                raise
            kink = _kink_at_zero.__wrapped__(act.fn)
    except Exception as exc:  # noqa: BLE001 - any failure of autodiff means the same here
        raise ValueError(f"form {form} needs phi'(0) and phi''(0) by JAX autodiff, and "
                         f"activation {act.name!r} cannot be differentiated: {exc}") from None
    if kink is not None:
        raise ValueError(
            f"form {form} needs an activation that is C^2 at 0, and {act.name!r} has a kink "
            f"there: difference quotients of phi' at 0 do not converge (their spread is "
            f"{kink[0]:.3g} at h = {_KINK_SCALES[0]:g} and {kink[1]:.3g} at h = "
            f"{_KINK_SCALES[1]:g}, where a C^2 function's falls tenfold): {why}")
    if abs(act.phi0) > 1e-12:
        raise ValueError(
            f"form {form} needs phi(0) = 0, but {act.name!r} has phi(0) = {act.phi0:.6g} "
            "(an O(1) mean increment in every layer diverges)"
        )


class LayerParams(eqx.Module):
    """Parameters of one residual block (or, stacked on a leading axis, of all blocks).

    ``W`` and ``b`` are the block's weight and bias, already scaled; form C also has the
    outer weight ``U``.
    """

    W: jax.Array
    b: jax.Array
    U: jax.Array | None = None


def _correlated(z, gram):
    """``R z`` with ``R R^T = gram``: columns of ``z`` (``(k, n)``) i.i.d. ``N(0, I)`` become
    i.i.d. ``N(0, gram)``; one input is a scalar scale (``O(n)``, no matmul)."""
    root = psd_sqrt(gram).astype(z.dtype)
    return root * z if gram.shape[-1] == 1 else root @ z


def _pairwise_gram(X, Y=None):
    return X @ (X if Y is None else Y).T


class _CovarianceKernel:
    """Wide-limit pair dynamics of forms A and C (``kernels.md`` §4), a mixin of their blocks.

    The state of a tile of pairs is ``(d1, d2, k, h)``: the per-input diagonals ``(B1,)``,
    ``(B2,)``, the cross covariance ``k`` and the NTK accumulator ``h`` ``(B1, B2)``, with
    ``dK/dt = F(K)`` and ``dH/dt = G(K) + r(K) H`` for rates ``(F, G, r) =
    kernel_rates(net, d1, d2, k)``; the finite-depth layer map is an explicit Euler step.
    """

    kernel_post_activation = True
    tabulable_kernel = True

    @abc.abstractmethod
    def kernel_rates(self, net: ResNet, d1, d2, k):
        """``(F, G, r)`` for covariance entries (broadcast)."""

    def kernel_homogeneous(self, net: ResNet) -> bool:
        return net.activation.homogeneous and net.sigma_b == 0

    def kernel_init(self, net: ResNet, k11, k22, k12, h0, mean1=None, mean2=None):
        return (k11, k22, k12, h0)

    def kernel_field(self, net: ResNet, state):
        d1, d2, k, h = state
        F1 = self.kernel_rates(net, d1, d1, d1)[0]
        F2 = self.kernel_rates(net, d2, d2, d2)[0]
        F, G, r = self.kernel_rates(net, d1[:, None], d2[None, :], k)
        return (F1, F2, F, G + r * h)

    def kernel_outputs(self, net: ResNet, state, post_activation: bool):
        d1, d2, k, h = state
        if post_activation:
            R, dR = net.activation.duals(d1[:, None], d2[None, :], k)
        else:
            R, dR = k, 1.0
        return R, R + dR * h


class Block(abc.ABC):
    """One residual block form. Stateless: all numbers live on the network.

    Randomness enters only through standardised noise that does not depend on the state,
    so samplers can draw the noise of many layers at once and then apply it.
    """

    name: str

    def check(self, net: ResNet) -> None:
        """Raise ``ValueError`` if the form does not apply to ``net``."""

    # == wide limit and empirical NTK (wide/kernels.py, wide/empirical.py) ================
    # The pair dynamics of the infinitely wide network: ``kernel_init`` builds the state of
    # a tile of pairs, ``kernel_field`` is its depth ODE, ``kernel_layer`` one layer of the
    # finite-depth wide network, ``kernel_outputs`` gives ``(R(K_T), R + R'(K_T) H_T)``.
    kernel_post_activation: bool = False  # the post-activation readout has a wide kernel
    tabulable_kernel: bool = False  # a pair's flow depends on its variances and correlation
    kernel_needs_input_layer: bool = False  # the states are Gaussian only behind one
    conv_kernel: bool = False  # the conv network of this form has a wide-channel kernel

    def kernel_homogeneous(self, net: ResNet) -> bool:
        """Whether the pair dynamics are positively homogeneous (angle reduction)."""
        return False

    def kernel_init(self, net: ResNet, k11, k22, k12, h0, mean1=None, mean2=None):
        """Initial pair state from the input Gram entries (and coordinate means)."""
        raise ValueError(f"form {self.name} has no wide-limit kernel")

    def kernel_field(self, net: ResNet, state):
        """Right-hand side of the depth ODE of the pair state."""
        raise ValueError(f"form {self.name} has no wide-limit kernel")

    def kernel_layer(self, net: ResNet, state, dt):
        """One layer of the finite-depth wide network (default: an explicit Euler step)."""
        return jax.tree.map(lambda s, f: s + dt * f, state, self.kernel_field(net, state))

    def kernel_outputs(self, net: ResNet, state, post_activation: bool):
        """``(R(K_T), R(K_T) + R'(K_T) H_T)`` for every pair."""
        raise ValueError(f"form {self.name} has no wide-limit kernel")

    # Standard variables of one block (NTK parametrisation, wide/empirical.py): the block's
    # parameters are ``standard_layer(net, *standard_draw(net, key, draw))``.
    def standard_draw(self, net: ResNet, key, draw):
        """``(E, eps, E2)``: one block's standard variables (``E2`` ``None`` without an outer
        weight); ``draw(key, shape)`` draws standardised noise with the keys of
        :meth:`draw`, so the two give the same block."""
        eps = self._keyed_noise(net, key, draw)
        return eps["W"], eps["b"], eps.get("U")

    def standard_scales(self, net: ResNet) -> tuple[float, float, float | None]:
        """``(c_W, c_b, c_U)``: the factors by which the standard variables enter a block."""
        dt = net.param_dt
        return net.s_w * math.sqrt(dt), net.sigma_b * math.sqrt(dt), None

    def standard_layer(self, net: ResNet, E, eps, E2) -> LayerParams:
        """The dense block parameters of standard variables ``(E, eps, E2)``."""
        cW, cb, _ = self.standard_scales(net)
        W, b = cW * E, cb * eps
        dt = net.param_dt
        if net.M is not None:
            W = W + dt * jnp.asarray(net.M, W.dtype)
        return LayerParams(W=W, b=b + dt * jnp.asarray(net.mu_b, W.dtype))

    def ntk_features(self, net: ResNet, p: LayerParams, X):
        """``(z, post)``: what ``E_l`` multiplies in the block (``df/dE_l = c_W g z^T``)
        and what ``E2_l`` multiplies (``None`` without an outer weight)."""
        raise NotImplementedError
    # == end wide limit ===================================================================

    # -- dense layer ---------------------------------------------------------------------
    @abc.abstractmethod
    def param_shapes(self, net: ResNet) -> dict[str, tuple[int, ...]]:
        """Shapes of one layer's standardised parameter noise (drawn from ``net.law``)."""

    @abc.abstractmethod
    def params(self, net: ResNet, eps: dict[str, jax.Array]) -> LayerParams:
        """Scale standardised noise into one layer's parameters."""

    @abc.abstractmethod
    def apply(self, net: ResNet, p: LayerParams, X: jax.Array) -> jax.Array:
        """One dense layer ``x_{l-1} -> x_l`` applied to every row of ``X``."""

    def draw(self, net: ResNet, key: jax.Array, dtype) -> LayerParams:
        """Draw one layer's parameters from the network's law."""
        return self.params(net, self._keyed_noise(
            net, key, lambda k, shape: net.law.sample(k, shape, dtype)))

    def _keyed_noise(self, net: ResNet, key: jax.Array, draw) -> dict[str, jax.Array]:
        """One layer's standardised noise by name, key ``i`` to the ``i``-th name in sorted
        order: the one key schedule of :meth:`draw` and :meth:`standard_draw`."""
        shapes = self.param_shapes(net)
        keys = jax.random.split(key, len(shapes))
        return {name: draw(k, shape)
                for k, (name, shape) in zip(keys, sorted(shapes.items()), strict=True)}

    # -- exact-in-law layer --------------------------------------------------------------
    def exact_shapes(self, net: ResNet, inputs: int) -> dict[str, tuple[int, ...]]:
        """Standard normal noise of one exact step for ``inputs`` stacked states."""
        return {"z": (inputs, net.width)}

    @abc.abstractmethod
    def exact_apply(self, net: ResNet, z: dict[str, jax.Array], X: jax.Array) -> jax.Array:
        """One layer drawn exactly in law (Gaussian parameters), given standard normals."""

    # -- limit ---------------------------------------------------------------------------
    @abc.abstractmethod
    def drift(self, net: ResNet, X: jax.Array) -> jax.Array:
        """Drift ``a(X)`` of the limiting SDE, shape ``(k, n)``."""

    @abc.abstractmethod
    def gram(self, net: ResNet, X: jax.Array) -> jax.Array:
        """Cross-input covariance rate of every noise coordinate, shape ``(k, k)``."""

    def euler_apply(self, net: ResNet, z: dict[str, jax.Array], X: jax.Array, h: float):
        """One Euler-Maruyama step of size ``h`` of the limiting SDE, in law."""
        return X + h * self.drift(net, X) + jnp.sqrt(h) * _correlated(z["z"], self.gram(net, X))

    def brownian_shapes(self, net: ResNet) -> dict[str, tuple[int, ...]]:
        """Shapes of the Brownian motions that drive the pathwise form of the SDE."""
        raise ValueError(
            f"form {self.name} has no finite-dimensional pathwise noise; "
            "sample it in law with sample_sde instead"
        )

    def noise(self, net: ResNet, X: jax.Array, dB: dict[str, jax.Array]) -> jax.Array:
        """Pathwise noise increment given Brownian increments ``dB``."""
        self.brownian_shapes(net)  # raises for forms without pathwise noise
        raise NotImplementedError

    # -- exact joint forward-backward step (backward.md §4) -------------------------------
    # The layer's standardised weight matrix E (n x d) enters the forward pass and the
    # tangent only through F E^T for the (2k, d) features F; the sampler conditions E on
    # them. Scales: s = s_w sqrt(dt), s_b = sigma_b sqrt(dt), mean = mu_b dt.
    def tangent_columns(self, width: int) -> int:
        """Columns ``d`` of the standard matrix that one exact gradient step conditions in
        a network of ``width``."""
        raise ValueError(f"the exact gradient sampler covers forms A and B, not "
                         f"{self.name}; use method='autodiff'")

    def tangent_features(self, act: Activation, X, T, s, s_b) -> jax.Array:
        """The ``(2k, d)`` features ``F`` of states ``X`` and tangents ``T`` (``(k, n)``)."""
        raise NotImplementedError

    def tangent_forward(self, act: Activation, X, T, V, noise, s_b, mean):
        """``(X', T', saved)`` given ``V = F E^T`` (``(2k, n)``) and the bias noise."""
        raise NotImplementedError

    def cotangent(self, act: Activation, G, saved) -> jax.Array:
        """The ``(k, n)`` vectors ``g`` whose ``E^T g`` the backward step draws."""
        raise NotImplementedError

    def tangent_backward(self, act: Activation, G, back, saved, s, s_b):
        """``(g_{l-1}, |dl/dE_l|_F^2, |dl/d eps^b_l|^2)`` given ``back`` = rows ``E^T g``."""
        raise NotImplementedError


class _AffineNoise(Block):
    """Forms whose block parameters are ``W = M dt + s_w sqrt(dt) E``, ``b = mu_b dt + ...``;
    the same matrix and vector Brownian motions drive their limit."""

    def param_shapes(self, net):
        return {"W": (net.width, net.width), "b": (net.width,)}

    def params(self, net, eps):
        dt, dtype = net.param_dt, eps["W"].dtype
        W = net.s_w * jnp.sqrt(dt) * eps["W"]
        if net.M is not None:
            W = W + dt * jnp.asarray(net.M, dtype)
        b = net.sigma_b * jnp.sqrt(dt) * eps["b"] + dt * jnp.asarray(net.mu_b, dtype)
        return LayerParams(W=W, b=b)

    def brownian_shapes(self, net):
        return self.param_shapes(net)

    def _linear_mean(self, net, H):
        mean = jnp.broadcast_to(jnp.asarray(net.mu_b, H.dtype), H.shape)
        return mean if net.M is None else mean + H @ jnp.asarray(net.M, H.dtype).T

    def _linear_gram(self, net, H):
        return net.sigma_b**2 + net.s_w**2 * _pairwise_gram(H)

    def _linear_noise(self, net, H, dB):
        return net.sigma_b * dB["b"] + net.s_w * H @ dB["W"].T


class FormA(_CovarianceKernel, _AffineNoise):
    """``x_l = x_{l-1} + b_l + W_l phi(x_{l-1})``.

    Limit: ``dX = (mu_b + M phi(X)) dt + sigma_b dB^b + s_w dB^W phi(X)``; with Gaussian
    parameters the network is exactly its Euler-Maruyama scheme, so the exact step is one.
    """

    name = "A"

    # == wide limit (see Block) ===========================================================
    kernel_needs_input_layer = True
    conv_kernel = True

    def kernel_rates(self, net, d1, d2, k):
        """``F = sigma_b^2 + sigma_w^2 V_phi(K)``, ``G = F``, ``r = sigma_w^2 V_phi'(K)``."""
        V, dV = net.activation.duals(d1, d2, k)
        F = net.sigma_b**2 + net.sigma_w**2 * V
        return F, F, net.sigma_w**2 * dV

    def ntk_features(self, net, p, X):
        return net.activation(X), None
    # == end wide limit ===================================================================

    def apply(self, net, p, X):
        return X + p.b + net.activation(X) @ p.W.T

    def drift(self, net, X):
        return self._linear_mean(net, net.activation(X))

    def gram(self, net, X):
        return self._linear_gram(net, net.activation(X))

    def exact_apply(self, net, z, X):
        return self.euler_apply(net, z, X, net.param_dt)

    def noise(self, net, X, dB):
        return self._linear_noise(net, net.activation(X), dB)

    # W = s E multiplies phi(x) and the tangent phi'(x) T; dl/dW = g phi(x)^T,
    # g_{l-1} = g + phi'(x) W^T g
    def tangent_columns(self, width):
        return width

    def tangent_features(self, act, X, T, s, s_b):
        return s * jnp.concatenate([act(X), act.deriv(X) * T])

    def tangent_forward(self, act, X, T, V, noise, s_b, mean):
        k = X.shape[0]
        return X + mean + s_b * noise["b"] + V[:k], T + V[k:], (X, X)

    def cotangent(self, act, G, saved):
        return G

    def tangent_backward(self, act, G, back, saved, s, s_b):
        X = saved[0]
        g_sq = jnp.sum(G * G, axis=-1)
        w_sq = s**2 * g_sq * jnp.sum(act(X) ** 2, axis=-1)
        return G + act.deriv(X) * (s * back), w_sq, s_b**2 * g_sq


class FormB(_AffineNoise):
    """``x_l = x_{l-1} + phi(b_l + W_l x_{l-1})`` (shallow block).

    Limit: ``dX = [p1 (mu_b + M X) + p2/2 (sigma_b^2 + s_w^2 |X|^2) 1] dt
    + p1 (sigma_b dB^b + s_w dB^W X)``. Needs phi(0) = 0 and phi in C^2 near 0.
    """

    name = "B"

    def check(self, net):
        check_shallow_activation(net.activation, self.name)

    # == wide limit (see Block) ===========================================================
    def _kernel_s(self, net, q):
        return net.sigma_b**2 + net.sigma_w**2 * q

    def kernel_init(self, net, k11, k22, k12, h0, mean1=None, mean2=None):
        """State ``(m1, q1, m2, q2, c, h)``: coordinate means, second moments, cross term
        and NTK accumulator (``kernels.md`` §4.3)."""
        return (mean1, k11, mean2, k22, k12, h0)

    def kernel_field(self, net, state):
        """With ``s(q) = sigma_b^2 + sigma_w^2 q`` (§4.3): ``m' = p2/2 s(q)``,
        ``q' = p1^2 s(q) + p2 s(q) m``, ``c' = p1^2 (sigma_b^2 + sigma_w^2 c)
        + p2/2 [s(q') m + s(q) m']``, ``h' = p1^2 (sigma_b^2 + sigma_w^2 c)
        + p1^2 sigma_w^2 h``."""
        m1, q1, m2, q2, c, h = state
        act = net.activation
        p1, p2 = act.p1, act.p2
        s1, s2 = self._kernel_s(net, q1), self._kernel_s(net, q2)
        lin = net.sigma_b**2 + net.sigma_w**2 * c
        dc = p1**2 * lin + 0.5 * p2 * (s2[None, :] * m1[:, None] + s1[:, None] * m2[None, :])
        return (0.5 * p2 * s1, p1**2 * s1 + p2 * s1 * m1, 0.5 * p2 * s2,
                p1**2 * s2 + p2 * s2 * m2, dc, p1**2 * lin + p1**2 * net.sigma_w**2 * h)

    def kernel_layer(self, net, state, dt):
        # exact width-first layer map (§5): z ~ N(0, dt [[s(q), s_c], [s_c, s(q')]])
        m1, q1, m2, q2, c, h = state
        act = net.activation
        v1, v2 = dt * self._kernel_s(net, q1), dt * self._kernel_s(net, q2)
        vc = dt * (net.sigma_b**2 + net.sigma_w**2 * c)
        nu1, nu2 = act.mean(v1), act.mean(v2)
        cross = act.dual(v1[:, None], v2[None, :], vc)
        dderiv = act.dual_deriv(v1[:, None], v2[None, :], vc)
        return (m1 + nu1, q1 + 2 * m1 * nu1 + act.second_moment(v1),
                m2 + nu2, q2 + 2 * m2 * nu2 + act.second_moment(v2),
                c + m1[:, None] * nu2[None, :] + m2[None, :] * nu1[:, None] + cross,
                (1 + net.sigma_w**2 * dt * dderiv) * h + dderiv * vc)

    def kernel_outputs(self, net, state, post_activation):
        if post_activation:
            raise ValueError("form B kernels support the state readout only")
        c, h = state[4], state[5]
        return c, c + h

    def ntk_features(self, net, p, X):
        return X, None
    # == end wide limit ===================================================================

    def apply(self, net, p, X):
        return X + net.activation(p.b + X @ p.W.T)

    def drift(self, net, X):
        act = net.activation
        rate = net.sigma_b**2 + net.s_w**2 * jnp.sum(X * X, axis=-1, keepdims=True)
        return act.p1 * self._linear_mean(net, X) + 0.5 * act.p2 * rate

    def gram(self, net, X):
        return net.activation.p1**2 * self._linear_gram(net, X)

    def exact_apply(self, net, z, X):
        h = net.param_dt
        pre = h * self._linear_mean(net, X) + jnp.sqrt(h) * _correlated(
            z["z"], self._linear_gram(net, X))
        return X + net.activation(pre)

    def noise(self, net, X, dB):
        return net.activation.p1 * self._linear_noise(net, X, dB)

    # [W, b] = E~ [s I, 0; 0, s_b] (E~ = [E, eps^b], n x (n + 1)) multiplies [x, 1] and
    # [T, 0]; with h = phi'(z) g, dl/dW = h x^T, dl/db = h, g_{l-1} = g + W^T h
    def tangent_columns(self, width):
        return width + 1

    def tangent_features(self, act, X, T, s, s_b):
        col = jnp.full((X.shape[0], 1), s_b, X.dtype)
        return jnp.concatenate([jnp.concatenate([s * X, col], 1),
                                jnp.concatenate([s * T, jnp.zeros_like(col)], 1)])

    def tangent_forward(self, act, X, T, V, noise, s_b, mean):
        k = X.shape[0]
        pre = mean + V[:k]
        return X + act(pre), T + act.deriv(pre) * V[k:], (X, pre)

    def cotangent(self, act, G, saved):
        return act.deriv(saved[1]) * G

    def tangent_backward(self, act, G, back, saved, s, s_b):
        X, pre = saved
        H = act.deriv(pre) * G
        h_sq = jnp.sum(H * H, axis=-1)
        return (G + s * back[:, :G.shape[-1]], s**2 * h_sq * jnp.sum(X * X, axis=-1),
                s_b**2 * h_sq)


class FormC(_CovarianceKernel, Block):
    """Two-layer block ``x_l = x_{l-1} + sqrt(dt) (sigma_u / sqrt(n)) U_l phi(u_l)``,
    ``u_l = (sigma_w / sqrt(n)) W_l x_{l-1} + sigma_b b_l``, inner parameters unshrunk.

    Limit: zero drift, cross-input rate ``sigma_u^2 V_phi(A)`` with
    ``A = sigma_b^2 + sigma_w^2 <x, x'> / n`` (``forward.md`` §4.4).
    """

    name = "C"

    def check(self, net):
        if net.M is not None or jnp.any(jnp.asarray(net.mu_b) != 0):
            raise ValueError("form C has no mean parameters: leave M=None and mu_b=0")

    # == wide limit (see Block) ===========================================================
    def kernel_rates(self, net, d1, d2, k):
        """Inner ``A = sigma_b^2 + sigma_w^2 K``: ``F = sigma_u^2 V_phi(A)``,
        ``G = sigma_u^2 [V_phi(A) + A V_phi'(A)]``, ``r = sigma_u^2 sigma_w^2 V_phi'(A)``."""
        inner = [net.sigma_b**2 + net.sigma_w**2 * v for v in (d1, d2, k)]
        V, dV = net.activation.duals(*inner)
        return (net.sigma_u**2 * V, net.sigma_u**2 * (V + inner[2] * dV),
                net.sigma_u**2 * net.sigma_w**2 * dV)

    def standard_scales(self, net):
        n = net.width
        return (net.sigma_w / math.sqrt(n), net.sigma_b,
                math.sqrt(net.param_dt) * net.sigma_u / math.sqrt(n))

    def standard_layer(self, net, E, eps, E2):
        cW, cb, cU = self.standard_scales(net)
        return LayerParams(W=cW * E, b=cb * eps, U=cU * E2)

    def ntk_features(self, net, p, X):
        return X, net.activation(X @ p.W.T + p.b)
    # == end wide limit ===================================================================

    def _inner_gram(self, net, X):
        return net.sigma_b**2 + net.sigma_w**2 * _pairwise_gram(X) / net.width

    def param_shapes(self, net):
        n = net.width
        return {"W": (n, n), "b": (n,), "U": (n, n)}

    def params(self, net, eps):
        n = net.width
        return LayerParams(
            W=net.sigma_w / jnp.sqrt(n) * eps["W"],
            b=net.sigma_b * eps["b"],
            U=jnp.sqrt(net.param_dt) * net.sigma_u / jnp.sqrt(n) * eps["U"],
        )

    def apply(self, net, p, X):
        return X + net.activation(X @ p.W.T + p.b) @ p.U.T

    def exact_shapes(self, net, inputs):
        return {"inner": (inputs, net.width), "outer": (inputs, net.width)}

    def exact_apply(self, net, z, X):
        post = net.activation(_correlated(z["inner"], self._inner_gram(net, X)))
        gamma = net.sigma_u**2 * _pairwise_gram(post) / net.width
        return X + jnp.sqrt(net.param_dt) * _correlated(z["outer"], gamma)

    def drift(self, net, X):
        return jnp.zeros_like(X)

    def gram(self, net, X):
        a = self._inner_gram(net, X).astype(jnp.float64)
        d = jnp.diagonal(a)
        v = net.activation.dual(d[:, None], d[None, :], a)
        return (net.sigma_u**2 * v).astype(X.dtype)


_BLOCKS: Registry[Block] = Registry("block form", lambda block: block.name,
                                    case_sensitive=False, upper=True)
for _block in (FormA(), FormB(), FormC()):
    _BLOCKS.register(_block)


def get_block(form: str) -> Block:
    """The block for ``"A"``, ``"B"`` or ``"C"`` (any case)."""
    return _BLOCKS.get(str(form))
