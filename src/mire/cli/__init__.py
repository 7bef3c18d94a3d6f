"""The ``mire`` command.

Each module in this package defines ``register(app)`` and adds its own commands,
so command groups stay next to each other without one file that everyone edits.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer.core import TyperGroup
from typer.core import _click as click  # typer's own copy of click: its exceptions are these
from typer.exceptions import Abort


class _OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing argument) as one line on stderr, exit code 2,
    like every other error of the command, instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `mire` alone: the help, as before
            text = exc.ctx.get_help() if exc.ctx else str(exc)  # typer's rich help prints itself
            if text:
                click.echo(text)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {where}{message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="mire",
    help="Restore and segment microscope images (deconvolution, super-resolution, learned restoration, EM segmentation).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)




def _print_version(value: bool) -> None:
    if value:
        from mire import __version__

        click.echo(f"mire {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print mire's version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Restore and segment microscope images (deconvolution, super-resolution, learned restoration, EM segmentation)."""


_register_all()


def main() -> None:  # console-script entry point
    app()
