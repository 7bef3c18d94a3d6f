"""Noise models: statistics, seeding, and clear errors."""

import numpy as np
import pytest

from mire.optics import add_noise


def test_gaussian_sd_and_mean():
    clean = np.full((200, 200), 50.0)
    noisy = add_noise(clean, model="gaussian", sigma=3.0, seed=0)
    assert noisy.dtype == np.float64 and noisy.shape == clean.shape
    assert abs(np.std(noisy - clean) / 3.0 - 1) < 0.02  # 40k samples: SE of the SD about 0.35 %
    assert abs(np.mean(noisy - clean)) < 0.05


def test_poisson_mean_equals_variance_in_photons():
    lam = 7.0
    noisy = add_noise(np.full((300, 300), lam), model="poisson", seed=1)  # gain 1: values are counts
    assert np.all(noisy == np.round(noisy))  # integer photon counts
    assert abs(noisy.mean() / lam - 1) < 0.01
    assert abs(noisy.var() / lam - 1) < 0.03


def test_poisson_gain_scales_variance_not_mean():
    clean = np.full((300, 300), 20.0)
    gain = 4.0  # 5 photons per pixel
    noisy = add_noise(clean, model="poisson", gain=gain, seed=2)
    assert abs(noisy.mean() / 20 - 1) < 0.01
    assert abs(noisy.var() / (gain * 20) - 1) < 0.03
    assert np.allclose(noisy / gain, np.round(noisy / gain))  # multiples of the gain


def test_poisson_gaussian_variance_adds():
    clean = np.full((300, 300), 10.0)
    noisy = add_noise(clean, model="poisson-gaussian", sigma=2.0, gain=0.5, seed=3)
    expected = 0.5 * 10 + 2.0**2
    assert abs(noisy.var() / expected - 1) < 0.03
    assert abs(noisy.mean() - 10) < 0.03


def test_poisson_variance_follows_the_signal():
    ramp = np.repeat(np.array([[2.0, 50.0]]), 50000, axis=0)
    noisy = add_noise(ramp, model="poisson", seed=4)
    assert np.allclose(noisy.var(axis=0) / ramp[0], 1, atol=0.03)


def test_seeded_determinism():
    clean = np.linspace(0, 10, 400).reshape(20, 20)
    for model, kw in [("gaussian", {"sigma": 1.0}), ("poisson", {}), ("poisson-gaussian", {"sigma": 1.0})]:
        a = add_noise(clean, model=model, seed=5, **kw)
        b = add_noise(clean, model=model, seed=5, **kw)
        c = add_noise(clean, model=model, seed=6, **kw)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


def test_generator_is_accepted_and_advances():
    rng = np.random.default_rng(0)
    a = add_noise(np.zeros(100), sigma=1.0, seed=rng)
    b = add_noise(np.zeros(100), sigma=1.0, seed=rng)
    assert not np.array_equal(a, b)


def test_zero_sigma_is_identity():
    clean = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(add_noise(clean, sigma=0.0, seed=0), clean)


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "speckle", "sigma": 1.0}, "unknown noise model 'speckle'"),
    ({"model": "gaussian"}, "needs sigma"),
    ({"model": "poisson-gaussian"}, "needs sigma"),
    ({"model": "gaussian", "sigma": -1.0}, "sigma must be"),
    ({"model": "poisson", "gain": 0.0}, "gain must be"),
    ({"model": "poisson", "sigma": 1.0}, "takes no sigma"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        add_noise(np.ones((4, 4)), **kwargs)


def test_negative_image_under_poisson():
    with pytest.raises(ValueError, match="non-negative.*minimum is -1"):
        add_noise(np.array([[1.0, -1.0]]), model="poisson")


def test_nan_image():
    img = np.ones((4, 4))
    img[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        add_noise(img, sigma=1.0)
