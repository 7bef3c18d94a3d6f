"""Three ways to make training examples: real pairs, simulated degradation, and Noise2Void.

Each factory returns a :class:`~mire.learn.sampler.PatchSampler` whose batches are
``(input, target, mask)``; the training loop does not care which one it gets.
"""

from __future__ import annotations

import math

import numpy as np

from mire.learn.normalize import PERCENTILES, percentile_range
from mire.learn.sampler import PatchSampler, center_crop, open_array


def pairs_sampler(noisy, clean, *, patch, seed: int = 0, augment: bool = True, percentiles=PERCENTILES):
    """Patches of aligned (noisy, clean) images, each normalized by its own percentiles.

    ``noisy`` and ``clean`` are arrays / paths, or lists of them (one pair per element). Separate
    normalization (as in CARE) makes pairs usable even when their intensity scales differ, e.g.
    independently min-max-stretched 8-bit exports.

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
    return PatchSampler(list(zip(noisy, clean)), patch=patch, seed=seed, augment=augment, percentiles=percentiles)


def _array_max(a) -> float:
    """Maximum of a possibly out-of-core array, one leading-axis slab at a time."""
    if hasattr(a, "compute"):  # dask
        return float(a.max().compute())
    if isinstance(a, np.ndarray) and not isinstance(a, np.memmap):
        return float(a.max())
    return max(float(np.max(np.asarray(a[i]))) for i in range(a.shape[0]))


class SimulatedExamples:
    """Degrade clean crops on the fly with :func:`mire.optics.simulate` (paper-2020 protocol).

    A random condition per patch. The network input is normalized exactly as
    :meth:`mire.restore.Restorer.predict` will normalize a whole degraded stack (by its own
    percentiles, estimated once per image and condition on a central crop), and the target is the
    clean crop in the same units, so training and prediction see the same scale.
    """

    def __init__(self, groups, ranges, *, conditions, margin: int, ndim: int, percentiles=PERCENTILES,
                 stats_size=(32, 256, 256), seed: int = 0):
        from mire.optics.simulate import parse_condition

        self.conditions = tuple(conditions)
        self.params = {c: parse_condition(c) for c in self.conditions}
        self.margin, self.ndim = margin, ndim
        self.peaks, self.stats = [], []
        for gi, g in enumerate(groups):
            lo, hi = ranges[gi][0]
            peak = (_array_max(g[0]) - lo) / (hi - lo)  # the paper's peak, in normalized units
            self.peaks.append(peak)
            a = g[0]
            lead = (0,) * (a.ndim - ndim)
            spatial = a.shape[a.ndim - ndim:]
            size = stats_size[-ndim:]
            window = lead + tuple(slice(max(0, (s - c) // 2), max(0, (s - c) // 2) + c) for s, c in zip(spatial, size))
            crop = (np.asarray(a[window], dtype=np.float64) - lo) / (hi - lo)
            per_cond = {}
            for c in self.conditions:
                degraded = self._degrade(crop, c, peak, seed)
                per_cond[c] = percentile_range(degraded, percentiles=percentiles)
            self.stats.append(per_cond)

    def _degrade(self, crop, condition, peak, seed):
        from mire.optics.simulate import simulate

        sigma, fraction = self.params[condition]
        return simulate(crop, condition=None, blur_sigma=sigma, noise="gaussian",
                        noise_sigma=fraction * peak, seed=seed)

    def __call__(self, crops, rng, group_index):
        condition = self.conditions[int(rng.integers(len(self.conditions)))]
        clean = crops[0]
        degraded = self._degrade(clean, condition, self.peaks[group_index], int(rng.integers(2**31)))
        lo, hi = self.stats[group_index][condition]
        x = center_crop((degraded - lo) / (hi - lo), self.margin, self.ndim)
        y = center_crop((clean - lo) / (hi - lo), self.margin, self.ndim)
        return x[None].astype(np.float32), y[None].astype(np.float32), None


def simulate_sampler(clean, *, patch, conditions=None, seed: int = 0, augment: bool = True,
                     percentiles=PERCENTILES, stats_size=(32, 256, 256)):
    """Patches of clean images degraded on the fly by the paper-2020 protocol (random condition each).

    Each patch is read with a margin of 3 blur sigmas, degraded by
    :func:`mire.optics.simulate` (Gaussian blur then Gaussian noise of SD ``fraction * peak``,
    ``peak`` = the maximum of the whole clean image), and cropped: fast and border-artifact free.
    The percentiles that normalize the network input are estimated once per image and condition
    by degrading a central crop of ``stats_size``.

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
                           percentiles=percentiles)
    sampler.make_example = SimulatedExamples(sampler.groups, sampler.ranges, conditions=conditions,
                                             margin=margin, ndim=len(sampler.patch), percentiles=percentiles,
                                             stats_size=stats_size, seed=seed)
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
