"""Accelerated Richardson-Lucy, the shifted-Poisson noise model and the automatic (hold-out) stop."""

import numpy as np
import pytest
from scipy import ndimage

from mire.metrics import psnr
from mire.optics import gaussian_psf
from mire.restore import richardson_lucy
from mire.restore.richardson_lucy import poisson_model


def _beads(seed=0, shape=(72, 72), n=30, peak=200.0, base=2.0):
    rng = np.random.default_rng(seed)
    truth = np.full(shape, base)
    for _ in range(n):
        cy, cx = rng.integers(6, shape[0] - 6, 2)
        truth[cy - 1:cy + 2, cx - 1:cx + 2] += rng.uniform(0.3, 1.0) * peak
    return truth


def _bead_case():
    """Beads blurred by a Gaussian (sigma 2), Poisson noise, no background or read noise."""
    truth = _beads()
    y = np.random.default_rng(1).poisson(ndimage.gaussian_filter(truth, 2.0, mode="reflect")).astype(float)
    return truth, gaussian_psf(2.0, ndim=2), y, dict(background=0, read_noise=0)


def _curve(y, psf, truth, n, **kw):
    out = []
    richardson_lucy(y, psf, n_iter=n, callback=lambda k, x: out.append(psnr(truth, x, data_range=truth.max())), **kw)
    return np.array(out)


def test_biggs_reaches_plain_psnr_in_fewer_iterations():
    truth, psf, y, model = _bead_case()
    plain = _curve(y, psf, truth, 40, acceleration=None, **model)
    fast = _curve(y, psf, truth, 40, acceleration="biggs", **model)
    target = plain[-1]  # plain RL after 40 iterations
    first = int(np.argmax(fast >= target)) + 1
    assert fast.max() >= target and first <= 16  # measured: 12 iterations instead of 40
    # extrapolation keeps the estimate non-negative
    out = richardson_lucy(y, psf, n_iter=15, acceleration="biggs", **model)
    assert out.min() >= 0


def test_over_relaxed_first_step_does_in_two_iterations_what_three_did(monkeypatch):
    import importlib

    rl_module = importlib.import_module("mire.restore.richardson_lucy")
    truth, psf, y, model = _bead_case()
    plain = _curve(y, psf, truth, 3, acceleration=None, **model)
    fast = _curve(y, psf, truth, 3, acceleration="biggs", **model)
    # the step x c^2 changes the total intensity, the next (plain) step restores it: on the periodic
    # boundary (H^T 1 = 1) RL keeps the data's sum
    steps = []
    x2 = richardson_lucy(y, psf, n_iter=2, boundary="circular", callback=lambda k, x: steps.append(x.copy()), **model)
    assert abs(steps[0].sum() / y.sum() - 1) > 1e-3
    np.testing.assert_allclose(x2.sum(), y.sum(), rtol=1e-6)
    # a one-iteration call takes the plain step (the long one needs the second after it)
    one = richardson_lucy(y, psf, n_iter=1, acceleration="biggs", **model)
    np.testing.assert_array_equal(one, richardson_lucy(y, psf, n_iter=1, acceleration=None, **model))
    monkeypatch.setattr(rl_module, "FIRST_STEP", 1.0)
    slow = _curve(y, psf, truth, 3, acceleration="biggs", **model)
    # without it Biggs's first two steps are plain RL's, bit for bit
    np.testing.assert_array_equal(slow[:2], plain[:2])
    # measured: 18.94 dB at 2 iterations against 18.79 (plain, 3) and 18.87 (Biggs alone, 3)
    assert fast[1] > plain[2] and fast[1] > slow[2] and fast[1] > slow[1] + 0.5


def test_auto_stop_near_best_iteration_and_scale_offset_invariant():
    truth = _beads(seed=2, peak=60.0)
    psf = gaussian_psf(1.5, ndim=2)
    rng = np.random.default_rng(3)
    y = rng.poisson(ndimage.gaussian_filter(truth, 1.5, mode="reflect")) + 2.0 * rng.standard_normal(truth.shape)
    curve = _curve(y, psf, truth, 60)
    out, info = richardson_lucy(y, psf, return_info=True)
    assert info["stopped"] and info["iterations_run"] == info["n_iter"] + 3
    k = info["n_iter"]
    # within 0.5 dB of the best of 60 full-data iterations (measured: 25.83 vs 26.23 dB, 6 vs 8 iterations)
    assert psnr(truth, out, data_range=truth.max()) >= curve.max() - 0.5
    # the stop uses the data's own gain and offset: x 0.01 or 12-bit-like + offset stop at the same iteration
    out_s, info_s = richardson_lucy(0.01 * y, psf, return_info=True)
    assert info_s["n_iter"] == k
    np.testing.assert_allclose(out_s, 0.01 * out, rtol=2e-3, atol=2e-3 * 0.01 * np.abs(out).max())
    out_o, info_o = richardson_lucy(16 * y + 100, psf, return_info=True)
    assert abs(info_o["n_iter"] - k) <= 1


def test_poisson_model_recovers_gain_read_noise_and_offset():
    rng = np.random.default_rng(4)
    lam = ndimage.gaussian_filter(_beads(seed=5, shape=(96, 96), n=80, peak=300.0, base=20.0), 2.0)
    gain, read, offset = 2.0, 4.0, 100.0
    y = gain * rng.poisson(lam) + offset + read * rng.standard_normal(lam.shape)
    m = poisson_model(y)
    assert m["gain"] == pytest.approx(gain, rel=0.25)  # measured 2.37
    # the darkest local mean: the offset plus the 20-photon base (140), less a little noise
    assert offset + gain * 20 - 3 * read <= m["background"] <= offset + gain * 20 + read
    assert m["shift"] > 0


def test_rl_new_option_errors():
    psf = gaussian_psf(1.0, ndim=2)
    img = np.ones((16, 16))
    with pytest.raises(ValueError, match="acceleration"):
        richardson_lucy(img, psf, acceleration="nesterov")
    with pytest.raises(ValueError, match="n_iter"):
        richardson_lucy(img, psf, n_iter="many")
    with pytest.raises(ValueError, match="gain"):
        richardson_lucy(img, psf, gain=-1.0)
    with pytest.raises(ValueError, match="read_noise"):
        richardson_lucy(img, psf, read_noise=-1.0)


_REPEAT = """
import sys
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
from mire.optics import gaussian_psf
from mire.restore import richardson_lucy
x = np.random.default_rng(3).random((8, 64, 64)).astype(np.float32)
acc = None if sys.argv[2] == "none" else "biggs"
out = richardson_lucy(x, gaussian_psf(1.0, ndim=3), n_iter=20, block_shape=(8, 16, 16), acceleration=acc)
np.save(sys.argv[3], out)
"""


@pytest.mark.parametrize("acceleration", ["none", "biggs"])
def test_blockwise_rl_repeats_bit_for_bit_across_processes_and_threads(tmp_path, acceleration):
    # Fresh processes (their own buffer alignment and thread pools): the FFTs are pocketfft's, whose
    # 1D transforms do not depend on alignment or workers, and the Biggs factors are float64 pairwise
    # sums, so the runs agree exactly, at 1 and at 2 threads. Before, they differed by up to 6e-6 (plain),
    # 1.3e-4 (Biggs) and 0.09 (Biggs, 1 vs 2 threads).
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    outs = []
    for i, threads in enumerate((1, 1, 2)):
        path = tmp_path / f"r{i}.npy"
        subprocess.run([sys.executable, "-c", _REPEAT, str(threads), acceleration, str(path)], check=True, env=env,
                       timeout=120)
        outs.append(np.load(path))
    assert np.array_equal(outs[0], outs[1])
    assert np.array_equal(outs[0], outs[2])


def test_tail_quantile_is_numpys_bit_for_bit():
    """The noise curve's bin range from the tails only equals np.quantile exactly (ties, sorted and
    structured arrays, and a tail the strided sample misses, which falls back)."""
    from mire.restore._common import _tail_quantile

    rng = np.random.default_rng(0)
    cases = [rng.standard_normal(50001), rng.poisson(3, 70000) / 8.0, np.sort(rng.random(40000)),
             np.concatenate([np.zeros(30000), rng.random(30)])]  # a bright tail of 30 values
    spiky = rng.random(60000)
    spiky[1::4096] = -5.0  # every strided-sample point but one is dark: the threshold misses the tail
    cases.append(spiky)
    for a in cases:
        for q in (0.001, 0.9999, 0.005, 0.995):
            assert _tail_quantile(a, q) == float(np.quantile(a, q))


@pytest.mark.parametrize("shape, sigma", [((15, 22, 17), (1.2, 1.0, 1.5)), ((40, 33), 1.5), ((5, 30), 2.0)])
def test_box_scale_multiplies_as_the_full_inverse_norm(shape, sigma):
    """1 / H^T 1 kept as a box of one value and the slabs around it multiplies exactly as the full array
    (also when the image is narrower than the kernel along an axis)."""
    import torch

    from mire.restore.richardson_lucy import _BoxScale, _box_adjoint, _expand, _inverse_norm

    kernel = gaussian_psf(sigma, ndim=len(shape)).astype(np.float32)
    small, index = _box_adjoint(kernel, shape, torch.float32)
    inv = _inverse_norm(small)
    full = _expand(inv, index, "cpu")
    t = torch.rand(full.shape, generator=torch.Generator().manual_seed(0)) + 0.5
    want = t.clone().mul_(full)
    got = _BoxScale(inv, index, "cpu").mul_(t.clone())
    assert torch.equal(got, want)
    assert len(torch.unique(full)) > 1  # the border does differ from the box


def test_rl_refuses_data_mostly_below_a_given_background():
    """With background and read_noise=0 given, data more than a quarter below the background are an
    error (counted only when any value is negative); a few below it are clipped, not an error."""
    rng = np.random.default_rng(1)
    img = rng.poisson(10.0, (24, 24)).astype(np.float32)
    psf = gaussian_psf(1.0, ndim=2)
    with pytest.raises(ValueError, match=r"\d+ values \(\d+ %\) below background"):
        richardson_lucy(img, psf, n_iter=2, background=12.0, read_noise=0)
    assert 0 < np.mean(img < 5) < 0.25  # a few below 5
    out = richardson_lucy(img, psf, n_iter=2, background=5.0, read_noise=0)
    assert np.isfinite(out).all() and out.min() >= 5.0 - 1e-5
