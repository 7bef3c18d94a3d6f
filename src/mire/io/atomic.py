"""Atomic output: write beside the destination, then rename over it.

A reader (or a crashed writer) must never see half a file. Everything is first written
to a hidden temporary path in the destination's own directory (same filesystem, so the
final rename is atomic), and only a complete result is moved into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path, *, directory: bool = False, copy_existing: bool = False):
    """Yield a temporary path; move it onto ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or Path
        Final destination.
    directory : bool
        The output is a folder (e.g. OME-Zarr). An existing destination is moved aside
        first and deleted only after the new folder is in place, so a failure at any
        point leaves either the old or the new folder, never a mix.
    copy_existing : bool
        Start from a copy of the existing file (to add a dataset to an HDF5 file
        without ever modifying the original in place).

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "a.txt")) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> sorted(os.listdir(d))
    ['a.txt']
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {parent} does not exist")
    _clear_dead_writers(path)
    # A hidden name with the real suffix: writers that dispatch on the extension still work. The
    # writer's pid in the name lets a later write clear what a killed writer left (kill -9).
    tmp = parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{''.join(path.suffixes[-2:])}"
    if copy_existing and path.is_file():
        shutil.copy2(path, tmp)
    try:
        yield tmp
        if directory:
            _replace_dir(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or cannot tell: leave its file alone
    return True


def _clear_dead_writers(path: Path) -> None:
    """Remove the temporary files of writers of ``path`` that were killed (their pid is gone)."""
    prefix = f".{path.name}.tmp-"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            _remove(path.parent / name)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _replace_dir(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.replace(tmp, path)
        return
    # An atomic swap where the kernel offers one: no moment without a complete `path`.
    if _exchange(tmp, path):
        _remove(tmp)  # now holds the old folder
        return
    # os.replace cannot put a folder over a non-empty folder: swap through a backup name.
    backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    backup.rmdir()
    os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(backup, path)
        raise
    _remove(backup)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
