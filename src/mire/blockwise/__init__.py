"""Chunked processing of big volumes with halos, on dask.

A function that needs context (a deconvolution sees the PSF support, and its solution at a voxel
depends, more and more weakly, on voxels further away) is run block by block on a block plus a
``halo`` of neighbouring voxels; the halo is cut off again before the block is written. Blocks at
the volume's border get no artificial padding, so they see exactly what a whole-volume run sees
there. Each block is one dask task that reads its haloed window directly from the source (numpy,
zarr, dask) and writes its core to the output (numpy, or zarr written chunk by chunk), so memory is
bounded by the number of workers times one haloed block.

How far a blockwise result may differ from the whole-volume one: for a linear, shift-invariant
``func`` with a kernel of radius r, not at all once ``halo >= r``. Iterative deconvolutions have no
finite radius: the influence of a voxel decays with distance (faster with more regularization),
so the difference at a block's interior border shrinks as the halo grows. ``tests/test_blockwise.py``
measures it: with a halo of 4 PSF radii (the default of the solvers) TV deconvolution at a typical
weight differs from the whole-volume result by less than 2 % of the intensity range, and the error
falls as the halo grows.
"""

from mire.blockwise._map import map_blocks

__all__ = ["map_blocks"]
