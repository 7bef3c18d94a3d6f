"""``mire info``: human table and JSON, computed lazily; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mire.cli import app
from mire.io import imwrite

runner = CliRunner()


def test_info_json_ome_zarr(tmp_path, rng):
    data = rng.random((3, 150, 140)).astype(np.float32)
    path = tmp_path / "v.ome.zarr"
    imwrite(path, data, axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.2, "X": 0.2}, chunks=(1, 64, 64))
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["format"] == "omezarr" and info["levels"] == 2
    assert info["shape"] == [3, 150, 140] and info["dtype"] == "float32" and info["axes"] == "ZYX"
    assert info["pixel_size"] == {"Z": 1.0, "Y": 0.2, "X": 0.2}
    assert info["min"] == pytest.approx(float(data.min()))
    assert info["max"] == pytest.approx(float(data.max()))
    assert info["mean"] == pytest.approx(float(data.astype(np.float64).mean()), rel=1e-9)


def test_info_table(tmp_path):
    imwrite(f"{tmp_path}/a.h5:/raw", np.array([[0, 10], [20, 50]], np.uint8), axes="YX")
    result = runner.invoke(app, ["info", f"{tmp_path}/a.h5:/raw"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) if not line.startswith(("pixel", "min")) else line.split("  ", 1)
                 for line in result.stdout.splitlines())
    assert lines["format"].strip() == "hdf5"
    assert lines["shape"].strip() == "2 x 2"
    assert lines["axes"].strip() == "YX"
    assert lines["pixel size"].strip() == "unknown"
    assert lines["min / max / mean"].strip() == "0 / 50 / 20"


def test_info_real_data(shared_data):
    result = runner.invoke(app, ["info", str(shared_data("diadem_op_neurons", "OP_1.tif")), "--json", "--no-stats"])
    info = json.loads(result.stdout)
    assert info["shape"] == [60, 512, 512] and "min" not in info
    assert info["pixel_size"]["X"] == pytest.approx(0.3296, abs=1e-4)


def test_info_errors(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing.tif")])
    assert result.exit_code == 2
    assert "missing.tif: no such file" in result.output
    (tmp_path / "bad.tif").write_bytes(b"II*\0" + b"\xff" * 20)
    result = runner.invoke(app, ["info", str(tmp_path / "bad.tif")])
    assert result.exit_code == 2 and "bad.tif" in result.output and "Traceback" not in result.output
