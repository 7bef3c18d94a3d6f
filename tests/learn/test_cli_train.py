"""``mire train-restore``: the three data modes, fine-tuning, and one-line errors."""

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from mire.cli import app
from mire.restore.learned import Restorer

runner = CliRunner()
FAST = ["--preset", "tiny", "--ndim", "2", "--epochs", "1", "--steps", "2", "--patch", "16,16", "--batch-size", "2"]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.random((40, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    tifffile.imwrite(tmp_path / "noisy.tif", clean + 0.2 * rng.standard_normal((40, 40)).astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("args,mode", [
    (["--noisy", "noisy.tif", "--clean", "clean.tif"], "pairs"),
    (["--noisy", "noisy.tif", "--noise2void"], "noise2void"),
])
def test_train_restore_modes(images, args, mode):
    args = [str(images / a) if a.endswith(".tif") else a for a in args]
    res = runner.invoke(app, ["train-restore", *args, "--out", str(images / "m"), *FAST])
    assert res.exit_code == 0, res.output
    r = Restorer.load(images / "m")
    assert r.metadata["training"]["mode"] == mode and r.metadata["training"]["steps"] == 2


def test_fine_tune_from_a_model(images):
    runner.invoke(app, ["train-restore", "--noisy", str(images / "noisy.tif"), "--clean", str(images / "clean.tif"),
                        "--out", str(images / "base"), *FAST])
    res = runner.invoke(app, ["train-restore", "--noisy", str(images / "noisy.tif"), "--clean", str(images / "clean.tif"),
                              "--out", str(images / "tuned"), "--from", str(images / "base"), *FAST])
    assert res.exit_code == 0, res.output
    assert Restorer.load(images / "tuned").metadata["training"]["fine_tuned_from"]["mode"] == "pairs"


def test_percentiles_set_a_new_models_normalization(images):
    res = runner.invoke(app, ["train-restore", "--noisy", str(images / "noisy.tif"), "--clean", str(images / "clean.tif"),
                              "--out", str(images / "med"), "--percentiles", "50,99.8", *FAST])
    assert res.exit_code == 0, res.output
    r = Restorer.load(images / "med")
    assert r.metadata["normalization"]["percentiles"] == [50.0, 99.8]
    # predict maps this input's median (not its 1st percentile) to 0
    img = tifffile.imread(images / "noisy.tif")
    med, hi = np.percentile(img, [50, 99.8])
    lo1 = np.percentile(img, 1)
    default = r.predict(img, axes="YX", clip=False)
    np.testing.assert_allclose(r.predict(img, axes="YX", clip=False, normalization=(med, hi)), default, atol=1e-4)
    assert not np.allclose(r.predict(img, axes="YX", clip=False, normalization=(lo1, hi)), default, atol=1e-3)


@pytest.mark.parametrize("args,message", [
    (["--noisy", "noisy.tif", "--clean", "clean.tif", "--percentiles", "99,1"], "percentiles must be"),
    (["--noisy", "noisy.tif", "--clean", "clean.tif", "--percentiles", "50"], "percentiles must be"),
    (["--noisy", "noisy.tif", "--noise2void", "--from", "widefield2d-denoise", "--percentiles", "50,99"],
     "keeps its own"),
    (["--clean", "clean.tif"], "give --noisy and --clean"),
    (["--clean", "clean.tif", "--simulate", "--noise2void"], "choose one of"),
    (["--noisy", "missing.tif", "--noise2void"], "not found"),
    (["--noisy", "noisy.tif", "--clean", "clean.tif", "--patch", "a,b"], "--patch must be"),
    (["--noisy", "noisy.tif", "--noise2void", "--from", "no-such-model"], "no model"),
])
def test_errors_are_one_line(images, args, message):
    args = [str(images / a) if a.endswith(".tif") else a for a in args]
    res = runner.invoke(app, ["train-restore", *args, "--out", str(images / "m")])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output
