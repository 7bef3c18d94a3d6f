"""mire.metrics on zarr / dask / HDF5 inputs, block by block: equal to the in-memory values
and to scikit-image's, on volumes cut into uneven blocks, reading one block at a time."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
import zarr
from skimage import metrics as skm

from mire import metrics as M

SHAPE = (13, 29, 31)
UNEVEN = (5, 11, 12)         # no axis divides evenly: every grid has a thin last block


def _zarr(a, chunks):
    z = zarr.create_array(store={}, shape=a.shape, chunks=chunks, dtype=a.dtype)
    z[:] = a
    return z


def _as(kind, a):
    """``a`` as the array-like ``kind``, with storage chunks that do not divide its shape."""
    if kind == "zarr":
        return _zarr(a, UNEVEN)
    if kind == "dask":
        return da.from_array(a, chunks=(5, 11, 12))
    return a


@pytest.fixture
def labels(rng):
    """EM-like pair: boxes of 3x5x7 voxels (each spans several blocks), a zero boundary on one
    face of each, and a segmentation with merges, splits and 3 % noise."""
    z, y, x = np.indices(SHAPE)
    gt = (z // 3) * 100 + (y // 5) * 10 + x // 7 + 1
    gt[(x % 7) == 0] = 0
    seg = gt.copy()
    seg[gt == 0] = 1                                  # a segmentation labels every voxel
    seg[(gt % 10) == 2] = 3                           # false merges
    seg[(seg == 5) & (y > 14)] = 999                  # false splits across block faces
    noise = rng.random(SHAPE) < 0.03
    seg[noise] = rng.integers(0, 500, noise.sum())
    return gt.astype(np.uint32), seg.astype(np.int64)


# --------------------------------------------------------------------------------------------
# label metrics
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zarr", "dask", "numpy"])
def test_label_metrics_blockwise_equal_in_memory_and_skimage(labels, kind):
    gt, seg = labels
    g, s = _as(kind, gt), _as(kind, seg)
    # numpy inputs go blockwise only when asked; the array-likes always (default blocks: see
    # test_default_blocks_follow_chunks_and_bound_each_read; this volume would be one block)
    opts = {"block_shape": UNEVEN}
    error, precision, recall = M.adapted_rand_error(g, s, **opts)
    assert (error, precision, recall) == M.adapted_rand_error(gt, seg)          # exactly
    ref = skm.adapted_rand_error(gt, seg)            # skimage swaps precision/recall (#6485)
    assert (error, precision, recall) == pytest.approx((ref[0], ref[2], ref[1]), abs=1e-12)
    split, merge = M.variation_of_information(g, s, **opts)
    assert (split, merge) == M.variation_of_information(gt, seg)
    assert (split, merge) == pytest.approx(tuple(skm.variation_of_information(gt, seg)), abs=1e-12)
    assert 0.05 < error < 0.9 and split > 0.1 and merge > 0.1       # a case with real errors


def _assert_same_table(got, ref):
    np.testing.assert_array_equal(got.counts.toarray(), ref.counts.toarray())
    np.testing.assert_array_equal(got.gt_labels, ref.gt_labels)
    np.testing.assert_array_equal(got.seg_labels, ref.seg_labels)
    assert got.gt_labels.dtype == ref.gt_labels.dtype and got.seg_labels.dtype == ref.seg_labels.dtype
    assert got.counts.dtype == np.int64 and got.counts.has_canonical_format


@pytest.mark.parametrize("block", [(13, 1, 31), (2, 29, 3), (100, 100, 100)])
def test_contingency_table_blockwise_is_identical(labels, block):
    gt, seg = labels
    _assert_same_table(M.contingency_table(_zarr(gt, (5, 5, 5)), seg, block_shape=block),
                       M.contingency_table(gt, seg))


def test_contingency_table_single_voxel_blocks(labels):
    # every cell is the sum of many one-voxel tables
    gt, seg = labels[0][:4, :6, :8], labels[1][:4, :6, :8]
    _assert_same_table(M.contingency_table(gt, seg, block_shape=1), M.contingency_table(gt, seg))


def test_contingency_table_blockwise_exotic_ids(rng):
    # uint64 ids above 2**63, negative ids and bool: the merge works on label values
    big = (np.uint64(2 ** 63) + rng.integers(0, 5, (6, 7, 8)).astype(np.uint64) * np.uint64(2 ** 40))
    neg = rng.integers(-3, 3, (6, 7, 8)).astype(np.int8)
    mask = rng.random((6, 7, 8)) < 0.4
    for gt, seg in [(big, neg), (neg, mask), (mask, big)]:
        _assert_same_table(M.contingency_table(da.from_array(gt, chunks=4), da.from_array(seg, chunks=4)),
                           M.contingency_table(gt, seg))


def test_hdf5_dataset_is_read_blockwise(labels, tmp_path):
    import h5py

    gt, seg = labels
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("gt", data=gt, chunks=(4, 8, 8))
        f.create_dataset("seg", data=seg, chunks=(4, 8, 8))
    with h5py.File(tmp_path / "v.h5", "r") as f:
        assert M.adapted_rand_error(f["gt"], f["seg"]) == M.adapted_rand_error(gt, seg)


# --------------------------------------------------------------------------------------------
# memory: each task reads one block, never the volume
# --------------------------------------------------------------------------------------------

class _Recorder:
    """An array-like that records the size of every read (a zarr array stand-in)."""

    def __init__(self, a, chunks):
        self.a, self.shape, self.dtype, self.ndim, self.chunks = a, a.shape, a.dtype, a.ndim, chunks
        self.reads = []

    def __getitem__(self, index):
        piece = self.a[index]
        self.reads.append(piece.size)
        return piece


def test_default_blocks_follow_chunks_and_bound_each_read(labels, monkeypatch):
    gt, seg = labels
    monkeypatch.setattr(M, "_BLOCK_VOXELS", 600)
    # chunks 2x3x4 = 24 voxels, doubled along the shortest block axis while <= 600 voxels:
    # (2,3,4) -> (4,3,4) -> (4,6,4) -> (4,6,8) -> (8,6,8) -> (8,12,8) [768 > 600: stop at 384]
    assert M._default_block_shape([_Recorder(gt, (2, 3, 4))], SHAPE) == (8, 6, 8)
    assert M._default_block_shape([np.zeros(3), da.zeros(SHAPE, chunks=(13, 29, 1))], SHAPE) == (13, 29, 1)
    rec_gt, rec_seg = _Recorder(gt, (2, 3, 4)), _Recorder(seg, (2, 3, 4))
    assert M.variation_of_information(rec_gt, rec_seg) == M.variation_of_information(gt, seg)
    n_blocks = math.prod(-(-n // b) for n, b in zip(SHAPE, (8, 6, 8)))
    assert len(rec_gt.reads) == len(rec_seg.reads) == n_blocks == 2 * 5 * 4
    assert max(rec_gt.reads) == 8 * 6 * 8 and sum(rec_gt.reads) == gt.size   # each voxel read once


def test_ssim_reads_blocks_plus_halo_only(rng):
    x = rng.random((20, 20))
    rec = _Recorder(x, (8, 8))
    assert M.ssim(rec, x * 0.9, data_range=1.0, block_shape=8) == pytest.approx(
        M.ssim(x, x * 0.9, data_range=1.0), abs=1e-12)
    assert max(rec.reads) == (8 + 4) ** 2      # an interior block: 8 + 2 + 2 (halo 5 // 2)


# --------------------------------------------------------------------------------------------
# image metrics
# --------------------------------------------------------------------------------------------

@pytest.fixture
def images(rng):
    gt = rng.random(SHAPE) * 700 + 50
    pred = gt + 40 * rng.standard_normal(SHAPE)
    return gt, pred


@pytest.mark.parametrize("kind", ["zarr", "dask"])
def test_psnr_blockwise(images, kind):
    gt, pred = images
    g, p = _as(kind, gt), _as(kind, pred)
    # the data range is found blockwise: gt's range by default, its maximum for "peak"
    for data_range, R in ((None, gt.max() - gt.min()), ("peak", gt.max()), (1000.0, 1000.0)):
        value = M.psnr(g, p, data_range=data_range, block_shape=UNEVEN)
        assert value == pytest.approx(M.psnr(gt, pred, data_range=data_range), rel=1e-13)
        assert value == pytest.approx(skm.peak_signal_noise_ratio(gt, pred, data_range=R), rel=1e-13)
    assert M.psnr(g, p) == pytest.approx(M.psnr(gt, pred), rel=1e-13)       # default blocks


@pytest.mark.parametrize("shape, block, window, gaussian", [
    (SHAPE, UNEVEN, 5, False),
    ((9, 12, 13), (3, 2, 7), 7, True),   # blocks thinner than the window and its halo
    ((37, 41), (10, 9), 5, False),
    ((37, 41), (36, 40), 11, True),      # thin last blocks hold no window of their own
])
def test_ssim_blockwise_equals_in_memory(rng, shape, block, window, gaussian):
    gt = rng.random(shape)
    pred = gt + 0.2 * rng.standard_normal(shape)
    ref = M.ssim(gt, pred, window=window, gaussian=gaussian)
    got = M.ssim(_zarr(gt, block), _zarr(pred, block), window=window, gaussian=gaussian, block_shape=block)
    assert got == pytest.approx(ref, abs=1e-12)
    if window == (11 if gaussian else window):   # scikit-image's Gaussian windows are 11 wide
        R = gt.max() - gt.min()
        sk = skm.structural_similarity(gt, pred, win_size=window, gaussian_weights=gaussian, data_range=R,
                                       use_sample_covariance=False)
        assert got == pytest.approx(sk, abs=1e-9)


def test_foreground_precision_recall_blockwise(labels):
    gt, seg = labels
    ref = M.foreground_precision_recall(gt, seg % 3)
    assert M.foreground_precision_recall(_as("zarr", gt), _as("dask", seg % 3)) == ref
    assert 0.5 < ref[0] < 1 and 0.5 < ref[1] < 1


# --------------------------------------------------------------------------------------------
# errors, distributed
# --------------------------------------------------------------------------------------------

def test_blockwise_bad_input(labels, images):
    gt, seg = labels
    img, pred = images
    with pytest.raises(TypeError, match="integer label image"):
        M.adapted_rand_error(_zarr(img, UNEVEN), seg)
    with pytest.raises(ValueError, match="does not match"):
        M.variation_of_information(_zarr(gt, UNEVEN), seg[:, :5])
    with pytest.raises(ValueError, match="empty"):
        M.psnr(da.zeros((0, 4)), da.zeros((0, 4)))
    bad = pred.copy()
    bad[12, 28, 30] = np.nan                # in the last block only
    with pytest.raises(ValueError, match="pred contains 1 NaN"):
        M.psnr(_zarr(img, UNEVEN), bad)
    with pytest.raises(ValueError, match="pred contains 1 NaN"):
        M.ssim(img, bad, block_shape=UNEVEN)
    with pytest.raises(ValueError, match="constant"):
        M.psnr(da.ones(SHAPE, chunks=5), pred)
    with pytest.raises(ValueError, match="'range' or 'peak'"):
        M.psnr(img, pred, data_range="max")
    with pytest.raises(ValueError, match="do not fit"):
        M.psnr(img, pred, block_shape=(4, 4))


def test_dask_distributed_local_cluster(labels, images):
    distributed = pytest.importorskip("distributed")
    gt, seg = labels
    img, pred = images
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        scores = M.segmentation_scores(_zarr(gt, UNEVEN), _zarr(seg, UNEVEN), block_shape=UNEVEN,
                                       scheduler=client)
        value = M.psnr(img, pred, block_shape=UNEVEN, scheduler=client)
        assert len(cluster.scheduler.workers) == 2
    assert scores == M.segmentation_scores(gt, seg)
    assert value == pytest.approx(M.psnr(img, pred), rel=1e-13)
