"""Neuron tracing, region growing from traces, and the tracing-based evaluation of restoration.

``trace`` turns a stack into an SWC tree (N, 7); ``region_grow`` turns a tree back into a
foreground mask on an image; ``evaluate_tracing`` scores a trace against a gold standard the way
Ishii et al. 2020 (Table 3) score restorations.
"""

from mire.trace.evaluate import distance_score, evaluate_tracing, match_nodes
from mire.trace.region_grow import default_threshold, region_grow
from mire.trace.swc import check_swc, largest_tree, resample_points, topology
from mire.trace.tracer import noise_sigma, trace, tube_response
from mire.trace.vesselness import hessian_eigvals, vesselness

__all__ = ["trace", "region_grow", "evaluate_tracing", "match_nodes", "distance_score", "default_threshold", "vesselness", "hessian_eigvals", "tube_response", "noise_sigma",
           "check_swc", "largest_tree", "resample_points", "topology"]
