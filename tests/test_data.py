"""Synthetic samples: neurites with their SWC trace, EM cells with their labels."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.measure import label as cc_label

from mire.data import em_cells, neurites


@pytest.fixture(scope="module")
def neurite_sample():
    return neurites(return_swc=True)


@pytest.fixture(scope="module")
def em_sample():
    return em_cells()


# ----------------------------------------------------------------------------- neurites

def test_neurites_image(neurite_sample):
    image, _ = neurite_sample
    assert image.shape == (48, 128, 128) and image.dtype == np.float64
    assert image.min() >= 0 and image.max() == 1.0
    # sparse bright structure on a faint background, as in a fluorescence stack
    assert np.median(image) < 0.1
    assert 0.005 < np.mean(image > 0.3) < 0.1


def test_neurites_swc_is_a_valid_forest(neurite_sample):
    _, swc = neurite_sample
    ids, parents = swc[:, 0].astype(int), swc[:, 6].astype(int)
    assert np.array_equal(ids, np.arange(1, len(swc) + 1))
    assert np.all(swc[:, 1] == 2)
    roots = parents == -1
    assert roots.sum() == 6  # one root per neurite
    assert np.all(parents[~roots] < ids[~roots])  # parents listed first
    assert np.all((swc[:, 5] >= 1) & (swc[:, 5] <= 3))
    # 1-pixel steps along each curve
    child = np.flatnonzero(~roots)
    step = np.linalg.norm(swc[child, 2:5] - swc[parents[child] - 1, 2:5], axis=1)
    assert np.allclose(step, 1.0)
    # the trace stays inside the stack, x = column, y = row, z = slice
    for col, n in zip((2, 3, 4), (128, 128, 48)):
        assert swc[:, col].min() >= 0 and swc[:, col].max() <= n - 1


def test_neurites_swc_nodes_lie_on_bright_voxels(neurite_sample):
    image, swc = neurite_sample
    z, y, x = (np.round(swc[:, c]).astype(int) for c in (4, 3, 2))
    at_nodes = image[z, y, x]
    background = np.median(image)
    assert at_nodes.min() > 3 * background
    assert np.median(at_nodes) > 0.3
    # and they are the centres: brighter than the voxels 2.5 radii away along x (where still in the field)
    off = np.round(swc[:, 2] + 2.5 * swc[:, 5]).astype(int)
    inside = off < 128
    far = image[z[inside], y[inside], off[inside]]
    assert np.mean(at_nodes[inside] > far) > 0.9


def test_neurites_seeded(neurite_sample):
    image, swc = neurite_sample
    again, swc2 = neurites(return_swc=True)
    assert np.array_equal(image, again) and np.array_equal(swc, swc2)
    assert not np.array_equal(image, neurites(seed=1))


def test_neurites_2d_and_swc_roundtrip(tmp_path):
    image, swc = neurites((96, 80), n_neurites=3, seed=2, return_swc=True)
    assert image.shape == (96, 80) and np.all(swc[:, 4] == 0)
    assert (swc[:, 6] == -1).sum() == 3
    values = image[np.round(swc[:, 3]).astype(int), np.round(swc[:, 2]).astype(int)]
    assert values.min() > 3 * np.median(image)
    from mire.io import read_swc, write_swc

    write_swc(tmp_path / "truth.swc", swc)
    assert np.allclose(read_swc(tmp_path / "truth.swc"), swc, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (10,)}, "2 or 3 dimensions"),
    ({"shape": (4, 64, 64)}, "at least 8"),
    ({"shape": (32, 32), "n_neurites": 0}, "positive integer"),
])
def test_neurites_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neurites(**kwargs)


# ----------------------------------------------------------------------------- EM cells

def _touching_pairs(labels):
    """Count face-neighbour pairs carrying two different non-zero labels."""
    n = 0
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        n += int(np.sum((a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)))
    return n


def test_em_cells_types_and_shapes(em_sample):
    image, labels = em_sample
    assert image.shape == labels.shape == (16, 128, 128)
    assert image.dtype == np.uint8 and labels.dtype == np.int32
    assert 30 < labels.max() < 90  # about one cell per 18 x 18 pixels
    assert 0.08 < np.mean(labels == 0) < 0.3


def test_em_cells_labels_change_only_across_membranes(em_sample):
    _, labels = em_sample
    assert _touching_pairs(labels) == 0
    # membrane separates cells: nearly every membrane voxel has two different cells within
    # 1 slice and 2 pixels (the rest: image borders, junctions, crumbs turned into membrane)
    lo = ndi.minimum_filter(np.where(labels == 0, np.iinfo(np.int32).max, labels), size=(3, 5, 5))
    hi = ndi.maximum_filter(labels, size=(3, 5, 5))
    membrane = labels == 0
    assert np.mean(lo[membrane] < hi[membrane]) > 0.95


def test_em_cells_membranes_are_dark(em_sample):
    image, labels = em_sample
    membrane, cells = image[labels == 0].astype(float), image[labels > 0].astype(float)
    assert cells.mean() - membrane.mean() > 80
    assert np.percentile(membrane, 99) < np.percentile(cells, 5)


def test_em_cells_are_connected_and_run_through_z(em_sample):
    _, labels = em_sample
    ids = np.unique(labels[labels > 0])
    assert np.array_equal(ids, np.arange(1, labels.max() + 1))
    # one connected piece per label (6-connectivity)
    for i in ids:
        assert cc_label(labels == i, connectivity=1).max() == 1
    # most cells cross the whole stack, overlapping strongly from slice to slice
    n_slices = np.array([np.any(labels == i, axis=(1, 2)).sum() for i in ids])
    assert np.median(n_slices) == 16
    a, b = labels[:-1] > 0, labels[1:] > 0
    same = (labels[:-1] == labels[1:]) & a
    assert same.sum() / a.sum() > 0.9


def test_em_cells_membrane_width_and_2d():
    image, labels = em_cells((96, 96), seed=3, membrane_width=2)
    _, thick = em_cells((96, 96), seed=3, membrane_width=4)
    assert image.shape == labels.shape == (96, 96)
    assert _touching_pairs(labels) == 0 and _touching_pairs(thick) == 0
    ratio = np.mean(thick == 0) / np.mean(labels == 0)
    assert 1.6 < ratio < 2.4  # the membrane fraction scales with the width
    assert all(cc_label(labels == i, connectivity=1).max() == 1 for i in range(1, labels.max() + 1))


def test_em_cells_seeded(em_sample):
    image, labels = em_sample
    image2, labels2 = em_cells()
    assert np.array_equal(image, image2) and np.array_equal(labels, labels2)
    assert not np.array_equal(labels, em_cells(seed=1)[1])
    assert em_cells((32, 32), n_cells=3, seed=0)[1].max() <= 3


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (8, 10, 64)}, "at least 16"),
    ({"shape": (2, 3, 4, 5)}, "2 or 3 dimensions"),
    ({"membrane_width": 0.5}, "membrane_width must be >= 1"),
    ({"n_cells": 1}, "n_cells must be an integer >= 2"),
])
def test_em_cells_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        em_cells(**{"shape": (32, 32), **kwargs})
