"""Shared plumbing of the training scripts: a time budget, resumable runs, export of the best checkpoint."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path


def parse_args(name: str, description: str, extra=None, *, fine_tune: bool = False):
    """Common options; ``extra(parser)`` adds a script's own.

    ``fine_tune=True`` adds ``--init`` (only for scripts that use it: elsewhere it would be silently ignored).
    """
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default=str(Path.home() / ".cache" / "mire" / "runs" / name),
                   help="checkpoints (resumed when present)")
    p.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per epoch")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate at epoch 0")
    p.add_argument("--lr-decay", type=float, default=0.9, help="per-epoch learning-rate factor")
    p.add_argument("--export", default=None,
                   help="only export a checkpoint of --run-dir to this model path (no training)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="which checkpoint --export takes: best validation PSNR, or the last one")
    if fine_tune:
        p.add_argument("--init", default=None, metavar="NAME_OR_PATH",
                       help="fine-tune: start from a saved Restorer's weights (shipped name or path) instead of "
                            "a random init; use a NEW --run-dir (an existing last.* checkpoint there wins)")
    if extra is not None:
        extra(p)
    return p.parse_args()


def run_option(run_dir, name: str, given=None, default=None):
    """An option a run was started with, recorded in ``run_dir/options.json`` (for resume and export).

    ``given`` (training): recorded when the run has none yet; a resume with another value is an error.
    ``None`` (export, evaluation): the recorded value, else ``default`` (runs made before the option).
    """
    path = Path(run_dir) / "options.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    if name in record:
        if given is not None and record[name] != given:
            raise SystemExit(f"{run_dir} was trained with {name} {record[name]!r}, not {given!r}")
        return record[name]
    if given is None:
        return default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, name: given}))
    return given


def init_weights(model, name_or_path):
    """Load a saved :class:`mire.restore.Restorer`'s weights into ``model`` (a fine-tune's start).

    The network description must match ``model.config`` exactly; a mismatch is an error naming the
    differing keys (loading such weights would fail or, worse, silently mean a different network).
    Returns the init model's ``weights_sha256`` (for the training record).
    """
    from mire.learn.modelfile import weights_digest
    from mire.restore.learned import Restorer

    init = Restorer.load(name_or_path)
    want, got = model.config, init.model.config
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if diff:
        raise SystemExit(f"--init {name_or_path}: network does not match this script's CONFIG in "
                         + ", ".join(f"{k} ({got.get(k)!r} != {want.get(k)!r})" for k in diff))
    model.load_state_dict(init.model.state_dict())
    return weights_digest(init.model.state_dict())  # the same digest as the model file's weights_sha256


def time_budget(minutes):
    """A threading.Event set after ``minutes`` (None: never): train() then checkpoints and returns."""
    event = threading.Event()
    if minutes:
        timer = threading.Timer(minutes * 60, event.set)
        timer.daemon = True
        timer.start()
    return event


def export_best(run_dir, out, *, axes, training: dict, metrics: dict | None = None, name=None, stem="best",
                output_min=None, percentiles=(1.0, 99.8)):
    """Turn ``run_dir/<stem>.*`` (``best`` or ``last``) into a :class:`mire.restore.learned.Restorer` file.

    ``output_min``: the model's output floor (``Restorer.metadata["output_min"]``, applied by
    ``predict``); the scripts train with :func:`mire.learn.train` directly, so it is not set for them.
    """
    from mire.learn import load_tensors, read_json
    from mire.restore.learned import Restorer

    run_dir = Path(run_dir)
    info = read_json(run_dir / f"{stem}.json")
    restorer = Restorer(info["config"], axes=axes, percentiles=percentiles)
    restorer.model.load_state_dict(load_tensors(run_dir / f"{stem}.safetensors"))
    hist = info["history"]
    restorer.metadata["training"] = {**training, "steps": hist["step"], "checkpoint": stem,
                                     "best_step": hist["best"]["step"], "seconds": round(hist["seconds"], 1),
                                     "validation": hist["val"][-1] if hist["val"] else None}
    restorer.metadata["output_min"] = None if output_min is None else float(output_min)
    if metrics:
        restorer.metadata["metrics"] = metrics
    if name:
        restorer.metadata["name"] = name
    restorer.save(out)
    print(f"exported {run_dir}/{stem} (step {hist['step']}) -> {out}.safetensors / .json")
    print(json.dumps(restorer.metadata["training"], indent=1))
