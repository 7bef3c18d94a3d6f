"""Model files shared by every trained estimator (Restorer, Segmenter).

A model is ``<stem>.safetensors`` (weights: no pickle, so a model file cannot run code) plus
``<stem>.json`` (network config, axes, normalization, training record, metrics). The JSON holds a
SHA-256 of the weights, so a weights file paired with the wrong metadata is caught on load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mire.learn.checkpoint import load_tensors, read_json, save_tensors, write_json


def model_stem(path) -> Path:
    """``model``, ``model.json`` or ``model.safetensors`` -> the stem ``model``."""
    p = Path(path)
    for suffix in (".safetensors", ".json"):
        if p.name.endswith(suffix):
            return p.with_name(p.name[: -len(suffix)])
    return p


def weights_digest(state: dict) -> str:
    """SHA-256 over the weights (names, shapes, values): ties a metadata file to its weights file."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_model(path, model, metadata: dict, *, fmt: str) -> Path:
    """Write the weights and metadata of ``model`` next to each other, each atomically; returns the stem."""
    from mire import __version__

    stem = model_stem(path)
    # refused, not created, as the CLI's --out is: a mistyped folder would hide the model where
    # the user does not look (and open()/np.save refuse a missing folder too)
    parent = Path(stem).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write model {path}: folder {parent} does not exist")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = dict(metadata, network=model.config, mire_version=__version__, weights_sha256=weights_digest(state))
    save_tensors(stem.with_name(stem.name + ".safetensors"), state, {"format": fmt})
    write_json(stem.with_name(stem.name + ".json"), meta)
    return stem


_POS = {"type": "integer", "minimum": 1, "maximum": 2**16}
#: what every model's ``.json`` must look like (entries checked when present; ``required`` adds more)
MODEL_SCHEMA = {
    "type": "object",
    "required": ["format"],
    "properties": {
        "format": {"type": "string"},
        "format_version": {"type": "integer", "minimum": 0},
        "name": {"type": ["string", "null"]},
        "axes": {"type": ["string", "null"]},
        "mire_version": {"type": ["string", "null"]},
        "weights_sha256": {"type": ["string", "null"]},
        "network": {"type": "object", "properties": {
            "ndim": {"type": "integer", "minimum": 1, "maximum": 3},
            "in_channels": _POS, "out_channels": _POS, "base_channels": _POS,
            "depth": {"type": "integer", "minimum": 0, "maximum": 12},
            "convs_per_block": {"type": "integer", "minimum": 1, "maximum": 16},
            "kernel": {"type": ["array", "integer"], "items": _POS, "maxItems": 3},
            "arch": {"type": "string"}, "activation": {"type": "string"}, "norm": {"type": "string"},
            "conv": {"type": "string"}}},
        "normalization": {"type": ["object", "null"]},
        "postprocess": {"type": ["object", "null"]},
        "training": {"type": ["object", "null"]},
        "metrics": {"type": ["object", "null"]},
    },
}


def read_model_metadata(name_or_path, *, fmt: str, version: int, kind: str, required=()) -> tuple:
    """Find a shipped model by name or a saved one by path and read its metadata.

    Returns ``(meta, meta_path, weights_path)``. Raises ``FileNotFoundError`` when neither exists,
    ``ValueError`` when the metadata is of another format, too new, or lacks a ``required`` entry.
    """
    from mire import models

    name = str(name_or_path)
    if name in models.available():
        stem = models.model_path(name)
    else:
        stem = model_stem(name_or_path)
        if not stem.with_name(stem.name + ".json").exists():
            shipped = ", ".join(models.available()) or "none"
            raise FileNotFoundError(f"no model {name!r}: neither a shipped model (available: {shipped}) "
                                    f"nor a file {stem.with_name(stem.name + '.json')}")
    meta_path = stem.with_name(stem.name + ".json")
    weights_path = stem.with_name(stem.name + ".safetensors")
    meta = read_json(meta_path, MODEL_SCHEMA)
    if meta.get("format") != fmt:
        raise ValueError(f"{meta_path} is not a mire {kind} model (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > version:
        raise ValueError(f"{meta_path} has format version {meta['format_version']}; this mire reads "
                         f"<= {version}: upgrade mire")
    for key in required:
        if key not in meta:
            raise ValueError(f"{meta_path} lacks the {key!r} entry")
    return meta, meta_path, weights_path


def load_weights(model, meta: dict, meta_path: Path, weights_path: Path) -> None:
    """Load the weights into ``model``, checking them against the metadata's checksum and the network."""
    state = load_tensors(weights_path)
    want = meta.get("weights_sha256")
    if want is not None and weights_digest(state) != want:
        raise ValueError(f"{weights_path} does not match {meta_path} (weights checksum differs): "
                         "the files come from different models or were modified")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).split("\n\t")[1:3]
        raise ValueError(f"{weights_path} does not fit the network described in {meta_path}: "
                         + "; ".join(s.strip() for s in first)) from None
    model.eval()
