"""FFN on the gala FIB-SEM volumes: (a) the shipped affinity pipeline, (b) FFN inference, (c) FFN
agglomeration of (a), scored by adapted Rand error and VOI split / merge (GT 0 ignored).

    nice -n 10 python experiments/ffn_gala.py --volumes train &     # the two volumes can run
    nice -n 10 python experiments/ffn_gala.py --volumes test &      # in parallel (cached)
    python experiments/ffn_gala.py                                  # the table, from the caches

Design data: the gala **train** volume (the FFN and the affinity model were trained on it; the
FFN's move / segment thresholds and the agglomeration's ``agreement`` are chosen there). Held
out: the gala **test** volume. Every setting is computed on both volumes (so that they can run
in parallel), but the table's **chosen** rows are picked by their train score only. Rows:

- ``a``: ``fibsem3d-affinity`` with its stored threshold (0.4, chosen on train when it was trained);
- ``b``: FFN flood-filling, seeds from the image's own boundary map, unclaimed voxels joined to
  their neighbours by a watershed of that map (``fill_gaps``), for each (move, segment) threshold
  pair of INFERENCE_GRID;
- ``b+aff``: the same with seeds and gap filling on the affinity model's boundary map;
- ``c``: FFN agglomeration of ``a`` at each agreement of AGREEMENTS (one set of FFN runs per
  pair, :func:`mire.segment.ffn_agglomerate.ffn_pair_scores`); ``c@0.2`` of ``a@0.2``, the
  affinity pipeline at threshold 0.2 (more over-segmented). Ties on train go to the higher
  agreement (fewer merges); that rule was set after a first run had shown the test rows.

Results go to experiments/results/ffn_gala.md / .json; intermediate results are cached in --cache.
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
INFERENCE_GRID = ((0.9, 0.6, None), (0.95, 0.8, None), (0.9, 0.6, 30))  # (move, segment threshold, max_evals)


def scores(gt, seg):
    from mire.metrics import segmentation_scores

    s = segmentation_scores(gt, seg)
    return {k: round(float(s[k]), 4) for k in ("arand_error", "voi_split", "voi_merge")} | {
        "segments": int(len(np.unique(seg)) - (0 in seg))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fibsem3d-ffn")
    p.add_argument("--volumes", default="train,test")
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
    volumes = args.volumes.split(",")

    def cached(name, fn):
        """``fn() -> (array, info)`` once; then the array and its info from the cache."""
        path, meta = cache / f"{name}.npy", cache / f"{name}.json"
        if path.exists() and meta.exists():
            return np.load(path), json.loads(meta.read_text())
        t = time.perf_counter()
        out, info = fn()
        info = dict(info or {}, seconds=round(time.perf_counter() - t, 1))
        np.save(path, out)
        meta.write_text(json.dumps(info))
        return out, info

    rows, info = {}, {}
    for v in volumes:
        img, gt = imread(DATA / f"{v}-image.tif"), imread(DATA / f"{v}-gt.tif")
        affs, _ = cached(f"{v}_affs", lambda: (aff.predict(img), None))
        bmap = affinities_to_boundaries(affs[:3], reduce="max")
        a, info[(v, "a")] = cached(f"{v}_a", lambda: (aff.segment(img), None))
        rows[(v, "a")] = scores(gt, a)
        for tag, bnd in (("b", None), ("b+aff", bmap)):
            for mt, st, me in INFERENCE_GRID:
                name = f"{tag} move={mt} segment={st}" + ("" if me is None else f" max_evals={me}")
                kw = {} if me is None else {"max_evals": me}
                seg, info[(v, name)] = cached(f"{v}_{tag}_{mt}_{st}" + ("" if me is None else f"_e{me}"),
                                              lambda: ff.segment(img, return_stats=True, boundary=bnd, move_threshold=mt,
                                                                 segment_threshold=st, **kw))
                rows[(v, name)] = scores(gt, seg)
        a2, _ = cached(f"{v}_a02", lambda: (aff.segment(img, threshold=0.2), None))
        rows[(v, "a@0.2")] = scores(gt, a2)
        for fam, base in (("c", a), ("c@0.2", a2)):
            dpath = cache / f"{v}_{fam}_decisions.json"
            if not dpath.exists():
                t0 = time.perf_counter()
                dec = ffn_pair_scores(ff, img, base)
                dpath.write_text(json.dumps({"decisions": dec, "seconds": round(time.perf_counter() - t0, 1)}))
            doc = json.loads(dpath.read_text())
            for t in AGREEMENTS:
                pr = apply_merges(base, doc["decisions"], agreement=t)
                rows[(v, f"{fam} agreement={t}")] = scores(gt, pr.seg)
                info[(v, f"{fam} agreement={t}")] = {"pairs": len(doc["decisions"]), "merges": len(pr.log),
                                                     "pair_seconds": doc["seconds"]}
    lines = ["# FFN on gala FIB-SEM: affinity pipeline (a), FFN inference (b), FFN agglomeration of (a) (c)", "",
             f"FFN model `{args.model}` ({ff!r}); training: {json.dumps(ff.metadata.get('training'))}", "",
             "Design: train volume (everything trained and chosen there). Held out: test volume. "
             "**chosen** = the setting of its family with the lowest train ARAND.", ""]
    chosen = set()
    if "train" in volumes:
        for fam in ("b ", "b+aff ", "c ", "c@0.2 "):
            cands = [m for (v, m) in rows if v == "train" and m.startswith(fam)]
            # ties (e.g. no merge at any agreement): the last, most conservative setting of the list
            chosen.add(min(reversed(cands), key=lambda m: rows[("train", m)]["arand_error"]))
    lines += ["| volume | method | ARAND | VOI split | VOI merge | segments | notes |", "|---|---|---|---|---|---|---|"]
    for (v, m), r in rows.items():
        note = {k: val for k, val in (info.get((v, m)) or {}).items()
                if k in ("evals", "dense_evals", "objects", "unclaimed_fraction", "seconds", "pairs", "merges",
                         "pair_seconds")}
        if "unclaimed_fraction" in note:
            note["unclaimed_fraction"] = round(note["unclaimed_fraction"], 3)
        mark = " **chosen**" if m in chosen else ""
        lines.append(f"| {v} | {m}{mark} | {r['arand_error']:.4f} | {r['voi_split']:.3f} | {r['voi_merge']:.3f} | "
                     f"{r['segments']} | {json.dumps(note)} |")
    out = args.out if set(volumes) == {"train", "test"} else f"{args.out}_{'_'.join(volumes)}"
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    Path(out + ".json").write_text(json.dumps(
        {"rows": [{"volume": v, "method": m, **r, "info": info.get((v, m))} for (v, m), r in rows.items()],
         "chosen": sorted(chosen)}, indent=1, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
