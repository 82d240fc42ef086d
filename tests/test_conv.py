"""Convolutional ResNets (conv.md): exact reductions, equivariance, noise law, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deeplimits as dl
from deeplimits.conv import (
    ConvParams,
    ConvResNet,
    conv_kernel,
    digits_images,
    patch_gram,
    sample_conv,
)


def test_kernel_size_one_reduces_to_the_dense_network_and_kernel():
    # P = 1, K = {0}: the conv net on the ResNet's own parameters gives the same states
    rn = dl.ResNet(width=5, depth=6, activation="tanh", sigma_w=1.3, sigma_b=0.4,
                   input_layer=dl.InputLayer(3))
    cn = ConvResNet(channels=5, depth=6, image_shape=(1,), kernel_size=1, activation="tanh",
                    sigma_w=1.3, sigma_b=0.4, in_channels=3)
    rp = rn.init(jax.random.key(1), jnp.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    X0 = rn.embed(rp.embed_key, jnp.asarray(x))
    cp = ConvParams(W=rp.blocks.W[..., None], b=rp.blocks.b)
    out = cn.replace(in_channels=None).apply(cp, X0[:, :, None])
    np.testing.assert_allclose(np.asarray(out)[..., 0], np.asarray(rn.apply(rp, x)), atol=1e-12)
    # the continuous-depth kernel ODE equals the fully connected one
    kd = dl.kernel(rn, x, depth=math.inf, homogeneous=False)
    kc = conv_kernel(cn, x[:, :, None], depth=math.inf)
    np.testing.assert_allclose(kc.nngp, kd.nngp, atol=1e-10)
    np.testing.assert_allclose(kc.ntk, kd.ntk, atol=1e-10)


def test_one_by_one_filters_on_images_decouple_positions():
    # K = {0} on 8x8 digits: K_T(p, q) is the dense kernel of pixel values, exactly
    imgs = digits_images([3, 4])
    net = ConvResNet(channels=5, depth=4, image_shape=(8, 8), kernel_size=1, activation="relu",
                     sigma_w=1.2, sigma_b=0.2, sigma_a=0.3)
    dense = dl.ResNet(width=5, depth=4, activation="relu", sigma_w=1.2, sigma_b=0.2,
                      input_layer=dl.InputLayer(1, sigma_a=0.3))
    kd = dl.kernel(dense, imgs.reshape(-1, 1), depth=4)
    K, T = kd.nngp.reshape(2, 64, 2, 64), kd.ntk.reshape(2, 64, 2, 64)
    flat = conv_kernel(net, imgs)
    np.testing.assert_allclose(flat.nngp, np.einsum("apbp->ab", K) / 64, atol=1e-12)
    np.testing.assert_allclose(flat.ntk, np.einsum("apbp->ab", T) / 64, atol=1e-12)
    gap = conv_kernel(net.replace(readout="gap"), imgs)
    np.testing.assert_allclose(gap.nngp, K.mean((1, 3)), atol=1e-12)
    np.testing.assert_allclose(gap.ntk, T.mean((1, 3)), atol=1e-12)


def test_translation_equivariance_and_diagonal_closure():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((2, 1, 7))
    net = ConvResNet(channels=4, depth=5, image_shape=(7,), activation="relu", sigma_b=0.3)
    p = net.init(jax.random.key(0), jnp.float64)
    shifted = net.apply(p, np.roll(img, 2, axis=-1))
    np.testing.assert_allclose(np.asarray(shifted), np.roll(np.asarray(net.apply(p, img)), 2, -1),
                               atol=1e-12)
    # the flatten readout's diagonal system equals the full P x P system
    a = conv_kernel(net, img, depth=math.inf, steps=64)
    b = conv_kernel(net, img, depth=math.inf, steps=64, full=True)
    np.testing.assert_allclose(a.nngp, b.nngp, atol=1e-10)
    np.testing.assert_allclose(a.ntk, b.ntk, atol=1e-8)
    # kernels are invariant under a common circular shift
    c = conv_kernel(net, np.roll(img, 3, axis=-1), depth=math.inf, steps=64)
    np.testing.assert_allclose(c.nngp, a.nngp, atol=1e-10)


def test_one_layer_increment_covariance_is_the_patch_gram():
    # dense sampler, Gaussian parameters: Cov = sigma_b^2 + s_w^2 S_phi(X), channel-diagonal
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((1, 3, 6))
    net = ConvResNet(channels=3, depth=1, image_shape=(6,), activation="relu", sigma_w=1.5,
                     sigma_b=0.3, in_channels=None)
    n = 20_000
    D = (np.asarray(sample_conv(net, x0, jax.random.key(3), samples=n), np.float64) - x0)
    target = net.dt * np.asarray(net.sigma_b**2 + net.s_w**2
                                 * patch_gram(net, jax.nn.relu(jnp.asarray(x0))))
    for c in range(3):
        cov = np.cov(D[:, 0, c].T)
        # SE of a Gaussian covariance entry: sqrt((S_ii S_jj + S_ij^2) / n); 5 SE
        se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target**2) / n)
        assert np.all(np.abs(cov - target) < 5 * se)
    cross = np.mean(D[:, 0, 0] * D[:, 0, 1], axis=0)  # channels 0 and 1, same position
    se = np.sqrt(np.diag(target) ** 2 / n)
    assert np.all(np.abs(cross) < 5 * se)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=9), "larger than the image"),
    (dict(channels=0), "channels must be a positive integer"),
    (dict(image_shape=(8, 8, 8)), "1-D or 2-D"),
    (dict(form="B", activation="relu"), "C\\^2"),
    (dict(readout="max"), "readout"),
])
def test_bad_networks_raise(kwargs, match):
    base = dict(channels=3, depth=4, image_shape=(8, 8), kernel_size=3)
    with pytest.raises(ValueError, match=match):
        ConvResNet(**(base | kwargs))


def test_bad_images_raise():
    net = ConvResNet(channels=3, depth=4, image_shape=(8, 8))
    with pytest.raises(ValueError, match="rank"):
        sample_conv(net, np.zeros((2, 8, 8)), jax.random.key(0), samples=2)
    with pytest.raises(ValueError, match="NaN"):
        net.check_images(np.full((1, 1, 8, 8), np.nan))
    with pytest.raises(ValueError, match="Gaussian"):
        sample_conv(net.replace(law="rademacher"), digits_images([0]), jax.random.key(0),
                    samples=2, sampler="exact")
    with pytest.raises(ValueError, match="form A"):
        conv_kernel(net.replace(form="B"), digits_images([0]))


def test_conv_cli_writes_dataset_and_refuses_bad_input(tmp_path):
    from typer.testing import CliRunner

    from deeplimits.cli import app
    from deeplimits.experiments.store import load_dataset

    runner = CliRunner()
    out = tmp_path / "c.nc"
    r = runner.invoke(app, ["conv", "simulate", "--channels", "4", "--depth", "4",
                            "--samples", "64", "--digits", "3,5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = load_dataset(out)
    assert ds.x.shape == (64, 2, 4, 8, 8) and out.with_suffix(".png").exists()
    assert np.isfinite(ds.x).all() and float(ds.x.std()) > 0
    for args, message in ((["--kernel-size", "9"], "larger than the image"),
                          (["--channels", "0"], "channels must be a positive integer"),
                          (["--digits", "5000"], "digit indices")):
        bad = tmp_path / "bad.nc"
        r = runner.invoke(app, ["conv", "simulate", *args, "--out", str(bad)])
        assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
        assert not bad.exists()
    np.save(tmp_path / "flat.npy", np.zeros((8, 8)))  # no image axis
    r = runner.invoke(app, ["conv", "kernel", "--images", str(tmp_path / "flat.npy"),
                            "--out", str(tmp_path / "k.nc")])
    assert r.exit_code == 2 and "images must be" in " ".join(r.output.split())


def test_a_registered_conv_sampler_is_found_by_name_in_any_case():
    """Adding a conv sampler touches one place: a ``ConvSampler`` subclass, registered."""
    from typing import ClassVar

    from deeplimits.conv import ConvSampler, register_conv_sampler
    from deeplimits.simulation.conv import ConvExact

    class Renamed(ConvExact):
        name: ClassVar[str] = "exact-copy"

    register_conv_sampler(Renamed, overwrite=True)
    net = ConvResNet(channels=2, depth=3, image_shape=(3,), sigma_b=0.2)
    images = np.ones((1, 1, 3))
    ref = sample_conv(net, images, jax.random.key(0), samples=3, sampler="exact")
    for spec in ("Exact-Copy", Renamed()):
        np.testing.assert_array_equal(
            sample_conv(net, images, jax.random.key(0), samples=3, sampler=spec), ref)
    assert isinstance(Renamed(), ConvSampler)
    with pytest.raises(ValueError, match="unknown sampler 'gibbs'; choose one of"):
        sample_conv(net, images, jax.random.key(0), samples=3, sampler="gibbs")
