"""depth_kd: monocular metric depth by knowledge distillation, with ROS 2 nodes.

One setup.py serves both worlds: ``colcon build`` (ament_python) for ROS 2 users, and
``pip install -e .[test]`` for training and tests without ROS. The ``ros-pip`` extra installs
ROS 2 Jazzy's rclpy and message packages from PyPI for machines WITHOUT a ROS 2 install (CI,
laptops); never install it into a sourced ROS workspace (it would shadow the distro's rclpy).
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "depth_kd_ros"

setup(
    name=package_name,
    version="0.1.0",
    description="Monocular metric depth + uncertainty by knowledge distillation, with ROS 2 nodes",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["depth_kd_core", "depth_kd_core.*", "depth_kd_ros",
                                    "depth_kd_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "timm>=0.9",
        "numpy",
        "opencv-contrib-python-headless",  # ximgproc: the WLS filter of the dense SGBM teacher
        "pyyaml",
        "rosbags>=0.10",
        "tqdm",
        "tensorboard",
        "setuptools",
    ],
    extras_require={
        # ONNX export and ONNX Runtime inference (python -m depth_kd_core.export); onnxscript
        # is what torch's exporter needs. onnxruntime-gpu replaces onnxruntime for CUDA/TensorRT.
        "export": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.2"],
        # ruff: the lint gate of test/test_lint.py (config: ruff.toml).
        "test": ["pytest>=7", "pytest-timeout", "ruff>=0.6", "onnx>=1.16", "onnxruntime>=1.18",
                 "onnxscript>=0.2"],
        # rclpy + Fast DDS + the messages the nodes use, as PyPI wheels (Python 3.11,
        # manylinux); diagnostic_updater, message_filters and cv_bridge are not needed.
        "ros-pip": ["ros-jazzy-rclpy[fastrtps]", "ros-jazzy-sensor-msgs", "ros-jazzy-std-msgs",
                    "ros-jazzy-diagnostic-msgs", "ros-jazzy-rcl-interfaces",
                    "ros-jazzy-builtin-interfaces"],
    },
    zip_safe=True,
    maintainer="depth_kd developers",
    maintainer_email="dev@depth-kd.local",
    entry_points={
        "console_scripts": [
            "depth_kd_train = depth_kd_core.train:main",
            "depth_kd_evaluate = depth_kd_core.evaluate:main",
            "depth_kd_bag_infer = depth_kd_core.bag_infer:main",
            "depth_kd_export = depth_kd_core.export:main",
            "mono_depth_node = depth_kd_ros.mono_depth_node:main",
            "stereo_compare_node = depth_kd_ros.stereo_compare_node:main",
        ],
    },
)
