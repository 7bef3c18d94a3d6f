"""``mire restore`` through typer's CliRunner: every method, axes and pixel size kept, clear errors."""

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from mire.cli import app
from mire.io import imread, imwrite, read_image

runner = CliRunner()


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(0)
    truth = np.zeros((8, 32, 32), np.float32)
    truth[2:6, 8:24, 10:20] = 200
    img = ndimage.gaussian_filter(truth, 1.0) + rng.normal(0, 5, truth.shape).astype(np.float32) + 10
    path = tmp_path / "in.tif"
    imwrite(path, img.astype(np.float32), axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.33, "X": 0.33})
    return path, truth


@pytest.mark.parametrize("extra", [
    ["--method", "tv", "--weight", "0.02", "--iterations", "30"],
    ["--method", "rl", "--iterations", "10", "--psf", "gaussian:1.0,1.0,1.0"],
    ["--method", "wiener"],
    ["--method", "tv", "--weight", "0.02", "--iterations", "20", "--block", "8,16,16"],
])
def test_restore_methods_write_output_with_metadata(stack, tmp_path, extra):
    path, truth = stack
    out = tmp_path / "out.tif"
    res = runner.invoke(app, ["restore", str(path), str(out), "--psf", "gaussian:1.0"] + extra)
    assert res.exit_code == 0, res.output
    restored = read_image(out)
    assert restored.data.shape == truth.shape
    assert restored.axes == "ZYX"
    assert restored.pixel_size["Y"] == pytest.approx(0.33, rel=1e-3)
    src = imread(path)
    # the restoration moved towards the truth (up to the background offset it keeps); the
    # data-driven Wiener filter is not reliable on such a thin, noisy stack (see known issues)
    err = lambda a: np.abs((a - np.median(a)) - truth).mean()  # noqa: E731
    if "wiener" not in extra:
        assert err(np.asarray(restored.data)) < err(src)


def test_restore_automatic_weight(stack, tmp_path):
    path, _ = stack
    res = runner.invoke(app, ["restore", str(path), str(tmp_path / "o.tif"), "--psf", "gaussian:1.0"])
    assert res.exit_code == 0, res.output
    assert "weight" in res.output


@pytest.mark.parametrize("args,msg", [
    (["--method", "magic"], "--method"),
    (["--block", "8,x,16"], "--block"),
    (["--block", "8,16"], "--block"),  # 1 value means a cube; 2 values for a 3D image are an error
    (["--psf", "gaussian:abc"], "PSF spec"),
    (["--model", "nonexistent-model-name"], ""),
])
def test_restore_errors_exit_2_with_one_line(stack, tmp_path, args, msg):
    path, _ = stack
    res = runner.invoke(app, ["restore", str(path), str(tmp_path / "o.tif")] + args)
    assert res.exit_code == 2, res.output
    assert "error" in res.output and msg in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.tif").exists()


def test_restore_missing_input(tmp_path):
    res = runner.invoke(app, ["restore", str(tmp_path / "nope.tif"), str(tmp_path / "o.tif")])
    assert res.exit_code == 2
    assert "not found" in res.output


def test_blockwise_zarr_in_ome_zarr_out(stack, tmp_path):
    from mire.restore import richardson_lucy

    path, _ = stack
    src = tmp_path / "in.ome.zarr"
    imwrite(src, imread(path), axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.33, "X": 0.33})
    out = tmp_path / "out.ome.zarr"
    args = ["restore", str(src), str(out), "--method", "rl", "--iterations", "8", "--psf", "gaussian:1.0",
            "--block-size", "8,16,16", "--halo", "10", "--workers", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    restored = read_image(out)
    assert restored.axes == "ZYX" and restored.pixel_size["X"] == pytest.approx(0.33, rel=1e-3)
    whole = richardson_lucy(imread(path), "gaussian:1.0", n_iter=8)
    assert np.abs(restored.data - whole).max() < 1e-3 * whole.max()
    # the output exists: a second run refuses to overwrite it and names it
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, ["restore", str(src), str(tmp_path / "x.ome.zarr"), "--halo", "-1", "--block-size", "8"])
    assert bad.exit_code == 2 and "--halo" in bad.output
