"""Fixtures of the super-resolution tests: small smooth test scenes and one torch thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage


@pytest.fixture(autouse=True)
def one_thread():
    # the test machine's cores are shared: one thread avoids oversubscription (10x slower otherwise)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smooth_scene(shape, *, seed=0, sigma=2.0):
    """A textured, band-limited scene in [0, 1] (registration needs texture, SR needs detail)."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return img


@pytest.fixture
def scene():
    return smooth_scene
