"""microscope_change: whole-volume blur, lost resolution and noise for training models that transfer."""

from __future__ import annotations

import numpy as np
import pytest

from mire.segment import microscope_change


def _edges():
    img = np.zeros((16, 32, 32), np.float32)
    img[:, :, ::4] = 1.0  # membranes every 4 voxels: all high-frequency energy
    return img


def _hf_energy(a):
    f = np.abs(np.fft.rfftn(a - a.mean())) ** 2
    return float(f[:, :, f.shape[2] // 2:].sum())


def test_blur_and_resample_lower_high_frequencies_labels_untouched():
    img = _edges()
    lab = np.arange(img.size).reshape(img.shape)
    for kw in (dict(p_blur=1.0, p_resample=0.0, blur=(1.0, 1.5)), dict(p_blur=0.0, p_resample=1.0)):
        out, lab_out = microscope_change(img, lab, rng=np.random.default_rng(1), p_noise=0.0, **kw)
        assert out.shape == img.shape and out.dtype == np.float32
        assert _hf_energy(out) < 0.5 * _hf_energy(img), kw
        assert np.array_equal(lab_out, lab)
        # intensity is redistributed, not lost (the coarser grid aliases this pattern a little)
        assert abs(out.mean() - img.mean()) < 0.05


def test_noise_sd_within_range_and_seeded():
    img = np.full((8, 32, 32), 0.5, np.float32)
    out, _ = microscope_change(img, rng=np.random.default_rng(2), p_blur=0.0, p_resample=0.0, p_noise=1.0,
                               noise=(0.05, 0.05))
    assert out.std() == pytest.approx(0.05, rel=0.05)
    again, _ = microscope_change(img, rng=np.random.default_rng(2), p_blur=0.0, p_resample=0.0, p_noise=1.0,
                                 noise=(0.05, 0.05))
    assert np.array_equal(out, again)


def test_probability_zero_is_identity():
    img = _edges()
    out, _ = microscope_change(img, rng=np.random.default_rng(0), p_blur=0.0, p_resample=0.0, p_noise=0.0)
    assert np.array_equal(out, img)


def test_segmenter_rejects_unknown_augment():
    from mire.segment import Segmenter

    m = Segmenter("fast", ndim=3, target="affinities")
    with pytest.raises(ValueError, match="em_augment"):
        m.train(np.random.default_rng(0).random((16, 32, 32)), np.ones((16, 32, 32), int), patch=(16, 32, 32),
                epochs=1, steps_per_epoch=1, em_augment="blurry", progress=False)
