"""Monocular depth + uncertainty on one camera, with optional RViz and point cloud.

    ros2 launch depth_kd_ros mono_depth.launch.py model_path:=/path/best.pt \
        image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info \
        rviz:=true pointcloud:=true

Outputs live in ``namespace`` (default ``depth_kd``): depth, depth/camera_info, uncertainty,
depth/colorized and, with ``pointcloud:=true``, points (depth_image_proc::PointCloudXyzNode
in a component container).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import ComposableNodeContainer, Node
from launch_ros.descriptions import ComposableNode
from launch_ros.substitutions import FindPackageShare

from depth_kd_ros.params import MONO_PARAMS, load_node_parameters

PACKAGE = "depth_kd_ros"
NODE_NAME = MONO_PARAMS.node

# (name, default, description); the default None marks a default computed below.
ARGUMENTS = (
    ("image_topic", "/camera/image_raw", "Camera image topic (sensor_msgs/Image). With the "
     "parameter image_transport: compressed, '<image_topic>/compressed' is used."),
    ("camera_info_topic", "/camera/camera_info", "CameraInfo topic of the camera."),
    ("params_file", None, "ROS 2 parameter file with a 'mono_depth: ros__parameters:' "
     "section (default: the package's config/mono_depth.yaml)."),
    ("model_path", "", "depth_kd checkpoint (.pt) or export (.onnx, .ts) to run; overrides "
     "'checkpoint' from params_file when not empty."),
    ("namespace", "depth_kd", "Namespace of the node and its outputs (<namespace>/depth ...)."),
    ("rviz", "false", "Start RViz with the package's rviz/depth.rviz."),
    ("rviz_fixed_frame", "camera_optical_frame", "RViz fixed frame: the camera's optical "
     "frame (header.frame_id of the images) unless TF connects it to another."),
    ("pointcloud", "false", "Add depth_image_proc's point_cloud_xyz (component "
     "depth_image_proc::PointCloudXyzNode): depth + depth/camera_info -> <namespace>/points."),
)


def _share(*parts: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare(PACKAGE), *parts])


def _actions(context):
    """Build the nodes once the launch arguments are known.

    The parameter file is validated here, so a typo or an out-of-range value stops the launch
    with its name.
    """
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    ns = arg("namespace").strip("/")
    model = arg("model_path")
    params = load_node_parameters(arg("params_file"), MONO_PARAMS,
                                  {"checkpoint": model} if model else None)
    image = arg("image_topic")
    actions = [Node(
        package=PACKAGE, executable="mono_depth_node", name=NODE_NAME, namespace=ns,
        parameters=[params], output="screen",
        remappings=[("image", image), ("image/compressed", image.rstrip("/") + "/compressed"),
                    ("camera_info", arg("camera_info_topic"))])]
    prefix = f"/{ns}" if ns else ""
    if arg("pointcloud").lower() == "true":
        actions.append(ComposableNodeContainer(
            name="depth_kd_pointcloud_container", namespace=ns, package="rclcpp_components",
            executable="component_container", output="screen",
            composable_node_descriptions=[ComposableNode(
                package="depth_image_proc", plugin="depth_image_proc::PointCloudXyzNode",
                name="point_cloud_xyz", namespace=ns,
                remappings=[("image_rect", f"{prefix}/depth"),
                            ("camera_info", f"{prefix}/depth/camera_info"),
                            ("points", f"{prefix}/points")])]))
    if arg("rviz").lower() == "true":
        actions.append(Node(
            package="rviz2", executable="rviz2", name="depth_kd_rviz", output="screen",
            arguments=["-d", _share("rviz", "depth.rviz").perform(context),
                       "-f", arg("rviz_fixed_frame")]))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Launch arguments (with descriptions) and the nodes they configure."""
    defaults = {"params_file": _share("config", "mono_depth.yaml")}
    args = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                  description=description)
            for name, default, description in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_actions)])
