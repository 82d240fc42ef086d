"""One object that describes a residual network at initialisation (``forward.md`` §1-3).

A :class:`ResNet` holds hyperparameters only. It can

* draw its dense parameters (:meth:`ResNet.init`) and run them (:meth:`ResNet.apply`):
  every input shares one parameter draw;
* return its limiting SDE (:meth:`ResNet.sde`).

Samplers (:mod:`deeplimits.samplers`) draw from the same description many networks at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.linalg import correlated_normal
from deeplimits._core.validation import as_int as _as_int
from deeplimits._core.validation import is_positive_int as _is_positive_int
from deeplimits._core.validation import require as _require
from deeplimits._core.validation import require_real
from deeplimits.spec.activations import Activation, get_activation
from deeplimits.spec.blocks import Block, LayerParams, get_block
from deeplimits.spec.laws import ParameterLaw, get_law

__all__ = ["ResNet", "ResNetParams", "InputLayer", "Readout", "hayou_resnet"]

SCALINGS = ("shrinking", "iid")


class InputLayer(eqx.Module):
    """``x_0 = sigma_A A x / sqrt(d) + sigma_a a`` with standardised ``A`` (n x d), ``a`` (n).

    Its coordinates are i.i.d. across the width with covariance
    ``K_0(x, x') = sigma_a^2 + sigma_A^2 <x, x'> / d`` across inputs (``kernels.md`` §2).
    """

    dim: int
    sigma_A: float = 1.0
    sigma_a: float = 0.0

    def __check_init__(self):
        _require(isinstance(self.dim, int) and self.dim > 0, f"input dim must be a positive "
                 f"integer, got {self.dim!r}")
        require_real(self.sigma_A, "sigma_A")
        require_real(self.sigma_a, "sigma_a")
        _require(self.sigma_A >= 0 and self.sigma_a >= 0, "input-layer scales must be >= 0")

    def gram(self, x: jax.Array) -> jax.Array:
        """``K_0`` for the rows of ``x`` (``(k, d) -> (k, k)``)."""
        return self.gram_between(x, x)

    def gram_between(self, x1: jax.Array, x2: jax.Array) -> jax.Array:
        """``K_0(x1_i, x2_j) = sigma_a^2 + sigma_A^2 <x1_i, x2_j> / d``."""
        return self.sigma_a**2 + self.sigma_A**2 * (x1 @ x2.T) / self.dim

    def embed(self, key, x, width: int, law: ParameterLaw) -> jax.Array:
        """Draw the layer and apply it to the rows of ``x``: ``(k, d) -> (k, width)``.

        Gaussian laws use the k x k Gram matrix (exact in law, no ``(width, d)`` matrix).
        """
        if law.is_gaussian:
            return correlated_normal(key, self.gram(x), width, x.dtype)
        ka, kb = jax.random.split(key)
        A = law.sample(ka, (width, self.dim), x.dtype)
        a = law.sample(kb, (width,), x.dtype)
        return self.sigma_A * x @ A.T / math.sqrt(self.dim) + self.sigma_a * a


class Readout(eqx.Module):
    """``f(x) = sigma_v <v, r(X_T)> / sqrt(n) + sigma_v0 v_0``.

    ``post_activation=False`` reads the state (``r = id``), ``True`` reads ``phi(X_T)``.
    """

    sigma_v: float = 1.0
    sigma_v0: float = 0.0
    post_activation: bool = False

    def __check_init__(self):
        for name in ("sigma_v", "sigma_v0"):
            require_real(getattr(self, name), name)
            _require(getattr(self, name) >= 0, f"{name} must be >= 0, got "
                     f"{getattr(self, name)!r}")

    def apply(self, key, X, activation: Activation, law: ParameterLaw) -> jax.Array:
        """``(k, n) -> (k,)`` for one draw of ``(v, v_0)``."""
        kv, k0 = jax.random.split(key)
        n = X.shape[-1]
        r = activation(X) if self.post_activation else X
        v = law.sample(kv, (n,), X.dtype)
        v0 = law.sample(k0, (), X.dtype)
        return self.sigma_v * r @ v / math.sqrt(n) + self.sigma_v0 * v0


class ResNetParams(eqx.Module):
    """Dense parameters of a whole network: blocks stacked on a leading depth axis."""

    blocks: LayerParams
    embed_key: jax.Array | None = None


class DepthSteps:
    """The depth as a discretisation of ``[0, horizon]``: a mixin for networks with fields
    ``depth``, ``horizon`` and ``scaling``."""

    @property
    def dt(self) -> float:
        """Time step ``T / L`` of the limit that the depth discretises."""
        return self.horizon / self.depth

    @property
    def param_dt(self) -> float:
        """Step used in the parameter law: ``dt`` when shrinking, 1 for the i.i.d. baseline."""
        return self.dt if self.scaling == "shrinking" else 1.0


class ResNet(DepthSteps, eqx.Module):
    """A residual network with shrinking (or i.i.d.) random parameters.

    Blocks (``forward.md`` §3), with ``dt = horizon / depth``:

    * ``"A"``: ``x_l = x_{l-1} + b_l + W_l phi(x_{l-1})``
    * ``"B"``: ``x_l = x_{l-1} + phi(b_l + W_l x_{l-1})``
    * ``"C"``: ``x_l = x_{l-1} + sqrt(dt) (sigma_u/sqrt(n)) U_l phi((sigma_w/sqrt(n)) W_l
      x_{l-1} + sigma_b b_l)``

    Parameter law (``scaling="shrinking"``): ``b_l = mu_b dt + sigma_b sqrt(dt) eps``,
    ``W_l = M dt + s_w sqrt(dt) E`` with ``s_w = sigma_w / sqrt(width)`` when
    ``width_scaled`` (the default, needed for every width -> infinity statement) and
    ``s_w = sigma_w`` otherwise (PF20's fixed-width setting). ``scaling="iid"`` is the
    non-shrinking baseline: the same draws with ``dt`` replaced by 1.

    Args:
        width: state dimension n.
        depth: number of residual blocks L.
        form: ``"A"``, ``"B"`` or ``"C"``.
        activation: a registered name or a callable (see :mod:`deeplimits.activations`).
        sigma_w, sigma_b: weight and bias scales.
        mu_b: mean bias rate (scalar or ``(width,)``); M: mean weight rate ``(width, width)``.
        sigma_u: outer weight scale of form C.
        law: standardised parameter noise, ``"gaussian"``, ``"rademacher"``, ``"uniform"``,
            a :class:`~deeplimits.laws.ParameterLaw`, or a draw callable.
        scaling: ``"shrinking"`` or ``"iid"``.
        width_scaled: divide the weight variance by the width.
        horizon: the time T that the depth discretises.
        input_layer: optional :class:`InputLayer`; samplers then take ``(k, d)`` inputs.
        readout: optional :class:`Readout`, used by ``sample(..., output="readout")``.
    """

    width: int = eqx.field(converter=lambda v: _as_int(v))
    depth: int = eqx.field(converter=lambda v: _as_int(v))
    # normalised on construction ("c" -> "C"), so no later comparison sees another case
    form: str = eqx.field(default="A", converter=lambda f: get_block(f).name)
    activation: Activation = eqx.field(default="relu", converter=get_activation)
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    mu_b: float | jax.Array = 0.0
    M: jax.Array | None = None
    sigma_u: float = 1.0
    law: ParameterLaw = eqx.field(default="gaussian", converter=get_law)
    scaling: str = "shrinking"
    width_scaled: bool = True
    horizon: float = 1.0
    input_layer: InputLayer | None = None
    readout: Readout | None = None

    def __check_init__(self):
        _require(_is_positive_int(self.width), f"width must be a positive integer, got "
                 f"{self.width!r}")
        _require(_is_positive_int(self.depth), f"depth must be a positive integer, got "
                 f"{self.depth!r}")
        _require(self.scaling in SCALINGS, f"scaling must be one of {SCALINGS}, got "
                 f"{self.scaling!r}")
        for name in ("sigma_w", "sigma_b", "sigma_u", "horizon"):
            require_real(getattr(self, name), name)
        for name in ("sigma_w", "sigma_b", "sigma_u"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"{name} must be a finite number "
                     f">= 0, got {value!r}")
        _require(math.isfinite(self.horizon) and self.horizon > 0,
                 f"horizon must be > 0, got {self.horizon!r}")
        if isinstance(self.mu_b, str | bytes):
            raise TypeError(f"mu_b must be a number or an array, got {self.mu_b!r}")
        mu = jnp.asarray(self.mu_b)
        _require(mu.ndim == 0 or mu.shape == (self.width,),
                 f"mu_b must be a scalar or have shape ({self.width},), got {mu.shape}")
        if self.M is not None:
            _require(jnp.shape(self.M) == (self.width, self.width),
                     f"M must have shape ({self.width}, {self.width}), got {jnp.shape(self.M)}")
        self.block.check(self)

    # -- derived quantities -------------------------------------------------------------
    @property
    def block(self) -> Block:
        return get_block(self.form)

    @property
    def s_w(self) -> float:
        """Weight scale: ``sigma_w / sqrt(width)`` if width-scaled, else ``sigma_w``."""
        return self.sigma_w / math.sqrt(self.width) if self.width_scaled else self.sigma_w

    @property
    def input_dim(self) -> int:
        """Dimension of the inputs that samplers accept."""
        return self.input_layer.dim if self.input_layer is not None else self.width

    def replace(self, **changes) -> ResNet:
        """A copy with some hyperparameters changed (validated again)."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        fields.update(changes)
        return ResNet(**fields)

    # -- dense parameters ---------------------------------------------------------------
    def init(self, key: jax.Array, dtype=jnp.float32) -> ResNetParams:
        """Draw every block's parameters: a ``LayerParams`` stacked over ``depth``."""
        k_embed, k_blocks = jax.random.split(key)
        keys = jax.random.split(k_blocks, self.depth)
        blocks = jax.vmap(lambda k: self.block.draw(self, k, dtype))(keys)
        return ResNetParams(blocks=blocks, embed_key=k_embed)

    def params_from_increments(self, dB: dict[str, jax.Array], embed_key=None) -> ResNetParams:
        """Parameters whose noise is given Brownian increments (one per block).

        ``W_l = M dt + s_w dB^W_l`` and ``b_l = mu_b dt + sigma_b dB^b_l``: with
        ``dB ~ N(0, dt)`` these are the network's Gaussian parameters, and form A run on
        them is exactly Euler-Maruyama of its SDE driven by the same increments.
        """
        self.block.brownian_shapes(self)  # forms with no affine noise raise
        scale = 1.0 / math.sqrt(self.param_dt)  # increments are sqrt(dt) standard noise
        blocks = self.block.params(self, {k: scale * v for k, v in dB.items()})
        return ResNetParams(blocks=blocks, embed_key=embed_key)

    def embed(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Initial states ``(k, width)`` from inputs ``(k, input_dim)``."""
        if self.input_layer is None:
            return x
        return self.input_layer.embed(key, x, self.width, self.law)

    def apply(self, params: ResNetParams, x: jax.Array, *, trajectory: bool = False):
        """Run the dense network on inputs ``x`` of shape ``(k, input_dim)``.

        Returns ``(k, width)``, or ``(depth + 1, k, width)`` with ``trajectory=True``.
        """
        X0 = self.embed(params.embed_key, x)

        def layer(X, p):
            Y = self.block.apply(self, p, X)
            return Y, (Y if trajectory else None)

        XL, path = jax.lax.scan(layer, X0, params.blocks)
        return jnp.concatenate([X0[None], path]) if trajectory else XL

    # -- limit --------------------------------------------------------------------------
    def sde(self):
        """The limiting SDE of this network (see :class:`deeplimits.sde.ResNetSDE`).

        Raises:
            ValueError: if the network has no diffusion limit: the i.i.d. baseline, or a
                form whose conditions fail (form B with an activation that is not C^2 at 0
                or has phi(0) != 0). The form is checked again here, so a network whose
                fields were swapped after construction (``eqx.tree_at``) is refused too.
        """
        from deeplimits.spec.sde import ResNetSDE

        self.block.check(self)
        return ResNetSDE(self)


def hayou_resnet(
    width: int,
    depth: int,
    activation: str | Callable = "relu",
    *,
    input_dim: int | None = None,
    sigma_w: float = 1.0,
    **kwargs,
) -> ResNet:
    """Hayou's 1/sqrt(L) network (``finite_width.md`` §1): form A, no biases, weights
    ``N(0, sigma_w^2 / (n L))``, and with ``input_dim`` an input layer ``N(0, 1/d)``."""
    layer = InputLayer(input_dim) if input_dim is not None else None
    return ResNet(width=width, depth=depth, form="A", activation=activation, sigma_w=sigma_w,
                  sigma_b=0.0, width_scaled=True, input_layer=layer, **kwargs)
