"""The block grid: which part of the volume each block owns and which window it reads."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    """One block of a blockwise run.

    Attributes
    ----------
    index : int
        Linear index of the block (C order over the block grid).
    grid_index : tuple of int
        Position of the block in the block grid.
    core : tuple of slice
        Global slices of the part of the output this block owns.
    outer : tuple of slice
        Global slices of the core plus its halo, clipped at the volume border (no padding).
    inner : tuple of slice
        The core relative to ``outer``: ``piece[block.inner]`` is the core of a piece read at ``outer``.
    """

    index: int
    grid_index: tuple
    core: tuple
    outer: tuple
    inner: tuple


def check_block_shape(ndim: int, block_shape, halo=0) -> tuple[tuple, tuple]:
    """Broadcast ``block_shape`` and ``halo`` to ``ndim`` integers and check them."""
    try:
        block = tuple(int(b) for b in np.broadcast_to(np.asarray(block_shape), (ndim,)))
        h = tuple(int(v) for v in np.broadcast_to(np.asarray(0 if halo is None else halo), (ndim,)))
    except ValueError:
        raise ValueError(f"block_shape {block_shape!r} / halo {halo!r} do not fit a {ndim}D volume") from None
    if any(b < 1 for b in block):
        raise ValueError(f"block_shape must be positive, got {block}")
    if any(v < 0 for v in h):
        raise ValueError(f"halo must be >= 0, got {h}")
    return block, h


def plan_blocks(shape, block_shape, halo=0) -> list[Block]:
    """The blocks that tile a volume of ``shape``, in C order.

    Examples
    --------
    >>> blocks = plan_blocks((10, 7), (4, 4), halo=1)
    >>> len(blocks), blocks[1].core, blocks[1].outer
    (6, (slice(0, 4, None), slice(4, 7, None)), (slice(0, 5, None), slice(3, 7, None)))
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) == 0 or min(shape) == 0:
        raise ValueError(f"the volume is empty (shape {shape})")
    block, h = check_block_shape(len(shape), block_shape, halo)
    grids = [range(0, n, b) for n, b in zip(shape, block)]
    out = []
    for index, corner in enumerate(itertools.product(*grids)):
        core = tuple(slice(c, min(c + b, n)) for c, b, n in zip(corner, block, shape))
        outer = tuple(slice(max(s.start - hh, 0), min(s.stop + hh, n)) for s, hh, n in zip(core, h, shape))
        inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(core, outer))
        grid_index = tuple(c // b for c, b in zip(corner, block))
        out.append(Block(index, grid_index, core, outer, inner))
    return out


def read_window(array, window) -> np.ndarray:
    """``array[window]`` as numpy, for numpy, zarr, h5py and dask arrays.

    Dask sources are computed with the synchronous scheduler: inside a worker task the block's
    own graph is tiny (a few chunk reads), and nesting schedulers would oversubscribe the cores.
    """
    piece = array[window]
    if hasattr(piece, "compute"):
        piece = piece.compute(scheduler="synchronous")
    return np.asarray(piece)
