"""Small helpers on SWC arrays (N, 7): checking, topology counts, resampling to points.

Column order is the SWC standard: id, type, x, y, z, radius, parent (root parent -1), with
x = column, y = row (pixels) and z = slice index, as in ``mire.io.read_swc``.
"""

from __future__ import annotations

import numpy as np

EMPTY_SWC = np.zeros((0, 7))


def check_swc(swc, *, name: str = "swc") -> np.ndarray:
    """Return ``swc`` as a float (N, 7) array after checking its shape, values and parent links.

    Raises a ``ValueError`` naming ``name`` for a wrong shape, NaN coordinates, repeated ids,
    or a parent id that is neither -1 nor an id in the file.
    """
    arr = np.asarray(swc, dtype=float)
    if arr.size == 0:
        return EMPTY_SWC.copy()
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise ValueError(f"{name} must be an (N, 7) SWC array (id, type, x, y, z, radius, parent), "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    ids = arr[:, 0].astype(np.int64)
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{name} repeats node ids")
    parents = arr[:, 6].astype(np.int64)
    bad = ~np.isin(parents, ids) & (parents != -1)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} nodes have a parent id that is not in the file "
                         f"(first: node {ids[bad][0]} -> parent {parents[bad][0]})")
    from mire.io.swc import parent_cycle

    cycle = parent_cycle(ids, parents)
    if cycle:
        raise ValueError(f"{name}: the parents of nodes {' -> '.join(map(str, cycle[:8]))}"
                         f"{' ...' if len(cycle) > 8 else ''} form a cycle (they never reach a root)")
    return arr


def _parent_index(swc: np.ndarray) -> np.ndarray:
    """Row index of each node's parent (-1 for roots)."""
    ids = swc[:, 0].astype(np.int64)
    order = np.argsort(ids)
    parents = swc[:, 6].astype(np.int64)
    pos = np.searchsorted(ids[order], parents)
    pos = np.clip(pos, 0, len(ids) - 1)
    idx = order[pos]
    return np.where(parents == -1, -1, idx)


def topology(swc) -> dict:
    """Counts that describe a tree's shape: nodes, roots, branch points, terminals.

    Counted on the undirected graph, so they do not depend on where the root is: a branch point
    has three or more neighbours, a terminal has one (or none, for a lone node).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 1, 0, 0, 1, 1],
    ...               [3, 2, 2, 1, 0, 1, 2], [4, 2, 2, -1, 0, 1, 2]])
    >>> topology(y)
    {'nodes': 4, 'roots': 1, 'branch_points': 1, 'terminals': 3}
    """
    swc = check_swc(swc)
    if len(swc) == 0:
        return {"nodes": 0, "roots": 0, "branch_points": 0, "terminals": 0}
    pidx = _parent_index(swc)
    child = pidx >= 0
    degree = np.bincount(pidx[child], minlength=len(swc)) + child
    return {
        "nodes": len(swc),
        "roots": int(np.sum(~child)),
        "branch_points": int(np.sum(degree >= 3)),
        "terminals": int(np.sum(degree <= 1)),
    }


def resample_points(swc, *, step: float = 1.0, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` along each parent-child segment, in (z, y, x) pixel coordinates.

    Parameters
    ----------
    swc : (N, 7) array
    step : float
        Largest distance between consecutive points, in units of the finest axis' pixel
        (distances use ``spacing``).
    spacing : sequence of 3 floats, optional
        Voxel size for (z, y, x); only ratios matter.

    Returns
    -------
    points : (M, 3) float array of (z, y, x)
        Includes every node.
    radius : (M,) float array
        Radius linearly interpolated along each segment.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 4, 0, 0, 3, 1]])
    >>> pts, r = resample_points(y, step=1.0)
    >>> pts[:, 2].tolist(), r.tolist()
    ([0.0, 4.0, 3.0, 2.0, 1.0], [1.0, 3.0, 2.5, 2.0, 1.5])
    """
    swc = check_swc(swc)
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if len(swc) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    from mire.trace.vesselness import normalized_spacing

    sp = normalized_spacing(spacing, 3)
    zyx = swc[:, [4, 3, 2]]
    rad = swc[:, 5]
    pidx = _parent_index(swc)
    child = np.flatnonzero(pidx >= 0)
    par = pidx[child]
    seg = (zyx[par] - zyx[child]) * sp
    # interior points per segment, so that consecutive points are at most `step` apart
    n_in = np.maximum(np.ceil(np.linalg.norm(seg, axis=1) / step).astype(int) - 1, 0)
    rep_child = np.repeat(child, n_in)
    rep_par = np.repeat(par, n_in)
    # fraction k / (n_in + 1) for k = 1..n_in on each segment, without a Python loop
    k = np.arange(n_in.sum()) - np.repeat(np.cumsum(n_in) - n_in, n_in) + 1
    t = (k / np.repeat(n_in + 1, n_in))[:, None]
    pts = zyx[rep_child] + t * (zyx[rep_par] - zyx[rep_child])
    r = rad[rep_child] + t[:, 0] * (rad[rep_par] - rad[rep_child])
    return np.concatenate([zyx, pts]), np.concatenate([rad, r])


def largest_tree(swc, *, spacing=None) -> np.ndarray:
    """The tree (one root and its descendants) with the most cable, renumbered 1..M.

    A tracer seeded once, like APP2 (Xiao & Peng 2013), returns one connected tree and drops
    everything it could not reach from its seed; this turns a forest into that one tree (the
    longest, as the neuron is the biggest structure in the stack). Row order and parent links are
    kept; ids are renumbered from 1.

    Parameters
    ----------
    swc : (N, 7) array
    spacing : sequence of 3 floats, optional
        Voxel size for (z, y, x) used to measure cable; only ratios matter.

    Examples
    --------
    >>> import numpy as np
    >>> forest = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 3, 0, 0, 1, 1],      # 3 px long
    ...                    [5, 2, 0, 9, 0, 1, -1], [7, 2, 8, 9, 0, 1, 5]])     # 8 px long
    >>> largest_tree(forest)[:, [0, 2, 3, 6]].tolist()
    [[1.0, 0.0, 9.0, -1.0], [2.0, 8.0, 9.0, 1.0]]
    """
    swc = check_swc(swc)
    if len(swc) == 0:
        return EMPTY_SWC.copy()
    from mire.trace.vesselness import normalized_spacing

    sp = normalized_spacing(spacing, 3)
    pidx = _parent_index(swc)
    # root of every node: follow parents (pointer jumping: log2(depth) passes over the array)
    root = np.where(pidx >= 0, pidx, np.arange(len(swc)))
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    child = pidx >= 0
    seg = np.zeros(len(swc))
    seg[child] = np.linalg.norm((swc[child][:, [4, 3, 2]] - swc[pidx[child]][:, [4, 3, 2]]) * sp, axis=1)
    cable = np.bincount(root, weights=seg, minlength=len(swc))
    keep = root == np.argmax(cable)
    out = swc[keep].copy()
    new_id = {int(old): k + 1 for k, old in enumerate(out[:, 0])}
    out[:, 6] = [new_id.get(int(p), -1) for p in out[:, 6]]
    out[:, 0] = np.arange(1, len(out) + 1)
    return out
