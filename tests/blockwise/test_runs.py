"""Blockwise runs: resume after a kill, OME-Zarr outputs, reductions, and a dask.distributed cluster."""

import json
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from scipy import ndimage

from mire.blockwise import for_blocks, map_blocks, plan_blocks
from mire.io import imread, imwrite


def smooth(b):
    return ndimage.gaussian_filter(b, 1.0, mode="nearest", truncate=2.0)


def test_plan_covers_the_volume_once():
    shape = (13, 20, 9)
    cover = np.zeros(shape, int)
    for blk in plan_blocks(shape, (5, 8, 4), halo=(1, 2, 3)):
        cover[blk.core] += 1
        # the core sits inside the window at `inner`, and the window is the core grown by the halo
        assert all(o.start <= c.start and c.stop <= o.stop for c, o in zip(blk.core, blk.outer))
        assert all(i.stop - i.start == c.stop - c.start for i, c in zip(blk.inner, blk.core))
    assert (cover == 1).all()
    assert len(plan_blocks(shape, (5, 8, 4))) == 3 * 3 * 3


def test_for_blocks_reduces_like_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((17, 23)), rng.random((17, 23))
    parts = for_blocks(lambda x, y, blk: float(((x - y)[blk.inner] ** 2).sum()), [a, b], block_shape=(5, 7),
                       halo=2)
    assert len(parts) == 4 * 4
    assert sum(parts) == pytest.approx(((a - b) ** 2).sum(), rel=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        for_blocks(lambda x, y, blk: 0, [a, b[:-1]], block_shape=5)


def _slow_run(src_path, out_path, delay):
    import zarr

    def f(b):
        time.sleep(delay)
        return smooth(b)

    map_blocks(f, zarr.open_array(src_path, mode="r"), block_shape=(4, 16, 16), halo=2, out=out_path,
               scheduler="synchronous", token="smooth-1")


def test_killed_run_resumes_with_the_same_result(tmp_path):
    import zarr

    rng = np.random.default_rng(1)
    vol = rng.random((16, 32, 32)).astype(np.float32)
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=vol.shape, chunks=(4, 16, 16), dtype="float32")
    src[:] = vol
    out = tmp_path / "out.zarr"
    # 16 blocks at 0.25 s each: kill the process half-way
    proc = multiprocessing.get_context("spawn").Process(target=_slow_run, args=(str(src.store.root), str(out), 0.25))
    proc.start()
    run_dir = tmp_path / ".out.zarr.mire-run"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = list((run_dir / "done").glob("*")) if (run_dir / "done").exists() else []
        if len(done) >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    n_done = len(list((run_dir / "done").iterdir()))
    assert 5 <= n_done < 16, n_done
    assert not out.exists()  # nothing under the final name until complete
    assert json.loads((run_dir / "run.json").read_text())["token"] == "smooth-1"

    calls = []

    def counted(b):
        calls.append(1)
        return smooth(b)

    # another computation must not silently reuse the leftover blocks
    with pytest.raises(ValueError, match="different settings"):
        map_blocks(counted, src, block_shape=(4, 16, 16), halo=2, out=out, token="other")
    res = map_blocks(counted, src, block_shape=(4, 16, 16), halo=2, out=out, token="smooth-1")
    assert len(calls) == 16 - n_done  # only the missing blocks ran
    assert not run_dir.exists()
    whole = map_blocks(smooth, vol, block_shape=(4, 16, 16), halo=2)
    np.testing.assert_array_equal(res[:], whole)  # identical to an uninterrupted run


def test_ome_zarr_output_has_a_pyramid_napari_can_read(tmp_path):
    from mire.io import iminfo, imread
    from mire.io.omezarr import count_levels, read_omezarr

    labels = np.repeat(np.arange(8, dtype=np.uint32).reshape(1, 1, 8), 4, axis=0)
    labels = np.kron(labels, np.ones((1, 256, 32), np.uint32))  # (4, 256, 256), stripes of 8 labels
    out = tmp_path / "labels.ome.zarr"
    map_blocks(lambda b: b, labels, block_shape=(2, 100, 100), out=out, dtype=np.uint32, axes="ZYX",
               downscale="nearest", pixel_size={"Z": 1.0, "Y": 0.5, "X": 0.5})
    assert count_levels(out) == 3  # 256 -> 128 -> 64
    np.testing.assert_array_equal(imread(out), labels)
    low = read_omezarr(out, level=2)
    np.testing.assert_array_equal(low.data, labels[:, ::4, ::4])  # nearest keeps label values
    assert low.pixel_size["X"] == pytest.approx(2.0)
    assert iminfo(out)["axes"] == "ZYX"
    with pytest.raises(ValueError, match="axes"):
        map_blocks(lambda b: b, labels, block_shape=64, out=tmp_path / "x.ome.zarr")
    with pytest.raises(ValueError, match=r"\.zarr"):
        map_blocks(lambda b: b, labels, block_shape=64, out=tmp_path / "x.tif")


def test_local_cluster_matches_the_threaded_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    import zarr

    vol = np.random.default_rng(2).random((12, 40, 40)).astype(np.float32)
    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=vol.shape, chunks=(6, 20, 20), dtype="float32")
    src[:] = vol
    expected = map_blocks(smooth, vol, block_shape=(6, 20, 20), halo=2, scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        # a path output: the worker processes write their blocks into the zarr store themselves
        res = map_blocks(smooth, src, block_shape=(6, 20, 20), halo=2, out=tmp_path / "out.zarr", scheduler=client)
        np.testing.assert_array_equal(res[:], expected)
        # in memory, from the active client (no scheduler argument) and by address
        np.testing.assert_array_equal(map_blocks(smooth, src, block_shape=(6, 20, 20), halo=2), expected)
        by_address = map_blocks(smooth, src, block_shape=(6, 20, 20), halo=2, scheduler=cluster.scheduler_address)
        np.testing.assert_array_equal(by_address, expected)
        parts = for_blocks(lambda a, blk: float(a[blk.inner].sum()), [src], block_shape=(6, 20, 20))
        assert sum(parts) == pytest.approx(float(vol.astype(np.float64).sum()), rel=1e-6)
        # a lazily read TIFF travels to the worker processes as its path (tifffile's store cannot)
        imwrite(tmp_path / "in.tif", vol, axes="ZYX")
        from_tiff = map_blocks(smooth, imread(tmp_path / "in.tif", lazy=True), block_shape=(6, 20, 20), halo=2)
        np.testing.assert_array_equal(from_tiff, expected)


def test_scheduler_errors():
    with pytest.raises(ValueError, match="unknown scheduler"):
        map_blocks(smooth, np.ones((8, 8)), block_shape=4, scheduler="fast")
    with pytest.raises(ValueError, match="workers"):
        map_blocks(smooth, np.ones((8, 8)), block_shape=4, workers=0)
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConnectionError, match="dask scheduler"):
            map_blocks(smooth, np.ones((8, 8)), block_shape=4, scheduler="tcp://127.0.0.1:1")


def test_cluster_by_address_or_non_default_client():
    distributed = pytest.importorskip("distributed")

    vol = np.random.default_rng(3).random((8, 24, 24))
    expected = map_blocks(smooth, vol, block_shape=(4, 12, 12), halo=2, scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=50) as cluster:
        # no default client exists: the address gets its own client for the run
        parts = for_blocks(lambda a, blk: float(a[blk.inner].sum()), [vol], block_shape=(4, 12, 12),
                           scheduler=cluster.scheduler_address)
        assert sum(parts) == pytest.approx(vol.sum(), rel=1e-12)
        with distributed.Client(cluster, set_as_default=False) as client:
            np.testing.assert_array_equal(
                map_blocks(smooth, vol, block_shape=(4, 12, 12), halo=2, scheduler=client), expected)


def test_resume_of_a_run_killed_before_its_first_block(tmp_path):
    vol = np.random.default_rng(4).random((8, 16, 16))
    out = tmp_path / "out.zarr"

    def boom(b):
        raise KeyboardInterrupt  # like Ctrl-C during the first block

    with pytest.raises(KeyboardInterrupt):
        map_blocks(boom, vol, block_shape=(4, 8, 8), halo=2, out=out, scheduler="synchronous", token="t")
    assert (tmp_path / ".out.zarr.mire-run").exists() and not out.exists()
    res = map_blocks(smooth, vol, block_shape=(4, 8, 8), halo=2, out=out, token="t")
    np.testing.assert_array_equal(res[:], map_blocks(smooth, vol, block_shape=(4, 8, 8), halo=2))



def test_a_failed_threaded_run_raises_after_the_blocks_in_flight_finish(tmp_path):
    # before: dask's threaded scheduler raised block 0's error while block 1 was still running, so a
    # caller removing its scratch folder on the error raced with block 1 writing into it (a CI failure:
    # `.o.ome.zarr.boundary` left behind after a refused input)
    import threading

    from mire.blockwise._schedule import run_tasks

    started = threading.Event()

    def task(i):
        if i == 0:
            started.wait(2.0)  # raise while block 1 runs (a timeout if dask put both in one thread)
            raise ValueError("block 0 is refused")
        started.set()
        time.sleep(0.3)
        (tmp_path / f"written-{i}").write_text("x")

    with pytest.raises(ValueError, match="block 0 is refused"):
        run_tasks(task, [0, 1], scheduler="threads", workers=2)
    assert started.is_set()
    assert (tmp_path / "written-1").exists()  # the block in flight ended before the error came back
