"""Regression: the automatic Wiener balance must not blow noise up on sparse, noisy stacks."""

import numpy as np
import pytest

from mire.data import neurites
from mire.metrics import psnr
from mire.optics import gaussian_psf, simulate
from mire.restore import wiener
from mire.restore.wiener import gcv_balance


@pytest.mark.parametrize("condition,sigma", [("N2-B2", 0.8), ("N3-B3", 1.2)])
def test_automatic_balance_improves_noisy_neurites(condition, sigma):
    clean = neurites((16, 64, 64), seed=0)
    noisy = simulate(clean, condition=condition, seed=0)
    out = wiener(noisy, gaussian_psf(sigma, ndim=3))
    peak = clean.max()
    # a per-frequency spectrum fit once gave 0.3 dB here (noise amplified 4x); GCV gives +3..8 dB
    assert psnr(clean, out, data_range=peak) > psnr(clean, noisy, data_range=peak) + 2.0
    assert np.abs(out).max() < 2 * peak


def test_gcv_balance_grows_with_noise():
    import torch

    rng = np.random.default_rng(0)
    clean = neurites((64, 64), seed=1)
    psf = gaussian_psf(1.0, ndim=2)
    from mire.optics import Blur

    op = Blur(psf, clean.shape, boundary="circular", dtype=torch.float64, device="cpu")
    blurred = op(torch.as_tensor(clean)).numpy()
    balances = []
    for sd in (0.01, 0.1):
        y = torch.as_tensor(blurred + sd * rng.standard_normal(clean.shape))
        balances.append(gcv_balance(torch.fft.rfftn(y), op.otf, clean.shape))
    assert balances[1] >= 5 * balances[0]  # 10x the noise SD: about 100x the variance, GCV follows


def test_default_wiener_filter_beats_every_constant_balance_and_is_scale_free():
    clean = neurites((16, 64, 64), seed=0)
    peak = clean.max()
    psf = gaussian_psf(0.8, ndim=3)
    noisy = simulate(clean, condition="N2-B2", seed=0)
    default = psnr(clean, wiener(noisy, psf), data_range=peak)
    constant = max(psnr(clean, wiener(noisy, psf, balance=b), data_range=peak) for b in (0.1, 0.3, 1.0, 3.0))
    gcv = psnr(clean, wiener(noisy, psf, balance="gcv"), data_range=peak)
    assert default > constant + 2.0 and default > gcv + 2.0  # measured: 28.17 vs 22.92 (best constant), 19.72 (GCV)
    # both spectra are estimated on the image's scale: the filter is linear and scale-free
    np.testing.assert_allclose(wiener(0.01 * noisy, psf), 0.01 * wiener(noisy, psf), rtol=1e-4, atol=1e-6 * peak)
    with pytest.raises(ValueError, match="gcv"):
        wiener(noisy, psf, balance="sure")
