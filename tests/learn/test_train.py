"""The training loop: learning a toy restoration, masked losses, checkpoints, resume, cancel, Ctrl-C."""

import json
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mire.learn import evaluate, pairs_sampler, pixel_loss, train
from mire.nets import build_model


def _toy(seed=0, shape=(64, 64)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = (np.sin(xx / 5.0) * np.cos(yy / 7.0) + 1).astype(np.float32)
    noisy = (clean + 0.4 * rng.standard_normal(shape)).astype(np.float32)
    return noisy, clean


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("tiny", ndim=2)


def test_tiny_model_learns_toy_denoising_in_seconds():
    noisy, clean = _toy()
    sampler = pairs_sampler(noisy, clean, patch=(32, 32), seed=0)
    val = [sampler.batch(-1, 4)]
    model = _model()
    before = evaluate(model, val)
    hist = train(model, sampler, epochs=3, steps_per_epoch=15, batch_size=4, lr=3e-3, progress=False, device="cpu",
                 val=val)
    after = hist["val"][-1]
    assert hist["step"] == 45 and len(hist["loss"]) == 3
    # the residual net starts as the identity (loss = the noise); measured 0.130 -> 0.076, +4.3 dB
    assert after["loss"] < 0.65 * before["loss"]
    assert after["psnr"] > before["psnr"] + 3.0
    assert after["ssim"] > before["ssim"]
    assert hist["loss"][-1] < hist["loss"][0]


def test_masked_loss_by_hand():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(pixel_loss("l1")(pred, target, mask)) == pytest.approx((1 + 4) / 2)
    assert float(pixel_loss("mse")(pred, target, mask)) == pytest.approx((1 + 16) / 2)
    assert float(pixel_loss("l1")(pred, target, torch.zeros(2, 2))) == 0.0  # all ignored: 0, not NaN
    assert float(pixel_loss("l1")(pred, target)) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unknown loss"):
        pixel_loss("huber")


def test_resume_continues_and_equals_uninterrupted(tmp_path):
    noisy, clean = _toy()
    sampler = pairs_sampler(noisy, clean, patch=(16, 16), seed=0)
    kw = dict(steps_per_epoch=3, batch_size=2, progress=False, device="cpu", lr_decay=0.5)
    full = _model()
    h_full = train(full, sampler, epochs=2, **kw)
    part = _model()
    h1 = train(part, sampler, epochs=1, checkpoint_dir=tmp_path, **kw)
    assert h1["step"] == 3
    resumed = _model()  # a fresh process would rebuild the model: the weights come from the checkpoint
    h2 = train(resumed, sampler, epochs=2, checkpoint_dir=tmp_path, **kw)
    assert h2["step"] == 6 and len(h2["loss"]) == 2
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert h2["loss"] == pytest.approx(h_full["loss"])
    # checkpoints are safetensors + JSON, no pickle
    info = json.loads((tmp_path / "last.json").read_text())
    assert info["history"]["step"] == 6
    assert set(load_file(tmp_path / "last.optim.safetensors")) >= {"0.exp_avg", "0.exp_avg_sq"}
    assert (tmp_path / "best.safetensors").exists()


def test_stop_event_and_callback(tmp_path):
    noisy, clean = _toy()
    stop = threading.Event()
    seen = []

    def cb(step, loss):
        seen.append((step, loss))
        if step == 2:
            stop.set()

    hist = train(_model(), pairs_sampler(noisy, clean, patch=(16, 16)), epochs=3, steps_per_epoch=4, batch_size=2,
                 progress=False, callback=cb, stop_event=stop, checkpoint_dir=tmp_path, device="cpu")
    assert hist["stopped"] and hist["step"] == 2 and [s for s, _ in seen] == [1, 2]
    assert json.loads((tmp_path / "last.json").read_text())["history"]["step"] == 2


def test_ctrl_c_saves_a_checkpoint_then_reraises(tmp_path):
    noisy, clean = _toy()

    def cb(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_model(), pairs_sampler(noisy, clean, patch=(16, 16)), epochs=2, steps_per_epoch=5, batch_size=2,
              progress=False, callback=cb, checkpoint_dir=tmp_path, device="cpu")
    assert json.loads((tmp_path / "last.json").read_text())["history"]["step"] == 3


def test_multichannel_bce_with_ignore_mask_for_segmentation_targets():
    # task-agnostic: 1 -> 2 channel boundary-like targets with an ignore mask
    rng = np.random.default_rng(0)
    img = rng.random((32, 32)).astype(np.float32)

    class Sampler:
        def batch(self, step, batch_size):
            x = torch.from_numpy(np.stack([img[None]] * batch_size))
            y = (x > 0.5).float().repeat(1, 2, 1, 1)
            mask = torch.ones(batch_size, 1, 32, 32)
            mask[..., :8] = 0
            return x, y, mask

    torch.manual_seed(0)
    model = build_model("tiny", ndim=2, out_channels=2, residual=False)
    hist = train(model, Sampler(), loss="bce", epochs=2, steps_per_epoch=10, batch_size=2, lr=1e-2,
                 progress=False, device="cpu")
    assert hist["loss"][-1] < hist["loss"][0]


def test_global_validation_psnr_scores_the_pooled_error_by_hand():
    # Regression: per-patch data ranges made validation PSNR meaningless on sparse stacks (a
    # background patch's range is a sliver of noise), so the "best" checkpoint was arbitrary.
    from mire.metrics import psnr

    rng = np.random.default_rng(0)
    y1, y2 = rng.random((2, 1, 8, 8)), 4 * rng.random((2, 1, 8, 8))  # targets of very different ranges
    batches = [(torch.tensor(y1 + 0.1, dtype=torch.float32), torch.tensor(y1, dtype=torch.float32), None),
               (torch.tensor(y2 - 0.3, dtype=torch.float32), torch.tensor(y2, dtype=torch.float32), None)]
    identity = torch.nn.Identity()
    identity.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))  # evaluate() needs a device
    data_range = max(y1.max(), y2.max()) - min(y1.min(), y2.min())
    expected = 10 * np.log10(data_range ** 2 / ((0.1 ** 2 + 0.3 ** 2) / 2))  # pooled MSE 0.05
    got = evaluate(identity, batches, data_range="global")
    assert got["psnr"] == pytest.approx(expected, abs=1e-3)
    # equal to mire.metrics.psnr of all patches together
    pred = np.concatenate([b[0].numpy() for b in batches]).astype(np.float64)
    tgt = np.concatenate([b[1].numpy() for b in batches]).astype(np.float64)
    assert got["psnr"] == pytest.approx(psnr(tgt, pred, data_range=data_range), abs=1e-3)
    with pytest.raises(ValueError, match="data_range"):
        evaluate(identity, batches, data_range="patch")
