"""Tiled prediction with smooth blending: bounded memory, no seams, any image size."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from mire._torch import default_device


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]  # the last tile is flush with the end


def _equal_tile(size: int, n: int, overlap: int) -> int:
    """The tile size that covers ``size`` with ``n`` equal tiles overlapping by ``overlap``."""
    return math.ceil((size + (n - 1) * overlap) / n)


def _balanced(size: int, tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile (a multiple of ``multiple``, at most ``tile``) that covers ``size`` with as
    few tiles as ``tile`` needs.

    Tiles are otherwise placed every ``tile - overlap`` with the last one flush with the end, so a
    tile a little too small to cover the image in n tiles costs a whole extra one: 256-pixel tiles
    with a 16-pixel overlap need 3 over 512 pixels (768 computed), 264-pixel tiles need 2 (528).
    """
    if size <= tile:
        return tile
    n = math.ceil((size - overlap) / (tile - overlap))
    return min(tile, int(math.ceil(_equal_tile(size, n, overlap) / multiple) * multiple))


def default_tiling(spatial, *, tile=None, overlap=None) -> tuple[tuple, tuple]:
    """The learned models' ``predict`` tiling for an image's spatial shape: ``(tile, overlap)``.

    Default tile: the whole image when it has at most 2**22 voxels, else about 48x256x256 (3D) or
    1024x1024 (2D), which bounds memory, each axis cut into as few tiles as that size needs, all of
    one size: 64x512x512 becomes 2x2x2 tiles of 38x264x264 (1.3x the voxels computed) instead of
    2x3x3 tiles of 48x256x256 (3.4x). Default overlap: a quarter of the tile, at most 16, on the
    axes that are cut.
    """
    spatial = tuple(int(s) for s in spatial)
    if tile is None:
        if math.prod(spatial) <= 2**22:
            tile = spatial
        else:
            target = (1024, 1024) if len(spatial) == 2 else (48, 256, 256)[-len(spatial):]
            tile, cut = [], []
            for s, t in zip(spatial, target):
                n = math.ceil(s / t)
                o = min(16, t // 4) if n > 1 else 0
                tile.append(_equal_tile(s, n, o))
                cut.append(o)
            overlap = tuple(cut) if overlap is None else overlap
    tile = (int(tile),) * len(spatial) if np.isscalar(tile) else tuple(int(t) for t in tile)
    if overlap is None:
        overlap = tuple(min(16, t // 4) if t < s else 0 for t, s in zip(tile, spatial))
    return tile, overlap


def _ramp(tile: int, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """1D blending weight: a raised-cosine (Hann) rise over ``overlap`` pixels at each end, 1 inside.

    The floor keeps the weight positive so a pixel covered by one tile only (an image border) is
    still exactly that tile's prediction after normalization.
    """
    w = np.ones(tile)
    if overlap > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = r
        w[tile - overlap:] = r[::-1]
    return np.maximum(w, floor)


def predict_tiled(model, image, *, tile=None, overlap=None, batch_size: int = 1, device=None, out=None,
                  preprocess=None, postprocess=None, out_channels=None, dtype=np.float32):
    """Apply ``model`` to ``image`` tile by tile and blend the tiles with raised-cosine weights.

    Parameters
    ----------
    model : torch.nn.Module
        Takes ``(N, C_in, *tile)`` and returns ``(N, C_out, *tile)``; its ``size_multiple``
        attribute (if any) is respected by padding.
    image : array-like, shape ``(C_in, *spatial)``
        numpy, memmap, zarr or dask; only the current tiles are read into memory.
    tile : int or tuple, optional
        Tile size per spatial axis (rounded up to the network's size multiple); default the whole
        image (one tile).
    overlap : int or tuple, optional
        Overlap between tiles; default a quarter of the tile. The blending weights rise over it.
    batch_size : int
        Tiles per forward pass.
    out : array-like, optional
        Preallocated output ``(C_out, *spatial)``, e.g. a zarr array for results larger than
        memory (must start at zero). Default: a new numpy array.
    preprocess, postprocess : callable, optional
        Applied to every input tile (numpy) and output tile (numpy), e.g. normalization.

    Returns
    -------
    out : the blended prediction ``(C_out, *spatial)``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> img = np.random.default_rng(0).random((1, 50, 70)).astype(np.float32)
    >>> full = predict_tiled(net, img)
    >>> tiled = predict_tiled(net, img, tile=32, overlap=8)
    >>> bool(np.abs(full - tiled).max() < 0.05)
    True
    """
    shape = tuple(image.shape)
    spatial = shape[1:]
    nd = len(spatial)
    mult = tuple(getattr(model, "size_multiple", (1,) * nd))
    if tile is None:
        tile = spatial
    tile = (tile,) * nd if isinstance(tile, int) else tuple(tile)
    if len(tile) != nd:
        raise ValueError(f"tile {tile} must have {nd} sizes for an image with spatial shape {spatial}")
    # a tile never exceeds the image (rounded up to the multiple) and is a multiple of the net's
    tile = tuple(min(t, s) for t, s in zip(tile, spatial))
    tile = tuple(int(math.ceil(t / m) * m) for t, m in zip(tile, mult))
    if overlap is None:
        overlap = tuple(t // 4 for t in tile)
    overlap = (overlap,) * nd if isinstance(overlap, int) else tuple(overlap)
    overlap = tuple(min(o, t // 2) for o, t in zip(overlap, tile))
    tile = tuple(_balanced(s, t, o, m) for s, t, o, m in zip(spatial, tile, overlap, mult))
    steps = tuple(max(1, t - o) for t, o in zip(tile, overlap))
    # pad the image (reflect) where it is smaller than a tile
    padded = tuple(max(s, t) for s, t in zip(spatial, tile))
    starts = [_starts(p, t, st) for p, t, st in zip(padded, tile, steps)]
    ramps = [_ramp(t, o) for t, o in zip(tile, overlap)]
    # the weights are separable and the tiles form a grid, so their sum is a product of 1D sums
    wsum = []
    for p, t, st, r in zip(padded, tile, starts, ramps):
        acc = np.zeros(p)
        for s0 in st:
            acc[s0:s0 + t] += r
        wsum.append(acc)

    device = torch.device(device) if device is not None else default_device()
    params = list(model.parameters())
    model_device = params[0].device if params else device
    was_training = model.training
    model.eval()
    if out is None:
        c_out = out_channels or getattr(model, "out_channels", None) or shape[0]
        out = np.zeros((c_out, *spatial), dtype=dtype)

    def read(origin):
        sl = tuple(slice(o, min(o + t, s)) for o, t, s in zip(origin, tile, spatial))
        x = np.asarray(image[(slice(None),) + sl], dtype=np.float32)
        pad = [(0, 0)] + [(0, t - (e.stop - e.start)) for t, e in zip(tile, sl)]
        if any(p[1] for p in pad):
            x = np.pad(x, pad, mode="reflect" if all(e.stop - e.start > 1 for e in sl) else "edge")
        return preprocess(x) if preprocess is not None else x

    def write(origin, y):
        sl = tuple(slice(o, min(o + t, s)) for o, t, s in zip(origin, tile, spatial))
        crop = tuple(slice(0, e.stop - e.start) for e in sl)
        w = np.ones(1)
        for ax, (o, e) in enumerate(zip(origin, sl)):
            shp = [1] * nd
            shp[ax] = e.stop - e.start
            wa = ramps[ax][crop[ax]] / wsum[ax][o:o + shp[ax]]
            w = w * wa.reshape(shp)
        y = y[(slice(None),) + crop]
        if postprocess is not None:
            y = postprocess(y)
        region = (slice(None),) + sl
        out[region] = np.asarray(out[region]) + (y * w).astype(out.dtype)

    origins = list(itertools.product(*starts))
    try:
        with torch.no_grad():
            for i in range(0, len(origins), batch_size):
                chunk = origins[i:i + batch_size]
                x = torch.from_numpy(np.stack([read(o) for o in chunk])).to(model_device)
                y = model(x).float().cpu().numpy()
                for o, yi in zip(chunk, y):
                    write(o, yi)
    finally:
        model.train(was_training)
    return out
