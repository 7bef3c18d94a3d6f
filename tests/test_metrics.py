"""mire.metrics and `mire evaluate`: hand-computed cases, scikit-image references, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile
from skimage import metrics as skm

from mire import metrics as M

log2 = math.log2


# --------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------

def test_psnr_hand_computed():
    gt = np.array([[0.0, 4.0], [2.0, 2.0]])
    pred = gt + np.array([[1.0, -1.0], [0.0, 0.0]])
    # MSE = (1 + 1 + 0 + 0) / 4 = 0.5; default R = max - min = 4 -> 10 log10(16 / 0.5)
    assert M.psnr(gt, pred) == pytest.approx(10 * math.log10(32.0), abs=1e-12)
    # paper protocol: R = peak = 4 here too (background 0); R = 8 adds 20 log10(2)
    assert M.psnr(gt, pred, data_range=8) == pytest.approx(10 * math.log10(128.0), abs=1e-12)


def test_psnr_default_range_is_gt_range_not_peak():
    gt = np.array([10.0, 12.0, 14.0])        # range 4, peak 14
    pred = gt + 1.0                          # MSE = 1
    assert M.psnr(gt, pred) == pytest.approx(10 * math.log10(16.0))
    assert M.psnr(gt, pred, data_range=gt.max()) == pytest.approx(10 * math.log10(196.0))


def test_psnr_matches_skimage(rng):
    gt = rng.random((9, 20, 21))
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    ref = skm.peak_signal_noise_ratio(gt, pred, data_range=1.3)
    assert M.psnr(gt, pred, data_range=1.3) == pytest.approx(ref, abs=1e-10)
    u16 = (gt * 7000).astype(np.uint16)
    noisy = (u16 + rng.integers(0, 50, u16.shape)).astype(np.uint16)  # no wrap: max < 7050
    ref = skm.peak_signal_noise_ratio(u16, noisy, data_range=7000)
    assert M.psnr(u16, noisy, data_range=7000) == pytest.approx(ref, abs=1e-10)


def test_psnr_identical_is_inf():
    gt = np.arange(6.0)
    assert M.psnr(gt, gt) == math.inf


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------

def test_ssim_single_window_hand_computed():
    # A 5x5 image holds exactly one 5x5 window, so SSIM is that window's value.
    x = np.arange(25.0).reshape(5, 5) / 24          # mean 0.5
    y = 0.5 * x                                     # mean 0.25, var/4, cov = var/2
    var = np.mean((x - 0.5) ** 2)                   # population variance
    c1, c2 = 0.01 ** 2, 0.03 ** 2                   # R = 1
    expected = (2 * 0.5 * 0.25 + c1) * (2 * var / 2 + c2) / ((0.5 ** 2 + 0.25 ** 2 + c1) * (var + var / 4 + c2))
    assert M.ssim(x, y, data_range=1.0) == pytest.approx(expected, abs=1e-12)


def test_ssim_constant_images():
    # no structure: only the luminance term (2ab + C1) / (a^2 + b^2 + C1) remains
    a, b = np.full((6, 7, 8), 1.0), np.full((6, 7, 8), 0.5)
    c1 = 1e-4
    assert M.ssim(a, b, data_range=1.0) == pytest.approx((1 + c1) / (1.25 + c1), abs=1e-12)
    assert M.ssim(a, a, data_range=1.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(31, 40), (11, 17, 23)])
def test_ssim_matches_skimage_population_covariance(rng, shape):
    gt = rng.random(shape)
    pred = gt + 0.2 * rng.standard_normal(shape)
    for window in (5, 7):
        ref = skm.structural_similarity(gt, pred, win_size=window, data_range=1.0,
                                        use_sample_covariance=False)
        # 1e-9, not 1e-6: the n/(n-1) sample-covariance factor alone moves SSIM by ~1e-5
        assert M.ssim(gt, pred, data_range=1.0, window=window) == pytest.approx(ref, abs=1e-9)
    ref = skm.structural_similarity(gt, pred, gaussian_weights=True, data_range=1.0,
                                    use_sample_covariance=False)
    assert M.ssim(gt, pred, data_range=1.0, gaussian=True) == pytest.approx(ref, abs=1e-9)


def test_ssim_slabs_agree_with_one_piece(rng, monkeypatch):
    gt = rng.random((30, 12, 13))
    pred = gt + 0.3 * rng.standard_normal(gt.shape)
    whole = M.ssim(gt, pred, data_range=1.0)
    monkeypatch.setattr(M, "_SSIM_SLAB_VOXELS", 1)   # force one slab per 16 rows
    assert M.ssim(gt, pred, data_range=1.0) == pytest.approx(whole, abs=1e-12)


# --------------------------------------------------------------------------------------------
# bad image input
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("func", [M.psnr, M.ssim])
def test_image_metrics_bad_input(func):
    good = np.ones((8, 8)) * np.arange(8)
    with pytest.raises(ValueError, match="does not match"):
        func(good, good[:, :7])
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        func(bad, good)
    with pytest.raises(ValueError, match="NaN"):
        func(good, bad)
    with pytest.raises(ValueError, match="empty"):
        func(np.zeros((0, 8)), np.zeros((0, 8)))
    with pytest.raises(ValueError, match="constant"):
        func(np.ones((8, 8)), good)
    with pytest.raises(ValueError, match="data_range"):
        func(good, good, data_range=-1)
    with pytest.raises(TypeError, match="numeric"):
        func(np.array([["a"] * 8] * 8), good)


def test_ssim_bad_shapes_and_windows():
    with pytest.raises(ValueError, match="2D or 3D"):
        M.ssim(np.arange(10.0), np.arange(10.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        M.ssim(np.ones((5, 5, 5, 5)), np.ones((5, 5, 5, 5)), data_range=1)
    with pytest.raises(ValueError, match="smaller than the 5-wide"):
        M.ssim(np.ones((4, 9)), np.ones((4, 9)), data_range=1)
    with pytest.raises(ValueError, match="odd integer"):
        M.ssim(np.ones((9, 9)), np.ones((9, 9)), data_range=1, window=4)


# --------------------------------------------------------------------------------------------
# contingency table
# --------------------------------------------------------------------------------------------

def _dense_counts(gt, seg):
    gl, gi = np.unique(gt, return_inverse=True)
    sl, si = np.unique(seg, return_inverse=True)
    out = np.zeros((len(gl), len(sl)), np.int64)
    np.add.at(out, (gi.ravel(), si.ravel()), 1)
    return out, gl, sl


@pytest.mark.parametrize("case", ["small", "negative", "int8_extremes", "sparse_ids", "uint64_top",
                                  "gappy_ids", "many_pairs"])
def test_contingency_table_matches_dense_count(rng, case):
    if case == "small":
        gt, seg = rng.integers(0, 5, (7, 9)), rng.integers(0, 4, (7, 9)).astype(np.uint16)
    elif case == "negative":
        gt, seg = rng.integers(-5, 3, 200), rng.integers(-100, 3, 200)
    elif case == "int8_extremes":
        gt = rng.integers(-128, 128, 500).astype(np.int8)
        seg = np.array([-128, 127] * 250, np.int8)
    elif case == "sparse_ids":  # span far above the bincount budget -> sort path
        gt = rng.choice(np.array([0, 10 ** 12, 3 * 10 ** 15]), 300)
        seg = rng.integers(0, 3, 300)
    elif case == "uint64_top":  # ids above 2**63 must not wrap
        gt = (np.uint64(2 ** 64 - 1) - rng.integers(0, 4, 300).astype(np.uint64))
        seg = rng.integers(0, 2, 300).astype(np.uint64) * np.uint64(2 ** 63 + 5)
    elif case == "gappy_ids":  # key space too big until the ids in use are renumbered
        gt = rng.integers(0, 30, 400) * 100_000
        seg = rng.integers(0, 2000, 400)
    else:  # spans fit, their product does not even after renumbering: keys sorted
        gt = rng.integers(0, 3000, 5000)
        seg = rng.integers(0, 3000, 5000)
    table = M.contingency_table(gt, seg)
    dense, gl, sl = _dense_counts(gt, seg)
    np.testing.assert_array_equal(table.counts.toarray(), dense)
    np.testing.assert_array_equal(table.gt_labels, gl)
    np.testing.assert_array_equal(table.seg_labels, sl)
    assert table.gt_labels.dtype == np.asarray(gt).dtype


def test_contingency_table_bool_labels():
    t = M.contingency_table(np.array([True, True, False]), np.array([1, 2, 2]))
    np.testing.assert_array_equal(t.counts.toarray(), [[0, 1], [1, 1]])
    np.testing.assert_array_equal(t.gt_labels, [0, 1])


def test_contingency_table_docstring_case():
    t = M.contingency_table(np.array([1, 1, 2, 2]), np.array([5, 5, 5, 7]))
    np.testing.assert_array_equal(t.counts.toarray(), [[2, 0], [1, 1]])


# --------------------------------------------------------------------------------------------
# adapted Rand error and VOI: hand-computed cases
# --------------------------------------------------------------------------------------------

def test_arand_and_voi_hand_computed_partial_split_and_merge():
    gt = np.array([1, 1, 1, 2, 2, 2])
    seg = np.array([1, 1, 2, 2, 2, 2])
    # table n_ij: (1,1)=2, (1,2)=1, (2,2)=3; n = 6
    # sum n_ij^2 - n = 4 + 1 + 9 - 6 = 8
    # gt sizes 3, 3 -> 9 + 9 - 6 = 12;  seg sizes 2, 4 -> 4 + 16 - 6 = 14
    # precision = 8/14, recall = 8/12, error = 1 - 8 / ((12 + 14)/2) = 5/13
    err, prec, rec = M.adapted_rand_error(gt, seg)
    assert prec == pytest.approx(8 / 14, abs=1e-12)
    assert rec == pytest.approx(8 / 12, abs=1e-12)
    assert err == pytest.approx(5 / 13, abs=1e-12)
    # split = H(seg|gt): gt 1 (weight 1/2) is cut 2:1 -> entropy h(1/3); gt 2 is whole
    # merge = H(gt|seg): seg 2 (weight 4/6) holds gt 1 and gt 2 as 1:3 -> h(1/4)
    def h(q):
        return -(q * log2(q) + (1 - q) * log2(1 - q))
    split, merge = M.variation_of_information(gt, seg)
    assert split == pytest.approx(0.5 * h(1 / 3), abs=1e-12)       # 0.459148...
    assert merge == pytest.approx(4 / 6 * h(1 / 4), abs=1e-12)     # 0.540852...


def test_identical_up_to_renaming_is_perfect(rng):
    gt = rng.integers(1, 20, (6, 7, 8))
    seg = (gt * 37 + 1000).astype(np.uint32)   # a relabelling
    assert M.adapted_rand_error(gt, seg) == (0.0, 1.0, 1.0)
    assert M.variation_of_information(gt, seg) == (0.0, 0.0)


def test_full_split():
    gt = np.ones(4, int)
    seg = np.array([1, 2, 3, 4])
    # no pair shares a seg label: precision vacuously 1, recall 0/12 = 0, error 1 - 0/6 = 1
    assert M.adapted_rand_error(gt, seg) == (1.0, 1.0, 0.0)
    # split = log2(4) = 2 bits, nothing merged
    assert M.variation_of_information(gt, seg) == (2.0, 0.0)


def test_full_merge():
    gt = np.array([1, 1, 2, 2])
    seg = np.full(4, 9)
    # both = 8 - 4 = 4, gt pairs = 8 - 4 = 4, seg pairs = 16 - 4 = 12 -> P 1/3, R 1, error 1 - 4/8
    assert M.adapted_rand_error(gt, seg) == pytest.approx((0.5, 1 / 3, 1.0), abs=1e-12)
    # merging two equal halves costs exactly 1 bit
    assert M.variation_of_information(gt, seg) == pytest.approx((0.0, 1.0), abs=1e-12)


def test_gt_zero_is_ignored_by_arand_not_by_default_voi():
    gt = np.array([0, 0, 1, 1, 2, 2])
    seg = np.array([5, 6, 1, 1, 2, 2])     # the two gt-0 voxels are split: does not count
    assert M.adapted_rand_error(gt, seg) == (0.0, 1.0, 1.0)
    # scoring gt 0 as a segment: both = 1+1+4+4-6 = 4, gt pairs = 12-6 = 6, seg pairs = 10-6 = 4
    # P = 1, R = 4/6, error = 1 - 4/5 = 0.2
    assert M.adapted_rand_error(gt, seg, ignore_labels=()) == pytest.approx((0.2, 1.0, 2 / 3), abs=1e-12)
    # VOI ignores nothing by default: gt 0 (weight 2/6) is cut in two halves -> 1/3 bit split
    assert M.variation_of_information(gt, seg) == pytest.approx((1 / 3, 0.0), abs=1e-12)
    assert M.variation_of_information(gt, seg, ignore_labels=(0,)) == (0.0, 0.0)


def test_seg_zero_is_an_ordinary_segment():
    gt = np.array([1, 1, 2, 2])
    seg = np.array([0, 0, 0, 0])            # one big segment labelled 0: a full merge
    assert M.adapted_rand_error(gt, seg)[0] == pytest.approx(0.5)


def test_segmentation_scores_equal_individual_calls(rng):
    gt = rng.integers(0, 6, (10, 12, 14))
    seg = rng.integers(0, 9, (10, 12, 14))
    s = M.segmentation_scores(gt, seg)
    err, prec, rec = M.adapted_rand_error(gt, seg)
    split, merge = M.variation_of_information(gt, seg, ignore_labels=(0,))
    assert (s["arand_error"], s["arand_precision"], s["arand_recall"]) == (err, prec, rec)
    assert (s["voi_split"], s["voi_merge"]) == (split, merge)
    assert s["cremi_score"] == pytest.approx(math.sqrt(err * (split + merge)), abs=1e-15)
    assert s["cremi_score"] > 0.5     # random labels: clearly wrong


# --------------------------------------------------------------------------------------------
# adapted Rand error and VOI: scikit-image on random label volumes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.uint64, np.int64])
def test_label_metrics_match_skimage(rng, dtype):
    # blocky volumes (runs of labels) rather than pure noise, so errors are mid-range
    gt = np.repeat(rng.integers(0, 12, (6, 10, 40)), 2, axis=2).astype(dtype)
    seg = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 15, gt.shape)).astype(dtype)
    gt64, seg64 = gt.astype(np.int64), seg.astype(np.int64)
    err, prec, rec = M.adapted_rand_error(gt, seg)
    ref = skm.adapted_rand_error(gt64, seg64)
    # scikit-image returns (error, recall, precision): its issue #6485
    np.testing.assert_allclose((err, prec, rec), (ref[0], ref[2], ref[1]), atol=1e-6)
    assert 0.05 < err < 0.95
    for ignore in ((), (0,)):
        ours = M.variation_of_information(gt, seg, ignore_labels=ignore)
        theirs = skm.variation_of_information(gt64, seg64, ignore_labels=ignore)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_label_metrics_on_real_gala_ground_truth(shared_data):
    gt = tifffile.imread(shared_data("gala_fibsem_neurons", "test-gt.tif"))
    # a plausible wrong segmentation: merge every pair of neighbouring ids, split along z
    seg = (gt // 2).astype(np.int64) * 2 + (np.arange(gt.shape[0])[:, None, None] >= 25)
    s = M.segmentation_scores(gt, seg)
    ref_err, ref_p, ref_r = skm.adapted_rand_error(gt, seg)
    assert s["arand_error"] == pytest.approx(ref_err, abs=1e-6)
    assert (s["arand_precision"], s["arand_recall"]) == pytest.approx((ref_r, ref_p), abs=1e-6)
    ref_split, ref_merge = skm.variation_of_information(gt, seg, ignore_labels=(0,))
    assert (s["voi_split"], s["voi_merge"]) == pytest.approx((ref_split, ref_merge), abs=1e-6)
    assert s["voi_split"] > 0.5 and s["voi_merge"] > 0.1


# --------------------------------------------------------------------------------------------
# bad label input
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("func", [M.adapted_rand_error, M.variation_of_information,
                                  M.segmentation_scores, M.contingency_table])
def test_label_metrics_bad_input(func):
    gt = np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"gt shape \(2, 2\) does not match seg shape \(4,\)"):
        func(gt, gt.ravel())
    with pytest.raises(ValueError, match="empty"):
        func(np.zeros((0, 3), int), np.zeros((0, 3), int))
    with pytest.raises(TypeError, match="integer label image"):
        func(gt.astype(float), gt)
    with pytest.raises(TypeError, match="seg must be an integer"):
        func(gt, gt + 0.5)


def test_all_gt_ignored_is_an_error():
    with pytest.raises(ValueError, match="no voxels left to score"):
        M.adapted_rand_error(np.zeros(5, int), np.arange(5))
    with pytest.raises(ValueError, match="no voxels left to score"):
        M.segmentation_scores(np.zeros(5, int), np.arange(5))


# --------------------------------------------------------------------------------------------
# foreground precision / recall
# --------------------------------------------------------------------------------------------

def test_foreground_precision_recall_hand_computed():
    gt = np.array([1, 1, 1, 1, 0, 0], bool)
    mask = np.array([1, 1, 1, 0, 1, 0], bool)
    # 3 hits, 4 predicted, 4 true
    assert M.foreground_precision_recall(gt, mask) == (0.75, 0.75)
    # 0/255 masks read from files: nonzero is foreground
    assert M.foreground_precision_recall(gt.astype(np.uint8) * 255, mask.astype(np.uint8)) == (0.75, 0.75)


def test_foreground_empty_conventions():
    gt = np.array([1, 0, 0], bool)
    none = np.zeros(3, bool)
    assert M.foreground_precision_recall(gt, none) == (1.0, 0.0)
    assert M.foreground_precision_recall(none, gt) == (0.0, 1.0)
    assert M.foreground_precision_recall(none, none) == (1.0, 1.0)
    with pytest.raises(ValueError, match="does not match"):
        M.foreground_precision_recall(gt, none[:2])


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(M)
    assert result.failed == 0
    assert result.attempted >= 30       # every public function's example was found and run


# --------------------------------------------------------------------------------------------
# mire evaluate
# --------------------------------------------------------------------------------------------

@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from mire.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["evaluate", *map(str, args)])


def test_evaluate_image_metrics_json(cli, tmp_path, rng):
    gt = rng.random((8, 16, 16)).astype(np.float32)
    pred = (gt + 0.1 * rng.standard_normal(gt.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    res = cli(tmp_path / "pred.tif", tmp_path / "gt.tif", "--json", "--data-range", "peak")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"psnr", "ssim"}        # auto: float GT -> image metrics
    assert out["psnr"] == pytest.approx(M.psnr(gt, pred, data_range=float(gt.max())), abs=1e-9)
    assert out["ssim"] == pytest.approx(M.ssim(gt, pred, data_range=float(gt.max())), abs=1e-9)


def test_evaluate_label_metrics_table_and_json(cli, tmp_path):
    gt = np.array([[[0, 1, 1, 1, 2, 2, 2]]], np.int32)
    seg = np.array([[[9, 1, 1, 2, 2, 2, 2]]], np.int32)
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "seg.tif", seg)
    res = cli(tmp_path / "seg.tif", tmp_path / "gt.tif", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"arand_error", "arand_precision", "arand_recall", "voi_split", "voi_merge"}
    assert out["arand_error"] == pytest.approx(5 / 13)    # the hand-computed case above, gt 0 ignored
    res = cli(tmp_path / "seg.tif", tmp_path / "gt.tif", "--metrics", "arand,voi,cremi")
    assert res.exit_code == 0, res.output
    assert "adapted Rand error" in res.stdout and "0.384615" in res.stdout and "CREMI score" in res.stdout


def test_evaluate_infinite_psnr_is_null_in_json(cli, tmp_path):
    gt = np.arange(64, dtype=np.float32).reshape(8, 8)
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    res = cli(tmp_path / "gt.tif", tmp_path / "gt.tif", "--metrics", "psnr", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"psnr": None}


def test_evaluate_errors_exit_2(cli, tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.float32))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((8, 9), np.float32))
    tifffile.imwrite(tmp_path / "u16.tif", np.zeros((8, 8), np.uint16))

    def fails(*args):
        res = cli(*args)
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())   # rich wraps long messages: compare unwrapped

    msg = fails(tmp_path / "a.tif", tmp_path / "b.tif")
    assert "shape (8, 8)" in msg and "shape (8, 9)" in msg
    assert "--metrics" in fails(tmp_path / "u16.tif", tmp_path / "u16.tif")     # 16-bit: ambiguous
    assert "bogus" in fails(tmp_path / "a.tif", tmp_path / "a.tif", "--metrics", "psnr,bogus")
    assert "missing.tif" in fails(tmp_path / "missing.tif", tmp_path / "a.tif").replace(" ", "")
    assert "integer label image" in fails(tmp_path / "a.tif", tmp_path / "a.tif", "--metrics", "arand")
    assert "constant" in fails(tmp_path / "a.tif", tmp_path / "a.tif", "--metrics", "psnr")
    assert "'peak'" in fails(tmp_path / "a.tif", tmp_path / "a.tif", "--data-range", "huge")


def test_evaluate_foreground_and_ignore_none(cli, tmp_path):
    gt = np.array([[0, 0, 1, 1, 1, 2, 2, 2]], np.int32)
    seg = np.array([[8, 9, 1, 1, 2, 2, 2, 2]], np.int32)
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "seg.tif", seg)
    res = cli(tmp_path / "seg.tif", tmp_path / "gt.tif", "--metrics", "fg,arand", "--ignore-labels", "", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # foreground = nonzero: 6 true voxels, 8 predicted, 6 hits
    assert (out["fg_precision"], out["fg_recall"]) == pytest.approx((6 / 8, 1.0))
    # gt 0 now scored (its two voxels are split apart), by hand:
    # n_ij = (0,8)1 (0,9)1 (1,1)2 (1,2)1 (2,2)3 -> sum n^2 - n = 16 - 8 = 8
    # gt sizes 2,3,3 -> 22 - 8 = 14; seg sizes 1,1,2,4 -> 22 - 8 = 14; error = 1 - 8/14
    assert out["arand_error"] == pytest.approx(1 - 8 / 14, abs=1e-12)
