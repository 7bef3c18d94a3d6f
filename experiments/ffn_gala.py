"""FFN on the gala FIB-SEM volumes: (a) the shipped affinity pipeline, (b) FFN inference, (c) FFN
agglomeration of (a), scored by adapted Rand error and VOI split / merge (GT 0 ignored).

    nice -n 10 python experiments/ffn_gala.py [--model fibsem3d-ffn] [--quick]

Design data: the gala **train** volume (the FFN and the affinity model were trained on it; the
FFN agglomeration's ``agreement`` is chosen there). Held out: the gala **test** volume, scored once
with the settings chosen on train. Rows:

- ``a``: ``fibsem3d-affinity`` with its stored threshold (0.4, chosen on train when it was trained);
- ``a@0.3``: the same at threshold 0.3, a more over-segmented input for the agglomeration;
- ``b``: FFN flood-filling, seeds from the image's own boundary map, unclaimed voxels joined to
  their neighbours by a watershed of that map (``fill_gaps``); move / segment thresholds chosen
  on train from INFERENCE_GRID;
- ``b+aff``: the same with seeds and gap filling on the affinity model's boundary map;
- ``c``: FFN agglomeration of ``a`` (and ``c@0.3`` of ``a@0.3``).

Results go to experiments/results/ffn_gala.md / .json; intermediate segmentations are cached in
--cache so that a rerun only computes what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gala_fibsem_neurons"
AGREEMENTS = (0.5, 0.7, 0.9)
INFERENCE_GRID = ((0.9, 0.6), (0.95, 0.7), (0.98, 0.8))  # (move_threshold, segment_threshold)


def scores(gt, seg):
    from mire.metrics import segmentation_scores

    s = segmentation_scores(gt, seg)
    return {k: round(float(s[k]), 4) for k in ("arand_error", "voi_split", "voi_merge")} | {
        "segments": int(len(np.unique(seg)) - (0 in seg))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fibsem3d-ffn")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "mire" / "ffn_gala"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "ffn_gala"))
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from mire.io import imread
    from mire.segment import FloodFiller, Segmenter, affinities_to_boundaries
    from mire.segment.ffn_agglomerate import apply_merges, ffn_pair_scores

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    ff = FloodFiller.load(args.model)
    aff = Segmenter.load("fibsem3d-affinity")
    vols = {v: (imread(DATA / f"{v}-image.tif"), imread(DATA / f"{v}-gt.tif")) for v in ("train", "test")}
    timing = {}

    def cached(name, fn):
        path = cache / f"{name}.npy"
        if path.exists():
            return np.load(path)
        t = time.perf_counter()
        out = fn()
        timing[name] = round(time.perf_counter() - t, 1)
        np.save(path, out)
        return out

    rows, extra = {}, {}
    for v, (img, gt) in vols.items():
        affs = cached(f"{v}_affs", lambda: aff.predict(img))
        bmap = affinities_to_boundaries(affs[:3], reduce="max")
        a = cached(f"{v}_a", lambda: aff.segment(img))
        a3 = cached(f"{v}_a03", lambda: aff.segment(img, threshold=0.3))
        rows[(v, "a")], rows[(v, "a@0.3")] = scores(gt, a), scores(gt, a3)

        for tag, bnd in (("b", None), ("b+aff", bmap)):
            grid = INFERENCE_GRID if v == "train" else (extra[f"{tag} setting"],)
            for mt, st_ in grid:
                def run_b():
                    seg, st = ff.segment(img, return_stats=True, boundary=bnd, move_threshold=mt,
                                         segment_threshold=st_)
                    extra[f"{v}_{tag}_{mt}_{st_}_stats"] = st
                    return seg
                rows[(v, f"{tag} move={mt} segment={st_}")] = scores(gt, cached(f"{v}_{tag}_{mt}_{st_}", run_b))
            if v == "train":
                extra[f"{tag} setting"] = min(INFERENCE_GRID, key=lambda g: rows[
                    ("train", f"{tag} move={g[0]} segment={g[1]}")]["arand_error"])
        for name, base in (("c", a), ("c@0.3", a3)):
            dpath = cache / f"{v}_{name}_decisions.json"
            if not dpath.exists():
                t0 = time.perf_counter()
                dpath.write_text(json.dumps(ffn_pair_scores(ff, img, base)))
                timing[f"{v}_{name}_pair_scores"] = round(time.perf_counter() - t0, 1)
            decisions = json.loads(dpath.read_text())
            agreements = AGREEMENTS if v == "train" else (extra["agreement"],)
            for t in agreements:
                pr = apply_merges(base, decisions, agreement=t)
                extra[f"{v}_{name}_{t}_pairs / merges"] = [len(decisions), len(pr.log)]
                rows[(v, f"{name} agreement={t}")] = scores(gt, pr.seg)
            if v == "train" and name == "c":
                extra["agreement"] = min(AGREEMENTS, key=lambda t: rows[("train", f"c agreement={t}")]["arand_error"])
    lines = ["# FFN on gala FIB-SEM: affinity pipeline (a), FFN inference (b), FFN agglomeration of (a) (c)", "",
             f"FFN model `{args.model}` ({ff!r}); training: {json.dumps(ff.metadata.get('training'))}", "",
             f"chosen on train: agreement {extra['agreement']}, FFN (move, segment) thresholds "
             f"{extra['b setting']} (b), {extra['b+aff setting']} (b+aff)", "",
             "| volume | method | ARAND | VOI split | VOI merge | segments |", "|---|---|---|---|---|---|"]
    for (v, m), r in rows.items():
        lines.append(f"| {v} | {m} | {r['arand_error']:.4f} | {r['voi_split']:.3f} | {r['voi_merge']:.3f} | "
                     f"{r['segments']} |")
    lines += ["", f"FFN inference stats: {json.dumps({k: v for k, v in extra.items() if 'stats' in k})}",
              f"agglomeration pairs / merges: {json.dumps({k: v for k, v in extra.items() if 'pairs' in k})}",
              f"seconds (computed this run): {json.dumps(timing)}"]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"rows": [{"volume": v, "method": m, **r} for (v, m), r in rows.items()],
                                                    "extra": extra, "seconds": timing}, indent=1, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
