"""Synthetic sample data, like :mod:`skimage.data`: realistic, deterministic by seed, fast.

The generators give the demo, the tests and the napari sample menu images with a
known ground truth, without downloading anything:

- :func:`neurites`: 3D (or 2D) fluorescence-like neurites, with the SWC trace that
  was rendered;
- :func:`em_cells`: EM-like cells separated by dark membranes, with the instance labels.

Every random choice comes from ``numpy.random.default_rng(seed)``, so the same seed
always gives the same sample.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi

__all__ = ["neurites", "em_cells"]


def _check_shape(shape, name: str, minimum: int) -> tuple:
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError as exc:
        raise TypeError(f"{name}: shape must be a tuple of 2 or 3 ints, got {shape!r}") from exc
    if len(shape) not in (2, 3):
        raise ValueError(f"{name}: shape must have 2 or 3 dimensions, got {shape}")
    if min(shape) < minimum:
        raise ValueError(f"{name}: every axis must be at least {minimum} pixels, got {shape}")
    return shape


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


# ----------------------------------------------------------------------------- neurites

def _grow_tree(rng, shape: np.ndarray, n_neurites: int):
    """Random walks with momentum that end where they leave the volume, with occasional branches.

    Returns node positions (index order), radii, brightness and parent index (-1: root).
    """
    ndim = len(shape)
    # in a thin 3D stack, neurites run mostly in the plane: damp motion along z
    damp = np.ones(ndim)
    if ndim == 3:
        damp[0] = 0.25 if shape[0] < shape[1:].min() else 1.0
    lo, hi = np.zeros(ndim), shape - 1.0
    pos, rad, bright, parent = [], [], [], []
    for _ in range(n_neurites):
        # enter from a side wall (Y or X) heading inward, as neurites cross a field of view
        start = rng.uniform(0.2 * shape, 0.8 * shape)
        wall = ndim - 1 - int(rng.integers(2))
        start[wall] = 0.0 if rng.random() < 0.5 else shape[wall] - 1.0
        direction = rng.normal(size=ndim) * damp
        direction[wall] = abs(direction[wall]) + 1.0
        if start[wall] > 0:
            direction[wall] = -direction[wall]
        direction = _unit(direction)
        length = rng.uniform(0.7, 1.3) * shape.max()
        todo = [(start, direction, length, rng.uniform(1.3, 2.6), rng.uniform(0.5, 1.0), -1)]
        while todo:
            p, d, length, r, b, par = todo.pop()
            for _step in range(int(length)):
                pos.append(p.copy())
                rad.append(r)
                bright.append(b)
                parent.append(par)
                par = len(pos) - 1
                # momentum: small random turns keep the curve smooth
                d = _unit(d + 0.18 * rng.normal(size=ndim) * damp)
                p = p + d
                if np.any((p < lo) | (p > hi)):  # it leaves the field of view: the trace ends there
                    break
                r = float(np.clip(r * math.exp(0.03 * rng.normal()), 1.0, 3.0))
                b = float(np.clip(b * math.exp(0.02 * rng.normal()), 0.35, 1.0))
                if rng.random() < 0.008 and length > 30:  # a side branch, thinner, at 30-70 degrees
                    side = _unit(rng.normal(size=ndim) * damp)
                    side = _unit(side - (side @ d) * d)
                    angle = rng.uniform(0.5, 1.2)
                    child = _unit(math.cos(angle) * d + math.sin(angle) * side)
                    todo.append((p.copy(), child, rng.uniform(0.3, 0.6) * length,
                                 max(1.0, 0.7 * r), b * rng.uniform(0.7, 1.0), par))
    return np.array(pos), np.array(rad), np.array(bright), np.array(parent)


def _render_tubes(shape: tuple, pos, rad, bright) -> np.ndarray:
    """Max over nodes of ``b * 2**-(d / r)**2``: half the brightness at distance ``r`` of the centre."""
    out = np.zeros(shape)
    n = np.array(shape)
    for p, r, b in zip(pos, rad, bright):
        h = int(math.ceil(2 * r))
        lo = np.maximum(np.floor(p).astype(int) - h, 0)
        hi = np.minimum(np.floor(p).astype(int) + h + 2, n)
        axes = [np.arange(a, z) - c for a, z, c in zip(lo, hi, p)]
        d2 = sum(g**2 for g in np.meshgrid(*axes, indexing="ij", sparse=True))
        region = tuple(slice(a, z) for a, z in zip(lo, hi))
        np.maximum(out[region], b * np.exp2(-d2 / r**2), out=out[region])
    return out


def neurites(shape=(48, 128, 128), *, n_neurites: int = 6, seed=0, return_swc: bool = False):
    """Fluorescence-like neurites: bright branching tubes on a faint, structured background.

    Each neurite is a random walk with momentum (a smooth curve, 1-pixel steps) that
    sometimes branches and ends where it leaves the field of view; it is rendered as a tube whose
    radius (1-3 px, half maximum at the radius) and brightness drift slowly along it.
    The background holds out-of-focus haze around the neurites, a smooth
    autofluorescence field and a few dim puncta.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) for a stack or (Y, X) for a 2D image; each axis >= 8.
    n_neurites : int
        Number of separate trees (each has one root).
    seed : int or numpy.random.Generator
    return_swc : bool
        Also return the ground-truth trace.

    Returns
    -------
    image : ndarray of float64 in [0, 1], shape ``shape``
    swc : ndarray of float64, shape (N, 7), only with ``return_swc``
        Columns ``id, type, x, y, z, radius, parent`` in mire's convention:
        ``x`` = column, ``y`` = row, ``z`` = slice (0 in 2D), in pixels; ids start
        at 1; type 2 (axon); each root has parent -1. The nodes are exactly the
        rendered tube centres (brightest along the tube), so a tracer can be scored
        against them.

    Examples
    --------
    >>> image, swc = neurites((24, 64, 64), n_neurites=2, seed=1, return_swc=True)
    >>> image.shape, float(image.min()) >= 0, float(image.max())
    ((24, 64, 64), True, 1.0)
    >>> swc.shape[1], int((swc[:, 6] == -1).sum())  # one root per neurite
    (7, 2)
    """
    shape = _check_shape(shape, "neurites", 8)
    if int(n_neurites) != n_neurites or n_neurites < 1:
        raise ValueError(f"neurites: n_neurites must be a positive integer, got {n_neurites}")
    rng = np.random.default_rng(seed)
    n = np.array(shape, dtype=float)
    pos, rad, bright, parent = _grow_tree(rng, n, int(n_neurites))
    tubes = _render_tubes(shape, pos, rad, bright)

    # faint structure, all well below the dimmest neurite centre (0.35)
    # (short kernels and a coarse grid for the smooth parts keep this well under a second)
    haze = ndi.gaussian_filter(tubes, 4.0, truncate=2.5) * 0.5  # out-of-focus light around the neurites
    coarse = tuple(max(2, -(-n // 4)) for n in shape)
    field = ndi.gaussian_filter(rng.random(coarse), 2.0, mode="reflect")
    field = ndi.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    puncta = np.zeros(shape)
    n_puncta = max(1, int(np.prod(shape) / 40000))
    idx = tuple(rng.integers(0, s, n_puncta) for s in shape)
    puncta[idx] = rng.uniform(0.3, 1.0, n_puncta)
    puncta = ndi.gaussian_filter(puncta, 1.2, truncate=3.0) * (2 * math.pi * 1.2**2) ** (len(shape) / 2) * 0.15
    image = np.maximum(tubes, haze + 0.03 + 0.05 * field + puncta)
    image /= image.max()
    if not return_swc:
        return image

    swc = np.empty((len(pos), 7))
    swc[:, 0] = np.arange(1, len(pos) + 1)
    swc[:, 1] = 2
    swc[:, 2] = pos[:, -1]  # x = column
    swc[:, 3] = pos[:, -2]  # y = row
    swc[:, 4] = pos[:, 0] if len(shape) == 3 else 0.0  # z = slice
    swc[:, 5] = rad
    swc[:, 6] = np.where(parent >= 0, parent + 1, -1)
    return image, swc


# ----------------------------------------------------------------------------- EM cells

def _smooth_field(rng, shape, sigma, amplitude):
    f = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return f * (amplitude / max(float(f.std()), 1e-12))


def em_cells(shape=(16, 128, 128), *, n_cells: int | None = None, seed=0, membrane_width: float = 2):
    """EM-like image of cells separated by dark membranes, with the instance labels.

    A Voronoi partition of random seeds, seen through a smooth random warp so the
    cell outlines curve; in 3D the seeds drift from slice to slice (a few tenths of
    a pixel per slice), so cells run through the stack like neurites cut across in
    anisotropic serial-section EM. Pixels closer than ``membrane_width / 2`` to a
    cell boundary are membrane. The image has bright cytoplasm with fine texture,
    darker organelle-like blobs inside cells, near-black membranes, a slight blur
    and noise.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) or (Y, X); Y and X >= 16.
    n_cells : int, optional
        Number of seeds; default one per 18 x 18 pixels of the YX plane.
    seed : int or numpy.random.Generator
    membrane_width : float
        Membrane thickness in pixels (>= 1).

    Returns
    -------
    image : ndarray of uint8
    labels : ndarray of int32
        Cell instances 1..n (each one connected piece, 6-/4-connectivity), 0
        exactly on the membranes: two different cells never touch, so the labels
        change only across a membrane.

    Examples
    --------
    >>> image, labels = em_cells((64, 64), seed=0)
    >>> image.dtype, labels.dtype, bool(image[labels == 0].mean() < image[labels > 0].mean())
    (dtype('uint8'), dtype('int32'), True)
    """
    from scipy.spatial import cKDTree
    from skimage.measure import label as cc_label
    from skimage.morphology import remove_small_objects

    shape = _check_shape(shape, "em_cells", 1)
    if min(shape[-2:]) < 16:
        raise ValueError(f"em_cells: Y and X must be at least 16 pixels, got {shape}")
    if not np.isfinite(membrane_width) or membrane_width < 1:
        raise ValueError(f"em_cells: membrane_width must be >= 1 pixel, got {membrane_width}")
    rng = np.random.default_rng(seed)
    vol = shape if len(shape) == 3 else (1, *shape)
    nz, ny, nx = vol
    if n_cells is None:
        n_cells = max(2, round(ny * nx / 18**2))
    if int(n_cells) != n_cells or n_cells < 2:
        raise ValueError(f"em_cells: n_cells must be an integer >= 2, got {n_cells}")
    n_cells = int(n_cells)

    # seed tracks: a steady drift plus a little jitter per slice
    start = rng.uniform((0, 0), (ny, nx), (n_cells, 2))
    velocity = rng.normal(0, 0.4, (n_cells, 2))
    steps = velocity[None] + rng.normal(0, 0.15, (nz, n_cells, 2))
    steps[0] = 0
    tracks = start[None] + np.cumsum(steps, axis=0)  # (nz, n_cells, 2)
    spacing = math.sqrt(ny * nx / n_cells)
    # a smooth warp (gradient well below 1) curves the outlines without tearing cells
    warp = [_smooth_field(rng, vol, (2, spacing / 3, spacing / 3), spacing / 12) for _ in range(2)]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    labels = np.empty(vol, dtype=np.int32)
    for z in range(nz):
        pts = np.stack([(yy + warp[0][z]).ravel(), (xx + warp[1][z]).ravel()], axis=1)
        d, idx = cKDTree(tracks[z]).query(pts, k=2)
        gap = np.linalg.norm(tracks[z][idx[:, 0]] - tracks[z][idx[:, 1]], axis=1)
        # exact distance to the bisector of the two nearest seeds
        to_edge = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * np.maximum(gap, 1e-9))
        lab = idx[:, 0].astype(np.int32) + 1
        lab[to_edge < membrane_width / 2] = 0
        labels[z] = lab.reshape(ny, nx)
    # where two cells still touch (across z, or at a tight corner), the contact is membrane
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        la, lb = labels[tuple(a)], labels[tuple(b)]
        touch = (la != lb) & (la > 0) & (lb > 0)
        la[touch] = 0
        lb[touch] = 0
    # one connected piece per instance; crumbs too small to be cells become membrane
    labels = cc_label(labels, background=0, connectivity=1).astype(np.int32)
    labels = remove_small_objects(labels, max_size=max(4, int(0.05 * spacing**2)) - 1)
    labels = cc_label(labels, background=0, connectivity=1).astype(np.int32)

    # -- the image: cytoplasm, organelles, membranes, blur, noise
    cell_value = rng.uniform(150, 205, labels.max() + 1)
    image = cell_value[labels] + _smooth_field(rng, vol, (0, 1.0, 1.0), 7.0)
    blobs = _smooth_field(rng, vol, (0.7, 1.6, 1.6), 1.0)
    organelle = (blobs > 2.0) & (labels > 0)
    image[organelle] -= 45  # mitochondria / vesicles: darker than cytoplasm, far lighter than membrane
    image[labels == 0] = rng.uniform(25, 45)
    image = ndi.gaussian_filter(image, (0, 0.5, 0.5))
    image += rng.normal(0, 6.0, vol)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if len(shape) == 2:
        return image[0], labels[0]
    return image, labels
