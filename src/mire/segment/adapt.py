"""Label-free settings and unsupervised adaptation of EM segmentation to a new volume.

Everything here reads only the volume being segmented (no ground truth):

- :func:`auto_threshold`: the agglomeration threshold as the contact-area-weighted Otsu split of
  the fragment graph's edge scores (the scores are bimodal: faces inside an object, faces on a
  membrane), so it follows a network whose affinities shift on a new microscope.
- :func:`intensity_quantiles` / :func:`quantile_map`: histogram matching of a volume to the
  training volume's intensity distribution (exactly undoes a monotone contrast change, up to ties).
- :func:`correlation_length`: the image's autocorrelation length (noise-robust: lag 0 is left
  out), the scale from which seed spacing and an optional resampling are derived.
- :func:`reestimate_batchnorm`: batch-norm statistics recomputed on the new volume.

:meth:`mire.segment.Segmenter.adapt` combines them; the measurements that chose its defaults are
in ``experiments/results/em_adaptation.md``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["weighted_otsu", "auto_threshold", "edge_scores_from_stats", "intensity_quantiles", "quantile_map",
           "correlation_length", "reestimate_batchnorm", "AUTO"]

AUTO = "auto"
#: The auto threshold is kept inside this range: an almost-empty or one-sided histogram (a tiny
#: volume, or one whose fragments are all one object) must not give 0 (no merges) or 1 (all merged).
AUTO_RANGE = (0.05, 0.8)
QUANTILE_POINTS = 65


def is_auto(value) -> bool:
    return isinstance(value, str) and value.lower() == AUTO


def weighted_otsu(values, weights=None, *, bins: int = 256, value_range=(0.0, 1.0)) -> float:
    """Otsu's threshold of ``values`` (each counted ``weights`` times): the split that maximizes
    the between-class variance of a ``bins``-bin histogram over ``value_range``.

    Examples
    --------
    >>> round(weighted_otsu([0.1, 0.1, 0.2, 0.8, 0.9], bins=10), 2)
    0.25
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if v.shape != w.shape:
        raise ValueError(f"{v.size} values but {w.size} weights")
    hist, edges = np.histogram(v, bins=bins, range=value_range, weights=w)
    total = hist.sum()
    if total <= 0:
        raise ValueError("weighted_otsu needs at least one value with a positive weight")
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1]
    w1 = total - w0
    s0 = np.cumsum(hist * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1e-300)
    m1 = (s0[-1] + hist[-1] * centres[-1] - s0) / np.maximum(w1, 1e-300)
    between = w0 * w1 * (m0 - m1) ** 2
    k = int(np.argmax(between))
    return float(edges[k + 1])  # the split lies between bin k and bin k + 1


def auto_threshold(scores, counts=None) -> float:
    """The agglomeration threshold of a fragment graph, from its own edge scores.

    ``scores``: each edge's boundary score (``1 - affinity``, the agglomeration's scoring);
    ``counts``: its contact area (faces), the weight of the edge. The weighted Otsu split of the
    scores, clipped to :data:`AUTO_RANGE`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return float(np.mean(AUTO_RANGE))
    t = weighted_otsu(scores, counts)
    return float(np.clip(t, *AUTO_RANGE))


def edge_scores_from_stats(counts, sums, hist=None, *, q=None) -> np.ndarray:
    """Edge scores from additive statistics (blockwise region graphs): ``sums / counts`` for the
    mean (``q=None``), else the ``q``-quantile of each edge's face-score histogram (bin centres)."""
    counts = np.asarray(counts, dtype=np.float64)
    if q is None or hist is None:
        return np.asarray(sums, dtype=np.float64) / np.maximum(counts, 1)
    hist = np.asarray(hist)
    nbins = hist.shape[1]
    cum = np.cumsum(hist, axis=1)
    k = np.argmax(cum >= (q * hist.sum(axis=1))[:, None], axis=1)
    return (k + 0.5) / nbins


def intensity_quantiles(image, *, lo: float, hi: float, n: int = QUANTILE_POINTS, max_elements: int = 2**22):
    """``n`` evenly spaced quantiles (0 .. 1, ends included) of ``(image - lo) / (hi - lo)``, from a
    strided subsample (:func:`mire.learn.normalize.subsample`)."""
    from mire.learn.normalize import subsample

    sample = subsample(image, max_elements=max_elements)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("the image has no finite values")
    return np.quantile((sample - lo) / (hi - lo), np.linspace(0, 1, n)).astype(np.float64)


def quantile_map(source, reference):
    """Knots ``(x, y)`` of the monotone piecewise-linear map that sends a volume with quantiles
    ``source`` to the distribution with quantiles ``reference`` (``np.interp(v, x, y)``).

    Tied source quantiles (flat histogram stretches, 8-bit data) are merged so that ``x`` strictly
    increases. Identical quantiles give the identity on their range.
    """
    x = np.asarray(source, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"source and reference quantiles must be two 1D arrays of one length >= 2, got "
                         f"{x.shape} and {y.shape}")
    keep = np.r_[True, np.diff(x) > 1e-12]
    x, y = x[keep], y[keep]
    if x.size < 2:  # a constant volume: nothing to match
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    return x, y


def correlation_length(image, *, level: float = 0.5, crop: int = 96) -> float:
    """The lag (voxels) at which the image's autocorrelation falls to ``level`` of its lag-1 value,
    geometric mean over the axes, measured on a central crop of at most ``crop`` per axis.

    Lag 0 is left out because white noise adds to it alone, so the length does not change with
    noise; a moderate monotone contrast change moves it little (gamma 0.5 on the gala volumes:
    2 %; a strongly nonlinear one more), and it scales with the image (cells twice as large in
    voxels give about twice the length). Blur lengthens it too.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from scipy import ndimage as ndi
    >>> v = ndi.gaussian_filter(rng.normal(size=(64, 64, 64)), 2)
    >>> w = ndi.gaussian_filter(rng.normal(size=(64, 64, 64)), 4)
    >>> 1.7 < correlation_length(w) / correlation_length(v) < 2.3
    True
    """
    v = np.asarray(image, dtype=np.float32)
    window = tuple(slice(max(0, (n - crop) // 2), max(0, (n - crop) // 2) + min(n, crop)) for n in v.shape)
    v = v[window]
    if v.size and v.min() == v.max():  # say so: "too small" below would send the user after the wrong problem
        raise ValueError(f"image of shape {np.shape(image)} is constant in its central {crop}-voxel window "
                         "(no structure): there is no correlation length to measure")
    v = v - v.mean()
    lengths = []
    for ax in range(v.ndim):
        n = v.shape[ax]
        lags = n // 2
        if lags < 3:
            continue
        f = np.fft.rfft(v, n=2 * n, axis=ax)
        ac = np.fft.irfft(np.abs(f) ** 2, n=2 * n, axis=ax)
        ac = np.moveaxis(ac, ax, 0)[:lags].reshape(lags, -1).sum(axis=1) / (n - np.arange(lags))
        if not ac[1] > 0:
            continue
        r = ac / ac[1]
        below = np.flatnonzero(r[1:] < level)
        if below.size == 0:
            lengths.append(float(lags))
            continue
        k = int(below[0]) + 1
        lengths.append(float(k - 1 + (r[k - 1] - level) / (r[k - 1] - r[k])))
    if not lengths:
        raise ValueError(f"image of shape {np.shape(image)} is too small to measure a correlation length")
    return float(math.exp(np.mean(np.log(np.maximum(lengths, 1e-3)))))


def reestimate_batchnorm(model, images, *, preprocess, tile=None, device=None) -> int:
    """Recompute every batch-norm layer's running mean and variance on ``images``.

    ``images``: one array, or a list of arrays, of the network's dimensionality. Each is cut into
    non-overlapping tiles (default: about 32 x 128 x 128, a multiple of the network's size), each
    passed once through the network in training mode with a cumulative average
    (``momentum=None``), so the same images give the same statistics. Returns the number of
    batch-norm layers (0: nothing changed).
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    images = [np.asarray(images)] if not isinstance(images, (list, tuple)) else [np.asarray(i) for i in images]
    mult = tuple(model.size_multiple)
    saved = [(m.momentum, m.training) for m in bns]
    was_training = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every tile counts the same
        m.train()
    try:
        for img in images:
            size = (32, 128, 128)[-img.ndim:] if tile is None else tile
            size = tuple(max(m, (min(int(t), s) // m) * m) for t, s, m in zip(size, img.shape, mult))
            if any(t > s for t, s in zip(size, img.shape)):
                raise ValueError(f"image of shape {img.shape} is smaller than one network tile {size}")
            starts = [list(range(0, s - t + 1, t)) for s, t in zip(img.shape, size)]
            with torch.no_grad():
                for origin in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, img.ndim):
                    window = tuple(slice(int(o), int(o) + t) for o, t in zip(origin, size))
                    x = torch.from_numpy(np.ascontiguousarray(preprocess(img[window])))[None, None]
                    model(x.to(device) if device is not None else x)
    finally:
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)
        model.train(was_training)
    return len(bns)
