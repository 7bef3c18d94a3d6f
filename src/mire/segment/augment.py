"""EM-specific augmentations for training boundary / affinity networks.

Serial-section EM has its own artefacts, and a network trained without them fails on them:
lost or damaged sections, section-to-section contrast changes, out-of-focus sections and
misaligned (slipped) sections. Every function takes the image, optional labels and a
``numpy.random.Generator``, and returns ``(image, labels)``: geometric changes (flips,
misalignment, elastic deformation) are applied to both; intensity changes to the image only.
Images are float arrays (scale to [0, 1] first); stacks are ``(Z, Y, X)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mire._validate import check_image

__all__ = ["flip_transpose", "missing_sections", "contrast_jitter", "blur_sections", "misalign",
           "elastic_deform", "microscope_change", "augment_em"]


def _check(image, labels, *, ndim=(2, 3), need_stack=False):
    img = check_image(image, name="image", ndim=(3,) if need_stack else ndim).astype(np.float32, copy=True)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != img.shape:
            raise ValueError(f"labels shape {labels.shape} does not match image shape {img.shape}")
        labels = labels.copy()
    return img, labels


def _rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def flip_transpose(image, labels=None, *, rng):
    """Random flips of every axis and a random transpose of Y and X (the 8 in-plane symmetries).

    Examples
    --------
    >>> img, lab = flip_transpose(np.arange(6.).reshape(2, 3), np.arange(6).reshape(2, 3),
    ...                           rng=np.random.default_rng(0))
    >>> bool(np.all(img == lab))
    True
    """
    rng = _rng(rng)
    img, labels = _check(image, labels)
    flips = tuple(ax for ax in range(img.ndim) if rng.random() < 0.5)
    img = np.flip(img, flips)
    labels = None if labels is None else np.flip(labels, flips)
    if rng.random() < 0.5:  # Y and X are equivalent in-plane (not Z: sections are anisotropic)
        img = np.swapaxes(img, -1, -2)
        labels = None if labels is None else np.swapaxes(labels, -1, -2)
    return np.ascontiguousarray(img), None if labels is None else np.ascontiguousarray(labels)


def _pick_sections(rng, n_z, p):
    return np.flatnonzero(rng.random(n_z) < p)


def missing_sections(image, labels=None, *, rng, p: float = 0.05, mode: str = "zero"):
    """Lose sections: each z-slice, with probability ``p``, becomes 0 (``"zero"``) or a copy of
    the slice below (``"duplicate"``, what some alignment pipelines fill gaps with). Labels are
    unchanged: the network must infer the missing section from its neighbours.

    Examples
    --------
    >>> img = np.ones((4, 3, 3))
    >>> out, _ = missing_sections(img, rng=np.random.default_rng(0), p=1.0)
    >>> float(out.sum())
    0.0
    """
    rng = _rng(rng)
    img, labels = _check(image, labels, need_stack=True)
    if mode not in ("zero", "duplicate"):
        raise ValueError(f"mode must be 'zero' or 'duplicate', got {mode!r}")
    for z in _pick_sections(rng, img.shape[0], p):
        if mode == "zero":
            img[z] = 0
        else:
            img[z] = img[z - 1] if z > 0 else img[min(1, img.shape[0] - 1)]
    return img, labels


def contrast_jitter(image, labels=None, *, rng, contrast: float = 0.3, brightness: float = 0.15,
                    gamma: float = 0.3, per_section: bool = True):
    """Random contrast, brightness and gamma, per section (serial sections are stained unevenly).

    ``image * c + b`` with ``c`` in ``1 +- contrast`` and ``b`` in ``+- brightness``, clipped to
    [0, 1], then ``** g`` with ``g = 2 ** U(-gamma, gamma)``.
    """
    rng = _rng(rng)
    img, labels = _check(image, labels)
    n = img.shape[0] if per_section and img.ndim == 3 else 1
    shape = (n,) + (1,) * (img.ndim - 1) if n > 1 else (1,) * img.ndim
    c = 1 + rng.uniform(-contrast, contrast, n).reshape(shape)
    b = rng.uniform(-brightness, brightness, n).reshape(shape)
    g = 2.0 ** rng.uniform(-gamma, gamma, n).reshape(shape)
    img = np.clip(img * c + b, 0, 1) ** g
    return img.astype(np.float32), labels


def blur_sections(image, labels=None, *, rng, p: float = 0.05, sigma=(0.5, 2.5)):
    """Out-of-focus sections: each z-slice, with probability ``p``, is blurred in 2D by a
    Gaussian of standard deviation drawn from ``sigma`` (a range)."""
    rng = _rng(rng)
    img, labels = _check(image, labels, need_stack=True)
    for z in _pick_sections(rng, img.shape[0], p):
        img[z] = ndi.gaussian_filter(img[z], rng.uniform(*sigma))
    return img, labels


def misalign(image, labels=None, *, rng, max_shift: int = 8, mode: str = "translation"):
    """Misalignment: shift the sections above a random z (``"translation"``) or one random section
    (``"slip"``) by up to ``max_shift`` pixels in Y and X. Labels move with the image (the ground truth
    of a misaligned stack is misaligned too); pixels shifted in take the edge value.

    Examples
    --------
    >>> img = np.zeros((4, 8, 8)); img[:, 4, 4] = 1
    >>> out, lab = misalign(img, img.astype(int), rng=np.random.default_rng(1), max_shift=2)
    >>> bool(np.all((out > 0.5) == (lab == 1)))
    True
    """
    rng = _rng(rng)
    img, labels = _check(image, labels, need_stack=True)
    if mode not in ("translation", "slip"):
        raise ValueError(f"mode must be 'translation' or 'slip', got {mode!r}")
    if img.shape[0] < 2:
        return img, labels
    z = int(rng.integers(1, img.shape[0]))
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    zs = slice(z, None) if mode == "translation" else slice(z, z + 1)
    # integer shifts with order 0 move voxels exactly, for the image and the labels alike
    img[zs] = ndi.shift(img[zs], (0, dy, dx), order=0, mode="nearest")
    if labels is not None:
        labels[zs] = ndi.shift(labels[zs], (0, dy, dx), order=0, mode="nearest")
    return img, labels


def elastic_deform(image, labels=None, *, rng, alpha: float = 4.0, sigma: float = 8.0, per_section: bool = True):
    """Smooth random in-plane deformation: displacement fields of white noise smoothed by a Gaussian
    of ``sigma`` pixels and scaled to ``alpha`` pixels RMS. The image is interpolated linearly, the
    labels by nearest neighbour (no invented ids). ``per_section=False`` uses one field for the stack.
    """
    rng = _rng(rng)
    img, labels = _check(image, labels)
    plane = img.shape[-2:]

    def field():
        f = ndi.gaussian_filter(rng.standard_normal(plane), sigma)
        return f * (alpha / max(float(np.sqrt(np.mean(f ** 2))), 1e-12))

    yy, xx = np.meshgrid(np.arange(plane[0]), np.arange(plane[1]), indexing="ij")
    stack_img = img[None] if img.ndim == 2 else img
    stack_lab = None if labels is None else (labels[None] if labels.ndim == 2 else labels)
    out_img = np.empty_like(stack_img)
    out_lab = None if stack_lab is None else np.empty_like(stack_lab)
    dy = dx = None
    for z in range(stack_img.shape[0]):
        if dy is None or per_section:
            dy, dx = field(), field()
        coords = np.stack([yy + dy, xx + dx])
        out_img[z] = ndi.map_coordinates(stack_img[z], coords, order=1, mode="reflect")
        if out_lab is not None:
            out_lab[z] = ndi.map_coordinates(stack_lab[z], coords, order=0, mode="reflect")
    if img.ndim == 2:
        return out_img[0], None if out_lab is None else out_lab[0]
    return out_img, out_lab


def microscope_change(image, labels=None, *, rng, p_blur: float = 0.3, blur=(0.3, 1.5),
                      p_resample: float = 0.2, resample=(1.25, 2.0), p_noise: float = 0.3,
                      noise=(0.01, 0.08)):
    """What another microscope (or another setting of the same one) changes in the whole volume.

    With probability ``p_blur`` an isotropic Gaussian blur of SD ``U(*blur)`` voxels (a wider
    beam or probe); with ``p_resample`` a round trip through a coarser grid (voxels ``U(*resample)``
    times larger, linear down and up: lost resolution at the same voxel size); with ``p_noise``
    additive Gaussian noise of SD ``U(*noise)`` (shorter dwell time). Labels are untouched: the
    change is optical, the geometry stays. Unlike :func:`blur_sections` (single out-of-focus
    sections), every voxel is changed, since a new microscope changes the whole volume.

    Examples
    --------
    >>> img = np.zeros((8, 16, 16)); img[:, :, 8:] = 1.0
    >>> out, _ = microscope_change(img, rng=np.random.default_rng(0), p_blur=1.0, p_resample=0.0, p_noise=0.0)
    >>> bool(0.0 < out[4, 8, 7] < 0.5 < out[4, 8, 8] < 1.0)
    True
    """
    rng = _rng(rng)
    img, labels = _check(image, labels)
    if rng.random() < p_blur:
        img = ndi.gaussian_filter(img, rng.uniform(*blur), mode="reflect")
    if rng.random() < p_resample:
        f = rng.uniform(*resample)
        small = ndi.zoom(img, 1.0 / f, order=1, mode="nearest", grid_mode=True)
        back = ndi.zoom(small, np.divide(img.shape, small.shape), order=1, mode="nearest", grid_mode=True)
        img = back[tuple(slice(0, n) for n in img.shape)].astype(np.float32)
    if rng.random() < p_noise:
        img = img + rng.normal(0.0, rng.uniform(*noise), img.shape).astype(np.float32)
    return img.astype(np.float32, copy=False), labels


def augment_em(image, labels=None, *, rng, p_missing: float = 0.05, p_blur: float = 0.05,
               p_misalign: float = 0.2, p_elastic: float = 0.0):
    """The usual EM training chain: symmetries, contrast jitter, then (3D stacks) missing and
    blurred sections and misalignment with the given probabilities; elastic deformation optional.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img, lab = augment_em(np.random.default_rng(1).random((6, 16, 16)), np.ones((6, 16, 16), int), rng=rng)
    >>> img.shape, lab.shape, img.dtype
    ((6, 16, 16), (6, 16, 16), dtype('float32'))
    """
    rng = _rng(rng)
    img, labels = flip_transpose(image, labels, rng=rng)
    img, labels = contrast_jitter(img, labels, rng=rng)
    if p_elastic and rng.random() < p_elastic:
        img, labels = elastic_deform(img, labels, rng=rng)
    if img.ndim == 3:
        img, labels = missing_sections(img, labels, rng=rng, p=p_missing)
        img, labels = blur_sections(img, labels, rng=rng, p=p_blur)
        if rng.random() < p_misalign:
            img, labels = misalign(img, labels, rng=rng, mode="translation" if rng.random() < 0.5 else "slip")
    return img, labels
