"""Helpers shared by the CLI modules: friendly errors and progress."""

from __future__ import annotations

import contextlib
import re
import sys

import typer
from rich.console import Console

# one line per error, paths unbroken; markup off, so "[raw] stack.tif" is printed as named (the few
# styled lines below ask for markup and escape what they quote)
console = Console(stderr=True, soft_wrap=True, markup=False)


_NP_SCALAR = re.compile(r"np\.(?:float|int|uint)\d*\((-?(?:[\d.]+(?:e[+-]?\d+)?|nan|inf))\)")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (readers' messages may hold newlines), never empty.

    Unexpected kinds of error keep their type name in front, so the line still says what broke.
    """
    text = " ".join(str(exc).split())
    # numpy 2 scalars in a formatted tuple print as np.float64(0.5): the user wrote 0.5
    text = _NP_SCALAR.sub(r"\1", text)
    if isinstance(exc, KeyError) and len(text) > 1 and text[0] == text[-1] == "'":
        text = text[1:-1]
    if not text or not isinstance(exc, (ValueError, TypeError, KeyError, OSError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:2000]


def print_error(exc: BaseException) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(one_line(exc))}", markup=True)


@contextlib.contextmanager
def friendly_errors(data=None):
    """Turn errors into one line on stderr and exit code 2 (see :func:`_one_line_errors`); warnings
    raised meanwhile are printed one line each after a success, and dropped after a failure.

    ``data``: the command's one input file; an error about its pixel values (NaN, empty) names it,
    since the library's message can only say "image".
    """
    with _held_warnings(), _one_line_errors(), _naming_data(data):
        yield


@contextlib.contextmanager
def _naming_data(path):
    from mire._validate import DataError

    try:
        yield
    except DataError as exc:
        if path is None or str(path) in str(exc):
            raise
        raise DataError(f"{path}: {exc}") from exc


@contextlib.contextmanager
def _held_warnings():
    """Record warnings; print them one line each after a success (Python's own take two lines)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        # held back: a failed command prints its one error line, a successful one its warnings
        warnings.simplefilter("default")
        try:
            yield
        except BaseException:
            caught.clear()
            raise
        finally:
            held = list(caught)
    for w in held:
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            continue
        from rich.markup import escape

        console.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(w.message).split()))}", markup=True)


@contextlib.contextmanager
def _one_line_errors():
    """Turn errors into one red line on stderr and exit code 2, not a traceback.

    Expected errors (bad input: ValueError, TypeError, OSError, ...) print their message.
    Anything else still gets one line (and exit code 2) rather than a traceback, since the
    command was given input it could not use; ``MIRE_DEBUG=1`` re-raises it to debug.
    """
    import os

    try:
        yield
    except typer.Exit:
        raise
    except (ValueError, TypeError, FileNotFoundError, KeyError, OSError) as exc:
        print_error(exc)
        raise typer.Exit(code=2) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]", markup=True)
        sys.exit(130)
    except MemoryError as exc:
        if os.environ.get("MIRE_DEBUG"):
            raise
        console.print(f"[red]error:[/red] out of memory ({escape_text(exc)}); process the input in blocks "
                      "(--block-size where the command has it) or a smaller crop", markup=True)
        raise typer.Exit(code=2) from exc
    except RecursionError as exc:
        if os.environ.get("MIRE_DEBUG"):
            raise
        console.print("[red]error:[/red] input nested too deeply to process (RecursionError)", markup=True)
        raise typer.Exit(code=2) from exc
    except Exception as exc:
        if os.environ.get("MIRE_DEBUG"):
            raise
        print_error(exc)
        raise typer.Exit(code=2) from exc


def escape_text(exc) -> str:
    from rich.markup import escape

    return escape(" ".join(str(exc).split())[:500])


def check_shape(dims, *, option: str = "--shape", bytes_per_voxel: int = 64) -> tuple:
    """Positive sizes whose arrays (``bytes_per_voxel`` over all working copies) fit in memory."""
    import math

    from mire.io.gate import check_fits_memory

    dims = tuple(int(v) for v in dims)
    if any(v < 1 for v in dims):
        raise ValueError(f"{option} sizes must be positive, got {','.join(map(str, dims))}")
    check_fits_memory(option + " " + ",".join(map(str, dims)), math.prod(dims) * bytes_per_voxel,
                      what="generating it", hint="choose a smaller shape")
    return dims


def check_output(path, *, swc: bool = False, inputs=()) -> None:
    """Before any work: the output's format is known from its name, its folder exists and it is no input.

    ``swc``: the output is an SWC file (``.swc``), not an image. ``inputs``: the command's input paths;
    writing over one would destroy the data (a blockwise run would read blocks it has already replaced).
    """
    from pathlib import Path

    from mire.io.formats import write_format
    from mire.io.hdf5 import split_h5_path

    if swc:
        if not str(path).lower().endswith(".swc"):
            raise ValueError(f"output must be a .swc file, got {str(path)!r}")
        h5 = None
    else:
        write_format(path)
        h5 = split_h5_path(path)
    parent = Path(h5[0] if h5 else path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {parent} does not exist")
    target = Path(path).resolve()
    for inp in inputs:
        if inp is not None and Path(inp).resolve() == target:
            raise ValueError(f"output {path} is the input {inp}: give the result another name "
                             "(mire does not overwrite its input)")


def check_model_output(path) -> None:
    """Before any training: the folder of a model stem ``OUT`` (for OUT.safetensors, OUT.json) exists.

    Refused like every other output in a missing folder, rather than created: a mistyped folder
    would otherwise hide the model where the user does not look.
    """
    from pathlib import Path

    from mire.learn.modelfile import model_stem

    stem = model_stem(path)
    parent = Path(stem).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write model {path}: folder {parent} does not exist")
    if Path(stem).name in ("", ".", ".."):
        raise ValueError(f"--out {path} names a folder; give a model name inside it, e.g. {Path(stem) / 'model'}")


def check_single_image(path, command: str, *, axes=None, shape=None) -> None:
    """Refuse a file whose axes hold channels or time (e.g. an RGB TIFF, axes YXC): ``command``
    works on one 2D/3D image, and would otherwise take the channels for a Z axis.

    ``axes`` / ``shape``: the file's, when already read; else its header is read (lazily).
    """
    if axes is None:
        from mire.io import read_image

        loaded = read_image(path, lazy=True)
        axes, shape = loaded.axes, loaded.shape
    if axes and set(axes) & set("TC"):
        raise ValueError(f"{path}: {command} works on one 2D/3D image, but the file has axes {axes} "
                         f"(shape {tuple(shape)}); split the channels / time points first")


def check_input_exists(path) -> None:
    """A clear error when an input is missing; ``file.h5:/dataset`` names the file before the colon."""
    from pathlib import Path

    from mire.io.hdf5 import split_h5_path

    h5 = split_h5_path(path)
    if not Path(h5[0] if h5 else path).exists():
        raise FileNotFoundError(f"input not found: {path}")
