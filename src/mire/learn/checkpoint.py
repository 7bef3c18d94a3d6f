"""Checkpoints without pickle: model and optimizer tensors as safetensors, everything else as JSON.

``<stem>.safetensors`` (model state), ``<stem>.optim.safetensors`` (optimizer tensors) and
``<stem>.json`` (step, epoch, optimizer hyper-parameters, history). Every file is written to a
temporary name and renamed, so an interrupted save never leaves a half-written checkpoint; the
JSON is written last and names the run's step, so its presence marks a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the permissions of a normally created file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Atomically save a dict of tensors as safetensors (contiguous CPU copies)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_tensors(path) -> dict:
    """Load a safetensors file; a missing, truncated or corrupted file raises a ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"cannot read weights file {path}: corrupted or truncated ({exc})") from None


def write_json(path, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True)
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def read_json(path, schema: dict | None = None) -> dict:
    """Read a JSON object (metadata, checkpoint info): depth-limited and checked against ``schema``.

    Errors name the file and the entry (see :func:`mire._schema.load_json`).
    """
    from mire._schema import load_json

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"metadata file not found: {path}")
    # NaN stays readable: json.dumps writes it for a diverged loss or an undefined metric
    return load_json(path, schema or {"type": "object"}, what="metadata file", allow_nan=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able values."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            key = f"{pid}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value
            else:
                scalars[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, info: dict) -> None:
    state: dict = {}
    for key, value in list(tensors.items()) + list(info.get("scalars", {}).items()):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_checkpoint(directory, stem: str, model, optimizer, info: dict) -> None:
    """Save ``model`` + ``optimizer`` + ``info`` (step, epoch, ...) as ``directory/stem.*``."""
    directory = Path(directory)
    opt_tensors, opt_info = optimizer_tensors(optimizer)
    save_tensors(directory / f"{stem}.safetensors", model.state_dict())
    save_tensors(directory / f"{stem}.optim.safetensors", opt_tensors)
    write_json(directory / f"{stem}.json", {**info, "optimizer": opt_info})


def load_checkpoint(directory, stem: str, model, optimizer=None) -> dict | None:
    """Restore ``directory/stem.*`` into ``model`` (and ``optimizer``); None when absent."""
    directory = Path(directory)
    meta = directory / f"{stem}.json"
    if not meta.exists():
        return None
    info = read_json(meta)
    state = load_tensors(directory / f"{stem}.safetensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {directory / stem}.safetensors does not match the network: {exc}") from None
    if optimizer is not None:
        load_optimizer(optimizer, load_tensors(directory / f"{stem}.optim.safetensors"), info["optimizer"])
    return info
