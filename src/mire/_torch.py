"""Small torch helpers: the device to compute on and array <-> tensor conversion."""

from __future__ import annotations

import numpy as np
import torch


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU (same code on both)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(x, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Numpy array (or tensor) -> tensor of ``dtype`` on ``device`` without needless copies."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device or x.device)
    arr = np.asarray(x)
    if arr.dtype.byteorder == ">" or not arr.flags.writeable:
        arr = np.array(arr, dtype=arr.dtype.newbyteorder("=") if arr.dtype.byteorder == ">" else arr.dtype)
    return torch.as_tensor(arr, device=device).to(dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
