"""Activations and their Gaussian dual expectations.

An :class:`Activation` is a scalar function phi applied coordinatewise. It provides

* ``phi``, ``phi'`` and ``phi''`` (autodiff, so any JAX-traceable callable works);
* ``phi(0)``, ``p1 = phi'(0)`` and ``p2 = phi''(0)``, which decide the form B limit
  (``forward.md`` §4.3);
* the dual expectations of ``kernels.md`` §3, for ``(u, u') ~ N(0, [[k11, k12], [k12, k22]])``::

      V_phi(k11, k22, k12)  = E[phi(u) phi(u')]
      V_phi'(k11, k22, k12) = E[phi'(u) phi'(u')]

  in closed form for ReLU, |x|, the identity and erf [CS09, W97], and otherwise by the
  Mehler (Hermite) series of :func:`_series_dual` (accurate to ~1e-12 for variances up to
  ~16 when phi is analytic in a strip around the real axis, like tanh);
* the one-dimensional moments ``E phi(sqrt(v) Z)`` and ``E phi(sqrt(v) Z)^2``.

Registered names: ``relu``, ``abs``, ``identity`` (alias ``linear``, ``id``), ``tanh``,
``erf``, ``gelu``, ``swish``, ``softplus_shifted``, ``sin``, ``leaky_relu``. Any other
callable is accepted by :func:`get_activation` and gets quadrature duals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _erf

from deeplimits._core.registry import Registry

__all__ = [
    "Activation", "get_activation", "register_activation", "activation_names", "gauss_hermite"
]

DualFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@functools.lru_cache(maxsize=8)
def gauss_hermite(nodes: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum to 1.

    ``sum(w * f(z))`` approximates ``E f(Z)`` for ``Z ~ N(0, 1)``; exact for polynomials of
    degree ``< 2 * nodes``.
    """
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return z, w / w.sum()


def _angle(k11, k22, k12):
    """Return ``(sqrt(k11 k22), theta)`` with ``theta = arccos(clip(k12 / sqrt(k11 k22)))``.

    A zero variance gives correlation 0 (then ``k12`` must be 0 for a PSD matrix).
    """
    norm = jnp.sqrt(k11 * k22)
    safe = jnp.where(norm > 0, norm, 1.0)
    rho = jnp.where(norm > 0, jnp.clip(k12 / safe, -1.0, 1.0), 0.0)
    return norm, jnp.arccos(rho)


_GRID_STEP = 0.05


_GRID_HALF_WIDTH = 12.5


_SERIES_CHUNK = 64  # coefficients per chunk (an even number)


_SERIES_TERMS = 2048  # at most this many terms (a multiple of the chunk)


_SERIES_TOL = 1e-13


@functools.lru_cache(maxsize=1)
def _hermite_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half grid ``z >= 0``, folded trapezoid weights ``w`` (``E g(Z) ~ sum w [g(z) + g(-z)]``)
    and ``w_j h_k(z_j)`` for the even and the odd ``k < _SERIES_TERMS``, the last two as
    ``(chunk, grid, chunk size / 2)`` arrays (one slice per scan step)."""
    h = _GRID_STEP
    z = h * np.arange(int(round(_GRID_HALF_WIDTH / h)) + 1)
    w = h * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    w[0] /= 2
    table = np.empty((z.size, _SERIES_TERMS))
    prev, cur = np.zeros_like(z), np.ones_like(z)
    for k in range(_SERIES_TERMS):  # h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k + 1)
        table[:, k] = cur
        prev, cur = cur, (z * cur - math.sqrt(k) * prev) / math.sqrt(k + 1)
    table *= w[:, None]
    chunks, half = _SERIES_TERMS // _SERIES_CHUNK, _SERIES_CHUNK // 2
    even, odd = (np.ascontiguousarray(t.reshape(z.size, chunks, half).transpose(1, 0, 2))
                 for t in (table[:, 0::2], table[:, 1::2]))
    return z, w, even, odd


def _folded(f, var):
    """``(f(s z), f(-s z))`` on the half grid ``z >= 0``, ``s = sqrt(var)``, each of shape
    ``var.shape + (grid,)``."""
    z = _hermite_tables()[0]
    x = jnp.sqrt(var)[..., None] * z
    fp, fm = f(x), f(-x)
    return fp, fm


@functools.partial(jax.jit, static_argnums=0)
def _gauss_mean(f, var):
    """``E f(sqrt(var) Z)`` by the trapezoid rule."""
    w = _hermite_tables()[1]
    fp, fm = _folded(f, jnp.asarray(var, jnp.float64))
    return (fp + fm) @ w


@functools.partial(jax.jit, static_argnums=0)
def _gauss_second_moment(f, var):
    """``E f(sqrt(var) Z)^2`` by the trapezoid rule."""
    w = _hermite_tables()[1]
    fp, fm = _folded(f, jnp.asarray(var, jnp.float64))
    return (fp * fp + fm * fm) @ w


def _series_dual(f, k11, k22, k12):
    """``E[f(u) f(u')]`` by the adaptively truncated Mehler series (see above).

    The coefficients are computed on each variance's own (unbroadcast) shape, so a call
    with ``k11`` of shape ``(B1, 1)`` and ``k22`` of shape ``(1, B2)`` costs ``B1 + B2``
    coefficient sets plus one series per pair; once only if ``k11 is k22`` or both hold the
    same values (checked at run time). Diagonals ``[[v, v], [v, v]]`` (the same object three
    times, or equal values in equal shapes) take the 1-D second moment instead. Odd or even
    ``f`` (detected exactly on the grid values) skip the vanishing half of the coefficients
    and sum the series in ``rho^2``.
    """
    if k11 is k22:
        if k12 is k11:
            return _gauss_second_moment(f, k11)
        return _series_dual_jit(f, k11, None, k12)
    return _series_dual_jit(f, k11, k22, k12)


@functools.partial(jax.jit, static_argnums=0)
def _series_dual_jit(f, k11, k22, k12):
    # jitted (f static) so that eager calls compile once per activation and shape
    same = k22 is None
    a = jnp.asarray(k11, jnp.float64)
    b = a if same else jnp.asarray(k22, jnp.float64)
    c = jnp.asarray(k12, jnp.float64)
    if a.shape == b.shape == c.shape:
        # a batch of diagonals [[v, v], [v, v]] passed as distinct arrays (kernels.py's form C
        # builds them so) needs only the 1-D second moment
        diagonal = jnp.all(c == a) & (True if same else jnp.all(b == a))
        return jax.lax.cond(diagonal, lambda: _gauss_second_moment(f, a),
                            lambda: _series(f, a, b, c, same))
    return _series(f, a, b, c, same)


def _series(f, a, b, c, same):
    shape = jnp.broadcast_shapes(a.shape, b.shape, c.shape)
    _, w, even_tab, odd_tab = _hermite_tables()
    even_tab, odd_tab = jnp.asarray(even_tab), jnp.asarray(odd_tab)
    n_chunks, size = _SERIES_TERMS // _SERIES_CHUNK, _SERIES_CHUNK

    sides = []  # per distinct variance array: even part, odd part, E f^2, tolerance
    for v in (a,) if same else (a, b):
        fp, fm = _folded(f, v.reshape(-1))
        m2 = (fp * fp + fm * fm) @ w
        sides.append((fp + fm, fp - fm, m2, _SERIES_TOL * jnp.maximum(1.0, m2)))
    # equal variances on both sides (a kernel of X with itself) are computed once; sides of
    # different sizes can never be twins, and lax.cond needs equal shapes in its branches
    can_be_twins = (not same) and a.size == b.size
    twins = can_be_twins and jnp.all(a.ravel() == b.ravel())
    no_even = functools.reduce(jnp.logical_or, [jnp.all(ev == 0) for ev, *_ in sides])
    no_odd = functools.reduce(jnp.logical_or, [jnp.all(od == 0) for _, od, *_ in sides])

    def coefficient_chunk(carry, i):
        sums, active, used = carry
        # continue while a tail exceeds its tolerance; NaN (a blown-up variance) continues
        # too, so that it propagates to the result
        tails = [jnp.any(~(m2 - sm <= tol))
                 for (_, _, m2, tol), sm in zip(sides, sums, strict=True)]
        active = active & functools.reduce(jnp.logical_or, tails)

        def product(part, table, vanishes):  # part @ table[i], unless the part is zero
            return jax.lax.cond(vanishes, lambda: jnp.zeros((part.shape[0], size // 2)),
                                lambda: part @ table[i])

        def side(ev, od):
            return jnp.stack([product(ev, even_tab, no_even), product(od, odd_tab, no_odd)],
                             -1).reshape(-1, size)

        def compute():
            first = side(*sides[0][:2])
            if len(sides) == 1:
                return (first,)
            if not can_be_twins:
                return first, side(*sides[1][:2])
            return first, jax.lax.cond(twins, lambda: first, lambda: side(*sides[1][:2]))

        def skip():
            return tuple(jnp.zeros((ev.shape[0], size)) for ev, *_ in sides)

        new = jax.lax.cond(active, compute, skip)
        sums = tuple(sm + jnp.sum(cj * cj, -1) for sm, cj in zip(sums, new, strict=True))
        return (sums, active, used + active.astype(jnp.int32)), new

    init = (tuple(jnp.zeros_like(m2) for _, _, m2, _ in sides), jnp.bool_(True), jnp.int32(0))
    (_, _, used), chunks = jax.lax.scan(coefficient_chunk, init, jnp.arange(n_chunks))
    # chunk i holds c_k, k = i * size + m, as (chunks, variances, m)
    c1, c2 = chunks * 2 if same else chunks

    norm = jnp.sqrt(a * b)
    safe = jnp.where(norm > 0, norm, 1.0)
    rho = jnp.broadcast_to(jnp.where(norm > 0, jnp.clip(c / safe, -1.0, 1.0), 0.0), shape)
    rho2 = rho * rho

    def horner(first, step, x):
        # Horner over the terms first, first + step, ... of chunk x, in rho^step; unrolled
        # so that XLA fuses the chunk into one elementwise pass
        def run(acc):
            x1 = c1[x].reshape(a.shape + (size,))
            x2 = c2[x].reshape(b.shape + (size,))
            r = rho if step == 1 else rho2
            for m in range(size - step + first, -1, -step):
                acc = acc * r + x1[..., m] * x2[..., m]
            return acc
        return run

    def horner_chunk(acc, i):
        # branch 0: chunk past the truncation; 1: all terms; 2: even k only; 3: odd k only
        branch = jnp.where(i < used, jnp.where(no_odd, 2, jnp.where(no_even, 3, 1)), 0)
        return jax.lax.switch(branch, [lambda acc: acc, horner(0, 1, i), horner(0, 2, i),
                                       horner(1, 2, i)], acc), None

    acc, _ = jax.lax.scan(horner_chunk, jnp.zeros(shape), jnp.arange(n_chunks), reverse=True)
    # the odd-only sum is sum_j a_{2j+1} rho^{2j} so far
    return jnp.where(no_even & ~no_odd, rho, 1.0) * acc


def _correlation(k11, k22, k12):
    """``(sqrt(k11 k22), rho)`` with ``rho`` clipped to [-1, 1] (0 for a zero variance)."""
    norm = jnp.sqrt(k11 * k22)
    safe = jnp.where(norm > 0, norm, 1.0)
    return norm, jnp.where(norm > 0, jnp.clip(k12 / safe, -1.0, 1.0), 0.0)


def _relu_dual(k11, k22, k12):
    # sin(theta) = sqrt(1 - rho^2), cos(theta) = rho: one arccos, no sin/cos
    norm, rho = _correlation(k11, k22, k12)
    theta = jnp.arccos(rho)
    return norm * (jnp.sqrt(1 - rho * rho) + (jnp.pi - theta) * rho) / (2 * jnp.pi)


def _relu_duals(k11, k22, k12):
    """``(V, V')`` of ReLU sharing one correlation and one arccos per pair."""
    norm, rho = _correlation(k11, k22, k12)
    theta = jnp.arccos(rho)
    return (norm * (jnp.sqrt(1 - rho * rho) + (jnp.pi - theta) * rho) / (2 * jnp.pi),
            (jnp.pi - theta) / (2 * jnp.pi))


def _relu_dual_deriv(k11, k22, k12):
    _, theta = _angle(k11, k22, k12)
    return (jnp.pi - theta) / (2 * jnp.pi)


def _abs_dual(k11, k22, k12):
    norm, theta = _angle(k11, k22, k12)
    return (2 / jnp.pi) * norm * (jnp.sin(theta) + (jnp.pi / 2 - theta) * jnp.cos(theta))


def _abs_dual_deriv(k11, k22, k12):
    _, theta = _angle(k11, k22, k12)
    return 1 - 2 * theta / jnp.pi


def _identity_dual(k11, k22, k12):
    return k12 + 0 * (k11 + k22)


def _identity_dual_deriv(k11, k22, k12):
    return jnp.ones_like(k12 + k11 + k22)


def _erf_discriminant(k11, k22, k12):
    """``(1 + 2 k11)(1 + 2 k22) - 4 k12^2`` as ``1 + 2 (k11 + k22) + 4 det`` with
    ``det = k11 k22 - k12^2`` clipped at 0: a sum of non-negative terms, so it keeps its
    relative accuracy where the product form cancels (variances ~1e16: inputs of norm 1e8
    gave 0 or a negative number, and a non-finite NTK)."""
    det = jnp.maximum(k11 * k22 - k12 * k12, 0.0)
    return 1 + 2 * (k11 + k22) + 4 * det


def _erf_dual(k11, k22, k12):
    # arcsin(2 k12 / sqrt((1 + 2 k11)(1 + 2 k22))) = atan2(2 k12, sqrt(discriminant)),
    # which stays accurate at correlation +-1 (arcsin's argument rounds there)
    return (2 / jnp.pi) * jnp.arctan2(2 * k12, jnp.sqrt(_erf_discriminant(k11, k22, k12)))


def _erf_dual_deriv(k11, k22, k12):
    return (4 / jnp.pi) / jnp.sqrt(_erf_discriminant(k11, k22, k12))


def _erf_duals(k11, k22, k12):
    """``(V, V')`` of erf sharing one square root per pair."""
    root = jnp.sqrt(_erf_discriminant(k11, k22, k12))
    return (2 / jnp.pi) * jnp.arctan2(2 * k12, root), (4 / jnp.pi) / root


def _homogeneous_parts(fn) -> tuple[float, float]:
    """``(a, b)`` with ``phi(x) = a relu(x) - b relu(-x)`` for positively homogeneous phi."""
    with jax.ensure_compile_time_eval():
        return float(fn(jnp.float64(1.0))), -float(fn(jnp.float64(-1.0)))


class Activation(eqx.Module):
    """A coordinatewise activation phi with derivatives and Gaussian dual expectations.

    Attributes:
        name: registry name (or the callable's ``__name__``).
        fn: JAX-traceable scalar function, applied elementwise to arrays.
        closed_dual: optional closed form ``(k11, k22, k12) -> V_phi``.
        closed_dual_deriv: optional closed form ``(k11, k22, k12) -> V_phi'``.
        smooth: whether phi is C^2 at 0 (ReLU-like kinks are not); form B needs it.
        homogeneous: whether phi(a x) = a phi(x) for a > 0 (ReLU, |x|, identity, leaky
            ReLU): kernels then depend on a pair of inputs only through its norms and angle.
        closed_duals: optional ``(k11, k22, k12) -> (V_phi, V_phi')`` sharing the pair's
            transcendentals (used by :meth:`duals`); must agree with the two closed forms.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    closed_dual: DualFn | None = None
    closed_dual_deriv: DualFn | None = None
    smooth: bool = True
    homogeneous: bool = False
    closed_duals: Callable | None = None

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)

    def deriv(self, x: jax.Array) -> jax.Array:
        """phi'(x), elementwise, by autodiff."""
        x = jnp.asarray(x)
        return jnp.vectorize(jax.grad(self.fn))(x)

    def second_deriv(self, x: jax.Array) -> jax.Array:
        """phi''(x), elementwise, by autodiff."""
        x = jnp.asarray(x)
        return jnp.vectorize(jax.grad(jax.grad(self.fn)))(x)

    @property
    def phi0(self) -> float:
        """phi(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.fn(jnp.float64(0.0)))

    @property
    def p1(self) -> float:
        """phi'(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.deriv(jnp.float64(0.0)))

    @property
    def p2(self) -> float:
        """phi''(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.second_deriv(jnp.float64(0.0)))

    def dual(self, k11, k22, k12, *, nodes: int | None = None) -> jax.Array:
        """V_phi = E[phi(u) phi(u')], broadcast over arrays of 2 x 2 covariances.

        Closed forms where registered; for other positively homogeneous phi
        (``a relu(x) - b relu(-x)``) the exact ``(a^2 + b^2) V_relu(k12) - 2ab V_relu(-k12)``;
        otherwise the Mehler series of :func:`_series_dual` (absolute error ~1e-12 for
        variances up to ~16 and phi analytic in a strip, like tanh), or, if ``nodes`` is
        given, the legacy ``nodes``-point product Gauss-Hermite rule.
        """
        if self.closed_dual is None and not self.homogeneous and nodes is None:
            return _series_dual(self.fn, k11, k22, k12)
        k11, k22, k12 = _as_float(k11, k22, k12)
        if self.closed_dual is not None:
            return self.closed_dual(k11, k22, k12)
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return ((a * a + b * b) * _relu_dual(k11, k22, k12)
                    - 2 * a * b * _relu_dual(k11, k22, -k12))
        return self._quadrature(self.fn, k11, k22, k12, nodes)

    def duals(self, k11, k22, k12) -> tuple[jax.Array, jax.Array]:
        """``(V_phi, V_phi')`` together: one shared evaluation of the pair's correlation and
        transcendental where the closed form allows it (ReLU: one ``arccos`` per pair
        instead of two and no ``sin``/``cos``), else :meth:`dual` and :meth:`dual_deriv`."""
        if self.closed_duals is not None:
            return self.closed_duals(*_as_float(k11, k22, k12))
        return self.dual(k11, k22, k12), self.dual_deriv(k11, k22, k12)

    def dual_deriv(self, k11, k22, k12, *, nodes: int | None = None) -> jax.Array:
        """V_phi' = E[phi'(u) phi'(u')], broadcast over arrays of 2 x 2 covariances (methods
        as for :meth:`dual`, applied to phi')."""
        if self.closed_dual_deriv is None and not self.homogeneous and nodes is None:
            return _series_dual(self.deriv, k11, k22, k12)
        k11, k22, k12 = _as_float(k11, k22, k12)
        if self.closed_dual_deriv is not None:
            return self.closed_dual_deriv(k11, k22, k12)
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return ((a * a + b * b) * _relu_dual_deriv(k11, k22, k12)
                    + 2 * a * b * _relu_dual_deriv(k11, k22, -k12))
        return self._quadrature(self.deriv, k11, k22, k12, nodes)

    def mean(self, var, *, nodes: int | None = None) -> jax.Array:
        """nu(v) = E phi(sqrt(v) Z) for Z ~ N(0, 1) (exact for homogeneous phi; otherwise a
        fine trapezoid rule, or ``nodes``-point Gauss-Hermite if ``nodes`` is given)."""
        var = jnp.asarray(var, jnp.float64)
        s = jnp.sqrt(var)
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return s * (a - b) / math.sqrt(2 * math.pi)
        if nodes is None:
            return _gauss_mean(self.fn, var)
        z, w = gauss_hermite(nodes)
        return jnp.sum(w * self.fn(s[..., None] * z), axis=-1)

    def second_moment(self, var, *, nodes: int | None = None) -> jax.Array:
        """nu_2(v) = E phi(sqrt(v) Z)^2 = V_phi(v, v, v)."""
        return self.dual(var, var, var, nodes=nodes)

    @staticmethod
    def _quadrature(f, k11, k22, k12, nodes):
        # u = sqrt(k11) z1, u' = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2): a product rule
        # that is exact for the degenerate case k11 = 0 as well (then rho = 0 and u = 0).
        k11, k22, k12 = _as_float(k11, k22, k12)
        norm, theta = _angle(k11, k22, k12)
        rho = jnp.cos(theta)
        z, w = gauss_hermite(nodes)
        z1, z2 = z[:, None], z[None, :]
        ww = w[:, None] * w[None, :]
        e = (...,) + (None, None)
        u = jnp.sqrt(k11)[e] * z1
        v = jnp.sqrt(k22)[e] * (rho[e] * z1 + jnp.sqrt(1 - rho[e] ** 2) * z2)
        del norm
        return jnp.sum(ww * f(u) * f(v), axis=(-2, -1))


def _as_float(*arrays):
    return jnp.broadcast_arrays(*(jnp.asarray(a, jnp.float64) for a in arrays))


def _gelu(x):
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _swish(x):
    return x * jax.nn.sigmoid(x)


def _softplus_shifted(x):
    return jax.nn.softplus(x) - math.log(2.0)


def _leaky_relu(x, slope=0.1):
    return jnp.where(x > 0, x, slope * x)


_ALIASES = {"linear": "identity", "id": "identity", "shifted_softplus": "softplus_shifted"}


_ACTIVATIONS: Registry[Activation] = Registry("activation", lambda act: act.name,
                                              aliases=_ALIASES, case_sensitive=False)


def register_activation(activation: Activation, *, overwrite: bool = False) -> Activation:
    """Add an activation to the registry under ``activation.name``."""
    return _ACTIVATIONS.register(activation, overwrite=overwrite)


for _act in (
    Activation("relu", jax.nn.relu, _relu_dual, _relu_dual_deriv, smooth=False,
               homogeneous=True, closed_duals=_relu_duals),
    Activation("abs", jnp.abs, _abs_dual, _abs_dual_deriv, smooth=False, homogeneous=True),
    Activation("identity", lambda x: x, _identity_dual, _identity_dual_deriv,
               homogeneous=True),
    Activation("tanh", jnp.tanh),
    Activation("erf", _erf, _erf_dual, _erf_dual_deriv, closed_duals=_erf_duals),
    Activation("gelu", _gelu),
    Activation("swish", _swish),
    Activation("softplus_shifted", _softplus_shifted),
    Activation("sin", jnp.sin),
    Activation("leaky_relu", _leaky_relu, smooth=False, homogeneous=True),
):
    register_activation(_act)


def activation_names() -> list[str]:
    """Names accepted by :func:`get_activation`, aliases included."""
    return _ACTIVATIONS.names(aliases=True)


def get_activation(spec: str | Activation | Callable) -> Activation:
    """Resolve a registry name (any case), an :class:`Activation` or a plain callable.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
        TypeError: for anything that is neither a string nor callable.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        if spec not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {spec!r}; choose one of {activation_names()} "
                "or pass a callable"
            )
        return _ACTIVATIONS.get(spec)
    if callable(spec):
        return Activation(getattr(spec, "__name__", "custom"), spec)
    raise TypeError(f"activation must be a name or a callable, got {type(spec).__name__}")
