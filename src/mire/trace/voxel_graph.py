"""Voxels as a graph: the neighbour graph the tracer's skeleton and the geodesic growth share."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse


def voxel_graph(coords, shape, spacing) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Full-connectivity (8 / 26) neighbour graph of a set of voxels, weighted by physical length.

    Parameters
    ----------
    coords : (N, ndim) int array
        Voxel indices; returned sorted in C order (the node order of the graph).
    shape : tuple of int
        Shape of the image the voxels lie in.
    spacing : (ndim,) array
        Voxel size per axis (edge weights are ``|offset * spacing|``).

    Returns
    -------
    coords : (N, ndim) int array, sorted
    graph : (N, N) symmetric CSR matrix

    Examples
    --------
    >>> import numpy as np
    >>> c, g = voxel_graph(np.array([[0, 0], [0, 1], [1, 2]]), (2, 3), np.array([1.0, 1.0]))
    >>> g.toarray().round(3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 1.414], [0.0, 1.414, 0.0]]
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(shape))
    lin = np.ravel_multi_index(coords.T, shape)
    order = np.argsort(lin, kind="stable")
    coords, lin = coords[order], lin[order]
    n = len(coords)
    sp = np.asarray(spacing, dtype=float)
    rows, cols, wts = [], [], []
    zero = (0,) * len(shape)
    for off in itertools.product((-1, 0, 1), repeat=len(shape)):
        if off <= zero or n == 0:  # each undirected edge once
            continue
        nb = coords + np.array(off)
        ok = np.all((nb >= 0) & (nb < shape), axis=1)
        nl = np.ravel_multi_index(nb[ok].T, shape)
        pos = np.minimum(np.searchsorted(lin, nl), n - 1)
        hit = lin[pos] == nl
        rows.append(np.flatnonzero(ok)[hit])
        cols.append(pos[hit])
        wts.append(np.full(int(hit.sum()), np.linalg.norm(np.array(off) * sp)))
    if not rows:
        return coords, sparse.csr_matrix((n, n))
    g = sparse.coo_matrix((np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    g = g.tocsr()
    return coords, (g + g.T).tocsr()


__all__ = ["voxel_graph"]
