"""depth_kd_core: monocular metric depth by knowledge distillation (no ROS imports here)."""

__version__ = "0.1.0"
