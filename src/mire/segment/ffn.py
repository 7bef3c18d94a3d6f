"""Flood-filling networks (Januszewski et al. 2018): one object at a time, grown by a moving FOV.

The network (:class:`mire.nets.FFN`) sees a field of view (FOV) of the image and of the current
object's mask logits and returns updated logits. Segmenting a volume:

1. **seeds** at the peaks of the distance transform of a boundary map (by default one made from
   the image itself, :func:`image_boundary`), most interior first (:func:`ffn_seeds`);
2. **flood-fill** from each seed that no object has claimed yet: the mask canvas starts at
   probability 0.05 with 0.95 at the seed; the FOV is evaluated at the seed, and wherever the
   updated mask exceeds ``move_threshold`` on the plane ``delta`` voxels from the FOV centre
   towards one of its faces, the FOV moves there (best first, each lattice position once);
3. **claimed-voxel bookkeeping**: the object is the connected piece around its seed of the
   canvas above ``segment_threshold``, minus the voxels of earlier objects; voxels once claimed
   are never reassigned (the network also sees them as "not this object"). Objects smaller than
   ``min_size`` are dropped (their voxels are not seeded again);
4. optionally (``fill_gaps``) the voxels no object claimed join their neighbours by a seeded
   watershed of the boundary map, so every voxel is labelled as the affinity pipeline labels it.

Training (:meth:`FloodFiller.train`) follows the paper's FOV-movement protocol: seeds are drawn
inside the objects of dense instance labels, the FOV starts at the seed and then moves where the
network's *own* predictions say (the same rule as inference), every FOV evaluation is a gradient
step on the voxelwise sigmoid cross-entropy to the seeded object's mask, and the canvas carries
the predictions from one FOV to the next. Batch ``k`` depends only on ``(seed, k)``, so training
resumes exactly from a checkpoint (:mod:`mire.learn.checkpoint`).

Blockwise inference is in :mod:`mire.segment.ffn_blocks`, FFN agglomeration of an existing
over-segmentation in :mod:`mire.segment.ffn_agglomerate`.
"""

from __future__ import annotations

import heapq
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from mire._validate import check_image
from mire.segment.targets import check_labels

__all__ = ["FloodFiller", "flood_fill", "ffn_seeds", "image_boundary", "is_ffn_model", "fill_gaps", "default_delta",
           "train_ffn"]

FORMAT = "mire-ffn"
FORMAT_VERSION = 1
P_INIT, P_SEED = 0.05, 0.95
LOGIT_INIT = float(math.log(P_INIT / (1 - P_INIT)))
LOGIT_SEED = float(math.log(P_SEED / (1 - P_SEED)))
DEFAULT_INFERENCE = {"move_threshold": 0.9, "segment_threshold": 0.6, "min_size": 100, "max_evals": 5000,
                     "seed_threshold": 0.5, "min_distance": 3.0, "sigma": 1.0, "fill_gaps": True}


def default_delta(fov) -> list[int]:
    """The default FOV move step: half the FOV minus one voxel.

    The paper moves by a quarter FOV (8 for 33) with networks trained for days. Every voxel is
    updated by each FOV that covers it, and a briefly trained network's small biases add up over
    many overlapping updates: on separated blobs a tiny FFN (FOV 9) trained for 60 steps floods
    with an adapted Rand error of 0.14 at step 2, 0.035 at 3 and 0.012 at 4.

    Examples
    --------
    >>> default_delta([9, 11, 33])
    [3, 4, 15]
    """
    return [max(1, int(f) // 2 - 1) for f in fov]


def _logit(p: float) -> float:
    return float(math.log(p / (1 - p)))


# --------------------------------------------------------------------------- seeds
def image_boundary(image, *, sigma: float = 1.0, membranes: str = "dark") -> np.ndarray:
    """A boundary map from a normalized image (intensities already mapped to [0, 1]).

    ``1 - clip(gaussian(image, sigma), 0, 1)`` for dark membranes. Unlike
    :func:`mire.segment.baseline_boundary_map` it rescales nothing, so the blocks of a blockwise
    run, normalized with the whole volume's range, get the same map as a whole-volume run.

    Examples
    --------
    >>> b = image_boundary(np.ones((3, 4)), sigma=0)
    >>> float(b.max())
    0.0
    """
    img = check_image(image, name="image", ndim=(2, 3)).astype(np.float32)
    if membranes not in ("dark", "bright"):
        raise ValueError(f"membranes must be 'dark' or 'bright', got {membranes!r}")
    if sigma > 0:
        img = ndi.gaussian_filter(img, sigma)
    img = np.clip(img, 0, 1)
    return (1 - img if membranes == "dark" else img).astype(np.float32)


def ffn_seeds(boundary, *, threshold: float = 0.5, min_distance: float = 3.0, sigma: float = 1.0,
              mask=None) -> np.ndarray:
    """Seed voxels at the peaks of the distance transform of ``boundary < threshold``.

    One voxel per seed plateau of :func:`mire.segment.distance_seeds` (its distance maximum),
    ordered from the most interior (largest distance) to the least: the flood-filler grows big,
    unambiguous objects first.

    Returns
    -------
    (N, ndim) int64 array of voxel coordinates.

    Examples
    --------
    >>> b = np.ones((9, 20), np.float32); b[2:7, 2:8] = 0; b[1:8, 10:19] = 0
    >>> ffn_seeds(b, sigma=0, min_distance=2).tolist()
    [[4, 13], [4, 4]]
    """
    from mire.segment.watershed import _argmax_per_label, distance_seeds

    seeds, dist = distance_seeds(boundary, threshold=threshold, min_distance=min_distance, sigma=sigma, mask=mask)
    ids = np.unique(seeds)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros((0, seeds.ndim), np.int64)
    flat = _argmax_per_label(dist, seeds, ids)
    order = np.lexsort((flat, -dist.ravel()[flat]))
    return np.stack(np.unravel_index(flat[order], seeds.shape), axis=1).astype(np.int64)


# --------------------------------------------------------------------------- the flood-filler
class _Canvas:
    """One volume being flood-filled: the padded image, the mask canvas and who owns each voxel.

    Everything is padded by half a FOV (the image by reflection), so a FOV may be centred on any
    voxel of the volume; the padding is owned by ``-1`` and never labelled.
    """

    def __init__(self, model, image, *, owner=None, delta, move_threshold: float, device):
        self.model, self.device = model, device
        self.fov = tuple(model.config["fov"])
        self.half = tuple(f // 2 for f in self.fov)
        self.delta = tuple(int(d) for d in delta)
        if any(d < 1 or d > h for d, h in zip(self.delta, self.half)):
            raise ValueError(f"delta {self.delta} must be between 1 and half the FOV {self.half}")
        self.move_logit = _logit(move_threshold)
        self.shape = tuple(image.shape)
        pad = [(h, h) for h in self.half]
        padded = np.pad(image.astype(np.float32), pad, mode="reflect" if min(self.shape) > 1 else "edge")
        self.image = torch.from_numpy(padded).to(device)
        self.canvas = np.full(padded.shape, LOGIT_INIT, np.float32)
        self.owner = np.full(padded.shape, -1, np.int64)
        inner = self.inner = tuple(slice(h, h + n) for h, n in zip(self.half, self.shape))
        self.owner[inner] = 0 if owner is None else owner
        self.evals = 0

    def window(self, centre):
        return tuple(slice(c - h, c + h + 1) for c, h in zip(centre, self.half))

    @torch.no_grad()
    def fill(self, seed, *, max_evals: int | None):
        """Flood-fill from ``seed`` (unpadded coordinates); returns ``(box, mask)`` of the object's
        connected candidate voxels (unclaimed, above the segment threshold is decided by the caller
        through :meth:`object_mask`)."""
        seed = tuple(int(s) + h for s, h in zip(seed, self.half))
        self.canvas[seed] = LOGIT_SEED
        lo = [s for s in seed]
        hi = [s + 1 for s in seed]
        queue = [(0.0, seed)]
        seen = {seed}
        n = 0
        ndim = len(seed)
        while queue and (max_evals is None or n < max_evals):
            _, c = heapq.heappop(queue)
            win = self.window(c)
            prior = self.canvas[win].copy()
            claimed = self.owner[win] != 0
            prior[claimed] = LOGIT_INIT  # other objects' voxels: "not this object"
            x = self.image[win][None, None]
            out = self.model(x, torch.from_numpy(prior)[None, None].to(self.device))[0, 0].cpu().numpy()
            out[claimed] = LOGIT_INIT
            self.canvas[win] = out
            n += 1
            for d in range(ndim):
                lo[d] = min(lo[d], win[d].start)
                hi[d] = max(hi[d], win[d].stop)
            centre_local = self.half
            for d in range(ndim):
                for s in (-1, 1):
                    idx = [slice(None)] * ndim
                    idx[d] = centre_local[d] + s * self.delta[d]
                    score = float(out[tuple(idx)].max())
                    if score < self.move_logit:
                        continue
                    nxt = list(c)
                    nxt[d] = min(max(c[d] + s * self.delta[d], self.half[d]), self.half[d] + self.shape[d] - 1)
                    nxt = tuple(nxt)
                    if nxt not in seen and self.owner[nxt] == 0:
                        seen.add(nxt)
                        heapq.heappush(queue, (-score, nxt))
        self.evals += n
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        return box, seed, n

    def object_mask(self, box, seed, segment_threshold: float):
        """The connected piece around ``seed`` of unclaimed canvas voxels above the threshold; the
        canvas in ``box`` is reset for the next object."""
        cand = (self.canvas[box] >= _logit(segment_threshold)) & (self.owner[box] == 0)
        self.canvas[box] = LOGIT_INIT
        local = tuple(s - b.start for s, b in zip(seed, box))
        if not cand[local]:
            return np.zeros(cand.shape, bool)
        lab, _ = ndi.label(cand)
        return lab == lab[local]

    def labels(self) -> np.ndarray:
        return self.owner[self.inner]


def _check_seeds(seeds, shape) -> np.ndarray:
    pts = np.asarray(seeds, dtype=np.int64).reshape(-1, len(shape))
    bad = np.any((pts < 0) | (pts >= np.asarray(shape)), axis=1)
    if np.any(bad):
        raise ValueError(f"seed {pts[bad][0].tolist()} is outside the volume {shape}")
    return pts


def flood_fill(model, image, *, seeds, delta=None, move_threshold: float = 0.9, segment_threshold: float = 0.6,
               min_size: int = 100, max_evals: int | None = 5000, initial=None, device=None,
               progress: bool = False, return_stats: bool = False):
    """Segment ``image`` (already normalized to [0, 1]) object by object from ``seeds``.

    Parameters
    ----------
    model : :class:`mire.nets.FFN`
    image : (Z, Y, X) or (Y, X) float array, normalized
    seeds : (N, ndim) int array
        Tried in order; a seed on a claimed (or already rejected) voxel is skipped.
    delta : sequence of int, optional
        FOV move step; default :func:`default_delta`.
    move_threshold, segment_threshold : float
        Mask probability that moves the FOV across a face / that makes a voxel part of the object.
    min_size : int
        Objects of fewer voxels are dropped (left 0) and their voxels not seeded again.
    max_evals : int, optional
        FOV evaluations per object at most.
    initial : int array of ``image.shape``, optional
        Objects already claimed (kept unchanged; new objects get ids above them).
    return_stats : bool
        Also return ``{"evals", "dense_evals", "objects", "seeds_tried", "dropped", "seconds"}``;
        ``dense_evals`` is what a sliding window at step ``delta`` over the volume would evaluate.

    Returns
    -------
    labels : int64 array (0 = unclaimed), and the stats dict with ``return_stats``.
    """
    from mire._progress import progress_bar

    img = check_image(image, name="image", ndim=(model.config["ndim"],))
    fov = tuple(model.config["fov"])
    delta = tuple(default_delta(fov)) if delta is None else tuple(int(d) for d in np.broadcast_to(delta, (img.ndim,)))
    owner = None
    if initial is not None:
        owner = check_labels(initial, name="initial labels").astype(np.int64)
        if owner.shape != img.shape:
            raise ValueError(f"initial labels shape {owner.shape} does not match image shape {img.shape}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device).eval()
    cv = _Canvas(model, img, owner=owner, delta=delta, move_threshold=move_threshold, device=device)
    pts = _check_seeds(seeds, img.shape)
    next_id = 1 if owner is None else int(owner.max()) + 1
    rejected = np.zeros(cv.owner.shape, bool)
    tried = dropped = 0
    t0 = time.perf_counter()
    with progress_bar(progress, len(pts), "flood-filling") as bar:
        for p in pts:
            bar.advance()
            q = tuple(int(v) + h for v, h in zip(p, cv.half))
            if cv.owner[q] != 0 or rejected[q]:
                continue
            tried += 1
            box, seed, _ = cv.fill(p, max_evals=max_evals)
            mask = cv.object_mask(box, seed, segment_threshold)
            if mask.sum() >= max(1, min_size):
                view = cv.owner[box]
                view[mask] = next_id  # only unclaimed voxels are in the mask: nothing is reassigned
                next_id += 1
            else:
                dropped += 1
                rejected[box] |= mask
                rejected[seed] = True
    labels = cv.labels().copy()
    if not return_stats:
        return labels
    dense = int(np.prod([-(-n // d) for n, d in zip(img.shape, delta)]))
    stats = {"evals": cv.evals, "dense_evals": dense, "objects": next_id - 1 - (0 if owner is None else int(owner.max())),
             "seeds_tried": tried, "dropped": dropped, "seconds": time.perf_counter() - t0}
    return labels, stats


def fill_gaps(labels, boundary) -> np.ndarray:
    """Unclaimed voxels (0) join the neighbouring object they reach first in a watershed of ``boundary``.

    Examples
    --------
    >>> fill_gaps(np.array([[1, 0, 0, 2]]), np.array([[0, 0.2, 0.9, 0]])).tolist()
    [[1, 1, 2, 2]]
    """
    from skimage.segmentation import watershed

    labels = np.asarray(labels)
    if not np.any(labels):
        return labels
    return watershed(np.asarray(boundary, np.float64), markers=labels.astype(np.int64)).astype(labels.dtype)


# --------------------------------------------------------------------------- training
def _interior_index(labels: np.ndarray):
    """Flat indices of voxels whose face neighbours all share their (non-zero) label, grouped by label:
    ``(ids, starts, flat)`` with the voxels of ``ids[k]`` at ``flat[starts[k]:starts[k + 1]]``."""
    same = labels > 0
    for d in range(labels.ndim):
        a = np.swapaxes(labels, 0, d)
        s = np.swapaxes(same, 0, d)
        s[1:] &= a[1:] == a[:-1]
        s[:-1] &= a[:-1] == a[1:]
    if not same.any():  # objects too thin to have an interior: any labelled voxel
        same = labels > 0
    flat = np.flatnonzero(same)
    lab = labels.ravel()[flat]
    order = np.argsort(lab, kind="stable")
    flat, lab = flat[order], lab[order]
    ids, starts = np.unique(lab, return_index=True)
    return ids, np.append(starts, len(flat)), flat


class _Episodes:
    """Training episodes: crops of ``fov + 2 * moves * delta`` centred on a seed inside an object,
    augmented, with the seeded object's mask as target. Episode ``(step, i)`` depends only on
    ``(seed, step, i)``."""

    def __init__(self, groups, *, fov, delta, moves, seed, em_augment):
        self.fov, self.delta, self.moves = tuple(fov), tuple(delta), int(moves)
        self.crop = tuple(f + 2 * self.moves * d for f, d in zip(self.fov, self.delta))
        self.seed, self.em_augment = int(seed), bool(em_augment)
        self.groups = []
        for img, lab in groups:
            pad = [(c // 2, c // 2) for c in self.crop]
            index = _interior_index(lab)
            if index[0].size == 0:
                continue
            self.groups.append((np.pad(img, pad, mode="reflect"), np.pad(lab, pad, mode="reflect"), index,
                                lab.shape))
        if not self.groups:
            raise ValueError("the labels hold no object (every voxel is 0): nothing to train on")

    def episode(self, rng):
        from mire.segment.augment import blur_sections, contrast_jitter, flip_transpose, misalign, missing_sections

        g = self.groups[int(rng.integers(len(self.groups)))]
        img, lab, (ids, starts, flat), shape = g
        k = int(rng.integers(len(ids)))
        v = flat[int(rng.integers(starts[k], starts[k + 1]))]
        centre = np.unravel_index(v, shape)
        win = tuple(slice(int(c), int(c) + n) for c, n in zip(centre, self.crop))  # padded by crop // 2
        x, y = img[win], lab[win]
        target_id = ids[k]
        if self.em_augment:
            x = np.clip(x, 0, 1)
            if x.shape[-1] == x.shape[-2]:
                x, y = flip_transpose(x, y, rng=rng)
            x, _ = contrast_jitter(x, rng=rng, per_section=x.ndim == 3)
            if x.ndim == 3:
                x, _ = missing_sections(x, rng=rng, p=0.03)
                x, _ = blur_sections(x, rng=rng, p=0.03)
                if rng.random() < 0.1:
                    x, y = misalign(x, y, rng=rng, max_shift=2)
        return x.astype(np.float32), (y == target_id).astype(np.float32)

    def batch(self, step: int, batch_size: int):
        rng = np.random.default_rng([self.seed, int(step)])
        xs, ys = zip(*[self.episode(rng) for _ in range(batch_size)])
        return np.stack(xs), np.stack(ys)


def _moves(out_logits: np.ndarray, centres, *, half, delta, bounds, move_logit, seen):
    """Next FOV centre of every episode: towards the face plane with the highest mask logit above
    ``move_logit`` not visited yet; else stay."""
    ndim = len(half)
    nxt = []
    for i, c in enumerate(centres):
        best, where = move_logit, c
        for d in range(ndim):
            for s in (-1, 1):
                cand = list(c)
                cand[d] = min(max(c[d] + s * delta[d], bounds[d][0]), bounds[d][1])
                cand = tuple(cand)
                if cand in seen[i]:
                    continue
                idx = [i, 0] + [slice(None)] * ndim
                idx[2 + d] = half[d] + s * delta[d]
                score = float(out_logits[tuple(idx)].max())
                if score >= best:
                    best, where = score, cand
        seen[i].add(where)
        nxt.append(where)
    return nxt


def train_ffn(model, groups, *, delta, moves: int = 2, epochs: int = 10, steps_per_epoch: int = 100,
              batch_size: int = 4, lr: float = 1e-3, lr_decay: float = 0.9, move_threshold: float = 0.9,
              em_augment: bool = True, checkpoint_dir=None, resume: bool = True, seed: int = 0, device=None,
              progress: bool = True, callback=None, stop_event=None, time_limit: float | None = None) -> dict:
    """FOV-movement training of an :class:`mire.nets.FFN` on ``groups`` of (normalized image, labels).

    Each step is one batch of episodes: ``moves + 1`` FOV evaluations per episode, each one an
    Adam step on the mean voxelwise sigmoid cross-entropy to the seeded object's mask, the FOV
    moved between them by the network's own (updated) predictions. Checkpoints ``last.*`` (every
    epoch, on interrupt and on ``stop_event`` / ``time_limit``) and ``best.*`` (lowest epoch loss)
    go to ``checkpoint_dir``; ``resume`` continues from ``last.*``. Returns the history (``step``,
    ``epoch``, per-epoch ``loss``, ``best``, ``stopped``, ``seconds``, ``updates``).
    """
    from mire.learn.checkpoint import load_checkpoint, save_checkpoint
    from mire.learn.loop import _progress, check_schedule

    check_schedule(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr)
    torch.manual_seed(seed)
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device)
    fov = tuple(model.config["fov"])
    half = tuple(f // 2 for f in fov)
    episodes = _Episodes(groups, fov=fov, delta=delta, moves=moves, seed=seed, em_augment=em_augment)
    crop = episodes.crop
    bounds = [(h, c - h - 1) for h, c in zip(half, crop)]
    start = tuple(c // 2 for c in crop)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"step": 0, "epoch": 0, "loss": [], "best": None, "stopped": False, "seconds": 0.0, "updates": 0}
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and resume:
        info = load_checkpoint(ckpt, "last", model, opt)
        if info is not None:
            history.update(info.get("history", {}))
    total = epochs * steps_per_epoch
    step = history["step"]
    t0 = time.perf_counter() - history["seconds"]
    t_start = time.perf_counter()
    epoch_losses: list[float] = []
    move_logit = _logit(move_threshold)

    def save(stem):
        if ckpt is not None:
            history["seconds"] = time.perf_counter() - t0
            save_checkpoint(ckpt, stem, model, opt, {"history": history, "config": model.config})

    model.train()
    with _progress(progress) as bar:
        task = bar.add_task("training FFN", total=total, completed=step, loss=float("nan"))
        try:
            while step < total:
                epoch = step // steps_per_epoch
                for group in opt.param_groups:
                    group["lr"] = lr * lr_decay ** epoch
                x, y = episodes.batch(step, batch_size)
                canvas = np.full(x.shape, LOGIT_INIT, np.float32)
                canvas[(slice(None),) + start] = LOGIT_SEED
                centres = [start] * batch_size
                seen = [{start} for _ in range(batch_size)]
                step_loss = []
                for _ in range(moves + 1):
                    wins = [tuple(slice(c - h, c + h + 1) for c, h in zip(cc, half)) for cc in centres]
                    xb = torch.from_numpy(np.stack([x[i][w] for i, w in enumerate(wins)])[:, None]).to(device)
                    cb = torch.from_numpy(np.stack([canvas[i][w] for i, w in enumerate(wins)])[:, None]).to(device)
                    yb = torch.from_numpy(np.stack([y[i][w] for i, w in enumerate(wins)])[:, None]).to(device)
                    out = model(xb, cb)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(out, yb)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower lr")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    history["updates"] += 1
                    step_loss.append(float(loss.detach()))
                    o = out.detach().cpu().numpy()
                    for i, w in enumerate(wins):
                        canvas[i][w] = o[i, 0]
                    centres = _moves(o, centres, half=half, delta=delta, bounds=bounds, move_logit=move_logit,
                                     seen=seen)
                step += 1
                lv = float(np.mean(step_loss))
                epoch_losses.append(lv)
                history["step"], history["epoch"] = step, step // steps_per_epoch
                bar.update(task, completed=step, loss=lv, description=f"epoch {epoch + 1}/{epochs}")
                if callback is not None:
                    callback(step, lv)
                out_of_time = time_limit is not None and time.perf_counter() - t_start > time_limit
                if step % steps_per_epoch == 0 or step == total or out_of_time:
                    history["loss"].append(float(np.mean(epoch_losses)))
                    epoch_losses = []
                    if history["best"] is None or -history["loss"][-1] > history["best"]["score"]:
                        history["best"] = {"score": -history["loss"][-1], "step": step}
                        save("best")
                    save("last")
                if out_of_time or (stop_event is not None and stop_event.is_set()):
                    history["stopped"] = True
                    save("last")
                    break
        except KeyboardInterrupt:
            save("last")
            raise
    model.eval()
    history["seconds"] = time.perf_counter() - t0
    return history


# --------------------------------------------------------------------------- the estimator
class FloodFiller:
    """A flood-filling network with its normalization and inference settings (the FFN counterpart
    of :class:`mire.segment.Segmenter`: ``train`` / ``segment`` / ``save`` / ``load``).

    Parameters
    ----------
    config : dict or str, optional
        FFN config or preset (:func:`mire.nets.build_ffn`): ``"small"`` (default), ``"paper"``,
        ``"tiny"``; keyword ``overrides`` (``fov``, ``depth``, ``width``, ``anisotropic``, ...) update it.
    delta : sequence of int, optional
        FOV move step; default :func:`default_delta` (half the FOV minus one).
    percentiles : (float, float)
        Input intensity percentiles mapped to [0, 1].

    Examples
    --------
    >>> ff = FloodFiller("tiny")
    >>> ff.metadata["delta"], ff.metadata["network"]["fov"]
    ([3, 3, 3], [9, 9, 9])
    """

    def __init__(self, config=None, *, delta=None, percentiles=(1.0, 99.8), **overrides):
        from mire import __version__
        from mire.nets.ffn import build_ffn

        self.model = build_ffn(config, **overrides).eval()
        fov = self.model.config["fov"]
        ndim = self.model.config["ndim"]
        delta = default_delta(fov) if delta is None else [int(d) for d in np.broadcast_to(delta, (ndim,))]
        if any(d < 1 or d > f // 2 for d, f in zip(delta, fov)):
            raise ValueError(f"delta {delta} must be between 1 and half the FOV {fov}")
        self.metadata = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": None, "axes": "ZYX"[-ndim:],
            "kind": "ffn", "target": "object-mask", "delta": delta,
            "normalization": {"method": "percentile", "percentiles": [float(p) for p in percentiles]},
            "inference": dict(DEFAULT_INFERENCE), "agglomeration": {"agreement": 0.6, "min_contact": 20,
                                                                   "max_evals": 8},
            "network": self.model.config, "training": None, "metrics": {}, "mire_version": __version__,
        }

    @property
    def ndim(self) -> int:
        return int(self.model.config["ndim"])

    @property
    def delta(self) -> tuple[int, ...]:
        return tuple(self.metadata["delta"])

    def normalize(self, image, normalization=None) -> np.ndarray:
        """``image`` mapped to [0, 1] by the model's percentiles (or ``normalization = (low, high)``)."""
        from mire.learn.normalize import input_range, normalize

        img = check_image(image, name="image", ndim=(self.ndim,))
        lo, hi = input_range(img, normalization=normalization,
                             percentiles=self.metadata["normalization"]["percentiles"])
        return normalize(img, lo, hi)

    # ------------------------------------------------------------------ training
    def train(self, images, labels, *, epochs: int = 10, steps_per_epoch: int = 100, batch_size: int = 4,
              moves: int = 2, lr: float = 1e-3, lr_decay: float = 0.9, em_augment: bool = True,
              checkpoint_dir=None, resume: bool = True, seed: int = 0, device=None, progress: bool = True,
              callback=None, stop_event=None, time_limit: float | None = None) -> dict:
        """Train (or fine-tune) on images and their dense instance labels (0 = boundary / background).

        See :func:`train_ffn`; ``moves`` FOV moves per episode after the first evaluation.
        """
        from mire.learn.loop import check_schedule

        # before the images are read: a schedule that cannot train is named first
        check_schedule(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr)
        imgs = list(images) if isinstance(images, (list, tuple)) else [images]
        labs = list(labels) if isinstance(labels, (list, tuple)) else [labels]
        if len(imgs) != len(labs):
            raise ValueError(f"{len(imgs)} images but {len(labs)} label volumes")
        groups = []
        for k, (im, lb) in enumerate(zip(imgs, labs)):
            if isinstance(im, (str, Path)) or isinstance(lb, (str, Path)):
                from mire.io import imread

                im = imread(im) if isinstance(im, (str, Path)) else im
                lb = imread(lb) if isinstance(lb, (str, Path)) else lb
            im = check_image(im, name=f"image {k}", ndim=(self.ndim,))
            lb = check_labels(lb, name=f"labels {k}", ndim=(self.ndim,))
            if im.shape != lb.shape:
                raise ValueError(f"labels {k} shape {lb.shape} does not match image {k} shape {im.shape}")
            groups.append((self.normalize(im), lb.astype(np.int64)))
        history = train_ffn(self.model, groups, delta=self.delta, moves=moves, epochs=epochs,
                            steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                            move_threshold=self.metadata["inference"]["move_threshold"], em_augment=em_augment,
                            checkpoint_dir=checkpoint_dir, resume=resume, seed=seed, device=device,
                            progress=progress, callback=callback, stop_event=stop_event, time_limit=time_limit)
        self.metadata["training"] = {
            "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "moves": moves,
            "lr": lr, "lr_decay": lr_decay, "loss": "bce", "em_augment": em_augment, "steps": history["step"],
            "updates": history["updates"], "seconds": round(history["seconds"], 1),
            "final_loss": history["loss"][-1] if history["loss"] else None,
            "fine_tuned_from": self.metadata.get("training"),
        }
        self.model.eval()
        return history

    # ---------------------------------------------------------------- inference
    def _inference(self, overrides) -> dict:
        params = dict(self.metadata["inference"])
        unknown = set(overrides) - set(params)
        if unknown:
            raise TypeError(f"unknown FFN inference option(s) {sorted(unknown)}; use {sorted(params)}")
        params.update(overrides)
        return params

    def segment(self, image, *, boundary=None, seeds=None, initial=None, normalization=None, device=None,
                progress: bool = False, return_stats: bool = False, **inference):
        """Flood-fill ``image`` into instance labels (uint32).

        Parameters
        ----------
        image : (Z, Y, X) array
            Raw EM.
        boundary : float array of ``image.shape``, optional
            Boundary map (1 on membranes) the seeds are placed in (and gaps filled by); default
            :func:`image_boundary` of the normalized image.
        seeds : (N, ndim) int array, optional
            Default :func:`ffn_seeds` of the boundary map.
        initial : int array, optional
            Objects already there: kept, and never reassigned.
        inference
            Overrides of the stored options: ``move_threshold``, ``segment_threshold``, ``min_size``,
            ``max_evals``, ``seed_threshold``, ``min_distance``, ``sigma``, ``fill_gaps``.
        """
        params = self._inference(inference)
        img = self.normalize(image, normalization)
        if boundary is None:
            boundary = image_boundary(img, sigma=params["sigma"])
        else:
            boundary = check_image(boundary, name="boundary map", ndim=(self.ndim,))
            if boundary.shape != img.shape:
                raise ValueError(f"boundary map shape {boundary.shape} does not match image shape {img.shape}")
        if seeds is None:
            seeds = ffn_seeds(boundary, threshold=params["seed_threshold"], min_distance=params["min_distance"],
                              sigma=params["sigma"])
        labels, stats = flood_fill(self.model, img, seeds=seeds, delta=self.delta,
                                   move_threshold=params["move_threshold"],
                                   segment_threshold=params["segment_threshold"], min_size=params["min_size"],
                                   max_evals=params["max_evals"], initial=initial, device=device,
                                   progress=progress, return_stats=True)
        stats["unclaimed_fraction"] = float(np.mean(labels == 0))
        if params["fill_gaps"]:
            labels = fill_gaps(labels, boundary)
        labels = labels.astype(np.uint32)
        return (labels, stats) if return_stats else labels

    def segment_blockwise(self, image, **kwargs):
        """Blockwise :meth:`segment` with IDs consistent across blocks (:func:`mire.segment.ffn_blocks.flood_fill_blockwise`)."""
        from mire.segment.ffn_blocks import flood_fill_blockwise

        return flood_fill_blockwise(self, image, **kwargs)

    def agglomerate(self, image, segmentation, **kwargs):
        """FFN agglomeration of an over-segmentation (:func:`mire.segment.ffn_agglomerate.ffn_agglomerate`)."""
        from mire.segment.ffn_agglomerate import ffn_agglomerate

        return ffn_agglomerate(self, image, segmentation, **kwargs)

    # ------------------------------------------------------------------- files
    def save(self, path) -> Path:
        """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns the stem."""
        from mire.learn.modelfile import save_model

        return save_model(path, self.model, self.metadata, fmt=FORMAT)

    @classmethod
    def load(cls, name_or_path) -> "FloodFiller":
        """Load a shipped FFN by name (:func:`mire.models.available`) or a saved one by path."""
        from mire.learn.modelfile import load_weights, read_model_metadata

        meta, meta_path, weights_path = read_model_metadata(
            name_or_path, fmt=FORMAT, version=FORMAT_VERSION, kind="flood-filling",
            required=("network", "delta", "normalization", "inference"))
        try:
            ff = cls(meta["network"], delta=meta["delta"], percentiles=meta["normalization"]["percentiles"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{meta_path}: invalid network description: {exc}") from None
        load_weights(ff.model, meta, meta_path, weights_path)
        ff.metadata.update({k: v for k, v in meta.items() if k != "weights_sha256"})
        ff.metadata["inference"] = dict(DEFAULT_INFERENCE, **meta["inference"])
        return ff

    def __repr__(self):
        from mire.nets import count_parameters

        return (f"FloodFiller({self.metadata.get('name') or 'unnamed'!r}, fov={tuple(self.model.config['fov'])}, "
                f"delta={self.delta}, parameters={count_parameters(self.model)})")


def is_ffn_model(name_or_path) -> bool:
    """Whether a shipped model name or saved model path is a flood-filling network."""
    from mire import models
    from mire.learn.checkpoint import read_json
    from mire.learn.modelfile import model_stem

    name = str(name_or_path)
    if name in models.available():
        return models.load_metadata(name).get("format") == FORMAT
    stem = model_stem(name_or_path)
    meta = stem.with_name(stem.name + ".json")
    return meta.exists() and read_json(meta).get("format") == FORMAT
