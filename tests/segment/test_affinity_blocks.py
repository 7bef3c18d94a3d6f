"""Affinity volumes blockwise: exact boundary-map conversion, segmentation close to the in-memory one, CLI."""

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from mire.cli import app
from mire.data import em_cells
from mire.metrics import adapted_rand_error
from mire.segment import (
    affinities,
    affinities_to_boundaries,
    affinities_to_boundaries_blockwise,
    face_splits,
    segment_affinities,
    segment_affinities_blockwise,
    segment_boundaries,
)

BLOCK, HALO = (6, 48, 48), (4, 16, 16)


@pytest.fixture(scope="module")
def noisy():
    """Affinities of synthetic cells with Gaussian noise (SD 0.1, clipped to [0, 1])."""
    _, labels = em_cells((12, 96, 96), seed=1)
    clean, _ = affinities(labels)
    rng = np.random.default_rng(1)
    return np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("reduce", ["max", "mean"])
@pytest.mark.parametrize("shape, block", [((3, 11, 37, 29), (4, 16, 10)), ((2, 37, 29), (16, 10))])
def test_conversion_equals_whole_volume_numpy(reduce, shape, block):
    affs = np.random.default_rng(0).random(shape).astype(np.float32)
    # blocks that do not divide the shape: the last block of every axis is partial
    assert any(n % b for n, b in zip(shape[1:], block))
    got = affinities_to_boundaries_blockwise(affs, block_shape=block, reduce=reduce)
    assert got.dtype == np.float32 and got.shape == shape[1:]
    np.testing.assert_array_equal(got, affinities_to_boundaries(affs, reduce=reduce))


def test_conversion_from_zarr_never_reads_long_range_channels(tmp_path):
    """A (5, Z, Y, X) zarr, two long-range channels after the nearest neighbours, written to a zarr path."""
    rng = np.random.default_rng(1)
    affs = rng.random((5, 11, 37, 29)).astype(np.float32)
    affs[3:] = np.nan  # would raise if a block read them (NaN is rejected)
    src = zarr.create_array(store=str(tmp_path / "aff.zarr"), shape=affs.shape, chunks=(5, 4, 16, 16),
                            dtype=np.float32)
    src[:] = affs
    out = tmp_path / "b.zarr"
    got = affinities_to_boundaries_blockwise(zarr.open_array(str(tmp_path / "aff.zarr"), mode="r"),
                                             block_shape=(4, 16, 10), out=out)
    np.testing.assert_array_equal(got[:], affinities_to_boundaries(affs[:3], reduce="max"))
    assert got.chunks == (4, 16, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aff.zarr", "b.zarr"]  # no run folder left


def test_boundary_view_windows_are_exact_and_pickle():
    """The lazy view map_blocks reads: any window holds the whole-volume values, also in a worker process."""
    import pickle

    from mire.segment.affinity_blocks import _BoundaryWindows

    affs = np.random.default_rng(3).random((3, 7, 12, 10)).astype(np.float32)
    whole = affinities_to_boundaries(affs, reduce="max")
    view = pickle.loads(pickle.dumps(_BoundaryWindows(affs, "max")))
    assert view.shape == (7, 12, 10) and view.dtype == np.float32
    for window in [(slice(2, 5), slice(0, 12), slice(3, 4)), (slice(None), slice(11, 12), slice(0, 10))]:
        np.testing.assert_array_equal(view[window], whole[window])
    with pytest.raises(ValueError, match="step"):
        view[::2, :, :]


def test_conversion_from_dask_with_other_chunks():
    import dask.array as da

    affs = np.random.default_rng(2).random((3, 9, 20, 20)).astype(np.float32)
    lazy = da.from_array(affs, chunks=(1, 5, 7, 7))
    got = affinities_to_boundaries_blockwise(lazy, block_shape=(4, 9, 11), reduce="mean", scheduler="synchronous")
    np.testing.assert_array_equal(got, affinities_to_boundaries(affs, reduce="mean"))


def test_blockwise_segmentation_close_to_in_memory(noisy):
    blocks = segment_affinities_blockwise(noisy, block_shape=BLOCK, halo=HALO)  # 2 x 2 x 2 blocks
    assert blocks.dtype == np.uint32
    ids = np.unique(blocks)
    assert ids[0] == 1 and ids[-1] == len(ids)  # consecutive 1..N
    # both score fragment faces by 1 - affinity: measured 0.0000 here (0.0000-0.0043 over seeds 1-3
    # and noise SD 0, 0.1, 0.2; 0.0029 when the blocks scored faces on the boundary map)
    whole = segment_affinities(noisy, thresholds=0.5)
    assert adapted_rand_error(whole, blocks)[0] < 0.002
    assert face_splits(whole, blocks, BLOCK) == []
    # with the same (boundary-map) scoring in memory only the blocks differ: measured 0.0007
    same = segment_boundaries(affinities_to_boundaries(noisy, reduce="max"), threshold=0.5, scoring="median")
    assert adapted_rand_error(same, blocks)[0] < 0.005


def test_path_output_is_atomic_and_removes_its_scratch(noisy, tmp_path):
    affs = noisy[:, :6, :48, :48]
    out = tmp_path / "seg.ome.zarr"
    res = segment_affinities_blockwise(affs, block_shape=(3, 24, 24), halo=(2, 8, 8), out=out, axes="ZYX")
    np.testing.assert_array_equal(res[:], segment_affinities_blockwise(affs, block_shape=(3, 24, 24), halo=(2, 8, 8)))
    assert [p.name for p in tmp_path.iterdir()] == ["seg.ome.zarr"]  # boundary scratch and stitch folders gone
    with pytest.raises(FileExistsError, match="exists"):
        segment_affinities_blockwise(affs, block_shape=(3, 24, 24), out=out)


def test_failed_run_resumes_from_its_converted_map(noisy, tmp_path, monkeypatch):
    import mire.segment.affinity_blocks as affinity_blocks
    import mire.segment.chunked as chunked

    affs = noisy[:, :6, :48, :48]
    opts = dict(block_shape=(3, 24, 24), halo=(2, 8, 8))
    out = tmp_path / "seg.zarr"

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(chunked, "segment_blockwise", killed)
        with pytest.raises(RuntimeError, match="killed"):
            segment_affinities_blockwise(affs, out=out, **opts)
    scratch = tmp_path / ".seg.zarr.boundary" / "boundary.zarr"
    np.testing.assert_array_equal(zarr.open_array(str(scratch), mode="r")[:],
                                  affinities_to_boundaries(affs, reduce="max"))  # kept for the rerun
    monkeypatch.setattr(affinity_blocks, "affinities_to_boundaries_blockwise", killed)  # must not convert again
    res = segment_affinities_blockwise(affs, out=out, **opts)
    monkeypatch.undo()
    np.testing.assert_array_equal(res[:], segment_affinities_blockwise(affs, **opts))
    assert [p.name for p in tmp_path.iterdir()] == ["seg.zarr"]


def test_bad_inputs_are_named():
    vol = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    # a (Z, Y, X) map given as affinities: its Z would be read as 8 channels over a 2D image
    with pytest.raises(ValueError, match=r"block_shape has 3 values .* 8 channels over a 2D volume"):
        affinities_to_boundaries_blockwise(vol, block_shape=(4, 8, 8))
    with pytest.raises(ValueError, match="channel axis first"):
        affinities_to_boundaries_blockwise(vol[0], block_shape=8)
    with pytest.raises(ValueError, match=r"2 channel\(s\) .* needs at least 3"):
        affinities_to_boundaries_blockwise(np.ones((2, 4, 8, 8)), block_shape=4)
    with pytest.raises(ValueError, match=r"in \[0, 1\].*255"):
        affinities_to_boundaries_blockwise(np.full((3, 4, 8, 8), 200, np.uint8), block_shape=4)
    with pytest.raises(ValueError, match="reduce"):
        affinities_to_boundaries_blockwise(np.ones((3, 4, 8, 8)), block_shape=4, reduce="min")
    with pytest.raises(ValueError, match="one threshold"):
        segment_affinities_blockwise(np.ones((3, 4, 8, 8)), block_shape=4, threshold=[0.3, 0.5])


def _write_zarr(path, data):
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=data.shape, dtype=data.dtype)
    arr[:] = data
    return path


def test_cli_round_trip_on_a_zarr_affinity_volume(noisy, tmp_path):
    affs = noisy[:, :, :64, :64]
    src = _write_zarr(tmp_path / "aff.zarr", affs)
    out = tmp_path / "labels.zarr"
    res = CliRunner().invoke(app, ["segment", str(src), str(out), "--affinities", "--block-size", "6,32,32",
                                   "--halo", "4,16,16", "--workers", "2"])
    assert res.exit_code == 0, res.output
    labels = zarr.open_array(str(out), mode="r")[:]
    expected = segment_affinities_blockwise(affs, block_shape=(6, 32, 32), halo=(4, 16, 16))
    np.testing.assert_array_equal(labels, expected)
    assert f"{int(expected.max())} segments" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aff.zarr", "labels.zarr"]  # scratch removed
    # 8-bit affinities are scaled to [0, 1] as the in-memory path scales them
    src8 = _write_zarr(tmp_path / "aff8.zarr", np.round(affs * 255).astype(np.uint8))
    res = CliRunner().invoke(app, ["segment", str(src8), str(tmp_path / "l8.tif"), "--affinities",
                                   "--block-size", "6,32,32", "--halo", "4,16,16"])
    assert res.exit_code == 0, res.output
    from mire.io import imread

    scaled = (np.round(affs * 255).astype(np.uint8).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(imread(tmp_path / "l8.tif"),
                                  segment_affinities_blockwise(scaled, block_shape=(6, 32, 32), halo=(4, 16, 16)))


def test_cli_reads_an_hdf5_dataset_and_names_a_missing_file(noisy, tmp_path):
    h5py = pytest.importorskip("h5py")
    affs = noisy[:, :6, :48, :48]
    with h5py.File(tmp_path / "aff.h5", "w") as f:
        f["aff"] = affs
    out = tmp_path / "labels.zarr"
    res = CliRunner().invoke(app, ["segment", f"{tmp_path / 'aff.h5'}:/aff", str(out), "--affinities",
                                   "--block-size", "3,24,24", "--halo", "2,8,8"])
    assert res.exit_code == 0, res.output
    expected = segment_affinities_blockwise(affs, block_shape=(3, 24, 24), halo=(2, 8, 8))
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], expected)
    res = CliRunner().invoke(app, ["segment", f"{tmp_path / 'missing.h5'}:/aff", str(tmp_path / "x.zarr"),
                                   "--affinities", "--block-size", "3,24,24"])
    assert res.exit_code == 2 and "input not found" in res.output and "missing.h5" in res.output


def test_cli_refuses_inputs_without_channels_and_per_slice(tmp_path):
    from mire.io import imwrite

    vol = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    runner = CliRunner()
    plain = _write_zarr(tmp_path / "map.zarr", vol)
    res = runner.invoke(app, ["segment", str(plain), str(tmp_path / "o.zarr"), "--affinities",
                              "--block-size", "4,8,8"])
    assert res.exit_code == 2
    assert "8 channels over a 2D volume" in res.output and "(C, Z, Y, X)" in res.output
    tif = tmp_path / "map.tif"
    imwrite(tif, vol, axes="ZYX")
    res = runner.invoke(app, ["segment", str(tif), str(tmp_path / "o.zarr"), "--affinities", "--block-size", "4"])
    assert res.exit_code == 2 and "has axes ZYX" in res.output
    few = _write_zarr(tmp_path / "few.zarr", np.ones((2, 4, 8, 8), np.float32))
    res = runner.invoke(app, ["segment", str(few), str(tmp_path / "o.zarr"), "--affinities", "--block-size", "4"])
    assert res.exit_code == 2 and "needs at least 3" in res.output
    res = runner.invoke(app, ["segment", str(few), str(tmp_path / "o.zarr"), "--affinities", "--block-size", "4",
                              "--per-slice"])
    assert res.exit_code == 2 and "--per-slice applies to boundary maps only" in res.output
    assert not (tmp_path / "o.zarr").exists()
