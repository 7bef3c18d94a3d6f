"""Shared test fixtures: where the real data lives, and skipping clearly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# ../shared/data beside the checkout (CI has it there too); MIRE_DATA overrides.
DATA_DIR = Path(os.environ.get("MIRE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path to a file of the shared data set, or skip the test saying what is missing."""
    p = DATA_DIR.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found: {p} (set MIRE_DATA to the folder holding shared/data)")
    return p


@pytest.fixture
def shared_data():
    return data_path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread: the suite's tensors are small, where thread start-up costs more than it gains."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
