"""The distilled student beside its stereo teacher on a rectified stereo camera.

    ros2 launch depth_kd_ros stereo_compare.launch.py student_model_path:=/path/best.pt \
        teacher:=sgbm left_image_topic:=/stereo/left/image_rect \
        right_image_topic:=/stereo/right/image_rect

Outputs live in ``namespace`` (default ``depth_kd``): student/depth, teacher/depth,
abs_error, metrics (std_msgs/Float32MultiArray [abs_rel, rmse, delta1, frames]) and
/diagnostics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from depth_kd_ros.params import STEREO_PARAMS, load_node_parameters

PACKAGE = "depth_kd_ros"
NODE_NAME = STEREO_PARAMS.node

# (name, default, description); the default None marks a default computed below.
ARGUMENTS = (
    ("left_image_topic", "/stereo/left/image_rect", "Rectified left image topic "
     "(sensor_msgs/Image; '<topic>/compressed' with image_transport: compressed)."),
    ("right_image_topic", "/stereo/right/image_rect", "Rectified right image topic."),
    ("left_camera_info_topic", "/stereo/left/camera_info", "Left CameraInfo (its P gives the "
     "rectified intrinsics)."),
    ("right_camera_info_topic", "/stereo/right/camera_info", "Right CameraInfo (P[0,3] = "
     "-fx * baseline gives the baseline)."),
    ("params_file", None, "ROS 2 parameter file with a 'stereo_compare: ros__parameters:' "
     "section (default: the package's config/stereo_compare.yaml)."),
    ("student_model_path", "", "Student checkpoint (.pt); overrides 'student_checkpoint' "
     "from params_file when not empty."),
    ("teacher", "", "'sgbm' or a stereo teacher checkpoint (.pt); overrides 'teacher' from "
     "params_file when not empty."),
    ("namespace", "depth_kd", "Namespace of the node and its outputs."),
)


def _actions(context):
    """Build the node once the launch arguments are known (parameters validated here)."""
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    overrides = {key: arg(name) for key, name in (("student_checkpoint", "student_model_path"),
                                                  ("teacher", "teacher")) if arg(name)}
    params = load_node_parameters(arg("params_file"), STEREO_PARAMS, overrides)
    remap = []
    for side in ("left", "right"):
        image = arg(f"{side}_image_topic")
        remap += [(f"{side}/image_rect", image),
                  (f"{side}/image_rect/compressed", image.rstrip("/") + "/compressed"),
                  (f"{side}/camera_info", arg(f"{side}_camera_info_topic"))]
    return [Node(package=PACKAGE, executable="stereo_compare_node", name=NODE_NAME,
                 namespace=arg("namespace").strip("/"), parameters=[params], output="screen",
                 remappings=remap)]


def generate_launch_description() -> LaunchDescription:
    """Launch arguments (with descriptions) and the node they configure."""
    defaults = {"params_file": PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                     "stereo_compare.yaml"])}
    args = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                  description=description)
            for name, default, description in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_actions)])
