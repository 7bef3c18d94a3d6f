"""EM segmentation: targets, watershed, agglomeration, proofreading."""
