"""Label-free settings, unsupervised adaptation and sparse fine-tuning (issue #17)."""

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi
from typer.testing import CliRunner

from mire.cli import app
from mire.data import em_cells
from mire.learn.losses import pixel_loss
from mire.metrics import adapted_rand_error
from mire.segment import Segmenter, affinities, baseline_boundary_map, segment_affinities, segment_blockwise, \
    segment_boundaries
from mire.segment.adapt import (auto_threshold, correlation_length, edge_scores_from_stats, quantile_map,
                                reestimate_batchnorm, weighted_otsu)


def _gamma(img, g=0.5):
    return np.clip(255 * (img.astype(np.float64) / 255) ** g, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ rules
def test_weighted_otsu_hand_case():
    # two clusters {0.1, 0.2} and {0.8, 0.9}: every split between them has the same between-class
    # variance; the first one (right after 0.2's bin) is returned
    assert weighted_otsu([0.1, 0.1, 0.2, 0.8, 0.9], bins=10) == pytest.approx(0.3)
    # weights move the split (hand-computed between-class variances: 7.2 vs 20.9 either way round)
    assert weighted_otsu([0.1, 0.5, 0.9], [1, 1, 1], bins=10) == pytest.approx(0.2)
    assert weighted_otsu([0.1, 0.5, 0.9], [1, 10, 10], bins=10) == pytest.approx(0.6)


def test_auto_threshold_is_clipped_and_handles_an_empty_graph():
    assert auto_threshold([0.0, 0.0, 0.01]) == pytest.approx(0.05)
    assert auto_threshold([]) == pytest.approx(0.425)


def test_edge_scores_from_histograms():
    # edge 0: faces 0.1, 0.1, 0.9 (median 0.1); edge 1: 0.6, 0.9, 0.9 (median 0.9); 10 bins
    hist = np.zeros((2, 10), np.uint32)
    hist[0, 1], hist[0, 9] = 2, 1
    hist[1, 6], hist[1, 9] = 1, 2
    counts, sums = np.array([3, 3]), np.array([1.1, 2.4])
    np.testing.assert_allclose(edge_scores_from_stats(counts, sums, hist, q=0.5), [0.15, 0.95])
    np.testing.assert_allclose(edge_scores_from_stats(counts, sums), [1.1 / 3, 0.8])


def test_quantile_map_identity_and_ties():
    q = np.linspace(0, 1, 5) ** 2
    x, y = quantile_map(q, q)
    v = np.linspace(0, 1, 11)
    np.testing.assert_allclose(np.interp(v, x, y), v)
    x, y = quantile_map([0, 0, 0.5, 1], [0, 0.1, 0.5, 1])  # tied source knots are merged
    assert np.all(np.diff(x) > 0)


def test_correlation_length_ignores_noise_and_contrast_and_follows_scale():
    rng = np.random.default_rng(0)
    v = ndi.gaussian_filter(rng.normal(size=(48, 48, 48)), 2.0)
    base = correlation_length(v)
    assert correlation_length(v + rng.normal(0, 0.5 * v.std(), v.shape)) == pytest.approx(base, rel=0.05)
    u = (v - v.min()) / (v.max() - v.min())
    assert correlation_length(u ** 0.5) == pytest.approx(base, rel=0.1)  # a moderate monotone change
    assert 1.7 < correlation_length(ndi.zoom(v, 2, order=1)) / base < 2.3


# ------------------------------------------------------------ adaptation
def _tiny(target="affinities", norm="none"):
    from mire.nets.config import PRESETS

    torch.manual_seed(0)
    return Segmenter(dict(PRESETS["tiny"], norm=norm), ndim=3, target=target)


def test_adapt_changes_nothing_when_source_and_target_statistics_agree():
    image, _ = em_cells((16, 48, 48), seed=0)
    seg = _tiny(norm="batch")
    seg.metadata["normalization"]["reference"] = seg.reference_statistics([image])
    before = seg.predict(image)
    seg.adapt(image)  # the volume *is* the reference: histogram matching is the identity
    np.testing.assert_allclose(seg.predict(image), before, atol=1e-5)
    # batch-norm statistics that were estimated on this volume are estimated again to the same values
    seg.adapt(image, intensity=False, batchnorm=True)
    once = seg.predict(image)
    seg.adapt(image, intensity=False, batchnorm=True)
    np.testing.assert_allclose(seg.predict(image), once, atol=1e-6)


def test_batchnorm_reestimation_sees_the_volume():
    seg = _tiny(norm="batch")
    bns = [m for m in seg.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns
    img = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)  # one tile: the whole image
    seen = []
    hook = bns[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    with torch.no_grad():
        seg.model.eval()(torch.from_numpy(img)[None, None])
    hook.remove()
    x = seen[0].transpose(0, 1).reshape(seen[0].shape[1], -1)  # what the first batch norm sees, per channel
    assert reestimate_batchnorm(seg.model, img, preprocess=lambda v: v) == len(bns)
    np.testing.assert_allclose(bns[0].running_mean.numpy(), x.mean(1).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bns[0].running_var.numpy(), x.var(1, unbiased=True).numpy(), rtol=1e-3)
    assert bns[0].momentum == 0.1 and not bns[0].training  # settings restored


def test_adapt_needs_reference_statistics():
    seg = _tiny()
    seg.metadata["normalization"].pop("reference", None)
    with pytest.raises(ValueError, match="reference"):
        seg.adapt(np.zeros((16, 32, 32)))


def test_adapted_model_saves_and_loads(tmp_path):
    image, _ = em_cells((16, 48, 48), seed=1)
    seg = _tiny()
    seg.metadata["normalization"]["reference"] = seg.reference_statistics([em_cells((16, 48, 48), seed=2)[0]])
    seg.adapt(_gamma(image))
    seg.save(tmp_path / "m")
    back = Segmenter.load(tmp_path / "m")
    assert back.metadata["adaptation"]["intensity"] == seg.metadata["adaptation"]["intensity"]
    np.testing.assert_allclose(back.predict(_gamma(image)), seg.predict(_gamma(image)), atol=1e-6)


# ------------------------------------------------------- label-free settings
def test_label_free_settings_survive_a_monotone_contrast_change():
    """The shipped model with its default settings (threshold, seeds and normalization all
    from the volume) segments a volume and its gamma-changed copy the same way."""
    image, _ = em_cells((24, 64, 64), seed=3)
    model = Segmenter.load("fibsem3d-affinity")
    assert model.metadata["postprocess"]["threshold"] == "auto"
    a = model.segment(image)
    b = model.segment(_gamma(image, 0.5))
    c = model.segment(_gamma(image, 2.0))
    assert adapted_rand_error(a, b)[0] <= 0.02
    assert adapted_rand_error(a, c)[0] <= 0.02
    assert isinstance(model.last_settings["threshold"], float)


def test_label_free_settings_survive_a_monotone_contrast_change_on_real_em(shared_data):
    """Issue #17's bound on a real FIB-SEM crop (gala test, design data), not only the synthetic volume:
    the shipped model's label-free segmentation of the crop and of its gamma 0.5 / 2 copies agree within
    ARAND 0.02 (measured 0.0015 / 0.0041). The unlabeled neuroproof cube still misses it (0.17 / 0.19,
    experiments/results/em_contrast_diagnosis.md, em_label_free_rule_gate.md)."""
    raw = tifffile.imread(shared_data("gala_fibsem_neurons", "test-image.tif"))[:32, :96, :96]
    model = Segmenter.load("fibsem3d-affinity")
    a = model.segment(raw)
    assert 20 < np.count_nonzero(np.unique(a)) < 100  # a real segmentation (45 segments), not one blob
    for g in (0.5, 2.0):
        assert adapted_rand_error(a, model.segment(_gamma(raw, g)))[0] <= 0.02, g


def test_auto_threshold_follows_the_volumes_scores():
    # 4 bands of 16 px along x: 2-px membranes (0.9) between bands, a weak 1-px ridge (0.35) inside
    # each band that splits it into two fragments; faces score 0.9 across a membrane, 0.2 at a ridge
    prof = np.full(64, 0.05)
    for k in range(4):
        prof[16 * k + 8] = 0.35
    prof[[15, 16, 31, 32, 47, 48]] = 0.9
    b = np.tile(prof, (24, 1)).astype(np.float32)
    kw = dict(seed_threshold=0.3, min_distance=2, sigma=0, alpha=1.0)
    seg, frag, res = segment_boundaries(b, threshold="auto", return_result=True, **kw)
    assert frag.max() == 8 and len(np.unique(seg)) == 4  # ridges merged, membranes kept
    assert 0.2 < res.thresholds[0] < 0.9
    # the same volume with every score halved: a fixed 0.5 merges everything, "auto" still splits at 0.45
    half = segment_boundaries(b / 2, threshold="auto", return_result=True, **dict(kw, seed_threshold=0.15))
    assert len(np.unique(half[0])) == 4 and 0.1 < half[2].thresholds[0] < 0.45
    assert len(np.unique(segment_boundaries(b / 2, threshold=0.5, **dict(kw, seed_threshold=0.15)))) == 1


def test_auto_blockwise_matches_in_memory():
    image, _ = em_cells((12, 96, 96), seed=1)
    b = baseline_boundary_map(image)
    whole = segment_boundaries(b, threshold="auto", seed_threshold="auto")
    blocks = segment_blockwise(b, block_shape=(6, 48, 48), halo=(4, 16, 16), threshold="auto",
                               seed_threshold="auto")
    assert adapted_rand_error(whole, blocks)[0] < 0.02
    with pytest.raises(ValueError, match="stitch='graph'"):
        segment_blockwise(b, block_shape=(6, 48, 48), halo=(4, 16, 16), threshold="auto", stitch="overlap")


# --------------------------------------------------------- sparse fine-tune
def _sparse_labels(labels, zs):
    from skimage.segmentation import expand_labels

    out = np.zeros_like(labels)
    for z in zs:
        out[z] = expand_labels(labels[z], 4)  # a painted slice: every voxel one body
    return out


def test_sparse_unpainted_voxels_get_no_gradient():
    _, lab = em_cells((16, 32, 32), seed=0)
    sparse = _sparse_labels(lab, [8])
    seg = _tiny()
    make = seg._make_example(0, False)
    img = np.random.default_rng(0).random(lab.shape).astype(np.float32)
    x, y, mask = make([img, sparse.astype(np.float32)], np.random.default_rng(0), 0)
    # every pair touching an unpainted voxel is masked: only in-plane pairs of slice 8 remain
    assert mask[0].sum() == 0  # z-affinities pair slice 8 with unpainted slices
    assert np.all(mask[:, :8] == 0) and np.all(mask[:, 9:] == 0) and mask[1:, 8].sum() > 0
    pred = torch.zeros((1,) + y.shape, requires_grad=True)
    loss = pixel_loss("bce")(pred, torch.from_numpy(y)[None], torch.from_numpy(mask)[None])
    loss.backward()
    grad = pred.grad[0].numpy()
    assert np.all(grad[mask == 0] == 0) and np.abs(grad[mask > 0]).min() > 0


def test_sparse_fine_tune_lowers_the_painted_slice_loss():
    image, lab = em_cells((16, 32, 32), seed=4)
    sparse = _sparse_labels(lab, [7])
    seg = _tiny()
    seg.metadata["normalization"]["reference"] = seg.reference_statistics([image])

    def painted_loss():
        target, mask = affinities(sparse, offsets=seg.offsets, ignore_label=0)
        logit = torch.logit(torch.from_numpy(seg.predict(image)).clamp(1e-6, 1 - 1e-6))
        return float(pixel_loss("bce")(logit, torch.from_numpy(target), torch.from_numpy(mask)))

    before = painted_loss()
    hist = seg.train(image, sparse, sparse=True, patch=(8, 32, 32), epochs=1, steps_per_epoch=25, batch_size=2,
                     lr=3e-3, progress=False, em_augment=False)
    assert painted_loss() < 0.8 * before
    assert seg.metadata["training"]["sparse"] and seg.metadata["training"]["painted_voxels"] == 32 * 32
    with pytest.raises(ValueError, match="nothing is painted"):
        seg.train(image, np.zeros_like(lab), sparse=True, patch=(8, 32, 32), epochs=1, steps_per_epoch=1,
                  progress=False)
    assert hist["step"] == 25


def test_sparse_membrane_label_is_learned_as_zero_affinity_and_unpainted_stays_masked():
    # one painted slice (z = 1) of a 3x4x4 crop: bodies 1 and 2 with a painted membrane column (id 9) between them
    lab = np.zeros((3, 4, 4), np.float32)
    lab[1] = [[1, 9, 2, 2]] * 4
    seg = _tiny()
    _, y, mask = seg._make_example(0, False, background=9)([np.zeros_like(lab), lab], np.random.default_rng(0), 0)
    # channel 2 relates (z, y, x) to (z, y, x - 1): x = 1 (9 | 1) and x = 2 (2 | 9) touch the membrane -> 0,
    # x = 3 (2 | 2) -> 1; all three pairs in the loss, x = 0 has no left neighbour
    np.testing.assert_array_equal(y[2, 1], [[0, 0, 0, 1]] * 4)
    np.testing.assert_array_equal(mask[2, 1], [[0, 1, 1, 1]] * 4)
    # channel 1 (y - 1): membrane to membrane is 0 too (as dense labels' 0), body to itself 1
    np.testing.assert_array_equal(y[1, 1, 1:], [[1, 0, 1, 1]] * 3)
    assert mask[0].sum() == 0 and mask[:, [0, 2]].sum() == 0  # z pairs and unpainted slices: no loss
    # without the membrane id the same column would be a body of its own: faces only, the membrane's inside = 1
    _, y0, _ = seg._make_example(0, False)([np.zeros_like(lab), lab], np.random.default_rng(0), 0)
    np.testing.assert_array_equal(y0[1, 1, 1:], [[1, 1, 1, 1]] * 3)
    image = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="sparse"):
        seg.train(image, np.ones((8, 32, 32)), membrane_label=9, patch=(8, 32, 32), epochs=1, steps_per_epoch=1,
                  progress=False)
    with pytest.raises(ValueError, match="positive"):
        seg.train(image, np.ones((8, 32, 32)), sparse=True, membrane_label=0, patch=(8, 32, 32), epochs=1,
                  steps_per_epoch=1, progress=False)


# ------------------------------------------------------------------ CLI
def test_cli_adapt_and_fine_tune(tmp_path):
    runner = CliRunner()
    image, lab = em_cells((16, 64, 64), seed=5)
    raw, labels = tmp_path / "raw.tif", tmp_path / "sparse.tif"
    tifffile.imwrite(raw, _gamma(image))
    tifffile.imwrite(labels, _sparse_labels(lab, [8]).astype(np.uint16))
    res = runner.invoke(app, ["adapt-segment", str(raw), "-o", str(tmp_path / "adapted")])
    assert res.exit_code == 0, res.output
    assert Segmenter.load(tmp_path / "adapted").metadata["adaptation"]["intensity"]
    res = runner.invoke(app, ["train-segment", "--from", "fibsem3d-affinity", "-i", str(raw), "-l", str(labels),
                              "-o", str(tmp_path / "ft"), "--epochs", "1", "--steps", "2", "--batch-size", "1",
                              "--patch", "16,64,64"])
    assert res.exit_code == 0, res.output
    ft = Segmenter.load(tmp_path / "ft")
    assert ft.metadata["training"]["sparse"] and ft.metadata["postprocess"]["threshold"] == "auto"
    res = runner.invoke(app, ["segment", str(raw), str(tmp_path / "seg.tif"), "--model", str(tmp_path / "ft")])
    assert res.exit_code == 0, res.output
    assert "threshold auto" in res.output


def test_scale_adaptation_resamples_only_a_large_mismatch():
    image, _ = em_cells((16, 48, 48), seed=6)
    seg = _tiny()
    seg.metadata["normalization"]["reference"] = seg.reference_statistics([image])
    seg.adapt(image)
    assert seg.metadata["adaptation"]["zoom"] == 1.0  # the training scale itself: nothing resampled
    big = ndi.zoom(image, 2, order=1)  # cells twice as many voxels across
    seg.adapt(big)
    assert 0.4 < seg.metadata["adaptation"]["zoom"] < 0.65
    prob = seg.predict(big)
    assert prob.shape == (3,) + big.shape and 0 <= prob.min() and prob.max() <= 1
