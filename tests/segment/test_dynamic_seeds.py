"""Seeds from distance maxima with a dynamic (``min_distance="dynamic"``, issue #17)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

from mire.segment.watershed import distance_seeds, maxima_dynamics


def _two_disks(r2, shift):
    """Boundary map (1 outside) of a radius-8 disk joined with a radius-``r2`` disk ``shift`` px away."""
    yy, xx = np.mgrid[:40, :60]
    inside = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 64) | ((yy - 20) ** 2 + (xx - 20 - shift) ** 2 <= r2 ** 2)
    return (~inside).astype(np.float32)


def test_dynamic_of_a_half_voxel_bump():
    # 10 falls to a saddle of 7, then a bump to 7.5: its dynamic is 0.5, the top's is infinite
    v = np.array([[0, 10, 9, 8, 7, 7.5, 6, 0]], np.float32)
    roots, dyn = maxima_dynamics(v)
    assert roots.tolist() == [1, 5]
    assert dyn[0] == np.inf and dyn[1] == pytest.approx(0.5)


def test_two_touching_blobs_get_two_seeds():
    # two radius-8 disks 14 px apart: the neck is a saddle 4.06 below both centres
    b = _two_disks(8, 14)
    seeds, _ = distance_seeds(b, sigma=0, min_distance="dynamic")
    assert int(seeds.max()) == 2
    assert seeds[20, 20] > 0 or seeds[20, 19:22].any()


def test_sub_voxel_bump_gets_one_seed():
    # a radius-6.5 disk 9.5 px off a radius-8 one: its distance maximum rises only 0.71 px above the
    # saddle (measured), so h = 1 px drops it; the 7-px window of min_distance=3 keeps it (2 seeds)
    b = _two_disks(6.5, 9.5)
    d = ndi.distance_transform_edt(b == 0).astype(np.float32)
    _, dyn = maxima_dynamics(d)
    assert np.sort(dyn)[-2] == pytest.approx(0.7082, abs=1e-3)
    assert int(distance_seeds(b, sigma=0, min_distance="dynamic")[0].max()) == 1
    assert int(distance_seeds(b, sigma=0, min_distance=3)[0].max()) == 2
    # h below the bump's dynamic keeps it
    assert int(distance_seeds(b, sigma=0, min_distance="dynamic", dynamic_height=0.7)[0].max()) == 2


def test_matches_skimage_h_maxima():
    # the basin-graph dynamics select the same plateaus as skimage's reconstruction-based h_maxima
    rng = np.random.default_rng(3)
    v = ndi.gaussian_filter(rng.random((12, 30, 30)), 2).astype(np.float32)
    v = (v - v.min()) / (v.max() - v.min())
    roots, dyn = maxima_dynamics(v)
    for h in (0.02, 0.05, 0.1):
        ours = np.zeros(v.size, bool)
        ours[roots[dyn >= h]] = True
        ref = h_maxima(v.astype(np.float64), h).astype(bool)
        lab, _ = ndi.label(ref, structure=np.ones((3, 3, 3)))
        # one root per h-maximum plateau, and every root on one
        assert ref.ravel()[ours].all()
        assert len(np.unique(lab.ravel()[ours])) == int(lab.max()) == int(ours.sum())


def test_seed_set_changes_one_maximum_at_a_time_in_h():
    # nested in h, and the count drops by one per maximum crossing h (no all-at-once step)
    rng = np.random.default_rng(0)
    b = ndi.gaussian_filter(rng.random((16, 48, 48)), 2)
    b = (b > np.quantile(b, 0.75)).astype(np.float32)
    hs = np.linspace(0.25, 3.0, 23)
    sets = [distance_seeds(b, min_distance="dynamic", dynamic_height=h)[0] > 0 for h in hs]
    counts = [int(ndi.label(s, structure=np.ones((3, 3, 3)))[1]) for s in sets]
    for lo, hi in zip(sets, sets[1:]):
        assert not (hi & ~lo).any()
    assert counts[0] > counts[-1]
    assert np.all(np.diff(counts) <= 0)
    # measured: seed plateaus per h (0.125 apart); the window instead jumps 38 -> 34 between
    # min_distance 2.9 and 3.0 (its floor step: every seed re-placed at once)
    assert counts == [23, 19, 15, 13, 12, 9, 9, 7, 6, 6, 6, 5, 5, 5, 5, 5, 4, 4, 2, 2, 2, 2, 2]
    assert [int(distance_seeds(b, min_distance=m)[0].max()) for m in (2.9, 3.0)] == [38, 34]

def test_dynamic_rejects_other_strings():
    with pytest.raises(ValueError, match="dynamic"):
        distance_seeds(np.zeros((8, 8), np.float32), min_distance="auto")


def test_pipeline_accepts_dynamic():
    # segment_boundaries passes it through seeded_watershed: the two touching disks stay two segments
    from mire.segment.pipeline import segment_boundaries

    seg = segment_boundaries(_two_disks(8, 14), threshold=0.5, min_distance="dynamic", sigma=0)
    assert sorted(np.unique(seg[_two_disks(8, 14) == 0]).tolist()) == [1, 2]


def test_blockwise_refuses_dynamic_in_words(tmp_path):
    from mire.segment import segment_blockwise

    b = np.zeros((8, 16, 16), np.float32)
    with pytest.raises(ValueError, match="not available block by block"):
        segment_blockwise(b, block_shape=(8, 8, 8), min_distance="dynamic", out=str(tmp_path / "s.zarr"))
    assert not (tmp_path / "s.zarr").exists()
