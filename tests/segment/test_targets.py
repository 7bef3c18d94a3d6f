"""Targets on hand-made label volumes, with exact expected arrays."""

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from mire.segment import affinities, boundaries, ignore_mask, nearest_offsets


LAB2 = np.array([[1, 1, 2, 2],
                 [1, 1, 2, 2],
                 [3, 3, 3, 0]])


def test_boundaries_hand_made_2d():
    expected = np.array([[0, 1, 1, 0],
                         [1, 1, 1, 1],
                         [1, 1, 1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(boundaries(LAB2), expected)
    # without the background rule, (2,3) is boundary only because it differs from its neighbours
    np.testing.assert_array_equal(boundaries(LAB2, background=None), expected)


def test_boundaries_ignore_label_creates_no_boundary():
    lab = np.array([[1, 1, 0, 0],
                    [1, 1, 0, 2]])
    # 0 is "unknown": its own voxels are 0 and it does not mark its neighbours
    expected = np.array([[0, 0, 0, 0],
                         [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(boundaries(lab, ignore_label=0), expected)
    np.testing.assert_array_equal(ignore_mask(lab, ignore_label=0), lab != 0)
    assert ignore_mask(lab).all()


def test_boundaries_width_2_is_distance_2_to_a_different_label():
    lab = np.repeat(np.array([[1] * 5 + [2] * 5]), 3, axis=0)
    b = boundaries(lab, width=2, background=None)
    np.testing.assert_array_equal(b[0], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    # brute force on a random label image: within city-block distance w of a different label
    rng = np.random.default_rng(1)
    lab = rng.integers(1, 4, size=(9, 11))
    for w in (1, 2, 3):
        got = boundaries(lab, width=w, background=None)
        want = np.zeros(lab.shape, np.float32)
        for (y, x), v in np.ndenumerate(lab):
            for yy in range(lab.shape[0]):
                for xx in range(lab.shape[1]):
                    if abs(yy - y) + abs(xx - x) <= w and lab[yy, xx] != v:
                        want[y, x] = 1
        np.testing.assert_array_equal(got, want)


def test_boundaries_match_skimage_thick_3d():
    rng = np.random.default_rng(0)
    lab = rng.integers(1, 5, size=(6, 7, 8))
    ref = find_boundaries(lab, connectivity=1, mode="thick")
    np.testing.assert_array_equal(boundaries(lab, background=None), ref.astype(np.float32))


def test_boundaries_per_slice_ignores_z_changes():
    lab = np.stack([np.ones((3, 3), int), 2 * np.ones((3, 3), int)])
    assert boundaries(lab, per_slice=True).sum() == 0
    assert boundaries(lab).sum() == 18


def test_affinities_nearest_2d_exact():
    affs, mask = affinities(LAB2)
    # channel 0: (y, x) vs (y - 1, x)
    np.testing.assert_array_equal(affs[0], [[0, 0, 0, 0],
                                            [1, 1, 1, 1],
                                            [0, 0, 0, 0]])
    np.testing.assert_array_equal(mask[0], [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    # channel 1: (y, x) vs (y, x - 1); background 0 has affinity 0 even to itself
    np.testing.assert_array_equal(affs[1], [[0, 1, 0, 1],
                                            [0, 1, 0, 1],
                                            [0, 1, 1, 0]])
    np.testing.assert_array_equal(mask[1], [[0, 1, 1, 1]] * 3)


def test_affinities_ignore_label_masks_pairs():
    affs, mask = affinities(LAB2, ignore_label=0)
    assert mask[1][2, 3] == 0 and mask[0][2, 3] == 0  # pairs touching the ignored voxel
    assert mask[1][2, 2] == 1 and affs[1][2, 2] == 1


def test_affinities_long_range_3d():
    lab = np.zeros((2, 4, 12), int)
    lab[..., :6] = 1
    lab[..., 6:] = 2
    offsets = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -4)]
    affs, mask = affinities(lab, offsets=offsets)
    assert affs.shape == (4, 2, 4, 12)
    # x vs x - 4: same label for x in 4..5 and 10..11
    np.testing.assert_array_equal(affs[3][0, 0], [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(mask[3][0, 0], [0, 0, 0, 0] + [1] * 8)
    np.testing.assert_array_equal(affs[0][1], 1)
    np.testing.assert_array_equal(affs[0][0], 0)
    assert nearest_offsets(3) == offsets[:3]


def test_affinities_positive_offset():
    lab = np.array([[1, 1, 2]])
    affs, mask = affinities(lab, offsets=[(0, 1)])
    np.testing.assert_array_equal(affs[0], [[1, 0, 0]])
    np.testing.assert_array_equal(mask[0], [[1, 1, 0]])


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((0, 4), int), "empty"),
    (np.array([[1.5, 2]]), "integer"),
    (np.array([[-1, 2]]), "negative"),
    (np.zeros(5, int), "2D or 3D"),
])
def test_targets_bad_labels(bad, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        boundaries(bad)


def test_affinities_bad_offsets():
    with pytest.raises(ValueError, match="3 components"):
        affinities(LAB2, offsets=[(0, 0, 1)])
    with pytest.raises(ValueError, match="itself"):
        affinities(LAB2, offsets=[(0, 0)])
