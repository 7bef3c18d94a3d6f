"""`mire evaluate` on zarr / OME-Zarr volumes: read lazily, scored block by block (also on a
dask.distributed cluster), with the same numbers as the in-memory metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from mire import metrics as M
from mire.cli import app
from mire.io import imwrite

SHAPE = (13, 29, 31)


def _evaluate(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def _json(*args) -> dict:
    res = _evaluate(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture
def label_files(tmp_path, rng):
    """GT as OME-Zarr, the segmentation as a plain zarr array with small chunks, and TIFF copies."""
    z, y, x = np.indices(SHAPE)
    gt = ((z // 3) * 100 + (y // 5) * 10 + x // 7 + 1).astype(np.uint32)
    gt[(x % 7) == 0] = 0
    seg = gt.astype(np.int64)
    seg[gt == 0] = 1
    seg[(gt % 10) == 2] = 3
    noise = rng.random(SHAPE) < 0.03
    seg[noise] = rng.integers(0, 500, noise.sum())
    imwrite(tmp_path / "gt.ome.zarr", gt, axes="ZYX")
    z = zarr.create_array(store=str(tmp_path / "seg.zarr"), shape=SHAPE, chunks=(5, 11, 12), dtype=seg.dtype)
    z[:] = seg
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "seg.tif", seg)
    return tmp_path, gt, seg


def test_zarr_labels_are_read_lazily_and_scored_exactly(label_files, monkeypatch):
    d, gt, seg = label_files
    import mire.cli.evaluate as ev

    seen = []
    original = ev.evaluate_arrays
    monkeypatch.setattr(ev, "evaluate_arrays",
                        lambda pred, gt, *a, **k: seen.append((type(pred), type(gt), k)) or original(pred, gt, *a, **k))
    out = _json(d / "seg.zarr", d / "gt.ome.zarr", "--metrics", "arand,voi,cremi")
    ref = M.segmentation_scores(gt, seg)        # GT 0 ignored everywhere, as the CLI does
    assert out == ref                           # identical floats, not approximately
    assert 0.05 < out["arand_error"] < 0.9
    (pred_type, gt_type, kwargs), = seen
    assert pred_type.__module__.startswith("dask") and gt_type.__module__.startswith("dask")
    assert kwargs["block_shape"] is None and kwargs["scheduler"] is None
    # uneven blocks and two local workers: still identical
    assert _json(d / "seg.zarr", d / "gt.ome.zarr", "-m", "arand,voi,cremi",
                 "--block-size", "5,11,12", "--workers", "2") == ref


def test_tiff_with_block_size_goes_blockwise(label_files):
    d, gt, seg = label_files
    out = _json(d / "seg.tif", d / "gt.tif", "--block-size", "7,15,16", "--metrics", "arand,voi,fg")
    ref = M.segmentation_scores(gt, seg)
    assert {k: out[k] for k in ("arand_error", "voi_split", "voi_merge")} == \
        {k: ref[k] for k in ("arand_error", "voi_split", "voi_merge")}
    assert (out["fg_precision"], out["fg_recall"]) == M.foreground_precision_recall(gt, seg)


def test_zarr_images_psnr_ssim_peak(tmp_path, rng):
    gt = (rng.random(SHAPE) * 900 + 100).astype(np.float32)
    pred = (gt + 50 * rng.standard_normal(SHAPE)).astype(np.float32)
    imwrite(tmp_path / "gt.ome.zarr", gt, axes="ZYX")
    imwrite(tmp_path / "pred.ome.zarr", pred, axes="ZYX")
    out = _json(tmp_path / "pred.ome.zarr", tmp_path / "gt.ome.zarr", "--data-range", "peak",
                "--block-size", "6,10,9")
    assert set(out) == {"psnr", "ssim"}        # auto: float GT
    R = float(gt.max())
    assert out["psnr"] == pytest.approx(M.psnr(gt, pred, data_range=R), rel=1e-12)
    assert out["ssim"] == pytest.approx(M.ssim(gt, pred, data_range=R), abs=1e-12)
    assert 0.3 < out["ssim"] < 0.99


def test_cluster_address(label_files):
    distributed = pytest.importorskip("distributed")
    d, gt, seg = label_files
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = _json(d / "seg.zarr", d / "gt.ome.zarr", "-m", "arand,voi", "--block-size", "5,11,12",
                    "--cluster", cluster.scheduler_address)
    ref = M.segmentation_scores(gt, seg)
    assert out == {k: ref[k] for k in out} and len(out) == 5


@pytest.mark.parametrize("args, message", [
    (["--block-size", "32,x"], "--block-size must be an integer"),
    (["--block-size", "0"], "--block-size must be positive"),
    (["--block-size", "4,4"], "do not fit a 3D volume"),
    (["--cluster", "nonsense"], "--cluster must be a dask scheduler address"),
])
def test_bad_blockwise_options_exit_2(label_files, args, message):
    d, _, _ = label_files
    res = _evaluate(d / "seg.zarr", d / "gt.ome.zarr", "-m", "arand", *args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
