"""Helpers shared by the CLI modules: friendly errors and progress."""

from __future__ import annotations

import contextlib
import sys

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # one line per error, paths unbroken


@contextlib.contextmanager
def friendly_errors():
    """Turn expected errors into one red line and exit code 2, not a traceback."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, KeyError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


def check_input_exists(path) -> None:
    """A clear error when an input is missing; ``file.h5:/dataset`` names the file before the colon."""
    from pathlib import Path

    from mire.io.hdf5 import split_h5_path

    h5 = split_h5_path(path)
    if not Path(h5[0] if h5 else path).exists():
        raise FileNotFoundError(f"input not found: {path}")
