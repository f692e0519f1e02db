"""bag_infer end to end: synthetic and real bags in, a playable mcap rosbag2 out.

Synthetic rosbag2 (mcap, sqlite3, compressed) and ROS 1 bags and the real ROS 1 camera bag in,
a playable mcap rosbag2 out with one depth/camera_info/uncertainty/colorized message per frame
carrying the frame's stamp, values equal to the estimator's, atomic output, and errors that
name topic, frame and stamp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.bag_infer import infer_bag, main
from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.writer import BagTopics
from depth_kd_core.data.synthetic.recording import write_synthetic_bag
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import BagError, OutputError
from depth_kd_core.inference import DepthEstimator

from bag_helpers import camera_info, rgb_image, write_bag
from conftest import realdata_path
from inference_helpers import tiny_checkpoint, torch_single_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TOPICS = BagTopics()
N = 3
NS = "/depth_kd"
OUT_TOPICS = (f"{NS}/depth", f"{NS}/depth/camera_info", f"{NS}/uncertainty",
              f"{NS}/depth/colorized")


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(0, 64, 160)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


@pytest.fixture(scope="module")
def stereo_bag(tmp_path_factory, world):
    return write_synthetic_bag(tmp_path_factory.mktemp("in") / "drive", world, N, stereo=True,
                               with_depth=True)


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    """{topic: [(log ns, message)]} of a bag, with the message types checked."""
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for conn, log_ns, raw in reader.messages():
            assert conn.msgdef.data, f"{conn.topic} has no message definition"
            out.setdefault(conn.topic, []).append((log_ns, reader.deserialize(raw, conn.msgtype)))
    return out


def test_synthetic_mcap_end_to_end(stereo_bag, ckpt, tmp_path, world):
    result = infer_bag(stereo_bag, tmp_path / "out", ckpt, image_topic=TOPICS.left,
                       device="cpu", progress=False)
    assert result.frames == N and result.skipped == 0
    meta = yaml.safe_load((tmp_path / "out" / "metadata.yaml").read_text())
    assert meta["rosbag2_bagfile_information"]["storage_identifier"] == "mcap"
    bag = read_bag(tmp_path / "out")
    assert set(bag) == {TOPICS.left, TOPICS.left_info, *OUT_TOPICS}  # right camera not copied
    assert all(len(bag[t]) == N for t in bag)
    est = DepthEstimator.from_checkpoint(ckpt, "cpu")
    for k in range(N):
        log_ns, image = bag[TOPICS.left][k]
        info_in = bag[TOPICS.left_info][k][1]
        for topic in OUT_TOPICS:
            out_log, msg = bag[topic][k]
            assert out_log == log_ns and mc.stamp_ns(msg) == mc.stamp_ns(image)
            assert msg.header.frame_id == "camera_left"
        depth_msg = bag[f"{NS}/depth"][k][1]
        assert (depth_msg.encoding, depth_msg.height, depth_msg.width, depth_msg.step) == \
            ("32FC1", 64, 160, 4 * 160)
        K = np.asarray(info_in.k).reshape(3, 3)
        ref = est.predict(mc.msg_to_rgb8(image), K)
        np.testing.assert_allclose(mc.image_to_array(depth_msg), ref.depth, rtol=1e-6)
        sigma = mc.image_to_array(bag[f"{NS}/uncertainty"][k][1])
        np.testing.assert_allclose(sigma, ref.sigma, rtol=1e-6)
        info = bag[f"{NS}/depth/camera_info"][k][1]
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), world.K)
        colour = bag[f"{NS}/depth/colorized"][k][1]
        assert colour.encoding == "bgr8" and mc.image_to_array(colour).shape == (64, 160, 3)


def test_compressed_sqlite3_input_and_guessed_camera_info(tmp_path, ckpt, world):
    src = write_synthetic_bag(tmp_path / "jpeg", world, N, storage="sqlite3", compressed=True,
                              stereo=False, with_depth=False,
                              topics=BagTopics(left="/cam/image/compressed",
                                               left_info="/cam/camera_info"))
    result = infer_bag(src, tmp_path / "out", ckpt, out_namespace="mono/", device="cpu",
                       progress=False)
    bag = read_bag(result.out)
    assert set(bag) == {"/cam/image/compressed", "/cam/camera_info", "/mono/depth",
                        "/mono/depth/camera_info", "/mono/uncertainty", "/mono/depth/colorized"}
    assert bag["/cam/image/compressed"][0][1].format.endswith("jpeg compressed bgr8")
    stamps_in = [mc.stamp_ns(m) for _, m in bag["/cam/image/compressed"]]
    assert [mc.stamp_ns(m) for _, m in bag["/mono/depth"]] == stamps_in


def test_ros1_input_becomes_ros2_messages(tmp_path, ckpt, world):
    src = write_synthetic_bag(tmp_path / "drive.bag", world, 2, storage="ros1", stereo=False,
                              with_depth=False)
    bag = read_bag(infer_bag(src, tmp_path / "out", ckpt, device="cpu", progress=False).out)
    info = bag[TOPICS.left_info][0][1]
    assert hasattr(info, "k") and not hasattr(info, "K") and not hasattr(info.header, "seq")
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), world.K)
    assert len(bag[f"{NS}/depth"]) == 2


@pytest.mark.realdata
def test_real_ros1_compressed_camera_bag(tmp_path, ckpt):
    src = realdata_path("ros1_compressed_camera_bag", "aruco_images.bag")
    result = infer_bag(src, tmp_path / "out", ckpt, device="cpu", progress=False)
    bag = read_bag(result.out)
    image = bag["/raspicam_node/image/compressed"][0][1]
    assert len(bag["/raspicam_node/camera_info"]) == 15 and result.frames == 1
    depth = bag[f"{NS}/depth"][0][1]
    assert (depth.height, depth.width, depth.encoding) == (960, 1280, "32FC1")
    assert mc.stamp_ns(depth) == mc.stamp_ns(image) and depth.header.frame_id == "raspicam"
    values = mc.image_to_array(depth)
    assert np.isfinite(values).all() and values.min() > 0
    info = bag[f"{NS}/depth/camera_info"][0][1]
    assert info.k[0] == pytest.approx(1014.3431, rel=1e-6) and info.distortion_model == \
        "plumb_bob"


def test_errors_name_topic_frame_and_stamp_and_leave_no_output(tmp_path, ckpt):
    good = [("/cam/image_raw", "sensor_msgs/msg/Image", 10**18 + k, rgb_image(10**18 + k, 32,
                                                                               64))
            for k in range(3)]
    bad_msg = rgb_image(10**18 + 5, 32, 64)
    bad_msg.data = bad_msg.data[:-10]
    msgs = good[:2] + [("/cam/image_raw", "sensor_msgs/msg/Image", 10**18 + 5, bad_msg)] + \
        [("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 10**18, camera_info(10**18, 32, 64))]
    src = write_bag(tmp_path / "bad", msgs)
    with pytest.raises(BagError, match=r"'/cam/image_raw' frame 2 \(stamp 1000000000000000005 "
                                       r"ns\).*truncated"):
        infer_bag(src, tmp_path / "out", ckpt, device="cpu", progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]  # no temporary folder left
    result = infer_bag(src, tmp_path / "out", ckpt, device="cpu", progress=False,
                       skip_bad_frames=True)
    assert (result.frames, result.skipped) == (2, 1)
    assert result.topics["/depth_kd/depth"] == 2 and result.topics["/cam/image_raw"] == 3


def test_existing_output_is_kept_unless_overwrite(stereo_bag, ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists"):
        infer_bag(stereo_bag, out, ckpt, image_topic=TOPICS.left, device="cpu", progress=False)
    with pytest.raises(OutputError, match="not a rosbag2 bag folder"):  # --overwrite: bags only
        infer_bag(stereo_bag, out, ckpt, image_topic=TOPICS.left, device="cpu", progress=False,
                  overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    bag = tmp_path / "bag_out"
    infer_bag(stereo_bag, bag, ckpt, image_topic=TOPICS.left, device="cpu", progress=False)
    infer_bag(stereo_bag, bag, ckpt, image_topic=TOPICS.left, device="cpu", progress=False,
              overwrite=True)  # an earlier output bag is replaced
    assert (bag / "metadata.yaml").is_file()


def test_ambiguous_or_missing_topics_are_named(stereo_bag, ckpt, tmp_path):
    with pytest.raises(BagError, match="3 image topics.*--image-topic"):
        infer_bag(stereo_bag, tmp_path / "o", ckpt, device="cpu", progress=False)
    with pytest.raises(BagError, match="'/nope' is not an Image"):
        infer_bag(stereo_bag, tmp_path / "o", ckpt, image_topic="/nope", device="cpu")
    with pytest.raises(BagError, match="not a valid ROS namespace"):
        infer_bag(stereo_bag, tmp_path / "o", ckpt, image_topic=TOPICS.left,
                  out_namespace="/9bad", device="cpu")


def test_cli(stereo_bag, ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "ros2 bag play" in capsys.readouterr().out
    code = main([str(stereo_bag), str(tmp_path / "cli"), "--checkpoint", str(ckpt),
                 "--image-topic", TOPICS.left, "--device", "cpu", "--no-progress",
                 "--out-namespace", "/est"])
    text = capsys.readouterr().out
    assert code == 0 and f"{N} frames" in text and f"/est/depth: {N} messages" in text
    assert main([str(stereo_bag), str(tmp_path / "cli"), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and len(err.strip().splitlines()) == 1
