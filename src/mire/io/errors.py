"""Exceptions raised by :mod:`mire.io`.

Each one subclasses the builtin a caller would naturally catch (``ValueError`` for bad
content, ``KeyError`` for a missing dataset), so ``except ValueError`` keeps working, and
the CLI's ``friendly_errors`` turns them into one line. Every message names the file.
"""

from __future__ import annotations


class ImageFormatError(ValueError):
    """The path does not name a format mire can read or write."""


class CorruptFileError(ValueError):
    """The file exists but cannot be decoded (truncated, damaged or not what its name says)."""


class AxesError(ValueError):
    """The axes asked for do not match the file's axes or the data's dimensions."""


class SliceStackError(ValueError):
    """A folder or glob of slices is empty or its slices cannot be stacked."""


class SWCError(ValueError):
    """An SWC file or array is malformed (the message gives the line number where known)."""


class DatasetNotFoundError(KeyError):
    """An HDF5 file has no dataset at the path asked for."""

    # KeyError's default str() wraps the message in quotes; show it as written.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
