"""Blockwise segmentation: equal to the whole-volume pipeline, one ID per object across block faces."""

import numpy as np
import pytest

from mire.data import em_cells
from mire.metrics import adapted_rand_error, variation_of_information
from mire.segment import baseline_boundary_map, match_labels, segment_blockwise, segment_boundaries


@pytest.fixture(scope="module")
def volume():
    image, labels = em_cells((12, 96, 96), seed=1)
    return baseline_boundary_map(image), labels


def test_match_labels_hand_computed():
    a = np.array([[1, 1, 1, 2, 2, 2, 0, 3]])
    b = np.array([[7, 7, 7, 7, 9, 9, 9, 5]])
    # 1-7: 3 of 3 and 3 of 4 voxels; 2-9: 2 of 3 and 2 of the 2 scored voxels of 9 (0 is not scored);
    # 3-5: one voxel each
    assert match_labels(a, b).tolist() == [[1, 7], [2, 9], [3, 5]]
    # a label cut in halves by the other labeling holds no majority of it: no match
    assert match_labels(np.array([1, 1, 2, 2]), np.array([4, 4, 4, 4])).shape == (0, 2)
    assert match_labels(np.array([1, 1, 2, 2]), np.array([4, 4, 4, 4]), overlap=0.4).tolist() == [[1, 4], [2, 4]]


def test_blockwise_equals_whole_volume(volume):
    b, _ = volume
    whole = segment_boundaries(b)
    blocks = segment_blockwise(b, block_shape=(12, 48, 48), halo=(0, 16, 16))
    assert blocks.dtype == np.uint32
    assert adapted_rand_error(whole, blocks)[0] <= 0.01
    assert sum(variation_of_information(whole, blocks)) < 0.05
    # consecutive ids 1..N
    ids = np.unique(blocks)
    assert ids[0] == 1 and ids[-1] == len(ids)
