"""Three ways to make training examples: real pairs, simulated degradation, and Noise2Void.

Each factory returns a :class:`~mire.learn.sampler.PatchSampler` whose batches are
``(input, target, mask)``; the training loop does not care which one it gets.
"""

from __future__ import annotations

import math

import numpy as np

from mire.learn.normalize import PERCENTILES, percentile_range
from mire.learn.sampler import PatchSampler, center_crop, open_array


def pairs_sampler(noisy, clean, *, patch, seed: int = 0, augment: bool = True, percentiles=PERCENTILES,
                  align: bool = False, foreground: float = 0.0):
    """Patches of aligned (noisy, clean) images, each normalized by its own percentiles.

    ``noisy`` and ``clean`` are arrays / paths, or lists of them (one pair per element). Separate
    normalization (as in CARE) makes pairs usable even when their intensity scales differ, e.g.
    independently min-max-stretched 8-bit exports.

    ``align=True`` then maps each clean image affinely onto its noisy partner's normalized units
    (:func:`affine_aligned_range`). Percentiles of a noisy image include the noise's spread, so
    on their own they leave the clean target 0.4x to 1x the scale of the input's signal,
    differently for every image (W2S): the network is then asked for a scale it cannot know.
    ``foreground``: the fraction of patches whose clean target must hold structure (see
    :class:`~mire.learn.sampler.PatchSampler`).

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.random.default_rng(0).random((40, 40))
    >>> s = pairs_sampler(clean + 0.1, clean, patch=(16, 16))
    >>> [tuple(t.shape) for t in s.batch(0, batch_size=2)[:2]]
    [(2, 1, 16, 16), (2, 1, 16, 16)]
    """
    noisy = list(noisy) if isinstance(noisy, list) else [noisy]
    clean = list(clean) if isinstance(clean, list) else [clean]
    if len(noisy) != len(clean):
        raise ValueError(f"got {len(noisy)} noisy images but {len(clean)} clean ones")
    pairs = [(open_array(n), open_array(c)) for n, c in zip(noisy, clean)]
    for i, (n, c) in enumerate(pairs):
        # before: numpy's "operands could not be broadcast" from deep inside the alignment
        if tuple(n.shape) != tuple(c.shape):
            raise ValueError(f"noisy image {i} has shape {tuple(n.shape)} but its clean partner {tuple(c.shape)}: "
                             "a training pair must be the same field of view, pixel for pixel")
    normalize = True
    if align:
        normalize = []
        for n, c in pairs:
            rn = percentile_range(n, percentiles=percentiles)
            normalize.append([rn, affine_aligned_range(n, c, rn, percentiles=percentiles)])
    return PatchSampler(pairs, patch=patch, seed=seed, augment=augment, percentiles=percentiles,
                        normalize=normalize, foreground=foreground)


def affine_aligned_range(noisy, clean, noisy_range, *, percentiles=PERCENTILES, max_elements: int = 2**22):
    """``(lo, hi)`` that normalize ``clean`` into ``noisy``'s normalized units, by least squares.

    Regresses the normalized noisy image on the (percentile-normalized) clean one, ``n ~ a c + b``
    (the noise is the regression's error, so ``a`` and ``b`` are unbiased), and returns the range
    for which ``(clean - lo) / (hi - lo) == a c + b``. Both images are read as bounded strided
    subsamples.

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.random.default_rng(0).random((64, 64))
    >>> noisy = 3 * clean + 1 + 0.1 * np.random.default_rng(1).standard_normal((64, 64))
    >>> lo, hi = affine_aligned_range(noisy, clean, (1.0, 4.0))
    >>> round(lo, 2), round(hi, 2)  # noisy (1, 4) -> (0, 1) is clean (0, 1) -> (0, 1)
    (0.0, 1.0)
    """
    from mire.learn.normalize import subsample

    lo_c, hi_c = percentile_range(clean, percentiles=percentiles, max_elements=max_elements)
    n = (subsample(noisy, max_elements=max_elements).ravel() - noisy_range[0]) / (noisy_range[1] - noisy_range[0])
    c = (subsample(clean, max_elements=max_elements).ravel() - lo_c) / (hi_c - lo_c)
    ok = np.isfinite(n) & np.isfinite(c)
    a, b = np.linalg.lstsq(np.stack([c[ok], np.ones(int(ok.sum()))], 1), n[ok], rcond=None)[0]
    if not a > 0:
        raise ValueError("cannot align the clean image to the noisy one: they are not positively correlated")
    span = (hi_c - lo_c) / a
    return float(lo_c - b * span), float(lo_c - b * span + span)


def _array_max(a) -> float:
    """Maximum of a possibly out-of-core array, one leading-axis slab at a time."""
    if hasattr(a, "compute"):  # dask
        return float(a.max().compute())
    if isinstance(a, np.ndarray) and not isinstance(a, np.memmap):
        return float(a.max())
    return max(float(np.max(np.asarray(a[i]))) for i in range(a.shape[0]))


class SimulatedExamples:
    """Degrade clean crops on the fly with :func:`mire.optics.simulate` (paper-2020 protocol).

    A random condition per patch. The network input is normalized as
    :meth:`mire.restore.Restorer.predict` normalizes a whole degraded image: by the percentiles of
    a degraded *window* of the stack, in the same units as the clean target. Prediction sees
    whatever the user passes (a whole stack, a sparse crop, a bright crop), and on sparse
    fluorescence those percentiles swing by 2x with the content: so each patch draws one of
    ``n_windows`` windows of random position and size (a quarter to all of ``stats_size``,
    clipped to the stack) and the network learns every normalization it will meet. Estimating
    them on one central crop only (as before) made a model that failed on other crops.

    Those windows rarely hold much neurite, but a user's crop around a bright structure is mapped
    by percentiles that the structure dominates (its background then sits near 0.1 instead of
    0.4): so a fraction ``own_window`` of the patches is normalized by the percentiles of its own
    degraded crop instead, the smallest window that contains it.
    """

    def __init__(self, groups, ranges, *, conditions, margin: int, ndim: int, percentiles=PERCENTILES,
                 stats_size=(32, 256, 256), n_windows: int = 8, seed: int = 0, own_window: float = 0.0):
        from mire.optics.simulate import parse_condition

        if not 0.0 <= own_window <= 1.0:
            raise ValueError(f"own_window must be a fraction in [0, 1], got {own_window}")
        self.own_window, self.percentiles = float(own_window), tuple(percentiles)
        self.conditions = tuple(conditions)
        self.params = {c: parse_condition(c) for c in self.conditions}
        self.margin, self.ndim = margin, ndim
        self.peaks, self.stats = [], []
        rng = np.random.default_rng([seed, 7])
        for gi, g in enumerate(groups):
            lo, hi = ranges[gi][0]
            peak = (_array_max(g[0]) - lo) / (hi - lo)  # the paper's peak, in normalized units
            self.peaks.append(peak)
            per_cond = {c: [] for c in self.conditions}
            for _ in range(max(1, int(n_windows))):
                crop = (_random_window(g[0], stats_size[-ndim:], ndim, rng) - lo) / (hi - lo)
                for c, r in self._window_ranges(crop, peak, percentiles, rng).items():
                    per_cond[c].append(r)
            self.stats.append(per_cond)

    def _window_ranges(self, crop, peak, percentiles, rng):
        """Percentiles of ``crop`` under every condition: blurred once per sigma, noised on a subsample.

        Gaussian noise is i.i.d., so adding it to a strided subsample of the blurred crop gives
        the same percentile distribution as subsampling the noisy crop (which is what
        :func:`percentile_range` does at prediction time), for a fraction of the cost.
        """
        from mire.learn.normalize import subsample
        from mire.optics.simulate import simulate

        out, blurred = {}, {}
        for c in self.conditions:
            sigma, fraction = self.params[c]
            if sigma not in blurred:
                b = simulate(crop, condition=None, blur_sigma=sigma, noise="none")
                blurred[sigma] = subsample(b, max_elements=2**20)
            sample = blurred[sigma] + rng.normal(0.0, fraction * peak, size=blurred[sigma].shape)
            out[c] = percentile_range(sample, percentiles=percentiles)
        return out

    def _degrade(self, crop, condition, peak, seed):
        from mire.optics.simulate import simulate

        sigma, fraction = self.params[condition]
        return simulate(crop, condition=None, blur_sigma=sigma, noise="gaussian",
                        noise_sigma=fraction * peak, seed=seed)

    def __call__(self, crops, rng, group_index):
        condition = self.conditions[int(rng.integers(len(self.conditions)))]
        clean = crops[0]
        degraded = self._degrade(clean, condition, self.peaks[group_index], int(rng.integers(2**31)))
        if self.own_window > 0 and rng.random() < self.own_window:  # no draw when off: same batches
            lo, hi = percentile_range(degraded, percentiles=self.percentiles)
        else:
            windows = self.stats[group_index][condition]
            lo, hi = windows[int(rng.integers(len(windows)))]
        x = center_crop((degraded - lo) / (hi - lo), self.margin, self.ndim)
        y = center_crop((clean - lo) / (hi - lo), self.margin, self.ndim)
        return x[None].astype(np.float32), y[None].astype(np.float32), None


def _random_window(a, size, ndim: int, rng) -> np.ndarray:
    """A float64 window of ``a`` (last ``ndim`` axes spatial) at a random place, each side between
    a quarter of ``size`` (or of the axis, if smaller) and all of it; one random index per leading axis."""
    lead = tuple(int(rng.integers(s)) for s in a.shape[: a.ndim - ndim])
    spatial = a.shape[a.ndim - ndim:]
    window = []
    for s, c in zip(spatial, size):
        c = min(int(c), s)
        n = int(rng.integers(max(1, c // 4), c + 1))
        start = int(rng.integers(0, s - n + 1))
        window.append(slice(start, start + n))
    return np.asarray(a[lead + tuple(window)], dtype=np.float64)


def simulate_sampler(clean, *, patch, conditions=None, seed: int = 0, augment: bool = True,
                     percentiles=PERCENTILES, stats_size=(32, 256, 256), n_windows: int = 8,
                     foreground: float = 0.0, own_window: float = 0.0):
    """Patches of clean images degraded on the fly by the paper-2020 protocol (random condition each).

    Each patch is read with a margin of 3 blur sigmas, degraded by
    :func:`mire.optics.simulate` (Gaussian blur then Gaussian noise of SD ``fraction * peak``,
    ``peak`` = the maximum of the whole clean image), and cropped: fast and border-artifact free.
    The percentiles that normalize the network input and target are those of a degraded window
    of the image (one of ``n_windows`` of random place and size up to ``stats_size``, drawn per
    patch; see :class:`SimulatedExamples`), so the network meets the normalizations that
    :meth:`mire.restore.Restorer.predict` will apply to whole stacks and crops alike.
    ``foreground``: the fraction of patches that must hold some structure (see
    :class:`~mire.learn.sampler.PatchSampler`). ``own_window``: the fraction of patches normalized
    by their own degraded crop's percentiles instead (small crops around bright structures).

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.random.default_rng(0).random((16, 32, 32))
    >>> s = simulate_sampler(clean, patch=(8, 16, 16), conditions=["N3-B3"])
    >>> x, y, _ = s.batch(0, batch_size=2)
    >>> tuple(x.shape), bool((x - y).abs().mean() > 0.05)
    ((2, 1, 8, 16, 16), True)
    """
    from mire.optics.simulate import BLUR_SIGMAS, CONDITIONS

    conditions = CONDITIONS if conditions is None else tuple(conditions)
    clean = list(clean) if isinstance(clean, list) else [clean]
    margin = int(math.ceil(3 * max(BLUR_SIGMAS.values())))
    sampler = PatchSampler([(c,) for c in clean], patch=patch, margin=margin, seed=seed, augment=augment,
                           percentiles=percentiles, foreground=foreground)
    sampler.make_example = SimulatedExamples(sampler.groups, sampler.ranges, conditions=conditions,
                                             margin=margin, ndim=len(sampler.patch), percentiles=percentiles,
                                             stats_size=stats_size, n_windows=n_windows, seed=seed,
                                             own_window=own_window)
    return sampler


def blind_spot_mask(image: np.ndarray, rng, *, fraction: float = 0.01, radius: int = 2):
    """Noise2Void masking: replace random pixels by a random *other* pixel of their neighbourhood.

    Returns ``(masked, mask)``; ``mask`` is 1 at the replaced pixels. A replacement never comes from
    the pixel itself (the offset is non-zero, and it is mirrored rather than clipped at the
    border), so the network can never see the value it must predict.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(256.0).reshape(16, 16)
    >>> masked, mask = blind_spot_mask(img, np.random.default_rng(0), fraction=0.1)
    >>> bool(mask.sum() == 26), bool(np.all(masked[mask > 0] != img[mask > 0]))
    (True, True)
    """
    shape = image.shape
    if min(shape) <= 2 * radius:
        raise ValueError(f"patch {shape} too small for a blind-spot radius of {radius}")
    n = max(1, int(round(fraction * image.size)))
    flat = rng.choice(image.size, size=n, replace=False)
    pos = np.stack(np.unravel_index(flat, shape), axis=1)
    offsets = rng.integers(-radius, radius + 1, size=pos.shape)
    zero = ~offsets.any(axis=1)
    while zero.any():  # redraw the (rare) zero offsets: they would copy the masked pixel itself
        offsets[zero] = rng.integers(-radius, radius + 1, size=(int(zero.sum()), len(shape)))
        zero = ~offsets.any(axis=1)
    src = pos + offsets
    outside = (src < 0) | (src >= np.array(shape))
    src[outside] = (pos - offsets)[outside]  # mirror the offset: still non-zero, now inside
    masked = image.copy()
    masked[tuple(pos.T)] = image[tuple(src.T)]
    mask = np.zeros(shape, dtype=np.float32)
    mask[tuple(pos.T)] = 1.0
    return masked, mask


def noise2void_sampler(noisy, *, patch, fraction: float = 0.01, radius: int = 2, seed: int = 0,
                       augment: bool = True, percentiles=PERCENTILES):
    """Self-supervised (Noise2Void) patches from noisy images alone.

    Input: the patch with a ``fraction`` of its pixels replaced by random neighbours (see
    :func:`blind_spot_mask`); target: the untouched patch; the loss mask selects the replaced
    pixels, so the network learns to predict a pixel from its surroundings only (pixel-wise
    independent noise cannot be predicted, the signal can).

    Examples
    --------
    >>> import numpy as np
    >>> noisy = np.random.default_rng(0).random((64, 64))
    >>> x, y, mask = noise2void_sampler(noisy, patch=(32, 32)).batch(0, batch_size=2)
    >>> tuple(mask.shape), int(mask.sum())
    ((2, 1, 32, 32), 20)
    """
    noisy = list(noisy) if isinstance(noisy, list) else [noisy]

    def make(crops, rng, group_index):
        masked, mask = blind_spot_mask(crops[0], rng, fraction=fraction, radius=radius)
        return masked[None], crops[0][None], mask[None]

    return PatchSampler([(a,) for a in noisy], patch=patch, make_example=make, seed=seed, augment=augment,
                        percentiles=percentiles)
