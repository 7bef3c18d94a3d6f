"""Pretrained models shipped inside the package, loaded by name.

Each model is a pair ``<name>.safetensors`` (weights: no pickle, so a model file cannot run code)
+ ``<name>.json`` (network config, axes, normalization, training protocol, metrics).

Examples
--------
>>> from mire import models
>>> isinstance(models.available(), list)
True
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the shipped models (those with both a weights and a metadata file)."""
    return sorted(p.stem for p in MODEL_DIR.glob("*.json") if p.with_suffix(".safetensors").exists())


def model_path(name: str) -> Path:
    """Path stem of shipped model ``name`` (add ``.safetensors`` / ``.json``)."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown model {name!r}; shipped models: {', '.join(names) or 'none'}")
    return MODEL_DIR / name


def load_metadata(name: str) -> dict:
    """The JSON metadata of shipped model ``name`` (axes, normalization, training, metrics).

    Examples
    --------
    >>> from mire import models
    >>> all("network" in models.load_metadata(n) for n in models.available())
    True
    """
    return json.loads(model_path(name).with_suffix(".json").read_text())


__all__ = ["available", "model_path", "load_metadata", "MODEL_DIR"]
