"""Restorer: predict (axes, scale, loops), save/load round trip, bad files, training modes, shipped models."""

import json

import numpy as np
import pytest
import torch

from mire import models
from mire.restore.learned import Restorer


def _zero_correction(r):
    """A residual network whose correction is zero: the restorer must return its input exactly."""
    torch.nn.init.zeros_(r.model.head.weight)
    torch.nn.init.zeros_(r.model.head.bias)
    return r


def _trained_tiny(ndim=2):
    torch.manual_seed(0)
    r = Restorer("tiny", ndim=ndim)
    for p in r.model.parameters():  # random, non-trivial weights
        torch.nn.init.normal_(p, std=0.3)
    return r


def test_predict_returns_input_scale():
    r = _zero_correction(Restorer("tiny", ndim=2))
    img = (np.random.default_rng(0).random((30, 41)) * 1000 + 200).astype(np.float32)
    out = r.predict(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out, img, rtol=1e-5)  # normalize -> identity -> denormalize


def test_axes_loops_and_mismatch_errors():
    r = _trained_tiny(ndim=2)
    rng = np.random.default_rng(1)
    cyx = rng.random((2, 24, 24)).astype(np.float32)
    cyx[1] *= 50  # channels are normalized separately
    out = r.predict(cyx, axes="CYX")
    for c in range(2):
        np.testing.assert_allclose(out[c], r.predict(cyx[c]), rtol=1e-5, atol=1e-5)
    stack = rng.random((3, 24, 24)).astype(np.float32)
    assert r.predict(stack, axes="ZYX").shape == (3, 24, 24)  # a 2D model goes slice by slice
    with pytest.raises(ValueError, match="pass axes="):
        r.predict(stack)
    with pytest.raises(ValueError, match="has 2 letters"):
        r.predict(stack, axes="YX")
    r3 = Restorer("tiny", ndim=3)
    with pytest.raises(ValueError, match="3D model cannot restore a YX image"):
        r3.predict(stack[0], axes="YX")
    with pytest.raises(ValueError, match="NaN"):
        r.predict(np.full((8, 8), np.nan))
    with pytest.raises(TypeError, match="bool mask, not intensities"):  # as tv_deconvolve refuses it
        r.predict(np.ones((8, 8), bool))
    for bad in ((99.0, 1.0), (50.0,), (-1.0, 99.0), (1.0, 101.0), "low-high"):
        with pytest.raises(ValueError, match="percentiles must be"):
            Restorer("tiny", ndim=2, percentiles=bad)


def test_tiled_predict_close_to_whole():
    torch.manual_seed(0)
    r = Restorer("tiny", ndim=3)
    r.model.head.reset_parameters()  # a non-zero correction, as after training
    img = np.random.default_rng(2).random((12, 40, 40)).astype(np.float32)
    whole = r.predict(img)
    tiled = r.predict(img, tile=(12, 24, 24), overlap=(0, 10, 10))
    seams = r.predict(img, tile=(12, 24, 24), overlap=0)
    err = np.abs(whole - tiled).max() / np.ptp(whole)
    # stated tolerance: 1% of the output range; hard seams are several times worse
    assert err < 0.01 and err < 0.5 * np.abs(whole - seams).max() / np.ptp(whole)


def test_save_load_round_trip(tmp_path):
    r = _trained_tiny()
    r.metadata["metrics"] = {"psnr": 30.0}
    stem = r.save(tmp_path / "model.safetensors")  # the suffix is optional
    assert stem == tmp_path / "model"
    meta = json.loads((tmp_path / "model.json").read_text())
    for key in ("axes", "normalization", "network", "training", "metrics", "mire_version", "weights_sha256"):
        assert key in meta
    back = Restorer.load(tmp_path / "model")
    img = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    assert np.array_equal(back.predict(img), r.predict(img))
    assert back.metadata["metrics"] == {"psnr": 30.0} and back.axes == "YX"


def test_bad_model_files_give_clear_errors(tmp_path):
    r = _trained_tiny()
    r.save(tmp_path / "m")
    weights, meta = tmp_path / "m.safetensors", tmp_path / "m.json"
    good = weights.read_bytes()

    weights.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=r"m\.safetensors.*(corrupted|truncated)"):
        Restorer.load(tmp_path / "m")
    weights.write_bytes(b"\x00garbage" * 10)  # corrupted
    with pytest.raises(ValueError, match=r"m\.safetensors"):
        Restorer.load(tmp_path / "m")

    other = Restorer("tiny", ndim=3)  # mismatched: 3D weights under a 2D description
    other.save(tmp_path / "o")
    weights.write_bytes((tmp_path / "o.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not match"):
        Restorer.load(tmp_path / "m")
    m = json.loads(meta.read_text())
    m.pop("weights_sha256")
    meta.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="does not fit the network"):
        Restorer.load(tmp_path / "m")

    meta.write_text("{not json")
    with pytest.raises(ValueError, match=r"m\.json.*not valid JSON"):
        Restorer.load(tmp_path / "m")
    meta.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a mire restorer"):
        Restorer.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="neither a shipped model"):
        Restorer.load(tmp_path / "missing")


@pytest.mark.parametrize("mode", ["pairs", "simulate", "noise2void"])
def test_train_modes_and_fine_tuning(tmp_path, mode):
    rng = np.random.default_rng(0)
    clean = rng.random((8, 32, 32)).astype(np.float32)
    noisy = clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32)
    data = {"pairs": dict(noisy=noisy, clean=clean), "simulate": dict(clean=clean),
            "noise2void": dict(noisy=noisy)}[mode]
    r = Restorer("tiny", ndim=3)
    hist = r.train(**data, patch=(8, 16, 16), epochs=1, steps_per_epoch=2, batch_size=2, progress=False, device="cpu")
    assert hist["step"] == 2 and r.metadata["training"]["mode"] == mode
    r.save(tmp_path / "m")
    tuned = Restorer.load(tmp_path / "m")
    start = {k: v.clone() for k, v in tuned.model.state_dict().items()}
    assert all(torch.equal(start[k], v) for k, v in r.model.state_dict().items())  # starts from the weights
    tuned.train(**data, patch=(8, 16, 16), epochs=1, steps_per_epoch=1, batch_size=2, progress=False, device="cpu")
    assert tuned.metadata["training"]["fine_tuned_from"]["mode"] == mode
    # "auto" floor: 0 when every training image is non-negative (noisy has negatives here)
    expected = None if mode in ("pairs", "noise2void") else 0.0
    assert r.metadata["output_min"] == expected and tuned.metadata["output_min"] == expected
    assert not all(torch.equal(start[k], v) for k, v in tuned.model.state_dict().items())


def test_train_argument_errors():
    r = Restorer("tiny", ndim=2)
    with pytest.raises(ValueError, match="needs noisy and clean"):
        r.train(clean=np.zeros((32, 32)), mode="pairs")
    with pytest.raises(ValueError, match="divisible"):
        Restorer("fast", ndim=2).train(clean=np.zeros((32, 32)), patch=(12, 12))


def test_shipped_models_load_and_restore():
    names = models.available()
    if not names:
        pytest.skip("no shipped models in this checkout")
    from mire.segment import Segmenter

    for name in names:
        meta = models.load_metadata(name)
        assert meta["name"] == name and meta["training"] is not None
        if meta["format"] == "mire-ffn":  # a flood-filling network segments, it does not predict a map
            from mire.segment import FloodFiller

            with pytest.raises(ValueError, match="not a mire restorer"):
                Restorer.load(name)
            seg = FloodFiller.load(name).segment(np.random.default_rng(0).random((16, 32, 32)).astype(np.float32))
            assert seg.shape == (16, 32, 32) and seg.dtype == np.uint32
            continue
        if meta["format"] == "mire-segmenter":
            # a segmentation model is not a restorer: loading it as one is a clear error
            with pytest.raises(ValueError, match="not a mire restorer"):
                Restorer.load(name)
            r = Segmenter.load(name)
            shape = (16, 32, 32) if meta["axes"] == "ZYX" else (48, 48)
        else:
            r = Restorer.load(name)
            shape = (16, 32, 32) if r.axes == "ZYX" else (48, 48)
        img = np.random.default_rng(0).random(shape).astype(np.float32)
        out = r.predict(img)
        assert out.shape[-len(shape):] == shape and np.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown model"):
        models.model_path("no-such-model")


def test_export_bioimageio(tmp_path):
    yaml = pytest.importorskip("yaml")
    torch.manual_seed(0)
    r = Restorer("fast", ndim=2)
    rdf_path = r.export_bioimageio(tmp_path / "bmz", name="test model")
    rdf = yaml.safe_load(rdf_path.read_text())
    assert rdf["type"] == "model" and rdf["weights"]["torchscript"]["source"] == "weights.torchscript"
    assert [a.get("id") for a in rdf["inputs"][0]["axes"][2:]] == ["y", "x"]
    # the traced weights reproduce the stored test output, also on another size
    ts = torch.jit.load(str(tmp_path / "bmz" / "weights.torchscript"))
    x = np.load(tmp_path / "bmz" / "test_input.npy")
    lo, hi = np.percentile(x, (1, 99.8))
    with torch.no_grad():
        y = ts(torch.from_numpy(((x - lo) / (hi - lo + 1e-6)).astype(np.float32))).numpy()
        np.testing.assert_allclose(y, np.load(tmp_path / "bmz" / "test_output.npy"), atol=1e-5)
        z = torch.randn(1, 1, 48, 40)
        torch.testing.assert_close(ts(z), r.model(z))
    assert Restorer.load(tmp_path / "bmz" / "mire_model").axes == "YX"


def test_export_passes_bioimageio_core(tmp_path):
    core = pytest.importorskip("bioimageio.core")  # optional: not a mire dependency
    torch.manual_seed(0)
    rdf = Restorer("tiny", ndim=2).export_bioimageio(tmp_path / "bmz")
    summary = core.test_model(str(rdf))
    assert summary.status == "passed", summary.format()


def test_tta_averages_the_four_flips():
    r = _trained_tiny()
    img = np.random.default_rng(5).random((24, 32)).astype(np.float32)
    want = np.mean([np.flip(r.predict(np.ascontiguousarray(np.flip(img, f))), f) for f in ((), (0,), (1,), (0, 1))], 0)
    np.testing.assert_allclose(r.predict(img, tta=True), want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(r.predict(img), want, atol=1e-3)


def test_output_floor_clips_only_below_it_and_survives_save_load(tmp_path):
    r = _trained_tiny(ndim=2)
    img = np.random.default_rng(5).random((40, 40)).astype(np.float32)
    raw = r.predict(img)
    assert raw.min() < -0.05  # the random network predicts negative values somewhere
    r.metadata["output_min"] = 0.0
    r.save(tmp_path / "floored")
    loaded = Restorer.load(tmp_path / "floored")
    clipped = loaded.predict(img)
    np.testing.assert_allclose(clipped, np.maximum(raw, 0), atol=1e-6)  # one tile: exactly max(raw, 0)
    np.testing.assert_allclose(loaded.predict(img, clip=False), raw, atol=1e-6)
    tiled = loaded.predict(img, tile=24, overlap=8)
    assert tiled.min() >= 0  # blended tiles stay above the floor
    with pytest.raises(ValueError, match="output_min"):
        r.train(clean=np.ones((32, 32)), patch=(16, 16), epochs=1, steps_per_epoch=1, output_min="zero",
                progress=False)


def test_save_refuses_a_missing_folder_like_the_cli(tmp_path):
    # Python and `mire train --out` agree: a mistyped folder is named, not created
    target = tmp_path / "no-such-folder" / "model"
    with pytest.raises(FileNotFoundError, match="folder .*no-such-folder does not exist"):
        Restorer("tiny", ndim=2).save(target)
    assert not target.parent.exists()
