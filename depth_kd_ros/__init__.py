"""depth_kd_ros: thin ROS 2 nodes over depth_kd_core's ROS-free inference core.

Only ``ros_glue`` and the ``*_node.py`` modules import rclpy; everything the nodes decide lives
in ROS-free modules (``params``, ``conversions``, ``frame_stats``, ``stamp_sync``, ``*_core``)
that are tested without ROS.
"""
