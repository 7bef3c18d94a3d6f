"""Pieces shared by the restoration solvers: input checks, scaling, the extended domain, finite differences.

The solvers all work on an *extended* ("valid") domain: the unknown object is larger than the
image by the PSF support, and only the pixels whose whole blur footprint lies inside it are
compared with the data. So no solver assumes anything about what lies outside the field of view
(no wrap-around, no dark border), which is what makes deconvolved borders clean.
"""

from __future__ import annotations

import numpy as np
import torch

from mire._fft import fast_len
from mire._validate import check_image


def check_inputs(image, psf, *, name: str = "image"):
    """Validate ``image`` (2D or 3D, finite) and turn ``psf`` (array or spec string) into a kernel."""
    from mire.optics.psf import parse_psf

    img = check_image(image, name=name, ndim=(2, 3), allow_bool=False)
    if psf is None:
        raise ValueError("psf is required: give an array, 'gaussian:SIGMA', 'gaussian:SZ,SY,SX' or a file path")
    if isinstance(psf, str):
        kernel = parse_psf(psf, ndim=img.ndim, image_shape=img.shape)
    else:
        kernel = check_image(psf, name="psf").astype(np.float64)
        if kernel.ndim != img.ndim:
            raise ValueError(f"psf is {kernel.ndim}D but the image is {img.ndim}D (shape {img.shape})")
        total = kernel.sum()
        if not total > 0:
            raise ValueError("psf sums to zero or less: it must be a non-negative kernel with positive sum")
        kernel = kernel / total
    if any(k > 2 * n + 1 for k, n in zip(kernel.shape, img.shape)):
        raise ValueError(f"psf shape {kernel.shape} is much larger than the image {img.shape}; crop the PSF")
    return img, kernel


def compute_dtype(image: np.ndarray) -> torch.dtype:
    """Compute in the input's float precision; integers and float16 use float32 (like scikit-image)."""
    return torch.float64 if image.dtype == np.float64 else torch.float32


def intensity_scale(image: np.ndarray) -> float:
    """Scale that maps the image to about [0, 1], so weights mean the same for 8-bit and 16-bit data."""
    s = float(np.max(np.abs(image)))
    return s if s > 0 else 1.0


def normalize_spacing(spacing, ndim: int) -> tuple:
    """Voxel spacing relative to the finest axis (``None``: isotropic)."""
    if spacing is None:
        return (1.0,) * ndim
    sp = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,))
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be positive numbers, one per axis, got {spacing}")
    return tuple(float(v) for v in sp / sp.min())


class ExtendedDomain:
    """Geometry of the unknown: ``image.shape + psf.shape - 1`` rounded up to fast FFT sizes.

    ``window`` is where the image sits inside the extended grid: a circular convolution on the
    extended grid, read in the window, equals the linear ("valid") convolution, because no output
    in the window reaches across the wrap.
    """

    def __init__(self, shape, psf_shape):
        self.shape = tuple(int(n) for n in shape)
        k = np.asarray(psf_shape)
        self.grid = tuple(fast_len(int(n + kk - 1)) for n, kk in zip(self.shape, k))
        offset = k - 1 - k // 2
        self.window = tuple(slice(int(o), int(o) + n) for o, n in zip(offset, self.shape))

    def embed(self, image: torch.Tensor, fill: str = "edge") -> torch.Tensor:
        """Put ``image`` in the window and fill the rest by edge replication (a neutral starting guess)."""
        pads = []
        for n, g, w in zip(self.shape, self.grid, self.window):
            pads.append((w.start, g - n - w.start))
        out = image
        for axis, (lo, hi) in enumerate(pads):
            if lo or hi:
                idx = torch.clamp(torch.arange(-lo, image.shape[axis] + hi, device=image.device),
                                  0, image.shape[axis] - 1)
                out = torch.index_select(out, axis, idx)
        return out.contiguous()

    def mask(self, *, dtype, device) -> torch.Tensor:
        m = torch.zeros(self.grid, dtype=dtype, device=device)
        m[self.window] = 1
        return m


# --- periodic finite differences (the TV regulariser), scaled by the voxel spacing -------------

def _axis_slices(ndim: int, axis: int, a, b) -> tuple:
    return (slice(None),) * axis + (slice(a, b),)


def grad(x: torch.Tensor, spacing, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Forward differences on a periodic grid, one channel per axis, divided by the spacing.

    Written as two sliced subtractions per axis rather than ``roll(x) - x``: one pass over the
    volume instead of three (a roll is a full copy), which matters inside solver loops.
    """
    out = torch.empty((x.ndim,) + tuple(x.shape), dtype=x.dtype, device=x.device) if out is None else out
    for a, h in enumerate(spacing):
        sl = lambda i, j, a=a: _axis_slices(x.ndim, a, i, j)  # noqa: E731
        torch.sub(x[sl(1, None)], x[sl(0, -1)], out=out[a][sl(0, -1)])
        torch.sub(x[sl(0, 1)], x[sl(-1, None)], out=out[a][sl(-1, None)])  # periodic wrap
        if h != 1.0:
            out[a].div_(h)
    return out


def grad_adjoint(g: torch.Tensor, spacing, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Exact adjoint of :func:`grad` (minus the divergence); ``out`` is overwritten if given."""
    out = torch.empty_like(g[0]) if out is None else out
    for a, h in enumerate(spacing):
        ga = g[a]
        sl = lambda i, j, a=a: _axis_slices(ga.ndim, a, i, j)  # noqa: E731
        if a == 0:
            torch.sub(ga[sl(0, -1)], ga[sl(1, None)], out=out[sl(1, None)])
            torch.sub(ga[sl(-1, None)], ga[sl(0, 1)], out=out[sl(0, 1)])
            if h != 1.0:
                out.div_(h)
        else:
            alpha = 1.0 / h
            out[sl(1, None)].add_(ga[sl(0, -1)], alpha=alpha).sub_(ga[sl(1, None)], alpha=alpha)
            out[sl(0, 1)].add_(ga[sl(-1, None)], alpha=alpha).sub_(ga[sl(0, 1)], alpha=alpha)
    return out


def laplacian_symbol(grid, spacing, *, dtype, device) -> torch.Tensor:
    """Fourier symbol of ``grad_adjoint(grad(.))`` on ``grid`` (rfft layout, last axis halved)."""
    d = len(grid)
    sym = torch.zeros(tuple(grid[:-1]) + (grid[-1] // 2 + 1,), dtype=dtype, device=device)
    for a, (n, h) in enumerate(zip(grid, spacing)):
        k = torch.arange(n if a < d - 1 else n // 2 + 1, dtype=dtype, device=device)
        lam = (2 - 2 * torch.cos(2 * np.pi * k / n)) / h**2
        shape = [1] * d
        shape[a] = -1
        sym = sym + lam.reshape(shape)
    return sym


def tv_norm(gx: torch.Tensor) -> torch.Tensor:
    """Isotropic total variation of a gradient field: sum of the per-voxel gradient magnitude."""
    return torch.sqrt((gx * gx).sum(0)).sum()


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise SD from the finest Haar wavelet detail (Donoho's MAD rule).

    The detail that differences along every axis (``HH`` in 2D, ``HHH`` in 3D) holds almost no
    signal in a smooth image but all of the white noise; the median absolute value divided by
    0.6745 is a robust SD estimate (the rule of ``skimage.restoration.estimate_sigma``, without
    needing PyWavelets).
    """
    x = np.asarray(image, dtype=np.float64)
    x = x[tuple(slice(0, n - n % 2) for n in x.shape)]
    for axis in range(x.ndim):
        even = np.take(x, np.arange(0, x.shape[axis], 2), axis=axis)
        odd = np.take(x, np.arange(1, x.shape[axis], 2), axis=axis)
        x = (even - odd) / np.sqrt(2.0)  # orthonormal Haar detail keeps the noise variance
    return float(np.median(np.abs(x)) / 0.6744897501960817)


def _haar_mean_detail(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block means over 2x2(x2) blocks and the finest all-axes Haar detail of the same blocks."""
    x = np.asarray(image)
    if not (np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize <= 8):
        x = x.astype(np.float64)
    x = x[tuple(slice(0, n - n % 2) for n in x.shape)]
    mean = detail = x
    r2 = np.sqrt(2.0)
    for axis in range(x.ndim):
        ev = (slice(None),) * axis + (slice(0, None, 2),)  # strided views, no copies
        od = (slice(None),) * axis + (slice(1, None, 2),)
        # float64 sums of the (exactly widened) inputs, in place: no float64 copy of the whole image
        mean = np.add(mean[ev], mean[od], dtype=np.float64)
        d = np.subtract(detail[ev], detail[od], dtype=np.float64)
        d /= r2
        detail = d
    # the halvings of the pairwise sums, all at once on the smallest array: a power of two
    # commutes with rounding, so the bits are those of halving after every sum
    mean *= 0.5 ** x.ndim
    return mean, detail


def _tail_quantile(a: np.ndarray, q: float) -> float:
    """``np.quantile(a, q)`` of a 1D float array, bit for bit, for ``q`` near 0 or 1: from its tail only.

    The linear quantile interpolates the order statistics ``k`` and ``k + 1`` (``k = floor((n - 1) q)``)
    with weight ``(n - 1) q - k``; both lie among the values beyond a threshold taken from a strided
    sample, so a partition of those few replaces the partition of all (and numpy interpolates the
    two, so the rounding is its own). Falls back to ``np.quantile`` when the tail misses them.
    """
    n = a.size
    if n < 20000 or 0.01 < q < 0.99:
        return float(np.quantile(a, q))
    v = (n - 1) * q
    k = int(np.floor(v))
    g = v - k
    if k + 1 > n - 1:
        return float(np.quantile(a, q))
    top = q > 0.5
    # a threshold with about 5-10x the needed tail beyond it
    t = float(np.quantile(a[::max(1, n // 4096)], 1 - 10 * (1 - q) if top else 5 * q + 2 / 4096))
    tail = a[a > t] if top else a[a < t]
    c = tail.size
    i = k - (n - c) if top else k  # rank of order statistic k within the tail
    if i < 0 or i + 1 >= c:
        return float(np.quantile(a, q))
    part = np.partition(tail, (i, i + 1))
    return float(np.quantile(np.array([part[i], part[i + 1]]), g))


def _trimmed_var(d: np.ndarray) -> float:
    """Variance of zero-mean, nearly Gaussian ``d`` without its 2 % largest magnitudes (signal leaks).

    Unlike the median of ``|d|`` it does not stick to the lattice of low photon counts; the factor
    undoes the truncation of a Gaussian at its 98 % quantile (2.326 SD).
    """
    a = np.abs(d)
    keep = a <= np.quantile(a, 0.98)
    return float(np.mean(d[keep] ** 2) / 0.87349) if np.any(keep) else 0.0


def estimate_noise_curve(image: np.ndarray, *, n_bins: int = 24, min_count: int | None = None,
                         return_bins: bool = False):
    """Noise variance as a line in the mean intensity, ``var(y) = a * E[y] + k`` (Poisson-Gaussian).

    The all-axes Haar detail of each 2x2(x2) block holds the block's noise (variance: the mean
    of its voxels' variances) and almost none of a blurred signal; the block mean says at which
    intensity. Blocks are binned by mean, each bin's variance is the robust
    trimmed variance (edges that leak signal into the detail are a minority), and the
    line is fitted by weighted least squares (a bin's variance estimate has variance ``~ 2 v^2 / n``).
    ``a`` is the gain (intensity units per photon), ``k = sigma_read^2 - a * offset``. Both
    follow the data: ``c * image`` gives ``(c a, c^2 k)``, ``image + o`` gives ``(a, k - a o)``.
    ``a`` is clipped at 0 (pure Gaussian noise). ``return_bins`` also returns the binned
    ``(means, variances, counts)`` the line was fitted to.
    """
    return _noise_curve(*_haar_mean_detail(image), n_bins=n_bins, min_count=min_count, return_bins=return_bins)


def _noise_curve(mean, d, *, n_bins, min_count, return_bins, m_loc=None):
    from scipy import ndimage

    def _out(a, k, ms, vs, ns):
        bins = tuple(np.asarray(v, dtype=float) for v in (ms, vs, ns))
        return (a, k, bins) if return_bins else (a, k)

    # Bin by the block's own mean (independent of its detail for white noise: orthogonal Haar
    # coefficients) but place each bin at the mean of the local means over 3^ndim blocks: the
    # blocks a bin picks are those whose noise pushed them there, so their own mean is a biased
    # intensity (a too-flat line); the local mean has a ninth to a 27th of that noise.
    m = mean.ravel()
    m_loc = (ndimage.uniform_filter(mean, 3, mode="nearest") if m_loc is None else m_loc).ravel()
    d = d.ravel()
    if min_count is None:  # a bin's variance to ~10 % (200 blocks), fewer on a small image
        min_count = int(np.clip(m.size // 100, 30, 200))
    if m.size < 2 * min_count:
        return _out(0.0, _trimmed_var(d), [], [], [])
    lo, hi = _tail_quantile(m, 0.001), _tail_quantile(m, 0.9999)
    if not hi > lo:
        return _out(0.0, _trimmed_var(d), [], [], [])
    t = np.subtract(m, lo)  # ((m - lo) / (hi - lo)) * n_bins, the same operations, in place on one temporary
    t /= hi - lo
    t *= n_bins
    idx = np.clip(t.astype(np.int64), 0, n_bins - 1)
    # a stable sort of small keys is numpy's radix sort: the same order as on int64, in a fraction of the time
    # (one-byte keys: one radix pass)
    key = np.int8 if n_bins <= 127 else (np.int16 if n_bins <= 32767 else np.int64)
    order = np.argsort(idx.astype(key), kind="stable")
    counts = np.bincount(idx, minlength=n_bins)
    starts = np.concatenate([[0], np.cumsum(counts)])
    ms, vs, ns = [], [], []
    for b in range(n_bins):
        if counts[b] < min_count:
            continue
        sel = order[starts[b]:starts[b + 1]]
        sel = sel[::max(1, sel.size // 20000)]  # 20000 blocks give a variance to 1 %
        ms.append(float(np.mean(m_loc[sel])))
        vs.append(_trimmed_var(d[sel]))
        ns.append(float(counts[b]))
    ms, vs, ns = np.array(ms), np.array(vs), np.array(ns)
    if ms.size < 2 or np.ptp(ms) <= 0:
        return _out(0.0, float(np.average(vs, weights=ns)) if vs.size else 0.0, ms, vs, ns)
    w = ns / np.maximum(vs, 1e-300) ** 2
    a_mat = np.stack([ms, np.ones_like(ms)], axis=1) * np.sqrt(w)[:, None]
    slope, intercept = np.linalg.lstsq(a_mat, vs * np.sqrt(w), rcond=None)[0]
    if slope <= 0:  # no rise of the variance with the intensity: Gaussian noise
        return _out(0.0, float(np.sum(w * vs) / np.sum(w)), ms, vs, ns)
    return _out(float(slope), float(intercept), ms, vs, ns)


class NoiseModel:
    """Signal-dependent noise variance ``max(a * mean + b, floor)`` (Poisson-Gaussian; ``a = 0``: Gaussian)."""

    def __init__(self, a: float, b: float, floor: float):
        self.a, self.b, self.floor = float(a), float(b), float(floor)

    def variance(self, mean):
        """Noise variance at the (noise-free or smoothed) intensity ``mean``, an array or a number."""
        return np.maximum(self.a * np.asarray(mean, dtype=np.float64) + self.b, self.floor)

    def __repr__(self) -> str:
        return f"NoiseModel(a={self.a:.3g}, b={self.b:.3g}, floor={self.floor:.3g})"


def estimate_noise_model(image, *, n_bins: int = 24, min_count: int = 64) -> NoiseModel:
    """Fit a Poisson-Gaussian noise model ``var = a * mean + b`` to a single image.

    The finest Haar detail of each 2^d block holds the block's noise and almost no signal; grouping
    blocks by their mean and taking a robust (MAD) variance of the flattest third of each group (least
    gradient of the block means: edges leak signal into the detail) gives the variance as a function
    of the intensity (Foi et al. 2008's idea, with Haar blocks in place of their wavelet), and a weighted
    line through it gives ``a`` (gain) and ``b`` (read-noise variance; negative where the data carry an
    offset). Bins are evenly spaced in intensity, not in quantiles, so that a stack that is 99 % dark
    still gets bins over its bright voxels. Works in the image's own units: multiplying the image by
    ``c`` multiplies ``a`` by ``c`` and ``b`` by ``c^2``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.tile(np.linspace(10, 200, 256), (256, 1))
    >>> m = estimate_noise_model(rng.poisson(x).astype(float) + 2.0 * rng.standard_normal(x.shape))
    >>> bool(abs(m.a - 1) < 0.15 and abs(m.variance(100.0) - 104) < 15)
    True
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = _haar_mean_detail(x)
    # how much signal a block may hold: the gradient of the block means around it. For white noise
    # the Haar means and details are independent, so choosing blocks by it does not bias the variance.
    edge = np.sqrt(sum(g * g for g in np.gradient(lo))) if min(lo.shape) > 1 else np.zeros_like(lo)
    lo, hi, edge = lo.ravel(), hi.ravel(), edge.ravel()
    if lo.size < 3 * min_count:
        s2 = float(np.median(np.abs(hi)) / 0.6744897501960817) ** 2 if hi.size else 0.0
        return NoiseModel(0.0, s2, max(s2, 1e-30))
    q0, q1 = np.quantile(lo, [0.005, 0.9995])
    edges = np.linspace(q0, q1, n_bins + 1) if q1 > q0 else np.array([q0 - 1, q0 + 1])
    idx = np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, len(edges) - 2)
    mu, var, cnt = [], [], []
    for k in range(len(edges) - 1):
        sel = idx == k
        c = int(sel.sum())
        if c < 3 * min_count:
            continue
        flat = sel & (edge <= np.quantile(edge[sel], 1 / 3))  # the flattest third of the bin
        mu.append(float(np.median(lo[flat])))
        var.append((float(np.median(np.abs(hi[flat]))) / 0.6744897501960817) ** 2)
        cnt.append(int(flat.sum()))
    mu, var, cnt = np.array(mu), np.array(var), np.array(cnt, dtype=np.float64)
    if len(mu) == 0:  # too few blocks per bin: one Gaussian level from all details
        s2 = float(np.median(np.abs(hi)) / 0.6744897501960817) ** 2
        return NoiseModel(0.0, s2, max(0.5 * s2, 1e-30))
    # the darkest populated bin: the floor of any fitted variance (no intensity is less noisy than it)
    floor = 0.5 * float(var[np.argmin(mu)])
    # a MAD variance from c samples has variance about 5.4 var^2 / c: weighted least squares, and the
    # signal-dependent term is kept only where the data show it (slope > 3 standard errors), so a
    # small or edge-dominated image falls back to Gaussian noise
    w = cnt / (5.4 * np.maximum(var, 1e-30) ** 2)
    # the Gaussian level: the flattest half of all blocks (bins of mid intensities can be all edges)
    gauss = (float(np.median(np.abs(hi[edge <= np.quantile(edge, 0.5)]))) / 0.6744897501960817) ** 2
    if len(mu) < 3 or np.ptp(mu) <= 0:
        return NoiseModel(0.0, gauss, max(floor, 1e-30))
    A = np.stack([mu, np.ones_like(mu)], 1)
    AtWA = A.T @ (A * w[:, None])
    a, b = np.linalg.solve(AtWA, A.T @ (w * var))
    se_a = float(np.sqrt(max(np.linalg.inv(AtWA)[0, 0], 0.0)))
    if not (a > 3.0 * se_a):  # variance not rising with intensity: Gaussian
        a, b = 0.0, gauss
    return NoiseModel(a, b, max(floor, 1e-30))
