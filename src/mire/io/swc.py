"""SWC neuron morphologies: ``id type x y z radius parent`` per line, ``#`` comments.

Read as a float64 ``(N, 7)`` array (the column order above). Writing prints the integer
columns as integers and the coordinates with Python's shortest round-trip float repr, so
``read_swc(write_swc(x))`` returns exactly ``x``.
"""

from __future__ import annotations

import os

import numpy as np

from mire.io.atomic import atomic_write_text
from mire.io.errors import SWCError

COLUMNS = ("id", "type", "x", "y", "z", "radius", "parent")


def read_swc(path, *, single_tree: bool = False) -> np.ndarray:
    """Read an SWC file into a float64 array of shape ``(N, 7)``.

    Columns: id, type, x, y, z, radius, parent (``-1`` for a root). Comment lines (``#``)
    and blank lines are skipped. Raises :class:`SWCError` naming the file and line for a
    line without 7 numbers, a repeated id, a parent that is neither -1 nor a node id, or
    parents that form a cycle (nodes that never reach a root). With ``single_tree`` a file
    holding several trees (several roots: a forest, or a root written twice) is refused too.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "n.swc")
    >>> _ = open(p, "w").write("# a root and a child\\n1 1 0 0 0 1.5 -1\\n2 3 1.25 0 0 1 1\\n")
    >>> read_swc(p)[:, [0, 2, 6]].tolist()
    [[1.0, 0.0, -1.0], [2.0, 1.25, 1.0]]
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such SWC file")
    rows, lines = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise SWCError(f"{path}: not a text SWC file ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 7:
            raise SWCError(f"{path}, line {lineno}: expected 7 columns ({' '.join(COLUMNS)}), got {len(fields)}")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise SWCError(f"{path}, line {lineno}: not a number in {line!r}") from None
        lines.append(lineno)
    swc = np.array(rows, dtype=np.float64).reshape(-1, 7)
    _check_tree(swc, lines, path)
    if single_tree:
        roots = np.flatnonzero(swc[:, 6] == -1)
        if len(roots) != 1:
            where = ", ".join(f"line {lines[i]}" for i in roots[:5]) + (" ..." if len(roots) > 5 else "")
            raise SWCError(f"{path}: one tree expected, but the file holds {len(roots)} roots"
                           + (f" ({where}){duplicate_root_note(swc)}" if len(roots) else ""))
    return swc


def duplicate_root_note(swc) -> str:
    """``"; 2 roots share a position"`` when roots repeat a position (a tree written twice), else ``""``."""
    roots = swc[swc[:, 6] == -1][:, 2:5]
    if len(roots) < 2:
        return ""
    n = len(roots) - len(np.unique(roots, axis=0))
    return f"; {n + 1 if n else 0} roots share a position" if n else ""


def parent_cycle(ids: np.ndarray, parents: np.ndarray) -> list[int] | None:
    """Ids of one cycle of parent links (nodes that never reach a root), or None when there is none.

    Pointer jumping: every node's pointer moves to its parent's pointer, doubling the distance
    each round, so after log2(N) rounds a node that reaches a root points at one.
    """
    ids = np.asarray(ids, dtype=np.int64)
    parents = np.asarray(parents, dtype=np.int64)
    n = len(ids)
    if n == 0:
        return None
    order = np.argsort(ids)
    pos = order[np.clip(np.searchsorted(ids[order], parents), 0, n - 1)]
    is_root = parents == -1
    p = np.where(is_root, np.arange(n), pos)
    for _ in range(int(np.ceil(np.log2(n + 1))) + 1):
        p = p[p]
    stuck = np.flatnonzero(~is_root[p])
    if stuck.size == 0:
        return None
    # walk from a stuck node until a node repeats: that loop is the cycle
    seen, i = {}, int(stuck[0])
    while i not in seen:
        seen[i] = len(seen)
        i = int(pos[i])
    walk = list(seen)
    return [int(ids[j]) for j in walk[seen[i]:]]


def _check_tree(swc: np.ndarray, lines, source) -> None:
    """Ids unique integers, parents -1 or an existing id; errors name the (line of the) node."""
    def where(i):
        return f"{source}, line {lines[i]}" if lines is not None else f"{source}, row {i}"

    if not np.all(np.isfinite(swc)):
        i = int(np.flatnonzero(~np.all(np.isfinite(swc), axis=1))[0])
        raise SWCError(f"{where(i)}: NaN or infinite value")
    for col in (0, 1, 6):
        bad = np.flatnonzero(swc[:, col] != np.round(swc[:, col]))
        if bad.size:
            raise SWCError(f"{where(int(bad[0]))}: {COLUMNS[col]} must be an integer, got {swc[bad[0], col]!r}")
    ids = swc[:, 0]
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1][0]
        i = int(np.flatnonzero(ids == dup)[1])
        raise SWCError(f"{where(i)}: node id {int(dup)} appears more than once")
    parents = swc[:, 6]
    bad = np.flatnonzero((parents != -1) & ~np.isin(parents, ids))
    if bad.size:
        i = int(bad[0])
        raise SWCError(f"{where(i)}: parent {int(parents[i])} of node {int(ids[i])} is not a node id (nor -1)")
    cycle = parent_cycle(ids, parents)
    if cycle:
        i = int(np.flatnonzero(ids == min(cycle))[0])
        shown = " -> ".join(map(str, cycle[:8])) + (" ..." if len(cycle) > 8 else "")
        raise SWCError(f"{where(i)}: the parents of nodes {shown} form a cycle (they never reach a root, "
                       "parent -1)")


def write_swc(path, swc, *, header=None) -> None:
    """Write an ``(N, 7)`` SWC array atomically.

    Parameters
    ----------
    path : str or Path
        Output ``.swc`` file.
    swc : array-like, shape (N, 7)
        id, type, x, y, z, radius, parent; id, type and parent must be integers.
    header : str, optional
        Comment text written first, each line prefixed with ``# ``.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "n.swc")
    >>> write_swc(p, [[1, 1, 0.1, 0, 0, 1, -1], [2, 3, 1 / 3, 0, 0, 1, 1]], header="demo")
    >>> print(open(p).read(), end="")
    # demo
    1 1 0.1 0.0 0.0 1.0 -1
    2 3 0.3333333333333333 0.0 0.0 1.0 1
    >>> bool(read_swc(p)[1, 2] == 1 / 3)
    True
    """
    arr = np.asarray(swc)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise SWCError(f"{path}: swc must be a numeric (N, 7) array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise SWCError(f"{path}: swc must have shape (N, 7) ({' '.join(COLUMNS)}), got {arr.shape}")
    _check_tree(arr, None, f"{path}: swc")
    out = []
    if header:
        out += [("# " + h).rstrip() for h in str(header).splitlines()]
    for row in arr:
        # repr() of a Python float is the shortest string that parses back to the same double.
        out.append(f"{int(row[0])} {int(row[1])} {float(row[2])!r} {float(row[3])!r} {float(row[4])!r} "
                   f"{float(row[5])!r} {int(row[6])}")
    atomic_write_text(path, "\n".join(out) + "\n")
