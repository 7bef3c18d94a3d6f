"""Restoration tests run torch on one thread: on a small, shared CPU that is several times faster
than oversubscribing the cores (and these arrays are too small to gain from threads)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
