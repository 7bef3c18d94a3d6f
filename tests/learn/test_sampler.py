"""Patch samplers: streaming reads, paired augmentation, determinism, blind-spot masking, simulation."""

import numpy as np
import pytest

from mire.learn import PatchSampler, blind_spot_mask, noise2void_sampler, pairs_sampler, percentile_range, simulate_sampler


class CountingArray:
    """Array-like that records how many elements are read (to prove streaming)."""

    def __init__(self, array):
        self.array, self.read = array, 0
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        out = np.asarray(self.array[key])
        self.read += out.size
        return out


def test_sampler_streams_from_memmap(tmp_path):
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(64, 256, 256))
    mm[:] = 7
    mm.flush()
    counted = CountingArray(np.load(path, mmap_mode="r"))
    assert isinstance(counted.array, np.memmap)
    s = PatchSampler([(counted, counted)], patch=(8, 16, 16), normalize=[[(0, 10), (0, 10)]])
    x, y, mask = s.batch(0, batch_size=3)
    # exactly the 3 patches of both arrays were read: 2 * 3 * 2048 of the 4.2 M elements
    assert counted.read == 2 * 3 * 8 * 16 * 16
    assert x.shape == (3, 1, 8, 16, 16) and float(x.mean()) == pytest.approx(0.7)


def test_sampler_opens_npy_path_as_memmap(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((20, 20), np.float32))
    s = PatchSampler([(tmp_path / "a.npy", tmp_path / "a.npy")], patch=(8, 8), normalize=False)
    assert isinstance(s.groups[0][0], np.memmap)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        PatchSampler([(tmp_path / "missing.tif",)], patch=(8, 8))


def test_compressed_tiff_is_read_whole_when_small(tmp_path):
    # Regression: compressed stacks (the DIADEM files) were sampled through a lazy dask array that
    # decoded every touched page per patch: 1.7 s a training step, 10x the network's own time.
    import tifffile

    from mire.learn import open_array

    stack = np.random.default_rng(0).integers(0, 255, (6, 32, 32), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", stack, compression="zlib")
    small = open_array(tmp_path / "z.tif")
    assert isinstance(small, np.ndarray) and np.array_equal(small, stack)
    big = open_array(tmp_path / "z.tif", in_memory_bytes=stack.nbytes - 1)  # over budget: stays lazy
    assert not isinstance(big, np.ndarray) and np.array_equal(np.asarray(big[2:4, 5:9]), stack[2:4, 5:9])


def test_same_augmentation_for_input_and_target():
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    s = pairs_sampler(img, img.copy(), patch=(16, 16), seed=3)
    for step in range(5):
        x, y, _ = s.batch(step, batch_size=4)
        assert np.array_equal(x.numpy(), y.numpy())
    # the patches are windows of the image, flipped / rotated in the plane (not all untransformed)
    x = s.batch(0, batch_size=8)[0].numpy()[:, 0]
    lo, hi = s.ranges[0][0]
    windows = np.stack([(img[i:i + 16, j:j + 16] - lo) / (hi - lo) for i in range(25) for j in range(25)])

    def found(q):
        return np.abs(windows - q).max(axis=(1, 2)).min() < 1e-5

    assert all(any(found(np.rot90(q, k)) for k in range(4) for q in (p, p[::-1])) for p in x)
    assert not all(found(p) for p in x)


def test_batches_are_deterministic_per_step():
    img = np.random.default_rng(0).random((32, 32))
    s = pairs_sampler(img, img, patch=(8, 8), seed=1)
    a, b, c = s.batch(4, 2)[0], s.batch(4, 2)[0], s.batch(5, 2)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    other = pairs_sampler(img, img, patch=(8, 8), seed=2)
    assert not np.array_equal(a, other.batch(4, 2)[0])


def test_leading_axes_are_sampled_and_bad_shapes_named():
    stack = np.stack([np.full((16, 16), v, np.float32) for v in range(5)])  # 5 slices, a 2D patch
    s = PatchSampler([(stack, stack)], patch=(8, 8), normalize=False, augment=False)
    vals = {float(s.batch(i, 1)[0][0, 0, 0, 0]) for i in range(30)}
    assert vals == {0.0, 1.0, 2.0, 3.0, 4.0}
    with pytest.raises(ValueError, match="smaller than the patch"):
        PatchSampler([(stack,)], patch=(32, 8))
    with pytest.raises(ValueError, match="differ in shape"):
        PatchSampler([(stack, stack[:2])], patch=(8, 8))


def test_blind_spot_mask_never_leaks():
    img = np.arange(12 * 12, dtype=np.float64).reshape(12, 12)  # every value unique
    rng = np.random.default_rng(0)
    for _ in range(20):
        masked, mask = blind_spot_mask(img, rng, fraction=0.5, radius=2)
        sel = mask > 0
        assert sel.sum() == 72
        assert np.all(masked[sel] != img[sel])  # never the pixel's own value, borders included
        assert np.array_equal(masked[~sel], img[~sel])
        # the replacement comes from within the radius
        pos = np.argwhere(sel)
        src = np.stack(np.unravel_index(masked[sel].astype(int), img.shape), 1)
        assert np.abs(src - pos).max() <= 2
    vol = np.arange(6 * 8 * 8.0).reshape(6, 8, 8)
    masked, mask = blind_spot_mask(vol, rng, fraction=0.3, radius=1)
    assert np.all(masked[mask > 0] != vol[mask > 0])


def test_noise2void_sampler_masks_loss_pixels_only():
    noisy = np.random.default_rng(1).random((48, 48))
    x, y, mask = noise2void_sampler(noisy, patch=(32, 32), fraction=0.02).batch(0, 3)
    assert mask.shape == (3, 1, 32, 32) and int(mask.sum()) == 3 * 20
    diff = (x != y).numpy()
    assert diff[mask.numpy() == 0].sum() == 0 and diff[mask.numpy() > 0].all()


def test_simulate_sampler_noise_matches_protocol():
    clean = np.zeros((24, 48, 48))
    clean[12, 24, 24] = 100.0  # peak 100: the flat background shows the pure noise
    s = simulate_sampler(clean, patch=(8, 16, 16), conditions=["N2-B1"], augment=False, n_windows=1)
    assert s.ranges[0][0] == (0.0, 100.0)  # percentiles of a flat image fall back to min/max
    ex = s.make_example
    [(lo, hi)] = ex.stats[0]["N2-B1"]
    x, y, _ = s.batch(0, batch_size=16)
    noise = (x - y).numpy() * (hi - lo)  # back to clean-normalized units (peak = 1)
    assert np.std(noise) == pytest.approx(1 / 7, rel=0.05)
    # input normalized like Restorer.predict normalizes a degraded stack: by its own percentiles
    # (1st and 99.8th percentiles of N(0, 1/7): -2.33 / 7 and 2.88 / 7)
    assert lo == pytest.approx(-2.33 / 7, rel=0.1) and hi == pytest.approx(2.88 / 7, rel=0.1)


def _sparse_stack(shape=(16, 96, 96)):
    """Dark background, a bright structure in one corner only: percentiles depend on the window."""
    clean = np.zeros(shape)
    clean[:, 8:40, 8:40] = 50.0
    clean[:, 20:24, 8:40] = 250.0
    return clean


def test_simulated_normalization_spans_what_predict_meets():
    # Regression: the percentiles that normalized every training patch came from ONE central
    # crop, while Restorer.predict uses those of whatever it is given. On sparse data the two
    # differ by 2x and the network, trained at one scale, failed at the other.
    from mire.learn.normalize import percentile_range
    from mire.optics import simulate

    clean = _sparse_stack()
    s = simulate_sampler(clean, patch=(8, 32, 32), conditions=["N1-B1"], stats_size=(16, 96, 96), n_windows=24)
    windows = np.array(s.make_example.stats[0]["N1-B1"])
    assert windows.shape == (24, 2)
    # what predict computes, in the sampler's units (clean / 250): the whole stack, the empty
    # corner, the bright corner
    unit = s.ranges[0][0][1]
    noisy = simulate(clean, condition="N1-B1", seed=3) / unit
    for crop in (noisy, noisy[:, 48:, 48:], noisy[:, :48, :48]):
        lo, hi = percentile_range(crop)
        assert windows[:, 0].min() - 0.05 < lo < windows[:, 0].max() + 0.05
        assert windows[:, 1].min() * 0.9 < hi < windows[:, 1].max() * 1.1
    # and the windows really differ (the bright corner in or out)
    assert windows[:, 1].max() > 1.5 * windows[:, 1].min()


def test_own_window_normalizes_a_patch_by_its_own_degraded_crop():
    # Regression: a crop around a bright neurite is mapped by percentiles that the neurite
    # dominates, a normalization the random (mostly dark) windows never produced: the shipped
    # model left a +20 grey-level background on such crops.
    clean = _sparse_stack()
    kw = dict(patch=(8, 16, 16), conditions=["N1-B1"], n_windows=4, stats_size=(16, 96, 96), augment=False)
    own, bank = simulate_sampler(clean, own_window=1.0, **kw), simulate_sampler(clean, **kw)
    m = own.margin
    bright = np.full((8 + 2 * m, 16 + 2 * m, 16 + 2 * m), 250.0 / own.ranges[0][0][1])  # flat, at the peak
    x, y, _ = own.make_example([bright], np.random.default_rng(0), 0)
    # its own 1st / 99.8th percentiles are peak -2.33 / +2.88 noise SDs: the clean value maps to 2.33 / 5.21
    assert np.allclose(y, 2.33 / 5.21, atol=0.03)
    assert np.mean((x >= 0) & (x <= 1)) > 0.97
    _, y_bank, _ = bank.make_example([bright], np.random.default_rng(0), 0)
    assert float(y_bank.min()) > 1.0  # a window of the whole stack puts the peak far above 1


def test_percentile_range_reads_a_bounded_subsample():
    counted = CountingArray(np.arange(200 * 200, dtype=np.float64).reshape(200, 200))
    lo, hi = percentile_range(counted, percentiles=(0, 100), max_elements=1000)
    assert counted.read <= 1600
    assert lo == 0 and hi > 0.95 * 40000
    assert percentile_range(np.full((4, 4), 3.0)) == (3.0, 4.0)  # flat: unit range, no division by 0


def test_aligned_pairs_put_the_target_in_the_inputs_units():
    # Regression (W2S): noisy and clean each normalized by their own percentiles leave the target
    # at 0.4x..1x the input's signal scale, a different factor per image; align=True fixes it.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    clean = 200 * np.exp(-((yy - 40.0) ** 2 + (xx - 50.0) ** 2) / 300) + 10  # 8-bit-like export
    noisy = 0.3 * clean + 7 + 12 * rng.standard_normal(clean.shape)  # another stretch, heavy noise
    plain = pairs_sampler(noisy, clean, patch=(48, 48), augment=False)
    aligned = pairs_sampler(noisy, clean, patch=(48, 48), augment=False, align=True)
    assert aligned.ranges[0][0] == plain.ranges[0][0]  # the input is normalized as before

    def slope(sampler):
        x, y, _ = sampler.batch(0, 16)
        x, y = x.numpy().ravel(), y.numpy().ravel()
        a, b = np.polyfit(y, x, 1)
        return a, b

    a, b = slope(aligned)
    assert a == pytest.approx(1.0, abs=0.05) and b == pytest.approx(0.0, abs=0.03)
    assert slope(plain)[0] < 0.8  # percentiles of the noisy image include the noise's spread
    with pytest.raises(ValueError, match="not positively correlated"):
        pairs_sampler(noisy, -clean, patch=(48, 48), align=True)


def test_foreground_patches_hold_structure_and_off_changes_nothing():
    clean = np.zeros((8, 64, 64))
    clean[:, 30:34, 30:34] = 100.0  # 0.4% of the voxels
    clean[0, 0, 0] = 1.0
    uniform = PatchSampler([(clean,)], patch=(4, 16, 16), seed=0, make_example=lambda c, r, g: (c[0][None], c[0][None], None))
    biased = PatchSampler([(clean,)], patch=(4, 16, 16), seed=0, foreground=1.0, foreground_level=0.5,
                          make_example=lambda c, r, g: (c[0][None], c[0][None], None))
    hit = lambda s: float(np.mean([(s.batch(k, 8)[1].amax(dim=(1, 2, 3, 4)) > 0.5).float().mean() for k in range(4)]))  # noqa: E731
    assert hit(uniform) < 0.3  # (16 + 3)^2 / 49^2 = 15% of the positions touch the square
    assert hit(biased) > 0.85  # 20 tries: 1 - 0.85^20 = 96%
    # foreground=0 draws nothing extra: batches identical to a sampler built before the option existed
    again = PatchSampler([(clean,)], patch=(4, 16, 16), seed=0, foreground=0.0,
                         make_example=lambda c, r, g: (c[0][None], c[0][None], None))
    assert np.array_equal(uniform.batch(3, 4)[0].numpy(), again.batch(3, 4)[0].numpy())
    with pytest.raises(ValueError, match="foreground"):
        PatchSampler([(clean,)], patch=(4, 16, 16), foreground=1.5)
