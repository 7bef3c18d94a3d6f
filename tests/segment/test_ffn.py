"""Flood-filling networks: training, flood-fill bookkeeping, blockwise inference, FFN agglomeration."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from mire.metrics import adapted_rand_error
from mire.segment import Proofreader, replay
from mire.segment.ffn import FloodFiller, ffn_seeds, flood_fill, image_boundary
from mire.segment.ffn_agglomerate import contact_pairs


def blobs(shape=(24, 48, 48), seed=0, r=(4, 7)):
    """Bright balls on a dark background, each at least 3 voxels from every other (the GT)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    zz, yy, xx = np.indices(shape)
    k = 0
    for _ in range(200):
        c = [rng.integers(r[1], s - r[1]) for s in shape]
        m = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= rng.uniform(*r) ** 2
        if np.any(lab[ndi.binary_dilation(m, iterations=3)]):
            continue
        k += 1
        lab[m] = k
    img = ndi.gaussian_filter((lab > 0) * 0.7 + 0.15, 0.7) + rng.normal(0, 0.05, shape)
    return img.astype(np.float32), lab


@pytest.fixture(scope="module")
def trained():
    """A tiny FFN (FOV 9) trained for ~5 s on one blob volume."""
    torch.manual_seed(0)
    img, lab = blobs(seed=0)
    ff = FloodFiller("tiny", delta=4)
    ff.metadata["inference"]["min_size"] = 20
    hist = ff.train(img, lab, epochs=3, steps_per_epoch=20, moves=3, batch_size=4, lr=3e-3, em_augment=False,
                    progress=False)
    assert hist["loss"][-1] < hist["loss"][0] / 2
    return ff


def _objects_of(seg, gt):
    """For each predicted object, the GT blobs it touches."""
    return {int(i): set(np.unique(gt[seg == i])) - {0} for i in np.unique(seg) if i}


def test_floods_each_blob_alone(trained):
    img, gt = blobs(seed=1)  # not the training volume
    seg, stats = trained.segment(img, fill_gaps=False, return_stats=True)
    touched = _objects_of(seg, gt)
    assert all(len(t) == 1 for t in touched.values())  # no object spans two blobs
    for g in range(1, gt.max() + 1):  # every blob is one object, almost entirely
        ids, n = np.unique(seg[gt == g], return_counts=True)
        assert ids[np.argmax(n)] != 0 and n.max() >= 0.9 * n.sum()
    assert len(touched) == gt.max()
    assert adapted_rand_error(gt, seg)[0] < 0.05
    assert 0 < stats["evals"] < stats["dense_evals"]  # far fewer FOVs than a sliding window


def test_claimed_voxels_never_reassigned(trained):
    img, gt = blobs(seed=1)
    x = trained.normalize(img)
    initial = np.where(gt == 2, 7, 0)
    greedy = FloodFiller("tiny", delta=4)
    greedy.model.load_state_dict(trained.model.state_dict())
    with torch.no_grad():
        greedy.model.head.bias.fill_(20.0)  # predicts "object" everywhere: floods all it reaches
    seeds = np.concatenate([np.argwhere(gt == 2)[:1], ffn_seeds(image_boundary(x))])
    labels, stats = flood_fill(greedy.model, x, seeds=seeds, delta=4, min_size=1, initial=initial,
                               return_stats=True)
    np.testing.assert_array_equal(labels[gt == 2], 7)  # the pre-claimed object is untouched
    assert np.all(labels[initial == 0] != 7)
    # the first seed outside it floods everything unclaimed; every later seed is on claimed voxels
    assert stats["objects"] == 1 and set(np.unique(labels)) == {7, 8}
    # the trained net, seeded twice in each blob: the second seed of a blob is skipped
    seeds = np.concatenate([[np.argwhere(gt == g)[0], np.argwhere(gt == g)[-1]] for g in range(1, gt.max() + 1)])
    labels, stats = flood_fill(trained.model, x, seeds=seeds, delta=4, min_size=1, return_stats=True)
    assert stats["objects"] == gt.max() and stats["seeds_tried"] == gt.max()


def test_blockwise_equals_whole_volume(trained):
    img, _ = blobs(shape=(24, 48, 48), seed=2)
    whole = trained.segment(img, fill_gaps=False)
    lo, hi = np.percentile(img, trained.metadata["normalization"]["percentiles"])
    blocks = trained.segment_blockwise(img, block_shape=(24, 24, 24), halo=16, fill_gaps=False,
                                       normalization=(lo, hi), workers=1)
    assert whole.max() == blocks.max() > 5
    # the same objects: a one-to-one map between the two labelings
    pairs = np.unique(np.stack([whole.ravel(), np.asarray(blocks).ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_blockwise_resumes_to_a_path(trained, tmp_path):
    img, _ = blobs(shape=(12, 32, 32), seed=3, r=(3, 5))
    out = tmp_path / "ffn.zarr"
    a = np.asarray(trained.segment_blockwise(img, block_shape=(12, 16, 16), halo=8, out=str(out), workers=1))
    assert out.exists() and a.max() > 0
    with pytest.raises(FileExistsError):
        trained.segment_blockwise(img, block_shape=(12, 16, 16), halo=8, out=str(out))


def _two_objects_oversegmented():
    """A bright slab split by an arbitrary cut into segments 1 | 2, and a second slab (3) behind a
    3-voxel dark membrane; segments 2 and 3 share the membrane, as a watershed would cut it."""
    gt = np.zeros((16, 24, 36), np.int32)
    gt[3:13, 4:20, 2:18] = 1
    gt[3:13, 4:20, 21:34] = 2
    img = ndi.gaussian_filter((gt > 0) * 0.7 + 0.15, 0.7) + np.random.default_rng(0).normal(0, 0.05, gt.shape)
    seg = np.zeros_like(gt)
    seg[gt == 1] = 1
    seg[:, :, 10:18][gt[:, :, 10:18] == 1] = 2  # the false split of object 1
    seg[3:13, 4:20, 18:20] = 2  # the membrane, half to each side
    seg[3:13, 4:20, 20:21] = 3
    seg[gt == 2] = 3
    return img.astype(np.float32), gt, seg


def test_agglomeration_never_merges_what_gt_separates(trained):
    img, gt, seg = _two_objects_oversegmented()
    pairs, counts, _ = contact_pairs(seg)
    assert pairs.tolist() == [[1, 2], [2, 3]] and counts.min() >= 20
    pr, decisions = trained.agglomerate(img, seg, return_decisions=True)
    merged = {tuple(d["ids"]) for d in decisions if d["merged"]}
    assert (2, 3) not in merged  # the GT separates them
    assert (1, 2) in merged  # the false split is fixed
    assert pr.log == [{"op": "merge", "ids": [1, 2], "into": 1}]
    np.testing.assert_array_equal(replay(seg, pr.log), pr.seg)
    assert set(np.unique(pr.seg[gt == 2])) == {3}
    # into an existing proofreading session, undoable
    session = Proofreader(seg)
    trained.agglomerate(img, seg, proofreader=session)
    assert session.undo()["op"] == "merge" and np.array_equal(session.seg, seg)


def test_save_load_roundtrip(trained, tmp_path):
    stem = trained.save(tmp_path / "ffn")
    back = FloodFiller.load(stem)
    assert back.delta == trained.delta and back.metadata["inference"] == trained.metadata["inference"]
    img, _ = blobs(shape=(12, 32, 32), seed=3, r=(3, 5))
    np.testing.assert_array_equal(back.segment(img), trained.segment(img))
    from mire.segment.ffn import is_ffn_model

    assert is_ffn_model(stem) and not is_ffn_model("fibsem3d-affinity")
    with pytest.raises(ValueError, match="not a mire flood-filling model"):
        FloodFiller.load("fibsem3d-affinity")


def test_training_resumes_exactly(tmp_path):
    img, lab = blobs(shape=(12, 32, 32), seed=4, r=(3, 5))
    kw = dict(steps_per_epoch=2, batch_size=2, moves=1, progress=False)
    torch.manual_seed(0)
    a = FloodFiller("tiny")
    a.train(img, lab, epochs=2, **kw)
    torch.manual_seed(0)
    b = FloodFiller("tiny")
    b.train(img, lab, epochs=1, checkpoint_dir=tmp_path, **kw)
    b2 = FloodFiller("tiny")
    b2.model.load_state_dict(b.model.state_dict())  # any start: the checkpoint overrides it
    hist = b2.train(img, lab, epochs=2, checkpoint_dir=tmp_path, **kw)
    assert hist["step"] == 4 and hist["updates"] == 8
    for p, q in zip(a.model.parameters(), b2.model.parameters()):
        torch.testing.assert_close(p, q)


def test_bad_inputs():
    ff = FloodFiller("tiny")
    with pytest.raises(ValueError, match="delta"):
        FloodFiller("tiny", delta=5)
    with pytest.raises(TypeError, match="unknown FFN inference option"):
        ff.segment(np.zeros((9, 9, 9)), threshold=0.5)
    with pytest.raises(ValueError, match="no object"):
        ff.train(np.random.rand(9, 16, 16), np.zeros((9, 16, 16), int), epochs=1, steps_per_epoch=1, progress=False)
    with pytest.raises(ValueError, match="outside the volume"):
        flood_fill(ff.model, np.zeros((9, 9, 9)), seeds=[[9, 0, 0]])


def test_cli_train_ffn_then_segment(tmp_path):
    import tifffile
    from typer.testing import CliRunner

    from mire.cli import app

    img, lab = blobs(shape=(12, 32, 32), seed=4, r=(3, 5))
    ip, lp = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(ip, (img * 255).clip(0, 255).astype(np.uint8))
    tifffile.imwrite(lp, lab)
    runner = CliRunner()
    res = runner.invoke(app, ["train-segment", "--kind", "ffn", "--preset", "tiny", "-i", str(ip), "-l", str(lp),
                              "-o", str(tmp_path / "ffn"), "--epochs", "1", "--steps", "2", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert "episodes" in res.output
    res = runner.invoke(app, ["segment", str(ip), str(tmp_path / "seg.tif"), "--model", str(tmp_path / "ffn")])
    assert res.exit_code == 0, res.output
    assert "FOV evaluations" in res.output and tifffile.imread(tmp_path / "seg.tif").shape == img.shape
    res = runner.invoke(app, ["segment", str(ip), str(tmp_path / "segb.tif"), "--model", str(tmp_path / "ffn"),
                              "--block-size", "12,16,16", "--workers", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train-segment", "--kind", "ffn", "-i", str(ip), "-l", str(lp), "-o",
                              str(tmp_path / "x"), "--patch", "8,8,8"])
    assert res.exit_code != 0 and "--patch is for --kind unet" in res.output


def test_napari_segment_session_runs_an_ffn(trained, tmp_path):
    from mire._napari import _actions

    img, _ = blobs(shape=(12, 32, 32), seed=3, r=(3, 5))
    stem = trained.save(tmp_path / "ffn")
    session = _actions.SegmentSession(img, model=str(stem))
    np.testing.assert_array_equal(session.labels(0.3), trained.segment(img))
    assert session.labels(0.9) is session.labels(0.3)


@pytest.mark.parametrize("option, value, message", [
    ("epochs", 0, "epochs must be a positive integer, got 0"),
    ("steps_per_epoch", -1, "steps_per_epoch must be a positive integer, got -1"),
    ("lr", float("nan"), "lr (learning rate) must be a positive number, got nan"),
])
def test_train_refuses_a_schedule_that_cannot_train(tmp_path, option, value, message):
    # the shared check of Segmenter/Restorer training, before any step or checkpoint
    image = np.zeros((24, 24), dtype=np.float32)
    labels = np.ones((24, 24), dtype=np.int64)
    with pytest.raises(ValueError) as err:
        FloodFiller("tiny").train(image, labels, checkpoint_dir=tmp_path / "ck", progress=False, **{option: value})
    assert str(err.value) == message
    assert not (tmp_path / "ck").exists()
