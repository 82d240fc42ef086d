"""Limiting SDEs of shrinking ResNets and their pathwise solution with diffrax.

For ``k`` inputs stacked as rows of ``X`` (shape ``(k, n)``) the limit of a network is

    dX_t = a(X_t) dt + dN_t,   d<N^{(a)}_i, N^{(c)}_j>_t = delta_ij G(X_t)_{ac} dt,

where every input is driven by the same Brownian motion (``forward.md`` §4.2): the noise
columns are independent across coordinates and correlated across inputs through the
``(k, k)`` matrix ``G``. Forms A and B also have a pathwise representation through an
``n x n`` matrix Brownian motion ``B^W`` and an ``n``-vector ``B^b``; with Gaussian
parameters, form A *is* the Euler-Maruyama scheme of it with step ``T / L``.

:func:`solve_sde` solves the pathwise form with diffrax on a
:class:`diffrax.VirtualBrownianTree` (a reference for strong comparisons), and
:func:`network_on_path` runs the finite network whose parameters are the increments of
that very path, so that the two can be compared path by path.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax

from deeplimits.spec.networks import ResNet

__all__ = ["ResNetSDE"]

# Dyadic resolution of the Brownian tree: grids with up to 2**16 steps hit its nodes exactly.
_TREE_LEVELS = 16


class ResNetSDE(eqx.Module):
    """The limiting SDE of a :class:`~deeplimits.networks.ResNet`.

    Methods take the stacked state ``X`` of shape ``(k, n)``:

    * ``drift(X)``: ``a(X)``, shape ``(k, n)``;
    * ``gram(X)``: ``G(X)``, shape ``(k, k)``;
    * ``noise(X, dB)``: the pathwise noise increment for Brownian increments
      ``dB = {"W": (n, n), "b": (n,)}`` (forms A and B).
    """

    net: ResNet

    def __check_init__(self):
        if self.net.scaling != "shrinking":
            raise ValueError(
                "the i.i.d. (non-shrinking) baseline has no diffusion limit; "
                "use scaling='shrinking' for an SDE"
            )

    @property
    def horizon(self) -> float:
        return self.net.horizon

    def drift(self, X: jax.Array) -> jax.Array:
        return self.net.block.drift(self.net, X)

    def gram(self, X: jax.Array) -> jax.Array:
        return self.net.block.gram(self.net, X)

    def noise(self, X: jax.Array, dB: dict[str, jax.Array]) -> jax.Array:
        return self.net.block.noise(self.net, X, dB)

    def brownian_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.net.block.brownian_shapes(self.net)

    def brownian_motion(self, key: jax.Array, dtype=jnp.float64) -> diffrax.VirtualBrownianTree:
        """The driving Brownian motions on ``[0, T]`` as one diffrax path."""
        shapes = {k: jax.ShapeDtypeStruct(s, dtype) for k, s in self.brownian_shapes().items()}
        return diffrax.VirtualBrownianTree(
            0.0, self.horizon, tol=self.horizon / 2**_TREE_LEVELS, shape=shapes, key=key
        )

    def terms(self, bm: diffrax.AbstractPath) -> diffrax.MultiTerm:
        """diffrax terms ``a(X) dt + noise(X, dB)`` driven by ``bm``."""
        structure = jax.eval_shape(lambda: bm.evaluate(0.0, self.horizon))

        def diffusion(t, X, args):
            return lineax.FunctionLinearOperator(lambda dB: self.noise(X, dB), structure)

        return diffrax.MultiTerm(
            diffrax.ODETerm(lambda t, X, args: self.drift(X)),
            diffrax.ControlTerm(diffusion, bm),
        )
