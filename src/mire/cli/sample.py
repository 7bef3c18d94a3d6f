"""``mire sample``: write built-in sample data (synthetic neurites, EM cells, low-res frames) to files."""

from __future__ import annotations

from pathlib import Path

import typer

from mire.cli._common import check_output, check_shape, console, friendly_errors

KINDS = ("neurites", "em", "frames")


def _shape(text: str, ndim_allowed=(2, 3)) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise ValueError(f"--shape must be comma-separated integers, got {text!r}") from exc
    if len(dims) not in ndim_allowed:
        raise ValueError(f"--shape needs {' or '.join(map(str, ndim_allowed))} numbers, got {text!r}")
    return check_shape(dims)


def sample(
    kind: str = typer.Argument(..., help="neurites (3D fluorescence), em (EM cells + labels) or frames "
                                         "(shifted low-res frames of scikit-image's camera)."),
    out: Path = typer.Argument(..., help="Output image (.tif, .ome.zarr, file.h5:/dataset)."),
    shape: str = typer.Option(None, help="Z,Y,X (or Y,X) size; default 32,128,128 (neurites), 16,128,128 (em)."),
    seed: int = typer.Option(0, help="Random seed."),
    labels: Path = typer.Option(None, "--labels", help="em: also write the ground-truth cells here."),
    swc: Path = typer.Option(None, "--swc", help="neurites: also write the true centrelines as SWC here."),
    factor: int = typer.Option(4, help="frames: downsampling factor."),
    n_frames: int = typer.Option(15, help="frames: number of frames."),
):
    """Write sample data: a neurite stack (+ its SWC), an EM volume (+ labels) or multi-frame SR input."""
    import numpy as np

    from mire.io import imwrite, write_swc

    with friendly_errors():
        if kind not in KINDS:
            raise ValueError(f"unknown sample {kind!r}; choose one of {', '.join(KINDS)}")
        # every output checked before the first is written: no image left behind without its labels / SWC
        check_output(out)
        if labels is not None and kind == "em":
            check_output(labels)
            if Path(labels).resolve() == Path(out).resolve():
                # the labels would be written over the image just written (exit 0, image lost)
                raise ValueError(f"--labels {labels} is the image output {out}: give the labels another name")
        if swc is not None and kind == "neurites":
            check_output(swc, swc=True)
        if kind == "neurites":
            from mire.data import neurites

            img, trace = neurites(_shape(shape or "32,128,128"), seed=seed, return_swc=True)
            imwrite(out, img.astype(np.float32), axes="ZYX"[-img.ndim:])
            if swc is not None:
                write_swc(swc, trace)
        elif kind == "em":
            from mire.data import em_cells

            img, lab = em_cells(_shape(shape or "16,128,128"), seed=seed)
            imwrite(out, img, axes="ZYX"[-img.ndim:])
            if labels is not None:
                imwrite(labels, lab, axes="ZYX"[-lab.ndim:], labels=True)
        else:
            from skimage import data as skdata

            from mire.optics import simulate_frames

            size = _shape(shape or "128,128", (2,))
            if factor < 1 or any(n < factor for n in size):
                raise ValueError(f"--factor must be an integer from 1 to the --shape's smallest size "
                                 f"({min(size)}): each frame is shape / factor pixels, got --factor {factor}")
            cam = skdata.camera().astype(np.float64) / 255.0
            hr = cam[:size[0] // factor * factor, :size[1] // factor * factor]
            frames, _ = simulate_frames(hr, n_frames=n_frames, factor=factor, seed=seed)
            imwrite(out, frames.astype(np.float32), axes="TYX")
        console.print(f"wrote {kind} sample to {out}")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
