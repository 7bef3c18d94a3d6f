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
