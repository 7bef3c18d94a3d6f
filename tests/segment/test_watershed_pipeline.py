"""Watershed and the end-to-end pipelines: exact recovery of synthetic cells, clear errors."""

import numpy as np
import pytest

from mire.data import em_cells
from mire.metrics import adapted_rand_error, variation_of_information
from mire.segment import (
    affinities,
    affinities_to_boundaries,
    baseline_segmentation,
    boundaries,
    distance_seeds,
    seeded_watershed,
    segment_affinities,
    segment_boundaries,
)


def _stripes(shape=(12, 40), width=8):
    """Bands of ``width`` pixels, labels 1..n along the last axis."""
    lab = np.repeat(np.arange(1, shape[-1] // width + 1), width)
    return np.broadcast_to(lab, shape).copy()


def test_distance_seeds_one_per_cell_even_when_a_thin_cell_hides():
    lab = np.zeros((20, 40), int)
    lab[:, :25] = 1
    lab[:, 26:29] = 2          # a 3-pixel-wide cell beside a fat one
    lab[:, 30:] = 3
    b = (lab == 0).astype(np.float32)
    seeds, dist = distance_seeds(b, min_distance=6, sigma=0)
    for cell in (1, 2, 3):
        assert np.unique(seeds[(lab == cell) & (seeds > 0)]).size >= 1, cell
    assert dist[5, 27] == pytest.approx(2.0)  # centre of the thin cell: 2 px from the membrane


def test_seeded_watershed_per_slice_ids_are_unique():
    b = np.zeros((3, 12, 40), np.float32)
    b[:, :, 19:21] = 1
    frag = seeded_watershed(b, per_slice=True, min_distance=3)
    assert frag.max() == 6
    for z in range(3):
        assert np.unique(frag[z]).size == 2
        assert frag[z, 0, 0] != frag[z, 0, -1]
    assert len(np.intersect1d(np.unique(frag[0]), np.unique(frag[1]))) == 0


def test_affinity_boundary_map_max_equals_label_boundaries(rng):
    lab = rng.integers(1, 4, size=(5, 6, 7))
    affs, _ = affinities(lab)
    np.testing.assert_array_equal(affinities_to_boundaries(affs, reduce="max"), boundaries(lab, background=None))


@pytest.mark.parametrize("seed", [0, 1])
def test_watershed_and_agglomeration_recover_synthetic_cells_exactly(seed):
    _, lab = em_cells((16, 96, 96), seed=seed)
    membrane = (lab == 0).astype(np.float32)
    segs, frag, res = segment_boundaries(membrane, threshold=[0.0, 0.5], scoring="quantile:0",
                                         return_result=True)
    n_cells = lab.max()
    assert frag.max() > n_cells + 10          # the fragments over-segment ...
    err0, prec0, rec0 = adapted_rand_error(lab, segs[0])
    assert err0 > 0.1 and prec0 == 1.0 and rec0 < 0.8   # only split errors, no merge
    err, prec, rec = adapted_rand_error(lab, segs[1])   # ... and agglomeration at 0.5 is exact
    assert (err, prec, rec) == (0.0, 1.0, 1.0)
    split, merge = variation_of_information(lab, segs[1], ignore_labels=(0,))
    assert split == pytest.approx(0, abs=1e-12) and merge == pytest.approx(0, abs=1e-12)
    assert np.unique(segs[1]).size == n_cells
    assert len(res.history) == frag.max() - n_cells


def test_2d_mean_scoring_recovers_cells_and_bad_threshold_merges():
    _, lab = em_cells((96, 96), seed=3)
    seg = segment_boundaries((lab == 0).astype(np.float32), threshold=0.5)
    assert adapted_rand_error(lab, seg)[0] == 0.0
    one = segment_boundaries((lab == 0).astype(np.float32), threshold=1.01)
    assert np.unique(one).size == 1  # threshold above every score: everything merges


def test_segment_affinities_on_label_affinities():
    lab = _stripes()
    affs, _ = affinities(lab)
    seg = segment_affinities(affs, thresholds=0.5, min_distance=2)
    assert adapted_rand_error(lab, seg)[0] == 0.0
    assert np.unique(seg).size == 5


def test_min_size_cleanup_in_pipeline():
    b = np.zeros((30, 30), np.float32)
    b[:, 14] = 1
    b[3:6, 3:6] = 1
    b[4, 4] = 0   # a 1-pixel pocket inside a ring of membrane: its own fragment
    segs = segment_boundaries(b, threshold=0.3, min_distance=2, sigma=0)
    # the pocket's fragment is 5 px (it takes the inner half of its ring)
    small = segment_boundaries(b, threshold=0.3, min_distance=2, sigma=0, min_size=6)
    assert np.unique(segs).size == 3 and np.unique(small).size == 2


def test_baseline_segmentation_on_synthetic_em():
    img, lab = em_cells((128, 128), seed=0)
    seg = baseline_segmentation(img, sigma=1.0, threshold=0.5)
    assert adapted_rand_error(lab, seg)[0] < 0.1


@pytest.mark.parametrize("func, arg, msg", [
    (segment_boundaries, np.full((8, 8), np.nan), "NaN"),
    (segment_boundaries, np.zeros((0, 8)), "empty"),
    (segment_boundaries, np.full((8, 8), 2.0), r"\[0, 1\]"),
    (segment_boundaries, np.zeros(8), "2D or 3D"),
    (segment_affinities, np.zeros((1, 8, 8)), "channels"),
    (baseline_segmentation, np.ones((8, 8)), "constant"),
])
def test_pipeline_errors(func, arg, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        func(arg)


def test_mask_and_seed_shape_mismatch():
    with pytest.raises(ValueError, match="does not match"):
        seeded_watershed(np.zeros((8, 8)), mask=np.ones((8, 9), bool))
    with pytest.raises(ValueError, match="does not match"):
        seeded_watershed(np.zeros((8, 8)), seeds=np.ones((7, 8), int))


def test_per_slice_pipeline_keeps_slices_apart():
    b = np.zeros((3, 12, 40), np.float32)
    b[:, :, 19:21] = 1
    seg = segment_boundaries(b, threshold=0.9, per_slice=True, min_distance=3)
    # z-faces score 0 here: a 3D agglomeration would fuse the slices into 2 objects
    assert np.unique(seg).size == 6
    for z in range(2):
        assert len(np.intersect1d(np.unique(seg[z]), np.unique(seg[z + 1]))) == 0


def test_seeded_watershed_dist_scale():
    from mire.segment import baseline_boundary_map

    image, _ = em_cells((6, 64, 64), seed=5)
    b = baseline_boundary_map(image)
    dmax = float(distance_seeds(b)[1].max())
    np.testing.assert_array_equal(seeded_watershed(b, dist_scale=dmax), seeded_watershed(b))
    # a larger scale weakens the distance term: some voxels flood differently
    assert not np.array_equal(seeded_watershed(b, dist_scale=4 * dmax, alpha=0.5), seeded_watershed(b, alpha=0.5))
    # per slice: one scale per z-slice; 0 floods the boundary map alone (alpha = 1)
    per = [float(distance_seeds(b[z])[1].max()) for z in range(6)]
    np.testing.assert_array_equal(seeded_watershed(b, per_slice=True, dist_scale=per),
                                  seeded_watershed(b, per_slice=True))
    np.testing.assert_array_equal(seeded_watershed(b, dist_scale=0.0), seeded_watershed(b, alpha=1.0))
    with pytest.raises(ValueError, match="dist_scale"):
        seeded_watershed(b, dist_scale=-1.0)
