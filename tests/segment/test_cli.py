"""``mire segment`` and ``mire proofread`` through typer's CliRunner."""

import numpy as np
import tifffile
from typer.testing import CliRunner

from mire.cli import app
from mire.data import em_cells
from mire.metrics import adapted_rand_error
from mire.segment import Proofreader, affinities

runner = CliRunner()


def _cells(tmp_path):
    _, lab = em_cells((6, 48, 48), seed=0)
    path = tmp_path / "membranes.tif"
    tifffile.imwrite(path, ((lab == 0) * 255).astype(np.uint8))  # an 8-bit probability map
    return lab, path


def test_segment_boundaries_several_thresholds(tmp_path):
    lab, path = _cells(tmp_path)
    out = tmp_path / "seg.tif"
    res = runner.invoke(app, ["segment", str(path), str(out), "--boundaries", "-t", "0.0,0.5",
                              "--scoring", "quantile:0"])
    assert res.exit_code == 0, res.output
    low, high = tifffile.imread(tmp_path / "seg_t0.tif"), tifffile.imread(tmp_path / "seg_t0.5.tif")
    assert adapted_rand_error(lab, high)[0] == 0.0
    assert adapted_rand_error(lab, low)[0] > 0.0
    assert not out.exists()


def test_segment_affinities(tmp_path):
    lab, _ = _cells(tmp_path)
    affs, _ = affinities(lab)
    path = tmp_path / "affs.tif"
    tifffile.imwrite(path, affs)
    out = tmp_path / "seg.tif"
    res = runner.invoke(app, ["segment", str(path), str(out), "--affinities", "-t", "0.5", "--min-distance", "2"])
    assert res.exit_code == 0, res.output
    assert adapted_rand_error(lab, tifffile.imread(out))[0] < 0.02


def test_segment_cli_errors(tmp_path):
    _, path = _cells(tmp_path)
    res = runner.invoke(app, ["segment", str(path), str(tmp_path / "o.tif")])
    assert res.exit_code == 2 and "exactly one of" in res.output
    res = runner.invoke(app, ["segment", str(tmp_path / "nope.tif"), str(tmp_path / "o.tif"), "--boundaries"])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(app, ["segment", str(path), str(tmp_path / "o.tif"), "--boundaries", "-t", "a,b"])
    assert res.exit_code == 2 and "comma" in res.output


def test_proofread_applies_log(tmp_path):
    lab, bpath = _cells(tmp_path)
    seg_path = tmp_path / "seg.tif"
    tifffile.imwrite(seg_path, lab.astype(np.uint32))
    pr = Proofreader(lab, boundary=(lab == 0).astype(np.float32))
    pr.merge([1, 2, 3])
    pr.split(1, [tuple(np.argwhere(lab == 1)[0]), tuple(np.argwhere(lab == 2)[0])])
    log = pr.save_log(tmp_path / "edits.json")
    out = tmp_path / "edited.tif"
    res = runner.invoke(app, ["proofread", str(seg_path), str(log), str(out), "--boundary", str(bpath)])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(tifffile.imread(out), pr.seg)
    res = runner.invoke(app, ["proofread", str(seg_path), str(tmp_path / "none.json"), str(out)])
    assert res.exit_code == 2 and "not found" in res.output


def test_train_segment_then_segment_with_model(tmp_path):
    from mire.data import em_cells

    image, lab = em_cells((48, 48), seed=1)
    ip, lp = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(ip, image)
    tifffile.imwrite(lp, lab)
    stem = tmp_path / "membranes"
    res = runner.invoke(app, ["train-segment", "-i", str(ip), "-l", str(lp), "-o", str(stem), "--ndim", "2",
                              "--preset", "tiny", "--epochs", "1", "--steps", "2", "--batch-size", "2",
                              "--patch", "32,32", "--threshold", "0.4"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "membranes.safetensors").exists() and (tmp_path / "membranes.json").exists()
    out = tmp_path / "seg.tif"
    res = runner.invoke(app, ["segment", str(ip), str(out), "--model", str(stem)])
    assert res.exit_code == 0, res.output
    assert "threshold 0.4" in res.output and tifffile.imread(out).shape == image.shape
    res = runner.invoke(app, ["train-segment", "-i", str(ip), "-l", str(lp), "-l", str(lp), "-o", str(stem)])
    assert res.exit_code == 2 and "one labels file per image" in res.output


def test_train_segment_long_range_from_a_model(tmp_path):
    import json

    from mire.data import em_cells

    image, lab = em_cells((48, 48), seed=1)
    ip, lp = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(ip, image)
    tifffile.imwrite(lp, lab)
    common = ["-i", str(ip), "-l", str(lp), "--epochs", "1", "--steps", "1", "--batch-size", "1", "--patch", "32,32"]
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "nn"), "--ndim", "2", "--preset",
                              "tiny", "--target", "affinities"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "lr"), "--from", str(tmp_path / "nn"),
                              "--long-range", "3", "--dense"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "lr.json").read_text())
    assert meta["offsets"] == [[-1, 0], [0, -1], [-3, 0], [0, -3]] and meta["network"]["out_channels"] == 4
    assert meta["offsets_from"]["channel_map"] == [0, 1, 0, 1]
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "b"), "--ndim", "2", "--preset", "tiny",
                              "--long-range", "3"])
    assert res.exit_code == 2 and "--target affinities" in res.output
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "b"), "--from", str(tmp_path / "nn"),
                              "--long-range", "1"])
    assert res.exit_code == 2 and ">= 2" in res.output


def test_train_segment_residual_block_and_spacing(tmp_path):
    import json

    image, lab = em_cells((4, 32, 32), seed=1)
    ip, lp = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(ip, image)
    tifffile.imwrite(lp, lab)
    common = ["-i", str(ip), "-l", str(lp), "--epochs", "1", "--steps", "1", "--batch-size", "1",
              "--patch", "4,16,16", "--preset", "tiny", "--target", "affinities"]
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "r"), "--block", "residual",
                              "--spacing", "30,6,6"])
    assert res.exit_code == 0, res.output
    net = json.loads((tmp_path / "r.json").read_text())["network"]
    assert net["block"] == "residual" and net["spacing"] == [30.0, 6.0, 6.0] and net["pool"] == [[1, 2, 2]]
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "b"), "--block", "dense"])
    assert res.exit_code == 2 and "unknown block" in res.output
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "b"), "--spacing", "30,x,6"])
    assert res.exit_code == 2 and "--spacing" in res.output
    res = runner.invoke(app, ["train-segment", *common, "-o", str(tmp_path / "b"), "--from", str(tmp_path / "r"),
                              "--block", "residual"])
    assert res.exit_code == 2 and "--from" in res.output
