"""Pieces of the generic training loop (``depth_kd_core.train``): config schema, optimisers and
schedules, distributed set-up, checkpoint rotation, logging, teacher-output caching.
"""
