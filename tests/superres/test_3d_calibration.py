"""3D paths (noiseless pure-shift recovery, registration) and the calibration of the posterior SD."""

import numpy as np
import pytest
import torch

from mire.optics import gaussian_psf
from mire.superres import register_frames, registration_error, superresolve
from mire.superres._model import FrameModel


def test_exact_recovery_3d_noiseless_pure_shifts(scene):
    """ZYX volume, factor (1, 2, 2), the 4 YX sub-pixel phases plus Z shifts, no noise, known
    registration: ML by CG to convergence recovers the volume (the system is well-posed)."""
    x = scene((6, 12, 12), sigma=1.0)
    shifts = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0], [-1, 1, 1]], float)
    model = FrameModel(x.shape, (1, 2, 2), None, np.c_[shifts, np.zeros(len(shifts))])
    frames = model.forward(torch.as_tensor(x)).numpy()
    assert frames.shape == (6, 6, 6, 6)
    est = superresolve(frames, factor=(1, 2, 2), method="ml", psf_sigma=0, registration={"shifts": shifts},
                       refine_registration=False, margin=0, n_iter=300, n_outer=1)
    assert est.shape == x.shape
    assert np.linalg.norm(est - x) / np.linalg.norm(x) < 1e-3


def test_register_frames_3d_shifts(scene):
    """3D shifts (Z, Y, X) in high-res px come back within 0.1 px; no rotation is invented."""
    x = scene((16, 32, 32), sigma=2.0)
    shifts = np.array([[0, 0, 0], [1.0, 1.5, -2.0], [-1.0, -0.5, 1.0]])
    model = FrameModel(x.shape, (1, 2, 2), None, np.c_[shifts, np.zeros(3)])
    frames = model.forward(torch.as_tensor(x)).numpy()
    reg = register_frames(frames, factor=(1, 2, 2))
    err = registration_error(reg, {"shifts": shifts, "rotations": np.zeros(3)})
    assert err["shift_rms"] < 0.1
    assert err["rotation_rms_deg"] < 0.1


def _gmrf_sample(n, lam, rng):
    """A draw from the Bayesian method's own prior (periodic gradient GMRF, precision lam (D^T D + 0.01))."""
    f = 2 * np.pi * np.fft.fftfreq(n)
    lap = (2 - 2 * np.cos(f))[:, None] + (2 - 2 * np.cos(f))[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) / np.sqrt(lam * (lap + 1e-2)))) + 0.5


def test_posterior_sd_is_calibrated_when_the_prior_holds():
    """On a scene drawn from the prior, the learned hyperparameters are right and the per-pixel
    posterior SD matches the actual error: RMS error / mean SD near 1, about 68% of the pixels
    within one SD (measured: ratio 1.06, coverage 0.66 / 0.94 for 1 / 2 SD, lambda 58 vs 50)."""
    rng = np.random.default_rng(0)
    n, lam0, sigma = 40, 50.0, 0.02
    x = _gmrf_sample(n, lam0, rng)
    shifts = rng.uniform(-2, 2, (8, 2))
    shifts[0] = 0
    model = FrameModel((n, n), (2, 2), gaussian_psf(1.0, ndim=2), np.c_[shifts, np.zeros(8)])
    frames = model.forward(torch.as_tensor(x)).numpy() + rng.normal(0, sigma, (8, n // 2, n // 2))
    est, info = superresolve(frames, factor=2, method="bayesian", psf_sigma=1.0, registration={"shifts": shifts},
                             refine_registration=False, margin=0, sd_distance=4, n_outer=4, return_info=True)
    c = (slice(4, -4),) * 2
    err, sd = (est - x)[c], info["posterior_sd"][c]
    assert info["noise_sd"] == pytest.approx(sigma, rel=0.1)
    assert info["lambda"] == pytest.approx(lam0, rel=0.35)  # learned by the marginal likelihood
    ratio = np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(sd**2))
    assert 0.8 < ratio < 1.25
    assert 0.58 < np.mean(np.abs(err) < sd) < 0.78
    assert 0.88 < np.mean(np.abs(err) < 2 * sd) < 0.99


def _laplacian_sample(n, lam, rng):
    f = 2 * np.pi * np.fft.fftfreq(n)
    lap = (2 - 2 * np.cos(f))[:, None] + (2 - 2 * np.cos(f))[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) / np.sqrt(lam * (lap**2 + 1e-2)))) + 0.5


@pytest.mark.parametrize("true_prior", ["gradient", "laplacian"])
def test_auto_prior_picks_the_prior_the_scene_was_drawn_from(true_prior):
    """The evidence includes log|P|, so it compares the two priors: it picks the one that made the scene."""
    rng = np.random.default_rng(1)
    n = 32
    x = _gmrf_sample(n, 50.0, rng) if true_prior == "gradient" else _laplacian_sample(n, 200.0, rng)
    shifts = rng.uniform(-2, 2, (6, 2))
    shifts[0] = 0
    model = FrameModel((n, n), (2, 2), gaussian_psf(1.0, ndim=2), np.c_[shifts, np.zeros(6)])
    frames = model.forward(torch.as_tensor(x)).numpy() + rng.normal(0, 0.01, (6, n // 2, n // 2))
    _, info = superresolve(frames, factor=2, method="bayesian", prior="auto", psf_sigma=1.0,
                           registration={"shifts": shifts}, refine_registration=False, margin=0,
                           sd_distance=None, n_outer=3, return_info=True)
    assert info["prior"] == true_prior, info["evidence"]


def test_prior_logdet_matches_dense():
    from mire.superres.bayes import RIDGE, prior_logdet
    from mire.superres.priors import gradient_operator, laplacian_operator

    shape = (5, 7)
    eye = torch.eye(35, dtype=torch.float64).reshape((35,) + shape)
    for name, op in (("gradient", gradient_operator), ("laplacian", laplacian_operator)):
        dense = op(eye, 2).reshape(35, 35).numpy() + RIDGE * np.eye(35)
        assert prior_logdet(name, shape) == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-9)
