"""Blockwise segmentation: equal to the whole-volume pipeline, one ID per object across block faces."""

import numpy as np
import pytest

import mire.segment.chunked as chunked
from mire.data import em_cells
from mire.metrics import adapted_rand_error, variation_of_information
from mire.segment import (
    agglomerate,
    baseline_boundary_map,
    boundaries,
    face_splits,
    match_labels,
    segment_blockwise,
    segment_boundaries,
)

BLOCK, HALO = (6, 48, 48), (6, 16, 16)


@pytest.fixture(scope="module")
def volume():
    image, _ = em_cells((12, 96, 96), seed=1)
    b = baseline_boundary_map(image)
    return b, segment_boundaries(b)


def test_match_labels_hand_computed():
    a = np.array([[1, 1, 1, 2, 2, 2, 0, 3]])
    b = np.array([[7, 7, 7, 7, 9, 9, 9, 5]])
    # 1-7: 3 of 3 and 3 of 4 voxels; 2-9: 2 of 3 and 2 of the 2 scored voxels of 9 (0 is not scored);
    # 3-5: one voxel each
    assert match_labels(a, b).tolist() == [[1, 7], [2, 9], [3, 5]]
    # a label cut in halves by the other labeling holds no majority of it: no match
    assert match_labels(np.array([1, 1, 2, 2]), np.array([4, 4, 4, 4])).shape == (0, 2)
    assert match_labels(np.array([1, 1, 2, 2]), np.array([4, 4, 4, 4]), overlap=0.4).tolist() == [[1, 4], [2, 4]]
    with pytest.raises(ValueError, match="shape"):
        match_labels(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("stitch", ["graph", "overlap"])
def test_blockwise_equals_whole_volume(volume, stitch):
    b, whole = volume
    blocks = segment_blockwise(b, block_shape=BLOCK, halo=HALO, stitch=stitch)  # 2 x 2 x 2 blocks
    assert blocks.dtype == np.uint32
    assert adapted_rand_error(whole, blocks)[0] <= 0.01
    assert sum(variation_of_information(whole, blocks)) < 0.02
    assert face_splits(whole, blocks, BLOCK) == []  # no object changes ID at a block face
    ids = np.unique(blocks)
    assert ids[0] == 1 and ids[-1] == len(ids)  # consecutive 1..N


def test_one_block_is_the_whole_volume_pipeline(volume):
    b, whole = volume
    one = segment_blockwise(b, block_shape=b.shape, halo=0)
    assert adapted_rand_error(whole, one)[0] == 0.0
    assert variation_of_information(whole, one) == (0.0, 0.0)


def test_graph_stitching_is_in_memory_agglomeration_of_the_fragments(volume):
    # small halo: the blocks' fragments differ from a whole-volume watershed, but the stitched graph
    # must agglomerate exactly as agglomerate() does on those same fragments
    b = volume[0][:8, :64, :64]
    opts = dict(block_shape=(4, 32, 32), halo=(2, 6, 6), scheduler="synchronous")
    fragments = segment_blockwise(b, threshold=0.0, **opts)
    for scoring in ("mean", "quantile:0.5"):
        ref = agglomerate(fragments, boundary=b, thresholds=0.5, scoring=scoring).segmentations[0]
        seg = segment_blockwise(b, threshold=0.5, scoring=scoring, **opts)
        assert variation_of_information(ref, seg) == (0.0, 0.0), scoring


def test_objects_crossing_many_blocks_keep_one_id():
    # 8 bands of cells 5 voxels wide, each running through 4 of the 2 x 2 x 2 blocks
    cells = np.repeat(np.arange(1, 9), 5)[None, None, :].repeat(40, axis=1).repeat(4, axis=0)
    b = boundaries(cells, background=None).astype(np.float32)
    for stitch in ("graph", "overlap"):
        seg = segment_blockwise(b, block_shape=(2, 20, 20), halo=(2, 8, 8), stitch=stitch, min_distance=2,
                                scheduler="synchronous")
        assert len(np.unique(seg)) == 8, stitch
        for c in range(1, 9):
            assert len(np.unique(seg[cells == c])) == 1, (stitch, c)


def test_2d_and_per_slice_equal_whole_volume():
    image, _ = em_cells((128, 128), seed=3)
    b = baseline_boundary_map(image)
    seg = segment_blockwise(b, block_shape=(64, 64), halo=24)
    assert variation_of_information(segment_boundaries(b), seg) == (0.0, 0.0)
    image, _ = em_cells((4, 96, 96), seed=3)
    b = baseline_boundary_map(image, per_slice=True)
    seg = segment_blockwise(b, block_shape=(2, 48, 48), halo=(2, 24, 24), per_slice=True, stitch="overlap")
    assert variation_of_information(segment_boundaries(b, per_slice=True), seg) == (0.0, 0.0)
    assert len(np.intersect1d(seg[1], seg[2])) == 0  # slices segmented apart share no ID across the face


def test_min_size_merges_small_regions(volume):
    b, _ = volume
    seg = segment_blockwise(b, block_shape=BLOCK, halo=HALO, threshold=0.3, min_size=400)
    sizes = np.bincount(seg.ravel())[1:]
    assert sizes.min() >= 400  # every region has a neighbour here, so none stays small
    ids = np.unique(seg)
    assert ids[-1] == len(ids)


def test_local_cluster_gives_the_local_scheduler_labels(volume, tmp_path):
    distributed = pytest.importorskip("distributed")
    b, _ = volume
    local = segment_blockwise(b, block_shape=BLOCK, halo=HALO, scheduler="threads")
    # worker processes: every pass's files (face slabs, scratch labels, per-block ID tables) are
    # written and read by other processes than the driver
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        remote = segment_blockwise(b, block_shape=BLOCK, halo=HALO, scheduler=client, out=tmp_path / "seg.zarr")
        overlap = segment_blockwise(b, block_shape=BLOCK, halo=HALO, scheduler=client, stitch="overlap")
    np.testing.assert_array_equal(local, remote[:])
    np.testing.assert_array_equal(segment_blockwise(b, block_shape=BLOCK, halo=HALO, stitch="overlap"), overlap)


def test_killed_run_resumes_from_its_blocks(volume, tmp_path, monkeypatch):
    import zarr

    b, _ = volume
    out = tmp_path / "seg.zarr"
    opts = dict(block_shape=BLOCK, halo=HALO, scheduler="synchronous")
    real_relabel = chunked._relabel_block
    seen = []

    def dies(piece, block, **kw):  # the last pass dies at its third block, after two were written
        seen.append(block.index)
        if len(seen) == 3:
            raise RuntimeError("killed")
        return real_relabel(piece, block, **kw)

    monkeypatch.setattr(chunked, "_relabel_block", dies)
    with pytest.raises(RuntimeError, match="killed"):
        segment_blockwise(b, out=out, **opts)
    assert not out.exists() and (tmp_path / ".seg.zarr.stitch" / "labels.zarr").exists()
    monkeypatch.setattr(chunked, "_relabel_block", real_relabel)
    calls = []
    real_segment = chunked._segment_piece
    monkeypatch.setattr(chunked, "_segment_piece", lambda *a, **k: calls.append(1) or real_segment(*a, **k))
    resumed = segment_blockwise(b, out=out, **opts)
    assert calls == []  # no block was segmented again
    np.testing.assert_array_equal(resumed[:], segment_blockwise(b, **opts))
    assert isinstance(zarr.open_array(str(out), mode="r"), zarr.Array)
    assert not (tmp_path / ".seg.zarr.stitch").exists()
    with pytest.raises(FileExistsError, match="exists"):
        segment_blockwise(b, out=out, **opts)


def test_bad_input_is_refused(volume):
    b, _ = volume
    with pytest.raises(ValueError, match="halo"):
        segment_blockwise(b, block_shape=BLOCK, halo=(1, 16, 16))
    with pytest.raises(ValueError, match="one threshold"):
        segment_blockwise(b, block_shape=BLOCK, halo=HALO, threshold=[0.3, 0.5])
    with pytest.raises(ValueError, match="stitch"):
        segment_blockwise(b, block_shape=BLOCK, halo=HALO, stitch="magic")
    with pytest.raises(ValueError, match="2D .* or 3D"):
        segment_blockwise(b[None], block_shape=2, halo=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        segment_blockwise(b * 3, block_shape=BLOCK, halo=HALO)


def test_real_em_crop_blockwise_equals_whole(shared_data):
    import tifffile

    # a halo of 24 voxels holds the baseline's segments' context on this crop (16 does not:
    # ARAND 0.018 with graph stitching; see experiments/segment_blockwise.py)
    raw = tifffile.imread(shared_data("gala_fibsem_neurons", "test-image.tif"))[:24, :, :128]
    b = baseline_boundary_map(raw)
    whole = segment_boundaries(b)
    blocks = segment_blockwise(b, block_shape=(12, 50, 64), halo=(12, 24, 24))  # 2 x 2 x 2 blocks
    assert adapted_rand_error(whole, blocks)[0] <= 0.01
    assert face_splits(whole, blocks, (12, 50, 64)) == []


def test_cli_segments_ome_zarr_in_blocks(volume, tmp_path):
    from typer.testing import CliRunner

    from mire.cli import app
    from mire.io import iminfo, imread, imwrite

    b = np.ascontiguousarray(np.tile(volume[0], (1, 2, 2))[:, :128, :128])  # 128 px: a 2-level pyramid
    src, out = tmp_path / "membranes.ome.zarr", tmp_path / "seg.ome.zarr"
    imwrite(src, (b * 255).round().astype(np.uint8), axes="ZYX")  # an 8-bit probability map
    res = CliRunner().invoke(app, ["segment", str(src), str(out), "--boundaries", "--block-size", "6,64,64",
                                   "--halo", "6,16,16", "--workers", "2"])
    assert res.exit_code == 0, res.output
    seg = imread(out)
    expected = segment_blockwise((b * 255).round().astype(np.uint8) / np.float32(255), block_shape=(6, 64, 64),
                                 halo=(6, 16, 16))
    np.testing.assert_array_equal(seg, expected)
    assert f"{seg.max()} segments" in res.output
    info = iminfo(out)
    assert info["levels"] == 2 and info["axes"] == "ZYX"
    coarse = imread(out, level=1)
    np.testing.assert_array_equal(coarse, seg[:, ::2, ::2])  # nearest: labels are picked, not averaged


def test_cli_block_errors(tmp_path):
    from typer.testing import CliRunner

    from mire.cli import app
    from mire.io import imwrite

    src = tmp_path / "b.ome.zarr"
    imwrite(src, np.zeros((4, 32, 32), np.float32), axes="ZYX")
    runner = CliRunner()
    res = runner.invoke(app, ["segment", str(src), str(tmp_path / "o.zarr"), "--boundaries", "--block-size", "4,x"])
    assert res.exit_code == 2 and "comma-separated integers" in res.output
    res = runner.invoke(app, ["segment", str(src), str(tmp_path / "o.zarr"), "--boundaries", "--block-size", "4,16"])
    assert res.exit_code == 2 and "2 values but the image is 3D" in res.output
    res = runner.invoke(app, ["segment", str(src), str(tmp_path / "o.zarr"), "--affinities", "--block-size", "16"])
    assert res.exit_code == 2 and "--boundaries" in res.output
