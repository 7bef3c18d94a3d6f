"""The `mire` command as a whole: every command group is registered; sample data and demo run."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from mire.cli import app

runner = CliRunner()

COMMANDS = ["demo", "info", "simulate", "evaluate", "restore", "train-restore", "superres", "segment",
            "train-segment", "proofread", "trace", "evaluate-trace", "sample"]


def test_every_command_is_registered():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output, name


def test_sample_writes_readable_data(tmp_path):
    from mire.io import imread, read_image, read_swc

    r = runner.invoke(app, ["sample", "neurites", str(tmp_path / "n.tif"), "--shape", "8,32,32",
                            "--swc", str(tmp_path / "n.swc")])
    assert r.exit_code == 0, r.output
    img = read_image(tmp_path / "n.tif")
    assert img.data.shape == (8, 32, 32) and img.axes == "ZYX"
    swc = read_swc(tmp_path / "n.swc")
    assert swc.shape[1] == 7 and len(swc) > 10
    r = runner.invoke(app, ["sample", "em", str(tmp_path / "em.tif"), "--shape", "4,48,48",
                            "--labels", str(tmp_path / "lab.tif")])
    assert r.exit_code == 0, r.output
    lab = imread(tmp_path / "lab.tif")
    assert lab.shape == (4, 48, 48) and lab.max() > 3 and np.issubdtype(lab.dtype, np.integer)
    r = runner.invoke(app, ["sample", "frames", str(tmp_path / "f.tif"), "--shape", "64,64", "--n-frames", "5"])
    assert r.exit_code == 0, r.output
    assert imread(tmp_path / "f.tif").shape == (5, 16, 16)


def test_sample_rejects_unknown_kind(tmp_path):
    r = runner.invoke(app, ["sample", "cats", str(tmp_path / "x.tif")])
    assert r.exit_code == 2 and "unknown sample" in r.output
    assert not (tmp_path / "x.tif").exists()


def test_demo_runs_and_writes_table_and_figure(tmp_path):
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--shape", "8,48,48"])
    assert r.exit_code == 0, r.output
    table = (tmp_path / "d" / "table.md").read_text()
    assert "degraded input" in table and "TV" in table
    assert (tmp_path / "d" / "figure.png").stat().st_size > 1000
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ") and "dB" not in line]
    psnrs = {r[1].strip(): float(r[2]) for r in rows if len(r) > 3}
    # every restoration improves on the degraded input
    assert all(v > psnrs["degraded input"] for k, v in psnrs.items() if k != "degraded input"), psnrs


def test_nan_pixels_error_names_the_input_file(tmp_path):
    """An error about the pixel values names the file: the library's own message can only say "image"."""
    import tifffile

    v = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    v[1, 2, 3] = np.nan
    bad = tmp_path / "bad_stack.tif"
    tifffile.imwrite(bad, v, photometric="minisblack", metadata={"axes": "ZYX"})
    for args in (["restore", str(bad), str(tmp_path / "r.tif"), "--method", "wiener"],
                 ["restore", str(bad), str(tmp_path / "r.ome.zarr"), "--method", "wiener", "--block-size", "8"],
                 ["segment", str(bad), str(tmp_path / "s.tif"), "--model", "fibsem3d-affinity"],
                 ["adapt-segment", str(bad), "-o", str(tmp_path / "a")],
                 ["simulate", str(bad), str(tmp_path / "x.tif")],
                 ["trace", str(bad), str(tmp_path / "t.swc")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert f"{bad}: " in r.output and "NaN" in r.output, (args, r.output)
