"""Label-free over-split indicators for two EM affinity models on the same volume (issue #17, a check, not a score).

The neuroproof medulla cube has no labels; with the seed-1 retrained ``fibsem3d-affinity`` its segment count rose
from 418 to 561. Without ground truth we cannot say which is right, but we can ask of each segmentation:

- **size**: how many segments, and how many are tiny (< 100 voxels, about a 5^3 cube; at 10 nm that is below any
  neurite's cross-section times a few sections), counting those that touch the cube's faces apart (they may be
  real cells clipped by the crop);
- **weak faces**: every contact between two segments is a face; its evidence of a membrane is the median boundary
  probability (1 - affinity, max over the axes, as the pipeline computes it) over its voxel pairs. A face whose
  median boundary probability is below 0.5 separates two segments with no membrane between them: a likely false
  split. Each segmentation's faces are scored by BOTH models' boundary maps (a face that neither model sees as a
  membrane is more suspicious than one only the other model doubts), and by the raw intensity contrast (median
  of the two segments' interiors minus the face's median, in the volume's standard deviations; membranes are dark
  in this FIB-SEM), which no model shaped;
- **new-only splits**: faces of the new segmentation between two new segments that both overlap the same old
  segment most (the old one joined them), with their boundary evidence under both models.

On a labelled volume (``--volume gala-test``, design data) the same indicators are printed beside the true VOI
split, so one can see whether they track over-splitting where it can be measured.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/em_oversplit_check.py --old /tmp/prev/fibsem3d-affinity \
        --new fibsem3d-affinity --volume neuroproof --out em_oversplit_ctl1_np
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"


def face_pairs(seg):
    """Every pair of face-adjacent voxels with two different non-zero labels: (flat index a, flat index b)."""
    idx = np.arange(seg.size).reshape(seg.shape)
    a_all, b_all = [], []
    for ax in range(seg.ndim):
        lo = [slice(None)] * seg.ndim
        hi = [slice(None)] * seg.ndim
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        s0, s1 = seg[tuple(lo)], seg[tuple(hi)]
        m = (s0 != s1) & (s0 > 0) & (s1 > 0)
        a_all.append(idx[tuple(lo)][m])
        b_all.append(idx[tuple(hi)][m])
    return np.concatenate(a_all), np.concatenate(b_all)


def face_medians(seg, a, b, value):
    """Per face (unordered label pair): its voxel-pair count and the median of ``value`` over its voxel pairs."""
    flat = seg.ravel().astype(np.int64)
    u, v = flat[a], flat[b]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    key = lo * (int(flat.max()) + 1) + hi
    pair_val = 0.5 * (value.ravel()[a] + value.ravel()[b])
    order = np.lexsort((pair_val, key))
    key, pair_val = key[order], pair_val[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    med = pair_val[starts + (counts - 1) // 2]  # lower median of each sorted run
    return counts, med, key[starts], int(flat.max()) + 1


def indicators(seg, boundary_maps, raw, *, weak=0.5):
    """The label-free indicators of one segmentation (see the module docstring)."""
    lab = seg.astype(np.int64)
    sizes = np.bincount(lab.ravel())[1:]
    ids = np.flatnonzero(sizes) + 1
    sizes = sizes[ids - 1]
    border = np.zeros(lab.shape, bool)
    for ax in range(lab.ndim):
        sl = [slice(None)] * lab.ndim
        sl[ax] = 0
        border[tuple(sl)] = True
        sl[ax] = -1
        border[tuple(sl)] = True
    touches = np.zeros(int(lab.max()) + 1, bool)
    touches[np.unique(lab[border])] = True
    small = sizes < 100
    r = {"segments": int(ids.size), "median_size": float(np.median(sizes)),
         "tiny_segments": int(small.sum()), "tiny_interior_segments": int((small & ~touches[ids]).sum()),
         "voxels_in_tiny": float(sizes[small].sum() / lab.size)}
    a, b = face_pairs(lab)
    r["faces_voxel_pairs"] = int(a.size)
    for name, bmap in boundary_maps.items():
        counts, med, _, _ = face_medians(lab, a, b, bmap)
        r[f"faces_{name}"] = int(counts.size)
        r[f"weak_face_fraction_{name}"] = float(np.mean(med < weak))  # of faces
        r[f"weak_area_fraction_{name}"] = float(counts[med < weak].sum() / counts.sum())  # of contact area
    # raw contrast: the two segments' interior medians minus the face median, in SDs of the volume
    sm = ndi.gaussian_filter(raw.astype(np.float32), 1.0)
    interior = ndi.median(sm, lab, index=np.arange(int(lab.max()) + 1))
    interior = np.nan_to_num(np.asarray(interior, np.float64))
    counts, med, keys, n = face_medians(lab, a, b, sm)
    lo, hi = keys // n, keys % n
    contrast = (0.5 * (interior[lo] + interior[hi]) - med) / float(sm.std())
    r["raw_contrast_median"] = float(np.median(contrast))
    r["raw_no_dark_face_fraction"] = float(np.mean(contrast <= 0))  # faces not darker than the two interiors
    return r


def _hosts(seg, ref):
    """The ``ref`` label each ``seg`` label overlaps most (0 where it overlaps only ref's 0)."""
    ref = ref.astype(np.int64).ravel()
    n_ref = int(ref.max()) + 1
    cnt = np.bincount(seg.ravel() * n_ref + ref, minlength=(int(seg.max()) + 1) * n_ref).reshape(-1, n_ref)
    cnt[:, 0] = 0
    return cnt.argmax(1)


def new_only_splits(old, new, boundary_maps, *, weak=0.5, gt=None):
    """Faces of the new segmentation inside one old segment: both new segments overlap that old segment most.
    Their count, contact area and boundary evidence (a voxel-level comparison would also count every face the
    new segmentation draws one voxel beside the old one)."""
    new = new.astype(np.int64)
    host = _hosts(new, old)  # the old segment each new one overlaps most (0: none)
    body = _hosts(new, gt) if gt is not None else None
    a, b = face_pairs(new)
    r = {}
    for name, bmap in boundary_maps.items():
        counts, med, keys, n = face_medians(new, a, b, bmap)
        lo, hi = keys // n, keys % n
        inside = (host[lo] == host[hi]) & (host[lo] > 0)
        r.update(new_faces=int(counts.size), new_only_faces=int(inside.sum()),
                 new_only_area_fraction=float(counts[inside].sum() / counts.sum()))
        r[f"new_only_median_boundary_{name}"] = float(np.median(med[inside])) if inside.any() else float("nan")
        r[f"new_only_weak_faces_{name}"] = int((inside & (med < weak)).sum())
        r[f"other_median_boundary_{name}"] = float(np.median(med[~inside])) if (~inside).any() else float("nan")
        if body is not None:  # with labels: is a new-only face a false split (one GT body on both sides)?
            false = (body[lo] == body[hi]) & (body[lo] > 0)
            r.update(new_only_false_by_gt=int((inside & false).sum()), other_false_by_gt=int((~inside & false).sum()))
            r[f"new_only_weak_false_by_gt_{name}"] = int((inside & false & (med < weak)).sum())
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="model name or path stem (the previous weights)")
    p.add_argument("--new", default="fibsem3d-affinity")
    p.add_argument("--volume", default="neuroproof", choices=("neuroproof", "gala-test", "gala-train"))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    from mire.io import imread
    from mire.segment import Segmenter, affinities_to_boundaries

    torch.set_num_threads(1)
    gt = None
    if args.volume == "neuroproof":
        raw = imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")
    else:
        stem = args.volume.split("-")[1]
        raw = imread(DATA / "gala_fibsem_neurons" / f"{stem}-image.tif")
        gt = imread(DATA / "gala_fibsem_neurons" / f"{stem}-gt.tif")
    t0 = time.perf_counter()
    segs, bmaps, rec = {}, {}, {"volume": args.volume, "shape": list(raw.shape), "models": {}}
    for tag, name in (("old", args.old), ("new", args.new)):
        m = Segmenter.load(name)
        seg, aff = m.segment(raw, return_probabilities=True)
        segs[tag] = seg
        bmaps[tag] = affinities_to_boundaries(aff, reduce="max").astype(np.float32)
        rec["models"][tag] = {"model": name, "threshold": float(np.ravel(m.last_settings["threshold"])[0])}
        print(f"{tag}: {name} threshold {rec['models'][tag]['threshold']:.3f}", flush=True)
    for tag in ("old", "new"):
        r = indicators(segs[tag], bmaps, raw)
        if gt is not None:
            from mire.metrics import adapted_rand_error, variation_of_information

            sp, me = variation_of_information(gt, segs[tag], ignore_labels=(0,))
            r.update(arand=float(adapted_rand_error(gt, segs[tag])[0]), voi_split=float(sp), voi_merge=float(me))
        rec["models"][tag].update(r)
        print(tag, json.dumps(r), flush=True)
    rec["new_vs_old"] = new_only_splits(segs["old"], segs["new"], bmaps, gt=gt)
    rec["old_vs_new"] = new_only_splits(segs["new"], segs["old"], bmaps, gt=gt)  # the same the other way round
    print("new vs old", json.dumps(rec["new_vs_old"]), "\nold vs new", json.dumps(rec["old_vs_new"]), flush=True)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    rec["argv"] = " ".join(sys.argv)
    if args.out:
        RESULTS.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS / f".{args.out}.json.tmp"
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(RESULTS / f"{args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
