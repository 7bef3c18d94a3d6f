"""PSF estimation from bead images: synthetic beads with a known Gaussian PSF, and the flowdec bead."""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from mire.optics import gaussian_psf
from mire.optics.psf_estimate import _sphere, estimate_psf


def second_moment_sigma(psf):
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in psf.shape], indexing="ij")
    return np.array([np.sqrt((g**2 * psf).sum() - (g * psf).sum() ** 2) for g in grids])


def fwhm(p):
    c = np.unravel_index(np.argmax(p), p.shape)
    out = []
    for ax in range(p.ndim):
        prof = p[tuple(slice(None) if a == ax else c[a] for a in range(p.ndim))]
        out.append(int((prof >= 0.5 * prof.max()).sum()))
    return np.array(out)


def test_synthetic_beads_recover_the_gaussian_sigma():
    rng = np.random.default_rng(0)
    sigma = np.array([2.0, 1.2, 1.0])  # anisotropic, like a confocal PSF in ZYX
    img = np.zeros((48, 96, 96))
    # beads at sub-pixel positions: the estimate must re-centre each one before averaging
    for z, y, x in [(20.3, 20.6, 30.2), (24.7, 60.1, 40.8), (28.0, 40.4, 75.5), (22.5, 75.2, 70.3)]:
        img += 2e5 * gaussian_at(img.shape, (z, y, x), sigma)
    img += 20 + rng.normal(0, 1.0, img.shape)
    psf = estimate_psf(img, size=(17, 13, 13))
    assert psf.shape == (17, 13, 13)
    assert psf.sum() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (8, 6, 6)
    est = second_moment_sigma(psf)
    np.testing.assert_allclose(est, sigma, rtol=0.04)
    ncc = np.corrcoef(psf.ravel(), gaussian_psf(sigma, size=(17, 13, 13)).ravel())[0, 1]
    assert ncc > 0.995


def gaussian_at(shape, centre, sigma):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    arg = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre, sigma))
    return np.exp(-0.5 * arg) / np.exp(-0.5 * arg).sum()


def test_known_bead_size_is_removed():
    """A 6-pixel bead seen through a sigma-1 PSF: with bead_diameter=6 the estimate shrinks back
    towards the PSF (second moments within 25 %), without it the bead's size inflates it by > 50 %."""
    sigma = 1.0
    truth = gaussian_psf(sigma, ndim=2, size=21)
    img = np.zeros((64, 64))
    img[32, 32] = 1e4
    img = fftconvolve(img, fftconvolve(_sphere(6.0, 2), truth, mode="same"), mode="same") + 5
    naive = second_moment_sigma(estimate_psf(img, size=21))
    corrected = second_moment_sigma(estimate_psf(img, size=21, bead_diameter=6.0, n_iter=200))
    assert np.all(naive > 1.5 * sigma)
    np.testing.assert_allclose(corrected, sigma, rtol=0.25)


def test_flowdec_bead_matches_its_kernel(shared_data):
    """flowdec's bead image is a ~9 px bead seen through the (very compact) kernel that ships with
    it. So the bead-free estimate must match kernel (x) ball(9 px): normalized cross-correlation
    > 0.8 over a 31^3 window, FWHM within 2 px in Y and X and 3 px in Z (the data's Z voxels are
    coarser, so a ball in pixel units is only an approximation of the bead along Z)."""
    import tifffile

    bead = tifffile.imread(shared_data("flowdec_widefield_deconvolution", "bead_25pct_data.tif"))
    kernel = tifffile.imread(shared_data("flowdec_widefield_deconvolution", "bead_25pct_kernel_psf.tif"))
    kernel = kernel.astype(np.float64) / kernel.sum()
    est = estimate_psf(bead, size=31)
    win = tuple(slice(32 - 15, 32 + 16) for _ in range(3))
    apparent = fftconvolve(kernel, _sphere(9.0, 3), mode="same")[win]
    ncc = np.corrcoef(est.ravel(), apparent.ravel())[0, 1]
    assert ncc > 0.8
    assert np.all(np.abs(fwhm(est) - fwhm(apparent)) <= [3, 2, 2]), (fwhm(est), fwhm(apparent))
    # removing a 9 px bead makes the estimate much more compact, towards the kernel's 1-2 px FWHM
    sharp = estimate_psf(bead, size=31, bead_diameter=9.0)
    assert np.all(fwhm(sharp) < fwhm(est))


def test_estimate_psf_errors():
    with pytest.raises(ValueError, match="no signal"):
        estimate_psf(np.ones((32, 32)))
    with pytest.raises(ValueError, match="NaN"):
        estimate_psf(np.full((16, 16), np.nan))
    with pytest.raises(ValueError, match="bead_diameter"):
        estimate_psf(np.ones((16, 16)), bead_diameter=-1)
    img = np.zeros((32, 32))
    img[1, 1] = 100  # only a bead at the border
    with pytest.raises(ValueError, match="full"):
        estimate_psf(img + 1, size=15)
