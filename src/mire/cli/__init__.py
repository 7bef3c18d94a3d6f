"""The ``mire`` command.

Each module in this package defines ``register(app)`` and adds its own commands,
so command groups stay next to each other without one file that everyone edits.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
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


_register_all()


def main() -> None:  # console-script entry point
    app()
