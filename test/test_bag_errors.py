"""Bad bags get a BagError/ImageError (both DepthKDError) that names the file, topic or field.

A truncated or corrupt bag keeps the frames before the damage where its format allows.
"""

from __future__ import annotations

import numpy as np
import pytest

from depth_kd_core.data.bags.datasets import MonoBagDataset, StereoBagDataset
from depth_kd_core.data.synthetic.recording import write_synthetic_bag
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import BagError, DataError, DepthKDError, ImageError

from bag_helpers import STEREO, camera_info, stereo_messages, write_bag


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=9, height=32, width=96)


def _stereo(path, tmp_path, **kw) -> StereoBagDataset:
    return StereoBagDataset(path, *STEREO, cache_dir=tmp_path / "cache", progress=False, **kw)


def test_missing_topic_lists_the_topics_that_exist(tmp_path):
    path = write_bag(tmp_path / "bag", stereo_messages(2, 8, 8))
    with pytest.raises(BagError, match=r"topic '/stereo/left/image_raw' is missing from bag .*"
                                       r"bag; topics in the bag: /stereo/left/camera_info "
                                       r"\(sensor_msgs/msg/CameraInfo, 2 msgs\)") as info:
        StereoBagDataset(path, "/stereo/left/image_raw", *STEREO[1:], cache_dir=tmp_path,
                         progress=False)
    assert isinstance(info.value, DepthKDError)
    assert "/stereo/right/image_rect (sensor_msgs/msg/Image, 2 msgs)" in str(info.value)


def test_missing_camera_info_is_named(tmp_path):
    msgs = [m for m in stereo_messages(2, 8, 8) if m[0] != STEREO[3]]
    path = write_bag(tmp_path / "bag", msgs)
    with pytest.raises(BagError, match=r"camera_info topic '/stereo/right/camera_info' is "
                                       r"missing from bag"):
        _stereo(path, tmp_path)
    mono = write_bag(tmp_path / "mono", [m for m in msgs if m[0] == STEREO[0]])
    with pytest.raises(BagError, match=r"camera_info missing: no CameraInfo topic for "
                                       r"'/stereo/left/image_rect'"):
        MonoBagDataset(mono, STEREO[0], cache_dir=tmp_path, progress=False)
    ok = MonoBagDataset(mono, STEREO[0], K=np.diag([40.0, 40.0, 1.0]), cache_dir=tmp_path,
                        progress=False)  # a K instead of CameraInfo is fine
    assert float(ok[0]["K"][0, 0]) == 40.0


def test_wrong_message_type_for_a_topic_is_named(tmp_path):
    msgs = stereo_messages(2, 8, 8) + [("/imu", "sensor_msgs/msg/Imu", 0, None)]
    path = write_bag(tmp_path / "bag", msgs)
    with pytest.raises(BagError, match=r"topic '/imu' in bag .* has type sensor_msgs/msg/Imu; "
                                       r"expected sensor_msgs/msg/CameraInfo"):
        StereoBagDataset(path, *STEREO[:3], "/imu", cache_dir=tmp_path, progress=False)


def test_left_and_right_must_be_different_topics(tmp_path):
    path = write_bag(tmp_path / "bag", stereo_messages(2, 8, 8))
    with pytest.raises(BagError, match=r"left and right must be different topics"):
        StereoBagDataset(path, STEREO[0], STEREO[0], STEREO[2], STEREO[3], cache_dir=tmp_path,
                         progress=False)


def test_unsupported_encoding_names_topic_and_field(tmp_path):
    msgs = stereo_messages(2, 8, 8, left_override={"encoding": "yuv444"})
    with pytest.raises(ImageError, match=r"topic /stereo/left/image_rect: field 'encoding' is "
                                         r"'yuv444', which is not supported"):
        _stereo(write_bag(tmp_path / "bag", msgs), tmp_path)


def test_wrong_step_names_topic_and_field(tmp_path):
    msgs = stereo_messages(2, 8, 8, left_override={"step": 25})
    with pytest.raises(ImageError, match=r"topic /stereo/left/image_rect: field 'data' holds 192 "
                                         r"bytes but height x step = 8 x 25 = 200"):
        _stereo(write_bag(tmp_path / "bag", msgs), tmp_path)


def test_left_right_size_mismatch_is_refused(tmp_path):
    path = write_bag(tmp_path / "bag", stereo_messages(2, 8, 8, right_h=10))
    with pytest.raises(BagError, match=r"left/right size mismatch: '/stereo/left/image_rect' is "
                                       r"8x8 but '/stereo/right/image_rect' is 8x10"):
        _stereo(path, tmp_path)


def test_nothing_synchronised_says_how_far_apart_the_stamps_are(world, tmp_path):
    path = write_synthetic_bag(tmp_path / "bag", world, 3, right_delay_ns=12_000_000,
                               with_depth=False)
    with pytest.raises(BagError, match=r"nothing synchronised in .*: no '/stereo/left/image_rect' "
                                       r"and '/stereo/right/image_rect' stamps are within 5.0 ms "
                                       r"\(closest: 12.000 ms\)"):
        _stereo(path, tmp_path, sync_tolerance_ms=5.0)
    assert len(_stereo(path, tmp_path, sync_tolerance_ms=15.0)) == 3


def test_truncated_mcap_keeps_the_frames_before_the_damage(world, tmp_path):
    # 100 frames of 2 x 9 kB images fill two ~1 MB mcap chunks; the cut loses the second
    path = write_synthetic_bag(tmp_path / "bag", world, 5, with_depth=False, repeat=20)
    full = _stereo(path, tmp_path)
    mcap = next(path.glob("*.mcap"))
    cut = tmp_path / "crashed" / mcap.name
    cut.parent.mkdir()
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size * 6 // 10])  # no metadata.yaml
    ds = _stereo(cut, tmp_path)
    assert str(cut) in ds.damage and "damaged" in ds.damage
    assert 20 <= len(ds) < len(full) == 100
    for i in (0, len(ds) - 1):  # the salvaged frames are the recorded ones
        np.testing.assert_array_equal(ds[i]["left"].numpy(), full[i]["left"].numpy())
        assert int(ds[i]["stamp_ns"]) == int(full[i]["stamp_ns"])


def test_corrupt_ros1_bag_keeps_the_frames_before_the_damage(world, tmp_path):
    path = write_synthetic_bag(tmp_path / "drive.bag", world, 20, storage="ros1",
                               with_depth=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4000] = b"\xff" * 4000
    bad = tmp_path / "bad.bag"
    bad.write_bytes(bytes(data))
    ds = _stereo(bad, tmp_path)
    assert "bad.bag is damaged after" in ds.damage
    assert 4 <= len(ds) < 20
    ds[len(ds) - 1]


def test_truncated_ros1_bag_and_sqlite3_bag_are_named(world, tmp_path):
    bag1 = write_synthetic_bag(tmp_path / "drive.bag", world, 4, storage="ros1", with_depth=False)
    cut = tmp_path / "cut.bag"
    cut.write_bytes(bag1.read_bytes()[: bag1.stat().st_size // 2])
    with pytest.raises(BagError, match=r"bag .*cut.bag cannot be read: .*rosbag reindex"):
        _stereo(cut, tmp_path)
    bag2 = write_synthetic_bag(tmp_path / "db", world, 4, storage="sqlite3", with_depth=False)
    db3 = next(bag2.glob("*.db3"))
    cut = tmp_path / "cut.db3"
    cut.write_bytes(db3.read_bytes()[: db3.stat().st_size // 2])
    with pytest.raises(BagError, match=r"bag .*cut.db3 cannot be read"):
        _stereo(cut, tmp_path)


def test_garbage_and_missing_files_are_named(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BagError, match=r"bag .*junk.mcap cannot be read"):
        _stereo(junk, tmp_path)
    with pytest.raises(BagError, match=r"bag .*nowhere.mcap does not exist"):
        _stereo(tmp_path / "nowhere.mcap", tmp_path)


def test_camera_info_topic_without_messages_is_camera_info_missing(tmp_path):
    msgs = [m for m in stereo_messages(2, 8, 8) if m[0] != STEREO[3]]
    msgs.append((STEREO[3], "sensor_msgs/msg/CameraInfo", 0, None))  # connection, no messages
    with pytest.raises(BagError, match=r"camera_info missing: topic '/stereo/right/camera_info' "
                                       r"of bag .* has no readable messages"):
        _stereo(write_bag(tmp_path / "bag", msgs), tmp_path)


def test_right_camera_info_without_a_stereo_projection_is_refused(tmp_path):
    msgs = [m for m in stereo_messages(2, 8, 8) if m[0] != STEREO[3]]
    msgs += [(STEREO[3], "sensor_msgs/msg/CameraInfo", m[2], camera_info(m[2], 8, 8))
             for m in msgs if m[0] == STEREO[2]]  # P[0,3] = 0: a copy of the left camera
    with pytest.raises(DataError, match=r"right camera_info P\[0,3\] = 0 gives a baseline of 0 m"):
        _stereo(write_bag(tmp_path / "bag", msgs), tmp_path)
