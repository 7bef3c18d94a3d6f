"""``mire demo``: restore a simulated neurite stack with every method and print the table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mire.cli._common import check_shape, console, friendly_errors


def demo(
    out: Path = typer.Option(Path("mire-demo"), "--out", "-o", help="Folder for the images, table and figure."),
    condition: str = typer.Option("N2-B2", help="Paper-2020 degradation: N1-B1 ... N3-B3."),
    shape: str = typer.Option("24,96,96", help="Z,Y,X size of the synthetic stack."),
    seed: int = typer.Option(0, help="Random seed."),
):
    """Simulate a degraded 3D neurite stack, restore it, print PSNR/SSIM, write images and figure.png."""
    from mire.demo import run_demo

    with friendly_errors():
        try:
            dims = tuple(int(v) for v in shape.split(","))
        except ValueError:
            raise ValueError(f"--shape must be three integers Z,Y,X, got {shape!r}") from None
        if len(dims) != 3:
            raise ValueError(f"--shape needs three numbers Z,Y,X, got {shape!r}")
        from mire.optics.simulate import parse_condition

        check_shape(dims, bytes_per_voxel=256)  # every method's result and its working arrays
        parse_condition(condition)
        # as every other output: a mistyped parent is refused, not created (before: made with parents=True)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"--out {out} is a file; the demo writes a folder of images: give a folder name")
        if not out.resolve().parent.is_dir():
            raise FileNotFoundError(f"cannot write {out}: folder {out.resolve().parent} does not exist")
        rows = run_demo(out, shape=dims, condition=condition, seed=seed, console=console)
    console.print(f"mire demo: synthetic neurites {dims}, condition {condition}")
    table = Table(title=f"Restoration of a simulated neurite stack ({condition})")
    for col in ("method", "PSNR (dB)", "SSIM", "time (s)"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(r["method"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['seconds']:.1f}")
    from rich.console import Console

    Console().print(table)
    console.print(f"images, table.md and figure.png written to {out}/")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
