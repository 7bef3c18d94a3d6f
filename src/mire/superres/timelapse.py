"""Time-lapse super-resolution (XYZT, paper Fig. 2): registration smoothed over time, then MAP.

In a time-lapse (e.g. two-photon stacks of a moving animal) the motion of frame t is
correlated with that of frame t - 1. Each registration parameter (shift per axis,
rotation) is modelled as a linear dynamical system, a random walk observed in noise:

    theta_t = theta_{t-1} + w_t,  w_t ~ N(0, q)      (motion)
    z_t     = theta_t + v_t,      v_t ~ N(0, r)      (per-frame registration estimate)

The Kalman filter and Rauch-Tung-Striebel smoother give the posterior mean of every
theta_t given all measurements; ``q`` and ``r`` are learned by EM (Shumway and Stoffer)
unless given. The smoothed motion then drives the MAP reconstruction.
"""

from __future__ import annotations

import numpy as np

from mire.superres._model import check_frames
from mire.superres.register import register_frames, relative_registration


def _kalman_rts(z: np.ndarray, q: np.ndarray, r: np.ndarray, m0: np.ndarray, p0: float):
    """Filter + smoother for independent random walks, vectorized over columns of ``z`` (T, k)."""
    n_t, k = z.shape
    mf, pf = np.empty((n_t, k)), np.empty((n_t, k))
    mp, pp = np.empty((n_t, k)), np.empty((n_t, k))
    m, p = m0, np.full(k, p0)
    for t in range(n_t):
        mp[t], pp[t] = m, p + (q if t > 0 else 0.0)
        gain = pp[t] / (pp[t] + r)
        mf[t] = mp[t] + gain * (z[t] - mp[t])
        pf[t] = (1 - gain) * pp[t]
        m, p = mf[t], pf[t]
    ms, ps = mf.copy(), pf.copy()
    lag1 = np.zeros((n_t, k))  # Cov(theta_t, theta_{t-1} | all), for EM
    for t in range(n_t - 2, -1, -1):
        c = pf[t] / pp[t + 1]
        ms[t] = mf[t] + c * (ms[t + 1] - mp[t + 1])
        ps[t] = pf[t] + c**2 * (ps[t + 1] - pp[t + 1])
        lag1[t + 1] = c * ps[t + 1]
    return ms, ps, lag1


def kalman_smooth(observations, *, process_var=None, obs_var=None, n_em: int = 30) -> tuple[np.ndarray, dict]:
    """Smooth per-frame parameter estimates (T, k) with a random-walk Kalman smoother.

    Parameters
    ----------
    observations : (T,) or (T, k) array
        Noisy per-frame estimates (e.g. shifts and rotations), one column per parameter.
    process_var, obs_var : float or (k,) array, optional
        Variances ``q`` of the frame-to-frame motion and ``r`` of the measurement noise.
        Learned by EM (per column) when None.
    n_em : int
        EM iterations when a variance is learned.

    Returns
    -------
    smoothed : ndarray, same shape as ``observations``
    info : dict with ``process_var``, ``obs_var`` (k,) and ``posterior_var`` (T, k).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.cumsum(rng.normal(0, 0.1, 200))
    >>> z = truth + rng.normal(0, 1.0, 200)
    >>> s, info = kalman_smooth(z)
    >>> bool(np.std(s - truth) < 0.5 * np.std(z - truth))
    True
    """
    z = np.asarray(observations, dtype=float)
    one_d = z.ndim == 1
    z = z[:, None] if one_d else z
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"observations must be (T,) or (T, k) with T >= 2, got shape {np.shape(observations)}")
    if not np.all(np.isfinite(z)):
        raise ValueError("observations contain NaN or infinite values")
    n_t, k = z.shape
    dz = np.diff(z, axis=0)
    q = np.broadcast_to(np.asarray(process_var if process_var is not None else np.var(dz, axis=0) / 4 + 1e-12,
                                   dtype=float), (k,)).copy()
    r = np.broadcast_to(np.asarray(obs_var if obs_var is not None else np.var(dz, axis=0) / 4 + 1e-12,
                                   dtype=float), (k,)).copy()
    if np.any(q <= 0) or np.any(r <= 0):
        raise ValueError("process_var and obs_var must be > 0")
    p0 = float(np.max(np.var(z, axis=0)) * 10 + 1e-6)  # a vague prior on the first state
    for _ in range(n_em if (process_var is None or obs_var is None) else 0):
        ms, ps, lag1 = _kalman_rts(z, q, r, z[0], p0)
        if process_var is None:  # E[(theta_t - theta_{t-1})^2]
            q = np.mean((ms[1:] - ms[:-1]) ** 2 + ps[1:] + ps[:-1] - 2 * lag1[1:], axis=0) + 1e-12
        if obs_var is None:  # E[(z_t - theta_t)^2]
            r = np.mean((z - ms) ** 2 + ps, axis=0) + 1e-12
    ms, ps, _ = _kalman_rts(z, q, r, z[0], p0)
    return (ms[:, 0] if one_d else ms), {"process_var": q, "obs_var": r, "posterior_var": ps}


def superresolve_timelapse(frames, *, factor, window: int | None = None, step: int | None = None,
                           smooth: bool = True, process_var=None, obs_var=None, method: str = "map",
                           return_info: bool = False, **kwargs):
    """Super-resolve a time-lapse whose motion is smooth in time.

    1. Register every frame to frame 0 (:func:`register_frames`; 3D stacks: shifts in Z, Y,
       X and a rotation in the YX plane).
    2. Smooth each motion parameter over time with :func:`kalman_smooth` (``smooth=True``).
    3. Reconstruct with :func:`superresolve` (``method``, default MAP) using the smoothed
       motion as registration (and as the centre of the registration prior).

    Parameters
    ----------
    frames : (T, Y, X) or (T, Z, Y, X) array
        The time-lapse, time first.
    factor : int or tuple of int
        Super-resolution factor per spatial axis (e.g. ``(1, 2, 2)`` for ZYX).
    window : int, optional
        None: one high-res image from the whole sequence, in the coordinates of frame 0.
        An integer: one high-res image per window of ``window`` consecutive frames
        (starting every ``step`` frames, default ``window``), each in the coordinates of
        its window's first frame: a high-res time-lapse when the scene itself changes.
    smooth : bool
        Kalman-smooth the registration (False: per-frame estimates, for comparison).
    process_var, obs_var : optional
        Fixed variances of the smoother (learned by EM when None).
    **kwargs
        Passed on to :func:`superresolve` (``prior``, ``psf_sigma``, ``robust``, ...).

    Returns
    -------
    image : ndarray
        One high-res image, or (n_windows, *hr_shape) when ``window`` is given.
    info : dict, with ``return_info``: ``raw_registration``, ``registration`` (smoothed),
        ``smoother`` (variances) and ``windows`` (start indices).

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.random.default_rng(0).random((6, 12, 12))
    >>> superresolve_timelapse(frames, factor=2, window=3, method="ml", n_outer=1).shape
    (2, 24, 24)
    """
    from mire.superres.api import superresolve

    arr, f = check_frames(frames, factor=factor)
    n_t, d = arr.shape[0], arr.ndim - 1
    if window is not None and not 1 <= int(window) <= n_t:
        raise ValueError(f"window must be between 1 and the number of frames ({n_t}), got {window}")
    step = int(step or window or n_t)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    raw = register_frames(arr, factor=f, reference=0)
    params = np.c_[raw["shifts"], raw["rotations"]]
    smoother = {}
    if smooth and n_t > 2:
        sm, smoother = kalman_smooth(params, process_var=process_var, obs_var=obs_var)
        # express in the coordinates of the smoothed frame 0 (the reference must be the identity)
        rel = relative_registration(sm[:, :d], sm[:, d])
        params = np.c_[rel["shifts"], rel["rotations"]]
    registration = {"shifts": params[:, :d], "rotations": params[:, d]}
    if window is None:
        out = superresolve(arr, factor=f, method=method, registration=registration, **kwargs)
        starts = [0]
    else:
        window = int(window)
        starts = list(range(0, n_t - window + 1, step))
        images = []
        for s in starts:
            rel = relative_registration(params[s:s + window, :d], params[s:s + window, d])
            images.append(superresolve(arr[s:s + window], factor=f, method=method, registration=rel, **kwargs))
        out = np.stack(images)
    if not return_info:
        return out
    return out, {"raw_registration": raw, "registration": registration, "smoother": smoother, "windows": starts}
