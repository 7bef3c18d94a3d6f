"""Proofreading edits on a segmentation: merge, split, undo / redo, and a replayable edit log.

Every edit touches only the bounding box of the segments it involves, and undo keeps only the
voxels that changed (their flat indices and old values), so edits on a big volume cost what the
edited segments cost, not what the volume costs.

The log is plain JSON (``{"format": "mire-edit-log", "version": 1, "shape": [...], "edits": [...]}``)
and records the ids every edit created, so :func:`replay` reproduces the edited volume exactly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed as _sk_watershed

from mire._validate import check_image
from mire.segment.targets import check_labels

__all__ = ["Proofreader", "merge", "split", "replay", "save_log", "load_log"]

LOG_FORMAT = "mire-edit-log"
LOG_VERSION = 1


def _union_box(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


class Proofreader:
    """Edit a segmentation with merges and seeded splits, with undo / redo and an edit log.

    Parameters
    ----------
    seg : (Z, Y, X) or (Y, X) int array
        The segmentation; it is copied unless ``copy=False`` (then edited in place).
    boundary : float array of ``seg.shape``, optional
        Boundary map that :meth:`split` floods (a watershed follows membranes). Without one, a split
        cuts each segment by geodesic distance to the seeds (nearest seed wins).
    copy : bool

    Examples
    --------
    >>> seg = np.array([[1, 1, 2, 2, 3, 3]])
    >>> pr = Proofreader(seg)
    >>> pr.merge([2, 3])
    2
    >>> pr.seg.tolist()
    [[1, 1, 2, 2, 2, 2]]
    >>> pr.split(2, [(0, 2), (0, 5)])
    [2, 4]
    >>> pr.seg.tolist()
    [[1, 1, 2, 2, 4, 4]]
    >>> pr.undo()['op'], pr.seg.tolist()
    ('split', [[1, 1, 2, 2, 2, 2]])
    >>> replay(seg, pr.log).tolist() == pr.seg.tolist()
    True
    """

    def __init__(self, seg, *, boundary=None, copy: bool = True):
        arr = check_labels(seg, name="segmentation")
        if arr.dtype.itemsize < 4:
            arr = arr.astype(np.uint32)  # room for the new ids that splits create
        self.seg = arr.copy() if copy or arr is not seg else arr
        if boundary is not None:
            boundary = check_image(boundary, name="boundary map", ndim=self.seg.ndim)
            if boundary.shape != self.seg.shape:
                raise ValueError(f"boundary map shape {boundary.shape} does not match segmentation shape "
                                 f"{self.seg.shape}")
        self.boundary = boundary
        # each record: (log entry, changed flat indices, old values, new values, boxes before, boxes after)
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self._next_id = int(self.seg.max()) + 1
        # Bounding boxes of every id, from one pass; kept as supersets afterwards (never too small).
        self._boxes: dict[int, tuple] = {}
        self._cached = self._next_id <= 4 * self.seg.size + 1024
        if self._cached:
            for i, box in enumerate(ndi.find_objects(self.seg.astype(np.int64, copy=False)), start=1):
                if box is not None:
                    self._boxes[i] = box

    # ------------------------------------------------------------------ helpers
    @property
    def log(self) -> list[dict]:
        """The edits currently applied, oldest first (JSON-serializable dicts)."""
        return [rec[0] for rec in self._undo]

    def _box(self, ids) -> tuple:
        box = None
        for i in ids:
            b = self._boxes.get(int(i))
            if b is None:  # unknown to the cache (huge ids): find it once, the slow way
                where = np.nonzero(self.seg == i)
                if where[0].size == 0:
                    raise ValueError(f"segment {i} does not exist in the segmentation")
                b = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
                self._boxes[int(i)] = b
            box = _union_box(box, b)
        return box

    def _check_ids(self, ids):
        out = []
        for i in ids:
            if int(i) != i or i <= 0:
                raise ValueError(f"segment ids must be positive integers, got {i}")
            out.append(int(i))
        # the box cache knows every live id when it was built from find_objects (the usual case)
        missing = [i for i in out if i not in self._boxes and (self._cached or not np.any(self.seg == i))]
        if missing:
            raise ValueError(f"segment(s) {missing} do not exist in the segmentation")
        return out

    def _set_boxes(self, boxes: dict):
        for i, b in boxes.items():
            if b is None:
                self._boxes.pop(i, None)
            else:
                self._boxes[i] = b

    def _commit(self, entry, box, crop_old, crop_new, boxes_after: dict):
        changed = crop_old != crop_new
        local = np.nonzero(changed)
        flat = np.ravel_multi_index(tuple(l + s.start for l, s in zip(local, box)), self.seg.shape)
        old, new = crop_old[changed], crop_new[changed]
        boxes_before = {i: self._boxes.get(i) for i in boxes_after}
        self.seg.flat[flat] = new
        self._set_boxes(boxes_after)
        self._undo.append((entry, flat, old, new, boxes_before, boxes_after))
        self._redo.clear()

    # ------------------------------------------------------------------ edits
    def merge(self, ids) -> int:
        """Merge segments ``ids`` into the smallest of them; return the id that remains."""
        ids = sorted(set(self._check_ids(ids)))
        if len(ids) < 2:
            raise ValueError(f"merge needs at least two different segment ids, got {ids}")
        target = ids[0]
        box = self._box(ids)
        crop = self.seg[box]
        new = np.where(np.isin(crop, ids[1:]), crop.dtype.type(target), crop)
        boxes_after = {target: box, **{i: None for i in ids[1:]}}  # merged ids no longer exist
        self._commit({"op": "merge", "ids": ids, "into": target}, box, crop, new, boxes_after)
        return target

    def split(self, segment: int, seeds, *, new_ids=None) -> list[int]:
        """Split ``segment`` with a seeded watershed inside it; return the ids of the pieces.

        Parameters
        ----------
        segment : int
            The segment to split.
        seeds : sequence of voxel coordinates
            One point per piece, e.g. ``[(z0, y0, x0), (z1, y1, x1)]``; each must lie in the segment.
            The first piece keeps ``segment``'s id, the others get new ids above every id used so far.
        new_ids : sequence of int, optional
            Ids for the pieces after the first (used by :func:`replay`; must be unused).
        """
        (segment,) = self._check_ids([segment])
        pts = np.asarray(seeds, dtype=np.int64)
        if pts.ndim != 2 or pts.shape[1] != self.seg.ndim:
            raise ValueError(f"seeds must be a list of {self.seg.ndim}D voxel coordinates, got shape {pts.shape}")
        if len(pts) < 2:
            raise ValueError("split needs at least two seeds (one per piece)")
        if len({tuple(p) for p in pts.tolist()}) != len(pts):
            raise ValueError("two seeds are on the same voxel")
        for p in pts:
            if np.any(p < 0) or np.any(p >= self.seg.shape):
                raise ValueError(f"seed {tuple(p.tolist())} is outside the volume {self.seg.shape}")
            if self.seg[tuple(p)] != segment:
                raise ValueError(f"seed {tuple(p.tolist())} is in segment {int(self.seg[tuple(p)])}, "
                                 f"not in segment {segment}")
        if new_ids is None:
            new_ids = list(range(self._next_id, self._next_id + len(pts) - 1))
        else:
            new_ids = [int(i) for i in new_ids]
            if len(new_ids) != len(pts) - 1:
                raise ValueError(f"{len(pts)} seeds need {len(pts) - 1} new ids, got {len(new_ids)}")
            used = [i for i in new_ids if i <= 0 or i in self._boxes or (not self._cached and np.any(self.seg == i))]
            if used:
                raise ValueError(f"new ids {used} are already used in the segmentation")
        box = self._box([segment])
        crop = self.seg[box]
        inside = crop == segment
        markers = np.zeros(crop.shape, dtype=np.int32)
        for k, p in enumerate(pts, start=1):
            markers[tuple(p - [s.start for s in box])] = k
        if self.boundary is not None:
            height = np.asarray(self.boundary[box], dtype=np.float64)
        else:
            height = np.zeros(crop.shape)  # flat: pieces grow at the same speed -> geodesic Voronoi
        pieces = _sk_watershed(height, markers=markers, mask=inside)
        if max(new_ids) > np.iinfo(crop.dtype).max:
            raise ValueError(f"new id {max(new_ids)} does not fit the segmentation dtype {crop.dtype}")
        lut = np.array([segment, segment] + new_ids, dtype=crop.dtype)  # 0 (unreached parts) keeps the id
        new = np.where(inside, lut[pieces], crop)
        entry = {"op": "split", "id": segment, "seeds": pts.tolist(), "new_ids": new_ids}
        self._commit(entry, box, crop, new, {i: box for i in new_ids})
        self._next_id = max(self._next_id, max(new_ids) + 1)
        return [segment] + new_ids

    def undo(self) -> dict | None:
        """Revert the last edit; return its log entry (``None`` when there is nothing to undo)."""
        if not self._undo:
            return None
        rec = self._undo.pop()
        self.seg.flat[rec[1]] = rec[2]
        self._set_boxes(rec[4])
        self._redo.append(rec)
        return rec[0]

    def redo(self) -> dict | None:
        """Re-apply the last undone edit; return its log entry (``None`` when there is none)."""
        if not self._redo:
            return None
        rec = self._redo.pop()
        self.seg.flat[rec[1]] = rec[3]
        self._set_boxes(rec[5])
        self._undo.append(rec)
        return rec[0]

    def apply(self, entry: dict):
        """Apply one log entry (as written by :meth:`merge` / :meth:`split`)."""
        op = entry.get("op")
        if op == "merge":
            target = self.merge(entry["ids"])
            if "into" in entry and target != entry["into"]:
                raise ValueError(f"merge of {entry['ids']} kept {target}, log says {entry['into']}")
            return target
        if op == "split":
            return self.split(entry["id"], entry["seeds"], new_ids=entry.get("new_ids"))
        raise ValueError(f"unknown edit {op!r} in log entry {entry}; expected 'merge' or 'split'")

    def save_log(self, path) -> Path:
        """Write the edit log as JSON, atomically (see :func:`save_log`)."""
        return save_log(path, self.log, shape=self.seg.shape)


# ---------------------------------------------------------------------- functional API
def merge(seg, ids) -> np.ndarray:
    """Return a copy of ``seg`` with segments ``ids`` merged into the smallest of them.

    Examples
    --------
    >>> merge(np.array([[1, 2, 3]]), [3, 2]).tolist()
    [[1, 2, 2]]
    """
    pr = Proofreader(seg)
    pr.merge(ids)
    return pr.seg


def split(seg, segment: int, seeds, *, boundary=None) -> np.ndarray:
    """Return a copy of ``seg`` with ``segment`` split by a seeded watershed on ``boundary``.

    Examples
    --------
    >>> seg = np.ones((1, 6), int)
    >>> b = np.array([[0, 0, 0, 1, 0, 0]], float)
    >>> split(seg, 1, [(0, 0), (0, 5)], boundary=b).tolist()
    [[1, 1, 1, 2, 2, 2]]
    """
    pr = Proofreader(seg, boundary=boundary)
    pr.split(segment, seeds)
    return pr.seg


def replay(seg, log, *, boundary=None) -> np.ndarray:
    """Apply an edit log (a list of entries, a log dict, or a path to a saved log) to a copy of ``seg``.

    The same boundary map as during proofreading must be given for the splits to be reproduced.
    """
    if isinstance(log, (str, os.PathLike)):
        log = load_log(log)
    elif isinstance(log, (dict, list)):
        log = check_log(log)
    if isinstance(log, dict):
        shape = log.get("shape")
        arr = np.asarray(seg)
        if shape is not None and tuple(shape) != arr.shape:
            raise ValueError(f"edit log was recorded on shape {tuple(shape)}, segmentation has shape {arr.shape}")
        log = log.get("edits", [])
    pr = Proofreader(seg, boundary=boundary)
    for k, entry in enumerate(log):
        try:
            pr.apply(entry)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"edit {k} of the log cannot be applied: {exc}") from exc
    return pr.seg


def save_log(path, edits, *, shape=None) -> Path:
    """Write ``edits`` as a JSON edit log, atomically (temp file + rename: never half-written)."""
    path = Path(path)
    doc = {"format": LOG_FORMAT, "version": LOG_VERSION, "shape": None if shape is None else list(shape),
           "edits": list(edits)}
    text = json.dumps(doc, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_COORD = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
#: the edit log document (a bare list of edits is read as ``{"edits": [...]}``)
LOG_SCHEMA = {
    "type": "object",
    "required": ["format", "edits"],
    "properties": {
        "format": {"type": "string", "enum": [LOG_FORMAT]},
        "version": {"type": "integer", "minimum": 0},
        "shape": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                  "maxItems": 5},
        "edits": {"type": "array", "items": {"type": "object", "required": ["op"],
                                             "properties": {"op": {"type": "string", "enum": ["merge", "split"]}}}},
    },
}
EDIT_SCHEMAS = {
    "merge": {"type": "object", "required": ["op", "ids"], "properties": {
        "ids": {"type": "array", "items": _ID, "minItems": 2}, "into": _ID}},
    "split": {"type": "object", "required": ["op", "id", "seeds"], "properties": {
        "id": _ID, "seeds": {"type": "array", "minItems": 2, "items": {"type": "array", "items": _COORD,
                                                                        "minItems": 1, "maxItems": 5}},
        "new_ids": {"type": ["array", "null"], "items": _ID}}},
}


def check_log(doc, *, source="edit log") -> dict:
    """Check an edit log document against :data:`LOG_SCHEMA` (and each edit against its op's schema).

    Raises a ``ValueError`` naming ``source`` and the entry, e.g. ``edits[3]: expected an object, got str``.
    """
    from mire._schema import SchemaError, validate

    if isinstance(doc, list):  # a bare list of edits is accepted too
        doc = {"format": LOG_FORMAT, "version": LOG_VERSION, "shape": None, "edits": doc}
    if isinstance(doc, dict) and doc.get("format") != LOG_FORMAT and "format" not in doc:
        raise ValueError(f"{source} is not a mire edit log (no 'format': '{LOG_FORMAT}')")
    try:
        validate(doc, LOG_SCHEMA)
        for k, entry in enumerate(doc["edits"]):
            validate(entry, EDIT_SCHEMAS[entry["op"]], where=f"edits[{k}]")
    except SchemaError as exc:
        raise SchemaError(f"{source}: {exc}") from None
    if doc.get("version", 0) > LOG_VERSION:
        raise ValueError(f"{source} has version {doc['version']}; this mire reads up to {LOG_VERSION}")
    return doc


def load_log(path) -> dict:
    """Read an edit log written by :func:`save_log`; return the dict (``edits``, ``shape``, ...).

    The file is checked (depth, then :data:`LOG_SCHEMA`) before any edit is applied: a bad
    entry is refused in one line naming it.
    """
    from mire._schema import load_json

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"edit log not found: {path}")
    doc = load_json(path, what="edit log")
    return check_log(doc, source=f"edit log {path}")
