"""``mire superres``: multi-frame super-resolution of a (T, Y, X) or (T, Z, Y, X) stack."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mire.cli._common import check_output, console, friendly_errors


def superres(
    frames: Path = typer.Argument(..., help="Stack of low-res frames, time first: (T, Y, X) or (T, Z, Y, X)."),
    out: Path = typer.Argument(..., help="Output image (.tif, .ome.zarr, file.h5:/dataset, .png)."),
    factor: int = typer.Option(4, "--factor", "-f", help="Super-resolution factor per spatial axis."),
    method: str = typer.Option("map", help="ml | map | bayesian | bayesian-registration."),
    prior: str = typer.Option(None, help="Image prior: map: tv | laplacian | btv; bayesian: gradient | laplacian | "
                                         "adaptive | tv (variational TV, weight learned) | auto."),
    robust: bool = typer.Option(False, "--robust", help="Per-pixel noise precision by EM (occlusions, outliers)."),
    psf_sigma: float = typer.Option(1.0, help="Gaussian PSF sigma in high-res pixels (0: none)."),
    psf: str = typer.Option(None, help="PSF file or 'gaussian:SIGMA' (overrides --psf-sigma)."),
    weight: float = typer.Option(None, help="Prior weight (map, bayesian-registration); default tuned."),
    n_iter: int = typer.Option(None, help="Inner iterations (CG / L-BFGS)."),
    uncertainty: Path = typer.Option(None, "--uncertainty", help="Write the per-pixel posterior SD here (bayesian)."),
    reference: int = typer.Option(0, help="Frame whose coordinates the result uses."),
    axes: Optional[str] = typer.Option(None, "--axes", help="Axes of the input, e.g. TYX, YXT or TZYX: names them "
                                       "for a file without axes metadata (read as frames first, T(Z)YX, without "
                                       "it), or reorders a file's own axes; needs a T axis"),
):
    """Reconstruct one high-resolution image from shifted / rotated low-resolution frames."""
    from mire.io import imwrite, read_image
    from mire.superres import superresolve

    with friendly_errors():
        if uncertainty is not None and method != "bayesian":
            raise ValueError("--uncertainty needs --method bayesian (the only method with a posterior SD)")
        loaded = read_image(frames, axes=axes)
        if axes is not None:
            loaded = _frames_first(loaded, frames)
        check_output(out, inputs=(frames,))
        if uncertainty is not None:  # before the work, so a bad path leaves no result without its SD
            check_output(uncertainty, inputs=(frames, out))
        stack = loaded.data
        if stack.ndim not in (3, 4):
            raise ValueError(f"{frames}: expected a (T, Y, X) or (T, Z, Y, X) stack, got shape {stack.shape}")
        # a 3D file's first axis may be labelled C by a writer's guess (plain TIFF samples); 4D with C is not frames
        ax = loaded.axes
        if ax is not None and (("T" in ax and ax[0] != "T") or ("C" in ax and stack.ndim == 4)):
            raise ValueError(f"{frames}: expected frames along a first T axis, but the file has axes "
                             f"{loaded.axes} (shape {stack.shape}); split the channels first")
        if ax is not None and "T" not in ax and ax[0] == "Z":
            # a Z stack is not a time series: its slices would be registered as shifted frames
            raise ValueError(f"{frames}: the file has axes {ax} (shape {stack.shape}), a Z stack, not frames; "
                             "superres needs frames along a first T axis: save them with axes TYX "
                             "(e.g. mire.io.imwrite(path, frames, axes='TYX')) or TZYX for volumes, "
                             "or give --axes for a file without axes metadata")
        image, info = superresolve(stack, factor=factor, method=method, prior=prior, robust=robust,
                                   psf_sigma=psf_sigma, psf=psf, weight=weight, n_iter=n_iter,
                                   reference=reference, sd_distance=4 if uncertainty is not None else None,
                                   return_info=True)
        axes = "YX" if image.ndim == 2 else "ZYX"
        imwrite(out, image.astype("float32"), axes=axes)
        if uncertainty is not None:
            imwrite(uncertainty, info["posterior_sd"].astype("float32"), axes=axes)
        console.print(f"mire superres: {stack.shape[0]} frames of {stack.shape[1:]}, x{factor}, {method}"
                      + (" (robust)" if robust else "") + f"; wrote {out} {image.shape}; noise SD {info['noise_sd']:.4g}"
                      + (f", posterior SD -> {uncertainty}" if uncertainty is not None else ""))


def _frames_first(loaded, frames):
    """The image of ``read_image(frames, axes=...)`` with T first and the spatial axes in Z, Y, X order;
    ``--axes`` without T, or with channels, is refused rather than read as frames."""
    from mire.io.image import Image

    ax = loaded.axes
    if "T" not in ax or set(ax) - set("TZYX"):
        raise ValueError(f"--axes {ax}: superres needs frames along a T axis and only Z, Y, X besides "
                         "(e.g. TYX or TZYX); a Z stack or channels are not frames")
    want = "T" + "".join(a for a in "ZYX" if a in ax)
    data = loaded.data.transpose([ax.index(a) for a in want]) if want != ax else loaded.data
    return Image(data, want, loaded.pixel_size)


def register(app: typer.Typer) -> None:
    app.command("superres")(superres)
