"""napari sample data: mire's synthetic generators (nothing is downloaded)."""

from __future__ import annotations


def neurites_sample():
    """A clean synthetic 3D neurite stack and its paper-2020 N3-B3 degradation."""
    from mire.data import neurites
    from mire.optics import simulate

    clean = neurites((32, 128, 128), seed=0)
    noisy = simulate(clean, condition="N3-B3", seed=0)
    return [
        (noisy.astype("float32"), {"name": "neurites N3-B3", "colormap": "magma"}, "image"),
        (clean.astype("float32"), {"name": "neurites clean", "colormap": "magma", "visible": False}, "image"),
    ]


def em_sample():
    """A synthetic EM volume with cell membranes, and its ground-truth cells."""
    from mire.data import em_cells

    image, labels = em_cells((16, 128, 128), seed=0)
    return [
        (image, {"name": "EM", "colormap": "gray"}, "image"),
        (labels, {"name": "EM ground truth", "visible": False}, "labels"),
    ]
