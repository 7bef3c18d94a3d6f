"""The training loop: Adam with per-epoch decay, validation PSNR/SSIM, checkpoints, resume, cancel."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from mire._torch import default_device
from mire.learn.checkpoint import load_checkpoint, save_checkpoint
from mire.learn.losses import pixel_loss


def _val_batches(val, batch_size):
    """Fixed validation batches: from a sampler (negative steps) or given ``(x, y[, mask])`` tensors."""
    if val is None:
        return []
    if hasattr(val, "batch"):
        return [val.batch(-(i + 1), batch_size) for i in range(4)]
    if isinstance(val, tuple) and len(val) in (2, 3) and hasattr(val[0], "shape"):
        x, y = torch.as_tensor(np.asarray(val[0]), dtype=torch.float32), torch.as_tensor(np.asarray(val[1]), dtype=torch.float32)
        return [(x, y, None if len(val) == 2 else torch.as_tensor(np.asarray(val[2])))]
    return list(val)


def evaluate(model, batches, *, device=None, loss_fn=None, data_range="target") -> dict:
    """Mean PSNR / SSIM (:mod:`mire.metrics`) and loss of ``model`` over validation batches.

    ``data_range="target"``: each patch is scored with its own target's range (fine for targets
    that span [0, 1] everywhere, e.g. boundary maps). ``"global"``: one range, that of all the
    validation targets together, and PSNR from the pooled squared error, as the paper-2020 protocol
    scores a whole stack. Restoration needs the latter: on sparse fluorescence most patches are
    background whose own range is a sliver of noise, which makes per-patch PSNR meaningless (a
    model that returned its noisy input could score best and be kept as the "best" checkpoint).
    """
    from mire.metrics import psnr, ssim

    if data_range not in ("target", "global"):
        raise ValueError(f"data_range must be 'target' or 'global', got {data_range!r}")
    device = device or next(model.parameters()).device
    loss_fn = loss_fn or pixel_loss("l1")
    was_training = model.training
    model.eval()
    preds, targets, ls = [], [], []
    with torch.no_grad():
        for x, y, mask in batches:
            pred = model(x.to(device))
            ls.append(float(loss_fn(pred, y.to(device), None if mask is None else mask.to(device))))
            preds.append(pred.cpu().numpy().astype(np.float64))
            targets.append(y.numpy().astype(np.float64))
    model.train(was_training)
    ps, ss = [], []
    if data_range == "global":
        rng_ = float(max(t.max() for t in targets) - min(t.min() for t in targets)) or 1.0
        mse = float(np.mean([np.mean((p - t) ** 2) for p, t in zip(preds, targets)]))
        ps.append(10 * np.log10(rng_ ** 2 / max(mse, 1e-30)))
    for p, t in zip(preds, targets):
        for i in range(p.shape[0]):
            for c in range(p.shape[1]):
                if data_range == "target":
                    rng_ = float(t[i, c].max() - t[i, c].min()) or 1.0
                    ps.append(psnr(t[i, c], p[i, c], data_range=rng_))
                if min(t[i, c].shape) >= 5:
                    ss.append(ssim(t[i, c], p[i, c], data_range=rng_))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)) if ss else float("nan"), "loss": float(np.mean(ls))}


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=not enabled)


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold SIGINT while a checkpoint is written, then raise it: Ctrl-C never leaves half of one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupt_at_step_boundary():
    """Turn the first SIGINT into a flag the loop checks after each step (an optimizer step cut in
    the middle would checkpoint half-updated weights); a second one interrupts at once."""
    import signal
    import threading

    flag: list = []
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag:
            flag[0] = "forced"
            raise KeyboardInterrupt
        flag.append("asked")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _forward(model, x):
    """``model(x)``, with torch's batch-norm complaint about too small a batch said in the user's terms."""
    try:
        return model(x)
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        raise ValueError(f"a batch of {x.shape[0]} patch(es) of size {tuple(x.shape[2:])} is too small for this "
                         "network: its deepest level keeps one value per channel, which batch norm cannot "
                         "normalize; use a larger patch (--patch) or a batch size of 2 or more (--batch-size)"
                         ) from None


def check_schedule(*, epochs, steps_per_epoch, batch_size, lr) -> None:
    """Refuse a training schedule that cannot train, before any step (shared by every trainer).

    Zero steps used to "train" nothing and save that model.
    """
    for what, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr (learning rate) must be a positive number, got {lr!r}")


def train(model, sampler, *, loss="l1", lr: float = 1e-3, lr_decay: float = 0.9, epochs: int = 10,
          steps_per_epoch: int = 100, batch_size: int = 4, val=None, checkpoint_dir=None, resume: bool = True,
          seed: int = 0, device=None, progress: bool = True, callback=None, stop_event=None,
          weight_decay: float = 0.0, val_data_range: str = "target", freeze_norm: bool = False) -> dict:
    """Train ``model`` on batches from ``sampler`` with Adam; returns the training history.

    Parameters
    ----------
    model : torch.nn.Module
        Any image-to-image network (e.g. :func:`mire.nets.build_model`).
    sampler : object with ``batch(step, batch_size) -> (x, y, mask)``
        E.g. :func:`pairs_sampler`, :func:`simulate_sampler`, :func:`noise2void_sampler`, or a
        :class:`PatchSampler` with a custom ``make_example`` (boundaries, affinities, ...).
        Batch ``k`` must depend only on ``k``: that is what makes resuming exact.
    loss : {"l1", "l2", "mse", "bce"} or callable ``(pred, target, mask) -> scalar``
        ``mask`` (0 = ignore) comes from the sampler.
    lr, lr_decay : float
        Adam learning rate, multiplied by ``lr_decay`` after every epoch (the paper: 1e-3, 0.9).
    epochs, steps_per_epoch, batch_size : int
    val : sampler, ``(x, y)`` tensors, or list of batches, optional
        Validation data, scored (PSNR/SSIM/loss) after every epoch.
    val_data_range : {"target", "global"}
        How validation PSNR/SSIM take their data range (see :func:`evaluate`); use ``"global"``
        for restoration, where the best checkpoint is chosen by that PSNR.
    checkpoint_dir : path, optional
        Where ``last.*`` (every epoch and on interrupt) and ``best.*`` (best validation PSNR, or
        lowest training loss without ``val``) are written.
    resume : bool
        Continue from ``checkpoint_dir/last.*`` when present (same step count, optimizer state).
    seed : int
        Seeds torch (the sampler has its own seed).
    progress : bool
        Show a rich progress bar with loss and ETA.
    callback : callable, optional
        ``callback(step, loss)`` after every step (live plots).
    stop_event : threading.Event, optional
        When set (e.g. by a GUI thread), training saves a checkpoint and returns early.
    freeze_norm : bool
        Batch-norm layers stay in eval mode: they normalize with their stored statistics and do not
        update them. For fine-tuning on a few small batches, whose statistics would overwrite the
        ones the weights were trained with.

    Returns
    -------
    history : dict
        ``step``, ``epoch``, per-epoch ``loss``, ``val`` (list of metric dicts), ``best``,
        ``stopped`` (True when cancelled), ``seconds``.

    Raises
    ------
    KeyboardInterrupt
        Re-raised after saving ``last.*`` so a Ctrl-C never loses the work done.

    Examples
    --------
    >>> import numpy as np
    >>> from mire.nets import build_model
    >>> from mire.learn import pairs_sampler
    >>> clean = np.random.default_rng(0).random((64, 64))
    >>> model = build_model("tiny", ndim=2)
    >>> hist = train(model, pairs_sampler(clean + 0.2, clean, patch=(16, 16)), epochs=1,
    ...              steps_per_epoch=3, progress=False)
    >>> hist["step"]
    3
    """
    check_schedule(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr)
    torch.manual_seed(seed)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    loss_fn = pixel_loss(loss)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = {"step": 0, "epoch": 0, "loss": [], "val": [], "best": None, "stopped": False, "seconds": 0.0}
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and resume:
        info = load_checkpoint(ckpt, "last", model, opt)
        if info is not None:
            history.update(info.get("history", {}))
    val_batches = _val_batches(val, batch_size)
    total = epochs * steps_per_epoch
    step = history["step"]
    # the losses of an epoch cut short by an interrupt: kept in the checkpoint, so a resumed
    # run records the same per-epoch means as one never interrupted
    epoch_losses: list[float] = [float(v) for v in history.pop("epoch_losses", [])]
    t0 = time.perf_counter() - history["seconds"]

    def save(stem):
        if ckpt is not None:
            history["seconds"] = time.perf_counter() - t0
            with _interrupts_deferred():  # the three files of a checkpoint are written together
                save_checkpoint(ckpt, stem, model, opt, {"history": {**history, "epoch_losses": epoch_losses},
                                                         "config": getattr(model, "config", None)})

    def train_mode():
        model.train()
        if freeze_norm:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    train_mode()
    with _progress(progress) as bar, _interrupt_at_step_boundary() as interrupted:
        task = bar.add_task("training", total=total, completed=step, loss=float("nan"))
        try:
            while step < total:
                epoch = step // steps_per_epoch
                for group in opt.param_groups:  # decay by epoch, derived from the step: exact on resume
                    group["lr"] = lr * lr_decay ** epoch
                x, y, mask = sampler.batch(step, batch_size)
                x, y = x.to(device), y.to(device)
                pred = _forward(model, x)
                loss_value = loss_fn(pred, y, None if mask is None else mask.to(device))
                if not torch.isfinite(loss_value):
                    raise FloatingPointError(f"loss became {float(loss_value)} at step {step}; lower lr")
                opt.zero_grad(set_to_none=True)
                loss_value.backward()
                opt.step()
                step += 1
                lv = float(loss_value.detach())
                epoch_losses.append(lv)
                history["step"], history["epoch"] = step, step // steps_per_epoch
                bar.update(task, completed=step, loss=lv, description=f"epoch {epoch + 1}/{epochs}")
                if callback is not None:
                    callback(step, lv)
                if step % steps_per_epoch == 0 or step == total:
                    history["loss"].append(float(np.mean(epoch_losses)))
                    epoch_losses = []
                    score = None
                    if val_batches:
                        metrics = evaluate(model, val_batches, device=device, loss_fn=loss_fn, data_range=val_data_range)
                        train_mode()
                        metrics["step"] = step
                        history["val"].append(metrics)
                        score = metrics["psnr"]
                    else:
                        score = -history["loss"][-1]
                    if history["best"] is None or score > history["best"]["score"]:
                        history["best"] = {"score": score, "step": step}
                        save("best")
                    save("last")
                if stop_event is not None and stop_event.is_set():
                    history["stopped"] = True
                    save("last")
                    break
                if interrupted:  # Ctrl-C during the step: stop here, where the state is whole
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not interrupted or interrupted[0] != "forced":
                save("last")
            raise
    model.eval()
    history["seconds"] = time.perf_counter() - t0
    return history
