"""Pieces of the generic training loop (``depth_kd_core.train``).

Config schema, optimisers and schedules, distributed set-up, checkpoint rotation, run folders,
data order, logging and validation images.
"""
