"""Synthetic neurites with a known centre line, built here so the tests know the exact answer."""

from __future__ import annotations

import types

import numpy as np
import pytest


def polyline_points(vertices, step=0.25):
    """Points every `step` along a polyline given as (K, ndim) vertices."""
    v = np.asarray(vertices, float)
    out = [v[0]]
    for a, b in zip(v[:-1], v[1:]):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.vstack(out)


def render_tubes(shape, branches, radius=2.0, spacing=None):
    """Bright tubes (Gaussian cross-section of SD `radius` / 1.5, peak 1) along polylines.

    Returns the image and the exact set of centre-line points (zyx / yx).
    """
    sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, float)
    pts = np.vstack([polyline_points(b) for b in branches])
    grid = np.indices(shape).reshape(len(shape), -1).T.astype(float)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pts * sp).query(grid * sp)
    img = np.exp(-0.5 * (d / (radius / 1.5)) ** 2).reshape(shape)
    return img, pts, d.reshape(shape)


# A "Y": a stem and two daughter branches leaving one junction, gently changing depth.
Y_BRANCHES_3D = [
    [(8, 32, 4), (10, 32, 30)],    # stem (z, y, x)
    [(10, 32, 30), (12, 12, 58)],  # upper daughter
    [(10, 32, 30), (8, 52, 58)],   # lower daughter
]
Y_SHAPE_3D = (20, 64, 64)

Y_BRANCHES_2D = [[p[1:] for p in b] for b in Y_BRANCHES_3D]
Y_SHAPE_2D = Y_SHAPE_3D[1:]


def points_to_swc(pts_zyx):
    """A chain SWC through ordered points (z, y, x), for evaluation tests."""
    n = len(pts_zyx)
    swc = np.zeros((n, 7))
    swc[:, 0] = np.arange(1, n + 1)
    swc[:, 1] = 2
    swc[:, 2], swc[:, 3], swc[:, 4] = pts_zyx[:, 2], pts_zyx[:, 1], pts_zyx[:, 0]
    swc[:, 5] = 1.0
    swc[:, 6] = np.arange(0, n)
    swc[0, 6] = -1
    return swc


@pytest.fixture
def synth():
    """The helpers above, for test modules (pytest's importlib mode keeps them from importing this file)."""
    return types.SimpleNamespace(
        render_tubes=render_tubes, points_to_swc=points_to_swc, polyline_points=polyline_points,
        Y_BRANCHES_3D=Y_BRANCHES_3D, Y_SHAPE_3D=Y_SHAPE_3D, Y_BRANCHES_2D=Y_BRANCHES_2D, Y_SHAPE_2D=Y_SHAPE_2D,
    )
