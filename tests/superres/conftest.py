"""Fixtures of the super-resolution tests: small smooth test scenes (tests/conftest.py sets one torch thread)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def smooth_scene(shape, *, seed=0, sigma=2.0):
    """A textured, band-limited scene in [0, 1] (registration needs texture, SR needs detail)."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return img


@pytest.fixture
def scene():
    return smooth_scene
