"""``mire simulate IN OUT``: degrade a clean image with the paper-2020 protocol (or free parameters)."""

from __future__ import annotations

import typer

from mire.cli._common import check_output, console, friendly_errors

_DTYPES = ("float32", "float64", "same")


def _floats(text: str | None, what: str):
    """``"0.8"`` -> 0.8, ``"2,0.8,0.8"`` -> [2.0, 0.8, 0.8] (one per axis)."""
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be a number or comma-separated numbers such as 2,0.8,0.8, got {text!r}") from None
    return vals[0] if len(vals) == 1 else vals


def _cast(out, like, dtype: str):
    import numpy as np

    if dtype == "same" and np.issubdtype(like.dtype, np.integer):
        # round and clip: noise pushes values below zero and above the peak
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(like.dtype)
    if dtype == "same":
        return out.astype(like.dtype)
    return out.astype(dtype)


def simulate(
    src: str = typer.Argument(..., metavar="IN", help="Clean image (2D or 3D): TIFF, OME-Zarr, 'file.h5:/ds', ..."),
    dst: str = typer.Argument(..., metavar="OUT", help="Output path; the format follows the extension."),
    condition: str = typer.Option("N2-B2", "--condition", "-c",
                                  help="Paper-2020 condition N1-B1 .. N3-B3, or 'none' to give every parameter."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the noise."),
    blur_sigma: str = typer.Option(None, "--blur-sigma",
                                   help="Gaussian PSF sigma in pixels, one value or one per axis (2,0.8,0.8); "
                                        "overrides the condition's blur; 0 turns it off."),
    psf: str = typer.Option(None, "--psf", help="Measured PSF file or 'gaussian:SIGMA'; replaces the Gaussian blur."),
    noise: str = typer.Option("gaussian", "--noise",
                              help="gaussian | poisson | poisson-gaussian | none."),
    noise_sigma: float = typer.Option(None, "--noise-sigma",
                                      help="SD of the Gaussian (read) noise in intensity units; overrides the condition."),
    gain: float = typer.Option(None, "--gain", help="Intensity units per photon for the Poisson models."),
    boundary: str = typer.Option("reflect", "--boundary", help="reflect | mirror | nearest | zero | circular."),
    dtype: str = typer.Option("float32", "--dtype",
                              help="Output type: float32 (default, ImageJ-readable), float64, or 'same' as the input "
                                   "(rounded and clipped to its range)."),
) -> None:
    """Blur and add noise to a clean image; axes and pixel size are kept.

    Example: mire simulate clean.tif noisy.tif --condition N3-B3 --seed 1
    """
    import numpy as np

    from mire.io import imwrite, read_image
    from mire.optics import simulate as run
    from mire.optics.simulate import parse_condition

    with friendly_errors(data=src):
        check_output(dst, inputs=(src,))
        if dtype not in _DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        cond = None if condition.lower() == "none" else condition
        if cond is not None:
            parse_condition(cond)  # a typo fails before a large file is read
        image = read_image(src)
        if image.axes and any(a in image.axes for a in "TC"):
            raise ValueError(f"{src}: simulate works on one 2D/3D image, but the file has axes {image.axes} "
                             f"(shape {image.shape}); split the channels / time points first")
        clean = np.asarray(image.data)
        with console.status(f"simulating {cond or 'custom'} on {'x'.join(map(str, clean.shape))} ..."):
            out = run(clean, condition=cond, seed=seed, blur_sigma=_floats(blur_sigma, "--blur-sigma"),
                      noise=noise, noise_sigma=noise_sigma, gain=gain, psf=psf, boundary=boundary)
        ref = clean.astype(np.float64)
        mse = float(np.mean((out - ref) ** 2))
        peak = float(ref.max())
        psnr = 10 * np.log10(peak**2 / mse) if mse > 0 and peak > 0 else float("inf")
        imwrite(dst, _cast(out, clean, dtype), axes=image.axes, pixel_size=image.pixel_size)
    typer.echo(f"wrote {dst}: {cond or 'custom'}, shape {out.shape}, input PSNR {psnr:.2f} dB (data range = peak)")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
