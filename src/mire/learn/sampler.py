"""Streaming patch sampler: random training patches read from arrays on disk, a batch at a time.

Only the patches of the current batch are ever in memory: the sources are numpy memmaps, zarr
arrays, dask arrays (e.g. ``mire.io.imread(path, lazy=True)``) or file paths opened lazily, and
each patch is a slice of them. Batch ``k`` depends only on ``(seed, k)``, so training is
reproducible and a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mire.learn.normalize import PERCENTILES, normalize, percentile_range


#: Compressed files up to this many (decoded) bytes are read whole into memory by
#: :func:`open_array`. A patch read lazily from a compressed TIFF decodes every page (Z slice) it
#: touches, in full: on the DIADEM stacks that made a 16x32x32 patch cost ~0.1 s and a training
#: step ~1.7 s, ten times the network's own forward and backward pass.
IN_MEMORY_BYTES = 2**30


def open_array(source, *, in_memory_bytes: int = IN_MEMORY_BYTES):
    """An array-like for ``source``: arrays pass through, paths are opened for fast patch reads.

    Uncompressed TIFF and ``.npy`` files are memory-mapped. Other files (compressed TIFF, zarr,
    HDF5, ...) are read through ``mire.io``: whole into memory when they decode to at most
    ``in_memory_bytes``, else lazily (a dask array: only the patches' chunks are decoded, but
    each read decodes whole chunks).

    Examples
    --------
    >>> import numpy as np
    >>> open_array(np.zeros((4, 4))).shape
    (4, 4)
    """
    if not isinstance(source, (str, Path)):
        if not hasattr(source, "shape") or not hasattr(source, "__getitem__"):
            source = np.asarray(source)
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"training image not found: {path}")
    name = path.name.lower()
    if name.endswith(".npy"):
        return np.load(path, mmap_mode="r")
    if name.endswith((".tif", ".tiff")):
        import tifffile

        try:
            return tifffile.memmap(path, mode="r")
        except (ValueError, OSError, RuntimeError):  # compressed or tiled: not memory-mappable
            pass
    try:
        from mire.io import imread
    except ImportError:  # pragma: no cover - mire.io not installed yet
        if name.endswith((".tif", ".tiff")):
            import tifffile

            return tifffile.imread(path)
        if ".zarr" in name:
            import zarr

            return zarr.open(str(path), mode="r")
        raise
    lazy = imread(path, lazy=True)
    if math.prod(lazy.shape) * np.dtype(lazy.dtype).itemsize <= in_memory_bytes:
        return np.asarray(lazy.compute() if hasattr(lazy, "compute") else lazy)
    return lazy


def augment(arrays, rng, *, ndim: int):
    """The same random in-plane flips and 90-degree rotation applied to every array of a group.

    Only the last two axes (Y, X) are transformed: Z of a stack usually has another sampling.
    """
    k = int(rng.integers(4))
    flip_y, flip_x = bool(rng.integers(2)), bool(rng.integers(2))
    out = []
    for a in arrays:
        if flip_y:
            a = a[..., ::-1, :]
        if flip_x:
            a = a[..., ::-1]
        if a.shape[-1] == a.shape[-2]:  # a rotation would change a non-square patch's shape
            a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a))
    return out


class PatchSampler:
    """Random patches from groups of aligned arrays (e.g. ``(noisy, clean)``), turned into examples.

    Parameters
    ----------
    groups : list of tuples of array-likes or paths
        Each tuple holds arrays of the same shape: the last ``len(patch)`` axes are spatial, any
        leading axes (time, channel, field of view) are sampled at random like extra images.
    patch : tuple of int
        Spatial patch size.
    make_example : callable, optional
        ``make_example(crops, rng, group_index) -> (input, target, mask)`` turns the normalized,
        augmented crops of one group (each of shape ``patch + 2 * margin``) into the network input
        ``(C_in, *patch)``, the target ``(C_out, *patch)`` and a loss mask (``None`` or
        ``(1, *patch)``). Default: ``crops[0] -> crops[1]``, no mask (supervised pairs).
    margin : int
        Extra context read around each patch (e.g. for a blur) that ``make_example`` crops off.
    augment : bool
        Random in-plane flips and 90-degree rotations.
    normalize : bool or list
        True: every array of every group is scaled by its own percentiles (stored in
        ``self.ranges``); False: used as is; or a list (per group) of lists of (lo, hi).
    percentiles : (float, float)
    seed : int
    weights : list of float, optional
        Sampling probability of each group; default proportional to its number of voxels.
    foreground : float
        Fraction of patches that must contain foreground: for those, positions are redrawn (up to
        20 times) until the group's last array (the target) reaches ``foreground_level`` (in
        normalized units: 1.0 is its upper percentile). On sparse data (neurites fill ~1% of a
        stack) uniform patches are nearly all background and an L1-trained network learns to
        shrink the rare structures towards it.

    Examples
    --------
    >>> import numpy as np
    >>> noisy, clean = np.random.rand(2, 64, 64)
    >>> s = PatchSampler([(noisy, clean)], patch=(32, 32))
    >>> x, y, mask = s.batch(0, batch_size=4)
    >>> tuple(x.shape), tuple(y.shape), mask is None
    ((4, 1, 32, 32), (4, 1, 32, 32), True)
    """

    def __init__(self, groups, *, patch, make_example=None, margin: int = 0, augment: bool = True,
                 normalize=True, percentiles=PERCENTILES, seed: int = 0, weights=None,
                 foreground: float = 0.0, foreground_level: float = 1.0):
        if isinstance(groups, tuple) or hasattr(groups, "shape") or isinstance(groups, (str, Path)):
            groups = [groups]
        self.groups = [tuple(open_array(a) for a in (g if isinstance(g, (tuple, list)) else (g,))) for g in groups]
        if not self.groups:
            raise ValueError("PatchSampler needs at least one image")
        self.patch = tuple(int(p) for p in patch)
        self.ndim = len(self.patch)
        self.margin = int(margin)
        for gi, g in enumerate(self.groups):
            shapes = {tuple(a.shape) for a in g}
            if len(shapes) != 1:
                raise ValueError(f"image group {gi}: arrays differ in shape {sorted(shapes)}")
            shape = g[0].shape
            if len(shape) < self.ndim:
                raise ValueError(f"image group {gi} has shape {shape}: fewer axes than the {self.ndim}D patch")
            small = [(s, p) for s, p in zip(shape[-self.ndim:], self.patch) if s < p]
            if small:
                raise ValueError(f"image group {gi} of shape {shape} is smaller than the patch {self.patch}")
        self.make_example = make_example or _pair_example
        if not 0.0 <= foreground <= 1.0:
            raise ValueError(f"foreground must be a fraction in [0, 1], got {foreground}")
        self.foreground, self.foreground_level = float(foreground), float(foreground_level)
        self.augment = augment
        self.seed = int(seed)
        self.percentiles = tuple(percentiles)
        if normalize is True:
            self.ranges = [[percentile_range(a, percentiles=self.percentiles) for a in g] for g in self.groups]
        elif normalize is False or normalize is None:
            self.ranges = None
        else:
            self.ranges = [[tuple(map(float, r)) for r in g] for g in normalize]
        sizes = np.array([math.prod(g[0].shape) for g in self.groups], dtype=float)
        w = sizes if weights is None else np.asarray(weights, dtype=float)
        self.weights = w / w.sum()

    def crops(self, rng, group_index=None):
        """Read one random (normalized, augmented) crop of ``patch + 2 * margin`` from every array of a group."""
        gi = int(rng.choice(len(self.groups), p=self.weights)) if group_index is None else group_index
        g = self.groups[gi]
        shape = g[0].shape
        want = self.foreground > 0 and rng.random() < self.foreground  # no draw when off: same batches
        for _ in range(20 if want else 1):
            out = self._read(g, gi, shape, rng)
            if not want or float(out[-1].max()) >= self.foreground_level:
                break
        if self.augment:
            out = augment(out, rng, ndim=self.ndim)
        return out, gi

    def _read(self, g, gi, shape, rng):
        lead = tuple(int(rng.integers(s)) for s in shape[: len(shape) - self.ndim])
        spatial = shape[len(shape) - self.ndim:]
        m = self.margin
        starts = [int(rng.integers(0, s - p + 1)) for s, p in zip(spatial, self.patch)]
        # read the margin where the image has it; reflect where the patch touches the border
        lo = [max(st - m, 0) for st in starts]
        hi = [min(st + p + m, s) for st, p, s in zip(starts, self.patch, spatial)]
        pad = [(l - (st - m), (st + p + m) - h) for l, h, st, p in zip(lo, hi, starts, self.patch)]
        window = lead + tuple(slice(a, b) for a, b in zip(lo, hi))
        out = []
        for ai, a in enumerate(g):
            crop = np.asarray(a[window], dtype=np.float32)
            if any(p != (0, 0) for p in pad):
                crop = np.pad(crop, pad, mode="reflect" if min(crop.shape) > 1 else "edge")
            if self.ranges is not None:
                crop = normalize(crop, *self.ranges[gi][ai])
            out.append(crop)
        return out

    def example(self, rng):
        crops, gi = self.crops(rng)
        x, y, mask = self.make_example(crops, rng, gi)
        return x, y, mask

    def batch(self, step: int, batch_size: int = 4):
        """The batch of training step ``step``: tensors ``(x, y, mask)`` (mask may be None).

        Deterministic in ``(seed, step)``; use negative steps for a fixed validation set.
        """
        rng = np.random.default_rng([self.seed, abs(int(step)), int(step < 0)])
        xs, ys, ms = [], [], []
        for _ in range(batch_size):
            x, y, mask = self.example(rng)
            xs.append(x)
            ys.append(y)
            ms.append(mask)
        mask = None if ms[0] is None else torch.from_numpy(np.stack(ms))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), mask


def center_crop(a: np.ndarray, margin: int, ndim: int) -> np.ndarray:
    if margin == 0:
        return a
    sl = (Ellipsis,) + (slice(margin, -margin),) * ndim
    return a[sl]


def _pair_example(crops, rng, group_index):
    if len(crops) < 2:
        raise ValueError("supervised patches need (input, target) pairs; got single images "
                         "(use noise2void_sampler or simulate_sampler for unpaired data)")
    return crops[0][None], crops[1][None], None
