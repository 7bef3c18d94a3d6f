"""Richardson-Lucy: equality with scikit-image, boundary handling, RL-TV, errors."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.restoration import richardson_lucy as sk_richardson_lucy

from mire.optics import gaussian_psf
from mire.restore import richardson_lucy

PLAIN = dict(acceleration=None, background=0, read_noise=0)  # the classic algorithm


@pytest.mark.parametrize("shape,sigma", [((40, 36), (1.5, 1.0)), ((12, 20, 18), (1.2, 0.8, 0.8))])
def test_zero_boundary_equals_scikit_image(shape, sigma):
    rng = np.random.default_rng(0)
    image = rng.random(shape)
    psf = gaussian_psf(sigma, ndim=len(shape))
    psf = psf * np.linspace(0.5, 1.5, psf.shape[-1])  # asymmetric: a flipped kernel would fail
    psf /= psf.sum()
    ours = richardson_lucy(image, psf, n_iter=10, boundary="zero", **PLAIN)
    ref = sk_richardson_lucy(image, psf, num_iter=10, clip=False)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    # float32 in, float32 out, like scikit-image
    ours32 = richardson_lucy(image.astype(np.float32), psf, n_iter=10, boundary="zero", **PLAIN)
    assert ours32.dtype == np.float32
    np.testing.assert_allclose(ours32, ref, rtol=1e-4)


def test_valid_boundary_has_no_border_artifacts():
    """A flat field stays flat with the extended domain; zero padding darkens... then brightens its borders."""
    flat = np.full((40, 40), 7.0)
    psf = gaussian_psf(2.0, ndim=2)
    valid = richardson_lucy(flat, psf, n_iter=20, **PLAIN)
    zero = richardson_lucy(flat, psf, n_iter=20, boundary="zero", **PLAIN)
    assert np.abs(valid - 7.0).max() < 1e-3 * 7
    assert np.abs(zero - 7.0).max() > 0.1 * 7


def test_rl_sharpens_and_conserves_flux():
    truth = np.zeros((48, 48))
    truth[20, 20] = truth[30, 26] = 100.0
    psf = gaussian_psf(1.5, ndim=2)
    y = ndimage.gaussian_filter(truth, 1.5, mode="constant") + 1.0
    out = richardson_lucy(y, psf, n_iter=100, **PLAIN)
    assert out[20, 20] > 4 * y[20, 20]
    assert out.sum() == pytest.approx(y.sum(), rel=0.01)  # RL preserves the total intensity
    assert out.min() >= 0


def test_rl_tv_suppresses_noise_amplification():
    rng = np.random.default_rng(1)
    truth = np.zeros((48, 48)) + 5
    truth[12:36, 16:32] = 40
    psf = gaussian_psf(1.0, ndim=2)
    y = rng.poisson(ndimage.gaussian_filter(truth, 1.0, mode="nearest")).astype(float)
    plain = richardson_lucy(y, psf, n_iter=60, **PLAIN)
    tv = richardson_lucy(y, psf, n_iter=60, tv_weight=0.02, **PLAIN)
    flat = (slice(16, 32), slice(20, 28))  # inside the bright square: any variation is noise
    assert tv[flat].std() < 0.7 * plain[flat].std()
    assert np.abs(tv - truth).mean() < np.abs(plain - truth).mean()


def test_rl_errors():
    psf = gaussian_psf(1.0, ndim=2)
    with pytest.raises(ValueError, match="negative"):
        richardson_lucy(-np.ones((16, 16)), psf, **PLAIN)
    few = np.ones((16, 16))
    few[3, 3] = -0.5  # a little read noise below zero is clipped, not an error
    np.testing.assert_allclose(richardson_lucy(few, psf, n_iter=3, **PLAIN),
                               richardson_lucy(np.clip(few, 0, None), psf, n_iter=3, **PLAIN))
    with pytest.raises(ValueError, match="boundary"):
        richardson_lucy(np.ones((16, 16)), psf, boundary="reflect")
    with pytest.raises(ValueError, match="NaN"):
        richardson_lucy(np.full((16, 16), np.nan), psf)
    with pytest.raises(ValueError, match="sums to zero"):
        richardson_lucy(np.ones((16, 16)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_iter"):
        richardson_lucy(np.ones((16, 16)), psf, n_iter=0)


def test_an_all_zero_image_restores_to_zeros_like_tv_and_wiener():
    # no photons: every restore entry point returns the zero object (RL used to return its noise floor)
    from mire.restore import tv_deconvolve, wiener

    image, psf = np.zeros((16, 16)), np.ones((3, 3)) / 9
    for restore in (richardson_lucy, tv_deconvolve, wiener):
        out = restore(image, psf)
        assert out.shape == image.shape and not np.any(out), restore.__name__
    out, info = richardson_lucy(image, psf, return_info=True)
    assert info["n_iter"] == 0 and not np.any(out)
