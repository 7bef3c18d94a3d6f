"""napari plugin of mire: readers, writers, sample data and one dock widget per step of the flow.

The widgets are thin: the work is done by the plain functions of ``_actions`` (testable without a
display), run in a background thread so the viewer never freezes.
"""
