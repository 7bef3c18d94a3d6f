"""EM segmentation: training targets, watershed, agglomeration, proofreading and the pipelines.

Boundary maps are 1 on membranes; affinities are 1 between voxels of one object. Agglomeration
scores and thresholds are boundary scores (``1 - affinity``, as in waterz). ``threshold="auto"`` and
``seed_threshold="auto"`` choose them from the volume itself (:mod:`mire.segment.adapt`).
"""

from mire.segment.agglomerate import (
    Agglomeration,
    RegionGraph,
    agglomerate,
    agglomerate_graph,
    merge_small,
    merge_small_graph,
    region_graph,
    segmentation_at,
)
from mire.segment.adapt import auto_threshold, correlation_length, reestimate_batchnorm, weighted_otsu
from mire.segment.affinity_blocks import affinities_to_boundaries_blockwise, segment_affinities_blockwise
from mire.segment.augment import (
    augment_em,
    blur_sections,
    microscope_change,
    contrast_jitter,
    elastic_deform,
    flip_transpose,
    misalign,
    missing_sections,
)
from mire.segment.chunked import face_splits, match_labels, segment_blockwise
from mire.segment.ffn import FloodFiller
from mire.segment.learned import Segmenter
from mire.segment.pipeline import (
    auto_seed_threshold,
    baseline_boundary_map,
    baseline_segmentation,
    segment_affinities,
    segment_boundaries,
)
from mire.segment.proofread import Proofreader, load_log, merge, replay, save_log, split
from mire.segment.targets import affinities, boundaries, ignore_mask, long_range_offsets, nearest_offsets
from mire.segment.watershed import affinities_to_boundaries, distance_seeds, seeded_watershed

__all__ = [
    "boundaries", "affinities", "ignore_mask", "nearest_offsets", "long_range_offsets",
    "seeded_watershed", "distance_seeds", "affinities_to_boundaries",
    "RegionGraph", "Agglomeration", "region_graph", "agglomerate", "segmentation_at", "merge_small",
    "agglomerate_graph", "merge_small_graph",
    "Proofreader", "merge", "split", "replay", "save_log", "load_log",
    "segment_boundaries", "segment_affinities", "baseline_boundary_map", "baseline_segmentation",
    "augment_em", "microscope_change", "flip_transpose", "missing_sections", "contrast_jitter", "blur_sections", "misalign",
    "elastic_deform", "Segmenter", "segment_blockwise", "match_labels", "face_splits",
    "affinities_to_boundaries_blockwise", "segment_affinities_blockwise", "FloodFiller",
    "auto_threshold", "auto_seed_threshold", "weighted_otsu", "correlation_length", "reestimate_batchnorm",
]
