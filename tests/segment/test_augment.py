"""EM augmentations: geometry applied identically to labels, intensity only to the image."""

import numpy as np
import pytest

from mire.segment.augment import (
    augment_em,
    blur_sections,
    contrast_jitter,
    elastic_deform,
    flip_transpose,
    misalign,
    missing_sections,
)


@pytest.fixture
def stack(rng):
    lab = rng.integers(1, 50, size=(6, 20, 20))
    return lab.astype(np.float32) / 50, lab


def test_geometric_transforms_keep_image_and_labels_together(stack):
    img, lab = stack
    for seed in range(8):
        for func in (flip_transpose, misalign):
            out, olab = func(img, lab, rng=np.random.default_rng(seed))
            np.testing.assert_array_equal(out, olab.astype(np.float32) / 50)


def test_elastic_moves_labels_with_image(rng):
    lab = np.kron(rng.integers(1, 50, size=(3, 5, 5)), np.ones((1, 6, 6), int))  # 6 x 6 blocks
    img = lab.astype(np.float32) / 50
    out, olab = elastic_deform(img, lab, rng=np.random.default_rng(0), alpha=3, sigma=4)
    assert not np.array_equal(olab, lab)                 # it did deform
    assert set(np.unique(olab)) <= set(np.unique(lab))  # nearest neighbour: no invented ids
    # far from label edges, linear interpolation of the image equals the nearest label value
    agree = np.isclose(out, olab / 50, atol=1e-6).mean()
    assert agree > 0.3
    # same field for every section when per_section=False
    out, _ = elastic_deform(np.repeat(img[:1], 3, 0), rng=np.random.default_rng(0), per_section=False)
    np.testing.assert_array_equal(out[0], out[2])


def test_missing_and_blurred_sections(stack):
    img, lab = stack
    out, olab = missing_sections(img, lab, rng=np.random.default_rng(0), p=0.5, mode="zero")
    zeroed = [z for z in range(6) if not out[z].any()]
    assert 0 < len(zeroed) < 6 and olab is not None and np.array_equal(olab, lab)
    for z in set(range(6)) - set(zeroed):
        np.testing.assert_array_equal(out[z], img[z])
    out, _ = missing_sections(img, rng=np.random.default_rng(0), p=0.5, mode="duplicate")
    for z in zeroed:  # same draws: the same sections are replaced by their neighbour
        np.testing.assert_array_equal(out[z], out[z - 1] if z else out[1])
    out, _ = blur_sections(img, rng=np.random.default_rng(0), p=0.5)
    changed = [z for z in range(6) if not np.array_equal(out[z], img[z])]
    assert changed == zeroed and all(out[z].std() < img[z].std() for z in changed)


def test_misalign_translation_shifts_the_stack_above_z():
    img = np.zeros((5, 16, 16), np.float32)
    img[:, 8, 8] = 1
    out, _ = misalign(img, rng=np.random.default_rng(3), max_shift=3, mode="translation")
    pos = [tuple(np.argwhere(out[z])[0]) for z in range(5)]
    first_moved = next(z for z in range(5) if pos[z] != (8, 8))
    assert all(pos[z] == (8, 8) for z in range(first_moved))
    assert len(set(pos[first_moved:])) == 1


def test_contrast_jitter_per_section_and_range(stack):
    img, lab = stack
    out, olab = contrast_jitter(img, lab, rng=np.random.default_rng(0))
    assert out.min() >= 0 and out.max() <= 1 and olab is not None
    assert not np.allclose(out[0] / img[0], out[1] / img[1])  # sections differ


def test_augment_chain_and_errors(stack):
    img, lab = stack
    out, olab = augment_em(img, lab, rng=np.random.default_rng(0), p_elastic=1.0)
    assert out.shape == olab.shape == img.shape
    with pytest.raises(TypeError, match="Generator"):
        flip_transpose(img, rng=0)
    with pytest.raises(ValueError, match="does not match"):
        misalign(img, lab[:-1], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="3D"):
        missing_sections(img[0], rng=np.random.default_rng(0))
