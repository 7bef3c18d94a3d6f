"""The input gate: checks made on what a file *declares*, before a single pixel is read.

Every reader calls :func:`check_declared` with the shape, dtype and stored byte count it
found in the header, so a hostile or damaged file is refused in one line naming the file:

* a complex dtype (its imaginary part would be dropped silently downstream);
* a declared size that the stored bytes cannot hold (a decompression bomb: deflate, for
  instance, cannot expand more than 1032:1);
* a declared size that cannot fit in the memory available, when the whole array is read.

The limits are module constants so that a test (or a user on a big machine) can see them.
"""

from __future__ import annotations

import os

import numpy as np

from mire.io.errors import CorruptFileError

#: The largest expansion each codec can produce (output bytes per compressed byte), rounded up.
#: deflate: 258-byte matches in 2 bits ~ 1032:1; zstd / blosc RLE blocks: 128 KiB in 4 bytes.
MAX_RATIO = {
    None: 1.0, "none": 1.0, "packbits": 64.0, "deflate": 1032.0, "zlib": 1032.0, "gzip": 1032.0,
    "adobe_deflate": 1032.0, "lzw": 4096.0, "lzf": 1024.0,
}
#: Codecs not in MAX_RATIO (zstd, lzma, blosc, jpeg...): as generous as zstd's RLE blocks.
DEFAULT_MAX_RATIO = 32768.0
#: Arrays this small are never called bombs (sparse stores with missing chunks are legal).
BOMB_SLACK_BYTES = 64 * 2**20


class InsufficientMemoryError(ValueError):
    """The data cannot fit in the memory available (the message says how to process it in blocks)."""


def human_bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or a large number when it cannot be told.

    ``MIRE_MEMORY_LIMIT`` (bytes) caps it, e.g. to test or to share a machine.
    """
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except Exception:
            avail = 2**62
    limit = os.environ.get("MIRE_MEMORY_LIMIT")
    if limit:
        try:
            cap = int(float(limit))
        except (ValueError, OverflowError):
            cap = 0
        if cap <= 0:  # refused, not ignored: a mistyped cap would silently not apply
            raise ValueError(f"MIRE_MEMORY_LIMIT={limit!r} must be a positive number of bytes, e.g. 8e9")
        avail = min(avail, cap)
    return avail


def dtype_problem(dtype) -> str | None:
    """Why pixels of ``dtype`` cannot be used (None when they can)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return (f"has complex pixels ({dtype}); mire works on real intensities: convert first with "
                f"np.abs(x) (magnitude), x.real or x.imag, e.g. imwrite(path, np.abs(x).astype(np.float32))")
    if dtype.kind not in "biuf":
        return f"has pixels of dtype {dtype}, not numbers; store them as integers or floats"
    return None


def bool_hint(dtype) -> str:
    return f"a {np.dtype(dtype)} mask: convert it with x.astype(np.uint8) (0/1) or x.astype(np.float32)"


def declared_nbytes(shape, dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * np.dtype(dtype).itemsize


def check_declared(source, shape, dtype, *, stored_bytes=None, codec=None, max_ratio=None,
                   in_memory: bool = False) -> None:
    """Refuse, before reading, data whose header cannot be honest or cannot be held.

    Parameters
    ----------
    source : str
        Names the file (and dataset / level) in the messages.
    shape, dtype
        What the header declares.
    stored_bytes : int, optional
        Bytes of (compressed) pixel data actually stored; with ``codec`` it bounds the
        declared size.
    codec : str, optional
        Compression name, looked up in :data:`MAX_RATIO`.
    in_memory : bool
        The whole array is about to be read: it must fit in the available memory.
    """
    problem = dtype_problem(dtype)
    if problem:
        raise TypeError(f"{source}: {problem}")
    if any(int(s) < 0 for s in shape):
        raise CorruptFileError(f"{source}: declares a negative size in shape {tuple(shape)}")
    if len(shape) == 0:
        raise ValueError(f"{source}: holds a single value (a 0-D array), not an image")
    if any(int(s) == 0 for s in shape):
        raise ValueError(f"{source}: is empty (shape {tuple(int(s) for s in shape)})")
    nbytes = declared_nbytes(shape, dtype)
    if stored_bytes is not None and nbytes > BOMB_SLACK_BYTES:
        ratio = max_ratio if max_ratio is not None else MAX_RATIO.get(
            None if codec is None else str(codec).lower(), DEFAULT_MAX_RATIO)
        if nbytes > stored_bytes * ratio + BOMB_SLACK_BYTES:
            raise CorruptFileError(
                f"{source}: declares {human_bytes(nbytes)} of pixels (shape {tuple(int(s) for s in shape)}, "
                f"{np.dtype(dtype)}) but stores only {human_bytes(stored_bytes)}"
                f"{' (' + str(codec) + ')' if codec else ''}, more than compression can expand "
                f"(at most {ratio:g}:1): refused as a decompression bomb or a damaged header")
    if in_memory:
        check_fits_memory(source, nbytes, what="reading it whole")


#: a dask graph with more tasks than this is slow to even build: neighbouring chunks are merged
MAX_DASK_CHUNKS = 100_000
#: stores with more chunks than this, each smaller than TINY_CHUNK bytes, are refused (a chunk bomb)
MAX_CHUNKS = 2**22
TINY_CHUNK = 64 * 2**10


def check_chunks(source, shape, chunks, dtype) -> None:
    """Refuse millions of tiny chunks: each costs a file read whatever its size."""
    import math

    n = math.prod(-(-int(s) // max(int(c), 1)) for s, c in zip(shape, chunks))
    size = math.prod(int(c) for c in chunks) * np.dtype(dtype).itemsize
    if n > MAX_CHUNKS and size < TINY_CHUNK:
        raise CorruptFileError(f"{source}: {n} chunks of {tuple(int(c) for c in chunks)} ({human_bytes(size)} each) "
                               f"are too many to read; rechunk it into larger chunks (e.g. 64 x 256 x 256)")


def dask_chunks(shape, chunks, dtype, *, max_chunks: int = MAX_DASK_CHUNKS, max_bytes: int = 128 * 2**20) -> tuple:
    """Chunks for a lazy read: the store's own, or whole multiples of them when there would be
    more than ``max_chunks`` (so a block still decodes whole stored chunks, and the graph stays small)."""
    import math

    shape = tuple(int(s) for s in shape)
    out = [max(1, min(int(c), s)) if s else 1 for c, s in zip(chunks, shape)]

    def count():
        return math.prod(-(-s // c) for s, c in zip(shape, out) if s)

    while count() > max_chunks and math.prod(out) * np.dtype(dtype).itemsize < max_bytes:
        # grow the axis with the most chunks left (ties: the last, usually X)
        k = max(range(len(out)), key=lambda i: (-(-shape[i] // out[i]) if shape[i] > out[i] else 0, i))
        if shape[k] <= out[k]:
            break
        out[k] = min(shape[k], out[k] * 2)
    return tuple(out)


def check_fits_memory(source, nbytes: int, *, what: str, hint: str | None = None) -> None:
    """Raise :class:`InsufficientMemoryError` when ``nbytes`` exceed the memory available."""
    avail = available_memory()
    if nbytes > avail:
        raise InsufficientMemoryError(
            f"{source}: {what} needs {human_bytes(nbytes)} of memory but only {human_bytes(avail)} is available"
            + (f"; {hint}" if hint else ""))
