"""Self-supervised masked-block pretraining (mire.learn.pretext) and its transfer into a Segmenter."""

import numpy as np
import pytest
import torch

from mire.learn.pretext import (block_mask, load_pretext, mask_blocks, masked_reconstruction_sampler, pretrain,
                                save_pretext)
from mire.nets import build_model, transfer_body


def _image(shape=(16, 32, 32), seed=0):
    # smooth structure (predictable from context) so the reconstruction loss can fall
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 2.0).astype(np.float32)


def test_block_mask_is_cubes_of_the_asked_fraction():
    m = block_mask((16, 32, 32), np.random.default_rng(1), fraction=0.25, block=4)
    assert m.shape == (16, 32, 32) and m.dtype == bool
    assert 0.2 < m.mean() < 0.3
    # the mask is constant on the cells of one 4x4x4 grid (some offset of it): whole cubes are hidden
    def constant_on_grid(o):
        cells = np.indices(m.shape).transpose(1, 2, 3, 0)
        cid = ((cells + np.array(o)) // 4) @ np.array([10000, 100, 1])
        return all(len(np.unique(m[cid == c])) == 1 for c in np.unique(cid))

    assert any(constant_on_grid((a, b, c)) for a in range(4) for b in range(4) for c in range(4))
    assert not constant_on_grid((0, 0, 0)) or not constant_on_grid((1, 1, 1))  # the check can fail


def test_masked_voxels_are_excluded_from_the_input():
    """Blind spot: the input at hidden voxels does not depend on their true values."""
    img = _image()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    mask = block_mask(img.shape, np.random.default_rng(2), fraction=0.25, block=4)
    other = img.copy()
    other[mask] = 100.0 + np.arange(mask.sum())  # wildly different hidden values
    # the noise statistics come from visible voxels only, so the inputs are identical
    xa, xb = mask_blocks(img, mask, rng_a), mask_blocks(other, mask, rng_b)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(xa[~mask], img[~mask])  # visible voxels untouched
    assert not np.allclose(xa[mask], img[mask])


def test_sampler_targets_clean_patch_and_weights_hidden_voxels():
    img = _image((16, 32, 32))
    blur = lambda x, rng: x * 0.5  # noqa: E731 - a corruption the target must not see
    s = masked_reconstruction_sampler(img, patch=(8, 16, 16), fraction=0.25, block=4, visible_weight=0.1,
                                      corrupt=blur, augment=False, normalize=False)
    x, y, w = s.batch(0, batch_size=3)
    assert x.shape == y.shape == w.shape == (3, 1, 8, 16, 16)
    hidden = w == 1.0
    np.testing.assert_allclose(np.unique(w.numpy()), [0.1, 1.0])
    # visible voxels: the corrupted clean value; target: the clean value
    torch.testing.assert_close(x[~hidden], 0.5 * y[~hidden])


def test_pretext_loss_falls_on_a_tiny_net():
    torch.manual_seed(0)
    net = build_model("tiny", ndim=3, residual=False)
    img = _image((16, 32, 32))
    hist = pretrain(net, img, patch=(8, 16, 16), epochs=4, steps_per_epoch=10, batch_size=4, lr=3e-3,
                    progress=False)
    assert hist["step"] == 40
    assert hist["loss"][-1] < 0.7 * hist["loss"][0]


def test_pretrained_body_loads_into_an_affinity_model(tmp_path):
    from mire.nets import PRESETS
    from mire.segment import Segmenter

    cfg = {**PRESETS["tiny"], "ndim": 3, "in_channels": 1, "out_channels": 1, "residual": False}
    net = build_model(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)  # weights a fresh model cannot have by chance
    stem = save_pretext(tmp_path / "pre", net, {"pretext": {"task": "test"}})
    seg = Segmenter("tiny", ndim=3, target="affinities")
    head_before = {k: v.clone() for k, v in seg.model.state_dict().items() if k.startswith("head.")}
    seg.init_body(stem)
    got, src = seg.model.state_dict(), net.state_dict()
    body = [k for k in src if not k.startswith("head.")]
    assert body and all(torch.equal(got[k], src[k]) for k in body)
    # head: the affinity model's own (3 channels x stem), not the pretext head
    for k, v in head_before.items():
        assert torch.equal(got[k], v)
    assert got["head.weight"].shape[0] == 3 * src["head.weight"].shape[0]
    assert seg.metadata["pretrained"]["pretext"] == {"task": "test"}
    # the record survives save / load
    seg.save(tmp_path / "seg")
    assert Segmenter.load(tmp_path / "seg").metadata["pretrained"]["weights_sha256"] == \
        load_pretext(stem)[1]["weights_sha256"]


def test_transfer_body_refuses_another_network():
    src = build_model("tiny", ndim=3, residual=False)
    dst = build_model("tiny", ndim=3, residual=False, out_channels=3, base_channels=16)
    with pytest.raises(ValueError, match="base_channels"):
        transfer_body(src.state_dict(), src.config, dst)


def test_load_pretext_rejects_tampered_weights(tmp_path):
    from mire.learn.checkpoint import load_tensors, save_tensors

    net = build_model("tiny", ndim=2, residual=False)
    stem = save_pretext(tmp_path / "pre", net)
    state = load_tensors(f"{stem}.safetensors")
    state["head.bias"] = state["head.bias"] + 1
    save_tensors(f"{stem}.safetensors", state, {"format": "mire-pretext"})
    with pytest.raises(ValueError, match="checksum"):
        load_pretext(stem)
