"""Training targets from instance labels: boundary maps, affinities and ignore masks.

Conventions (shared with :mod:`mire.segment.agglomerate`):

- An *affinity* channel ``c`` with offset ``o`` (a tuple of ints, one per axis) relates voxel ``v`` and
  voxel ``v + o``: ``affs[c][v] = 1`` when both carry the same non-zero label. Nearest-neighbour offsets
  are negative, ``(-1, 0, 0), (0, -1, 0), (0, 0, -1)``, as in waterz / CREMI / pytorch_connectomics.
- Label 0 is *background* (membrane, extracellular space): it is a boundary and has affinity 0 to
  everything, but it is a valid training target. Voxels that are *unknown* are marked with
  ``ignore_label`` and masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from mire._validate import check_image

__all__ = ["boundaries", "affinities", "ignore_mask", "nearest_offsets", "check_labels"]


def check_labels(labels, *, name: str = "labels", ndim=(2, 3)) -> np.ndarray:
    """Return ``labels`` as an integer array, or raise a clear error."""
    arr = check_image(labels, name=name, ndim=ndim)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        # Float label volumes come from careless I/O; accept them only when they hold whole numbers.
        if np.any(arr != np.round(arr)):
            raise TypeError(f"{name} must hold integer labels, got non-integer values of dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"{name} holds negative labels (min {arr.min()}); labels must be >= 0")
    return arr


def nearest_offsets(ndim: int) -> list[tuple[int, ...]]:
    """The nearest-neighbour affinity offsets for ``ndim`` dimensions: ``-1`` along each axis.

    Examples
    --------
    >>> nearest_offsets(3)
    [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]
    """
    return _axis_offsets(ndim, 1)


def _axis_offsets(ndim: int, d: int) -> list[tuple[int, ...]]:
    """``-d`` along each axis in turn."""
    return [tuple(-d if i == j else 0 for j in range(ndim)) for i in range(ndim)]


def long_range_offsets(ndim: int, distances) -> list[tuple[int, ...]]:
    """The nearest-neighbour offsets, then ``-d`` along each axis for each distance (Lee et al. 2017).

    Examples
    --------
    >>> long_range_offsets(2, (3, 9))
    [(-1, 0), (0, -1), (-3, 0), (0, -3), (-9, 0), (0, -9)]
    """
    out = nearest_offsets(ndim)
    for d in distances:
        d = int(d)
        if d < 2:
            raise ValueError(f"long-range distances must be >= 2 (1 is the nearest neighbour), got {d}")
        out += _axis_offsets(ndim, d)
    return out


def _check_offsets(offsets, ndim: int) -> list[tuple[int, ...]]:
    if offsets is None:
        return nearest_offsets(ndim)
    out = []
    for o in offsets:
        o = tuple(int(x) for x in o)
        if len(o) != ndim:
            raise ValueError(f"offset {o} has {len(o)} components but the labels are {ndim}D")
        if not any(o):
            raise ValueError("offset (0, ..., 0) relates a voxel to itself; give non-zero offsets")
        out.append(o)
    if not out:
        raise ValueError("offsets is empty")
    return out


def _pair_slices(offset: Sequence[int]):
    """Slices ``(src, dst)`` so that ``a[src]`` is voxel v and ``a[dst]`` is voxel v + offset (both in bounds)."""
    src, dst = [], []
    for o in offset:
        if o >= 0:
            src.append(slice(0, -o if o else None))
            dst.append(slice(o, None))
        else:
            src.append(slice(-o, None))
            dst.append(slice(0, o))
    return tuple(src), tuple(dst)


def ignore_mask(labels, *, ignore_label: int | None = None) -> np.ndarray:
    """Boolean mask of the voxels that carry ground truth (``labels != ignore_label``).

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) int array
    ignore_label : int or None
        Label of unknown voxels. ``None`` means every voxel is known.

    Examples
    --------
    >>> ignore_mask(np.array([[0, 1], [2, 0]]), ignore_label=0)
    array([[False,  True],
           [ True, False]])
    """
    labels = check_labels(labels)
    if ignore_label is None:
        return np.ones(labels.shape, dtype=bool)
    return labels != ignore_label


def boundaries(labels, *, width: int = 1, ignore_label: int | None = None, background: int | None = 0,
               per_slice: bool = False) -> np.ndarray:
    """Boundary map of an instance label volume: 1 where the label changes, 0 inside objects.

    A voxel is a boundary voxel when a voxel within city-block distance ``width`` carries a
    different label (both sides of an interface are marked, so the line is ``2 * width`` thick),
    or when it is background. Voxels with ``ignore_label`` never create a boundary in their
    neighbours and are 0 themselves; mask them out with :func:`ignore_mask`.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) int array
        Instance labels.
    width : int
        Half-thickness of the boundary in voxels (>= 1).
    ignore_label : int or None
        Label of unknown voxels (e.g. unproofread regions).
    background : int or None
        Label that is itself boundary (membrane / extracellular space); ``None`` for none.
        If it equals ``ignore_label`` it is ignored instead.
    per_slice : bool
        For anisotropic ssTEM stacks: only look for label changes within each z-slice
        (axis 0 is not a boundary direction).

    Returns
    -------
    float32 array of ``labels.shape`` with values 0 or 1.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2],
    ...                 [1, 1, 2, 2]])
    >>> boundaries(lab, background=None)
    array([[0., 1., 1., 0.],
           [0., 1., 1., 0.]], dtype=float32)
    """
    labels = check_labels(labels)
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width}")
    if per_slice and labels.ndim != 3:
        raise ValueError(f"per_slice=True needs a 3D (Z, Y, X) label volume, got {labels.ndim}D")
    known = ignore_mask(labels, ignore_label=ignore_label)
    edge = np.zeros(labels.shape, dtype=bool)
    axes = range(1, labels.ndim) if per_slice else range(labels.ndim)
    for ax in axes:
        off = tuple(-1 if i == ax else 0 for i in range(labels.ndim))
        src, dst = _pair_slices(off)
        diff = (labels[src] != labels[dst]) & known[src] & known[dst]
        edge[src] |= diff
        edge[dst] |= diff
    if width > 1:
        # "within distance w of a different label" == "within distance w-1 of a voxel that has a
        # differently labelled face neighbour": so a (w-1)-fold cross dilation is exact.
        structure = ndi.generate_binary_structure(labels.ndim, 1)
        if per_slice:
            structure[0] = False
            structure[2] = False
        edge = ndi.binary_dilation(edge, structure=structure, iterations=int(width) - 1)
    if background is not None and background != ignore_label:
        edge |= labels == background
    edge &= known
    return edge.astype(np.float32)


def affinities(labels, *, offsets=None, ignore_label: int | None = None, background: int | None = 0):
    """Affinity targets and their loss mask from instance labels.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) int array
        Instance labels.
    offsets : sequence of int tuples, optional
        One offset per output channel; channel ``c`` relates voxel ``v`` to ``v + offsets[c]``.
        Default: the nearest neighbours (:func:`nearest_offsets`). Long-range example for 3D:
        ``[(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, -9, 0), (0, 0, -9)]``.
    ignore_label : int or None
        Label of unknown voxels: pairs touching it are masked out.
    background : int or None
        Label with affinity 0 to everything, itself included (membrane). ``None``: no such label.

    Returns
    -------
    affs : (C, *labels.shape) float32
        1 where ``v`` and ``v + offset`` share a label (not background), else 0.
    mask : (C, *labels.shape) float32
        1 where the pair is valid: ``v + offset`` inside the volume and neither voxel ignored.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2],
    ...                 [1, 0, 2]])
    >>> affs, mask = affinities(lab)
    >>> affs[1]          # channel 1 relates (y, x) to (y, x - 1); 0 is background
    array([[0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    >>> mask[1]          # x = 0 has no left neighbour
    array([[0., 1., 1.],
           [0., 1., 1.]], dtype=float32)
    """
    labels = check_labels(labels)
    offsets = _check_offsets(offsets, labels.ndim)
    known = ignore_mask(labels, ignore_label=ignore_label)
    affs = np.zeros((len(offsets),) + labels.shape, dtype=np.float32)
    mask = np.zeros_like(affs)
    for c, o in enumerate(offsets):
        src, dst = _pair_slices(o)
        a, b = labels[src], labels[dst]
        same = a == b
        if background is not None:
            same &= a != background
        affs[c][src] = same
        mask[c][src] = known[src] & known[dst]
    affs *= mask  # an ignored pair carries no target, not a fake "0"
    return affs, mask
