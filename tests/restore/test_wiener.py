"""Wiener deconvolution: data-driven balance, borders, a hand-checkable case."""

import numpy as np
import pytest
from scipy import ndimage

from mire.optics import gaussian_psf
from mire.restore import wiener
from mire.restore._common import estimate_noise_sigma


def test_noise_sigma_estimate():
    rng = np.random.default_rng(0)
    for shape in [(128, 128), (32, 64, 64)]:
        smooth = ndimage.gaussian_filter(rng.random(shape), 4) * 10
        assert estimate_noise_sigma(smooth + 0.3 * rng.standard_normal(shape)) == pytest.approx(0.3, rel=0.05)


def test_identity_psf_with_tiny_balance_returns_the_image():
    rng = np.random.default_rng(1)
    img = rng.random((20, 24))
    delta = np.zeros((3, 3))
    delta[1, 1] = 1
    np.testing.assert_allclose(wiener(img, delta, balance=1e-9), img, atol=1e-6)
    # constant balance b on a delta PSF is a plain scaling by 1 / (1 + b)
    np.testing.assert_allclose(wiener(img, delta, balance=1.0), img / 2, atol=1e-6)


def test_data_driven_balance_beats_fixed_extremes():
    rng = np.random.default_rng(2)
    truth = np.zeros((64, 64))
    truth[20:44, 28:36] = 1.0
    truth[10, 10] = 3.0
    psf = gaussian_psf(1.5, ndim=2)
    y = ndimage.gaussian_filter(truth, 1.5) + 0.02 * rng.standard_normal(truth.shape)
    err = lambda r: np.mean((r - truth) ** 2)  # noqa: E731
    auto = err(wiener(y, psf))
    assert auto < err(y)
    assert auto < err(wiener(y, psf, balance=1e-3))
    assert auto < err(wiener(y, psf, balance=0.1))


def test_flat_image_has_no_border_ringing():
    out = wiener(np.full((32, 32), 3.0), gaussian_psf(2.0, ndim=2), balance=1e-3)
    assert np.abs(out - 3.0).max() < 0.02


def test_wiener_errors():
    with pytest.raises(ValueError, match="balance"):
        wiener(np.ones((8, 8)), gaussian_psf(1.0, ndim=2), balance=-1)
    with pytest.raises(ValueError, match="psf is 3D"):
        wiener(np.ones((8, 8)), gaussian_psf(1.0, ndim=3))
