"""Make the README's napari screenshots from the real widgets (run under `xvfb-run -a`).

    xvfb-run -a python docs/make_screenshots.py

Writes docs/images/*.png: the Restore widget next to a degraded and a restored neurite stack,
the Segment widget on synthetic EM, and the segments in napari's 3D view.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "images"


def _wait(widget, app, timeout=600):
    import time

    t0 = time.time()
    while (not widget.run_button.enabled or widget.status.value == "running...") and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.05)
    if widget.status.value.startswith("error"):
        raise RuntimeError(widget.status.value)


def _close_toasts(viewer, app) -> None:
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    app.processEvents()


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore")  # keep deprecation toasts out of the pictures
    import napari
    from qtpy.QtWidgets import QApplication

    from mire._napari import _samples, _widgets

    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.resize(1600, 900)

    for data, kwargs, kind in _samples.neurites_sample():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    restore = _widgets.RestoreWidget(viewer)
    restore.native.setMaximumWidth(430)
    viewer.window.add_dock_widget(restore, name="mire: Restore")
    restore.reset_choices()
    restore.image.value = viewer.layers["neurites N3-B3"]
    restore.psf_sigma.value = 1.2
    restore.weight.value = 0.05
    restore.iterations.value = 60
    restore._on_run()
    _wait(restore, app)
    # degraded and restored side by side, as max projections over Z
    viewer.layers["neurites N3-B3"].visible = True
    for layer in viewer.layers:
        if layer.visible:
            layer.projection_mode = "max"
    viewer.dims.thickness = (32, 1, 1)
    viewer.grid.enabled = True
    viewer.grid.stride = 1
    viewer.reset_view()
    app.processEvents()
    _close_toasts(viewer, app)
    viewer.screenshot(str(OUT / "restore_widget.png"), canvas_only=False)

    viewer.close()
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 900)
    from mire.data import em_cells
    from mire.segment import boundaries

    image, labels = em_cells((16, 128, 128), seed=0)
    viewer.add_image(image, name="EM", colormap="gray")
    viewer.add_image(boundaries(labels).astype(np.float32), name="boundary map", visible=False)
    seg = _widgets.SegmentWidget(viewer)
    seg.native.setMaximumWidth(430)
    viewer.window.add_dock_widget(seg, name="mire: Segment")
    seg.reset_choices()
    seg.image.value = viewer.layers["boundary map"]
    seg._on_run()
    _wait(seg, app)
    app.processEvents()
    _close_toasts(viewer, app)
    viewer.screenshot(str(OUT / "segment_widget.png"), canvas_only=False)
    viewer.layers["EM"].visible = False
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (-20, 30, 60)
    app.processEvents()
    viewer.screenshot(str(OUT / "segments_3d.png"), canvas_only=True)
    viewer.close()
    print(f"screenshots written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
