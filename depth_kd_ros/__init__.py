"""depth_kd_ros: thin ROS 2 nodes over depth_kd_core's ROS-free inference core.

Only the ``*_node.py`` modules import rclpy; everything they decide lives in ROS-free modules
(``conversions``, ``*_core``) that are tested without ROS.
"""
