"""Segmenter: targets fed to the network, prediction shapes, save/load, clear errors."""

import json

import numpy as np
import pytest

from mire.data import em_cells
from mire.segment import Segmenter, affinities, boundaries


@pytest.fixture(scope="module")
def cells2d():
    return em_cells((48, 48), seed=0)


def test_examples_are_the_label_targets(cells2d):
    image, labels = cells2d
    rng = np.random.default_rng(0)
    seg = Segmenter("tiny", ndim=2)
    x, y, mask = seg._make_example(None, False)([image / 255.0, labels.astype(np.float32)], rng, 0)
    np.testing.assert_array_equal(y[0], boundaries(labels))
    assert x.shape == (1, 48, 48) and mask is None
    seg = Segmenter("tiny", ndim=2, target="affinities", offsets=[(-1, 0), (0, -1), (0, -3)])
    x, y, mask = seg._make_example(None, False)([image / 255.0, labels.astype(np.float32)], rng, 0)
    want, want_mask = affinities(labels, offsets=[(-1, 0), (0, -1), (0, -3)])
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(mask, want_mask)
    assert seg.model.config["out_channels"] == 3 and seg.model.config["residual"] is False


def test_train_predict_segment_save_load(cells2d, tmp_path):
    image, labels = cells2d
    seg = Segmenter("tiny", ndim=2)
    hist = seg.train(image, labels, patch=(32, 32), epochs=1, steps_per_epoch=2, batch_size=2, progress=False)
    assert hist["step"] == 2 and np.isfinite(hist["loss"][-1])
    prob = seg.predict(image)
    assert prob.shape == image.shape and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
    stack = np.stack([image, image[::-1]])
    pstack = seg.predict(stack)  # 2D model over a stack: slice by slice
    np.testing.assert_allclose(pstack[0], prob, atol=1e-6)
    labels_out = seg.segment(image, threshold=[0.3, 0.6])
    assert len(labels_out) == 2 and labels_out[0].shape == image.shape
    stem = seg.save(tmp_path / "membranes")
    meta = json.loads((tmp_path / "membranes.json").read_text())
    assert meta["format"] == "mire-segmenter" and meta["target"] == "boundaries"
    assert meta["training"]["steps"] == 2 and meta["postprocess"]["per_slice"] is True
    again = Segmenter.load(stem)
    np.testing.assert_array_equal(again.predict(image), prob)


def test_3d_affinity_model_shapes():
    image, labels = em_cells((8, 32, 32), seed=1)
    seg = Segmenter("tiny", ndim=3, target="affinities")
    seg.train(image, labels, patch=(8, 16, 16), epochs=1, steps_per_epoch=1, batch_size=1, progress=False)
    affs = seg.predict(image)
    assert affs.shape == (3, 8, 32, 32)
    assert seg.segment(image).shape == image.shape


def test_segmenter_errors(cells2d, tmp_path):
    image, labels = cells2d
    seg = Segmenter("tiny", ndim=2)
    with pytest.raises(ValueError, match="does not match image 0 shape"):
        seg.train(image, labels[:-1], patch=(32, 32), epochs=1, steps_per_epoch=1, progress=False)
    with pytest.raises(ValueError, match="target"):
        Segmenter("tiny", target="masks")
    with pytest.raises(ValueError, match="2D"):
        Segmenter("tiny", ndim=3).predict(image)
    with pytest.raises(TypeError, match="post-processing"):
        seg.segment(image, thresold=0.5)
    with pytest.raises(FileNotFoundError, match="no model"):
        Segmenter.load(tmp_path / "missing")
    stem = seg.save(tmp_path / "m")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupted|truncated"):
        Segmenter.load(stem)


# a stem folds 2x2x2 voxels into channels, so the head has 8 rows per output channel: the copy must move them all
STEM_NET = {"arch": "unet", "depth": 2, "base_channels": 4, "convs_per_block": 1, "norm": "none", "stem": 2}
LONG = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (-3, 0, 0), (0, -3, 0), (0, 0, -3), (-2, -2, 0)]


def test_with_offsets_keeps_the_source_channels():
    image, labels = em_cells((8, 32, 32), seed=2)
    src = Segmenter(STEM_NET, ndim=3, target="affinities")
    src.train(image, labels, patch=(8, 16, 16), epochs=1, steps_per_epoch=2, batch_size=1, progress=False)
    src.metadata["postprocess"]["threshold"] = 0.35
    new = src.with_offsets(LONG)
    assert new.offsets == LONG and new.model.config["out_channels"] == 7
    assert new.metadata["postprocess"]["threshold"] == 0.35
    assert new.metadata["offsets_from"]["channel_map"] == [0, 1, 2, 0, 1, 2, None]
    a, b = src.predict(image), new.predict(image)
    np.testing.assert_array_equal(b[:3], a)  # the nearest channels: the source's outputs, bit for bit
    np.testing.assert_array_equal(b[3:6], a)  # "copy": a long-range channel starts as its axis's nearest one
    assert np.abs(b[6] - 0.5).max() < 0.05 and np.abs(b[6] - a[0]).max() > 0.05  # diagonal: small random
    # segmentation reads the nearest channels only: the same labels
    np.testing.assert_array_equal(new.segment(image), src.segment(image))
    rnd = src.with_offsets(LONG, init="random")
    assert rnd.metadata["offsets_from"]["channel_map"] == [0, 1, 2, None, None, None, None]
    np.testing.assert_array_equal(rnd.predict(image)[:3], a)
    assert np.abs(rnd.predict(image)[3:] - 0.5).max() < 0.05
    # the source is left as it was, and the new model trains on its 7 targets
    assert src.offsets == LONG[:3] and src.model.config["out_channels"] == 3
    hist = new.train(image, labels, patch=(8, 16, 16), epochs=1, steps_per_epoch=1, batch_size=1, progress=False)
    assert np.isfinite(hist["loss"][-1]) and new.predict(image).shape == (7, 8, 32, 32)


def test_with_offsets_errors():
    import torch

    from mire.nets import build_model, transfer_output_channels

    src = Segmenter(STEM_NET, ndim=3, target="affinities")
    with pytest.raises(ValueError, match="nearest neighbours"):
        src.with_offsets([(0, -1, 0), (-1, 0, 0), (0, 0, -1), (-3, 0, 0)])
    with pytest.raises(ValueError, match="repeat"):
        src.with_offsets(LONG[:3] + [(-3, 0, 0), (-3, 0, 0)])
    with pytest.raises(ValueError, match="components"):
        src.with_offsets([(-1, 0), (0, -1)])
    with pytest.raises(ValueError, match="affinity model"):
        Segmenter(STEM_NET, ndim=3).with_offsets(LONG)
    with pytest.raises(ValueError, match="init"):
        src.with_offsets(LONG, init="zeros")
    other = build_model({**STEM_NET, "base_channels": 8}, ndim=3, out_channels=4)
    with pytest.raises(ValueError, match=r"more than their output channels: \['base_channels'\]"):
        transfer_output_channels(src.model, other, [0, 1, 2, None])
    wider = build_model({**src.model.config, "out_channels": 4})
    with pytest.raises(ValueError, match="not channels of the source"):
        transfer_output_channels(src.model, wider, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="4 output channels"):
        transfer_output_channels(src.model, wider, [0, 1, 2])
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    transfer_output_channels(src.model, wider, [2, 1, 0, None])
    per = 8
    assert torch.equal(wider.head.weight[:per], src.model.head.weight[2 * per:3 * per])
    assert torch.equal(wider.head.bias[2 * per:3 * per], src.model.head.bias[:per])
    assert not torch.equal(before["head.weight"], wider.head.weight)


def test_long_range_weight_loss_is_the_split_mean():
    import torch

    from mire.segment.learned import _split_bce

    rng = np.random.default_rng(0)
    pred = torch.tensor(rng.normal(size=(2, 5, 4, 4)), dtype=torch.float32)
    target = torch.tensor(rng.random((2, 5, 4, 4)) > 0.5, dtype=torch.float32)
    mask = torch.tensor(rng.random((2, 5, 4, 4)) > 0.3, dtype=torch.float32)
    e = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
    want = (e[:, :2] * mask[:, :2]).sum() / mask[:, :2].sum() + 0.25 * (e[:, 2:] * mask[:, 2:]).sum() / mask[:, 2:].sum()
    assert torch.allclose(_split_bce(2, 0.25)(pred, target, mask), want)
    assert torch.allclose(_split_bce(2, 0.0)(pred, target, None), e[:, :2].mean())
    with pytest.raises(ValueError, match="long-range offsets"):
        Segmenter(STEM_NET, ndim=3, target="affinities").train(
            np.zeros((8, 16, 16)), np.ones((8, 16, 16), int), patch=(8, 16, 16), epochs=1, steps_per_epoch=1,
            progress=False, long_range_weight=0.5)


def test_residual_anisotropic_model_saves_and_loads(tmp_path):
    from mire.nets import PRESETS
    from mire.nets.layers import ResidualBlock

    image, labels = em_cells((4, 32, 32), seed=2)
    seg = Segmenter({**PRESETS["tiny"], "block": "residual", "spacing": [30, 6, 6]}, ndim=3, target="affinities")
    assert seg.model.config["pool"] == [[1, 2, 2]] and isinstance(seg.model.encoders[0], ResidualBlock)
    seg.train(image, labels, patch=(4, 16, 16), epochs=1, steps_per_epoch=1, batch_size=1, progress=False)
    affs = seg.predict(image)
    stem = seg.save(tmp_path / "res")
    meta = json.loads((tmp_path / "res.json").read_text())
    assert meta["network"]["block"] == "residual" and meta["network"]["spacing"] == [30.0, 6.0, 6.0]
    again = Segmenter.load(stem)
    assert again.model.config == seg.model.config
    np.testing.assert_array_equal(again.predict(image), affs)


def test_model_files_from_before_the_block_option_load_unchanged(tmp_path):
    image, _ = em_cells((4, 32, 32), seed=2)
    seg = Segmenter("tiny", ndim=3, target="affinities")
    affs = seg.predict(image)
    stem = seg.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old.json").read_text())
    for key in ("block", "spacing"):  # what a file written before these options holds
        del meta["network"][key]
    (tmp_path / "old.json").write_text(json.dumps(meta))
    again = Segmenter.load(stem)
    assert again.model.config["block"] == "plain" and again.model.config["spacing"] is None
    np.testing.assert_array_equal(again.predict(image), affs)
    # the shipped model (since em_ship_ctl.md saved with the option) loads with its plain levels
    shipped = Segmenter.load("fibsem3d-affinity")
    assert shipped.metadata["network"]["block"] == "plain" and shipped.model.config["block"] == "plain"
