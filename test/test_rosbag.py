"""Bag datasets: items decoded from mcap, sqlite3 and ROS 1 bags equal the rendered frames.

Stereo pairs are synchronised by stamp, raw images are rectified with their CameraInfo, K
follows every resize, the index is cached, workers each open their own reader, and the real
ROS 1 camera bag loads as a monocular source.
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from depth_kd_core.data.bags import index as bi
from depth_kd_core.data.bags.dataset_base import rgb_to_tensor
from depth_kd_core.data.bags.datasets import (
    MonoBagDataset,
    SequenceBagDataset,
    StereoBagDataset,
    guess_info_topic,
)
from depth_kd_core.data.bags.writer import BagTopics, RawRig
from depth_kd_core.data.camera import resize_image
from depth_kd_core.data.schema import check_item, image_to_tensor
from depth_kd_core.data.synthetic.recording import BAG_START_NS, write_synthetic_bag
from depth_kd_core.data.synthetic.world import SyntheticWorld

from bag_helpers import DEPTH, STEREO
from conftest import realdata_path

H, W = 48, 160
PER_SCENE = 5


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=2, height=H, width=W)


@pytest.fixture(scope="module")
def frames(world):
    """Render the 10 frames the bags below record: scenes 0 and 1, five frames each."""
    return [world.frame(n // PER_SCENE, n % PER_SCENE) for n in range(2 * PER_SCENE)]


@pytest.fixture(scope="module")
def bags(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3", "ros1"):
        path = root / ("drive.bag" if storage == "ros1" else f"drive_{storage}")
        out[storage] = write_synthetic_bag(path, world, 2 * PER_SCENE, storage=storage,
                                           frames_per_scene=PER_SCENE, with_lidar=True)
    return out


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t * 255).round().byte().permute(1, 2, 0).numpy()


def _stereo(path, tmp_path, **kw) -> StereoBagDataset:
    return StereoBagDataset(path, *STEREO, cache_dir=tmp_path, progress=False, **kw)


def _stamp(n: int) -> int:
    return BAG_START_NS + 100_000_000 * (n + 5 * (n // PER_SCENE))  # writer: 5-frame scene gap


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_stereo_items_equal_the_rendered_frames(bags, frames, world, storage, tmp_path):
    ds = _stereo(bags[storage], tmp_path, depth_topic=DEPTH)
    assert len(ds) == len(frames) and ds.sync_report.matched == len(frames)
    for n in (0, 7):
        item = ds[n]
        check_item(item)
        np.testing.assert_array_equal(_u8(item["left"]), frames[n]["left"])
        np.testing.assert_array_equal(_u8(item["right"]), frames[n]["right"])
        np.testing.assert_array_equal(item["depth_gt"][0].numpy(), frames[n]["depth"])
        np.testing.assert_allclose(item["K"].numpy(), world.K, rtol=1e-6)
        assert float(item["baseline"]) == pytest.approx(world.baseline)  # from the right P
        assert int(item["stamp_ns"]) == _stamp(n)
    batch = default_collate([ds[0], ds[1]])
    assert batch["left"].shape == (2, 3, H, W) and batch["baseline"].shape == (2,)


def test_mono_items_with_depth_from_a_ros1_bag(bags, frames, world, tmp_path):
    ds = MonoBagDataset(bags["ros1"], STEREO[0], STEREO[2], depth_topic=DEPTH,
                        cache_dir=tmp_path, progress=False)
    assert len(ds) == len(frames)
    item = ds[6]
    assert "right" not in item and "baseline" not in item
    np.testing.assert_array_equal(_u8(item["left"]), frames[6]["left"])
    np.testing.assert_array_equal(item["depth_gt"][0].numpy(), frames[6]["depth"])
    np.testing.assert_allclose(item["K"].numpy(), world.K, rtol=1e-6)


def test_lidar_topic_is_sparse_ground_truth(bags, frames, tmp_path):
    ds = _stereo(bags["mcap"], tmp_path, depth_topic="/lidar/depth")
    np.testing.assert_array_equal(ds[3]["depth_gt"][0].numpy(), frames[3]["lidar_depth"])


def test_resize_scales_intrinsics_and_images(bags, frames, tmp_path):
    ds = _stereo(bags["mcap"], tmp_path, height=24, width=80, depth_topic=DEPTH)
    item = ds[2]
    np.testing.assert_allclose(item["K"].numpy(), SyntheticWorld(0, 24, 80).K, rtol=1e-6)
    expected = resize_image(frames[2]["left"], 24, 80)  # 2x2 block means
    assert np.abs(_u8(item["left"]).astype(int) - expected).max() <= 1
    assert item["depth_gt"].shape == (1, 24, 80)


@pytest.mark.parametrize("kind", ["bgr8", "mono8", "png", "jpeg", "16UC1"])
def test_encodings_decode_to_the_recorded_pixels(world, frames, kind, tmp_path):
    opts = {"bgr8": dict(encoding="bgr8"), "mono8": dict(encoding="mono8"),
            "png": dict(compressed="png"), "jpeg": dict(compressed="jpeg"),
            "16UC1": dict(depth_encoding="16UC1")}[kind]
    path = write_synthetic_bag(tmp_path / "bag", world, 2, frames_per_scene=PER_SCENE, **opts)
    item = _stereo(path, tmp_path, depth_topic=DEPTH)[1]
    left = frames[1]["left"]
    if kind == "mono8":
        left = np.dstack([cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)] * 3)
    err = np.abs(_u8(item["left"]).astype(int) - left)
    assert err.mean() < 5 if kind == "jpeg" else err.max() == 0  # jpeg q95 with 4:2:0 chroma
    expected, tol = frames[1]["depth"], 0.0
    if kind == "16UC1":  # whole millimetres; beyond 65.535 m the writer marks depth invalid
        expected, tol = np.where(expected <= 65.535, expected, 0), 0.0005 + 1e-5  # + float32
    np.testing.assert_allclose(item["depth_gt"][0].numpy(), expected, atol=tol, rtol=0)


def test_stereo_sync_tolerates_offsets_and_reports_dropped_frames(world, tmp_path):
    path = write_synthetic_bag(tmp_path / "bag", world, 6, right_delay_ns=3_000_000,
                               skip_right=(2, 4), with_depth=False)
    ds = _stereo(path, tmp_path, sync_tolerance_ms=5.0)
    report = ds.sync_report
    assert (report.matched, report.unmatched_left, report.unmatched_right) == (4, 2, 0)
    assert [int(ds[i]["stamp_ns"]) for i in range(len(ds))] == \
        [BAG_START_NS + 100_000_000 * n for n in (0, 1, 3, 5)]


def test_sync_is_one_to_one_closest_first():
    left = np.array([0, 100, 104, 300], dtype=np.int64)
    right = np.array([101, 301, 500], dtype=np.int64)
    pairs, report = bi.sync_stamps(left, right, tolerance_ns=5)
    assert pairs.tolist() == [[1, 0], [3, 1]]  # left 104 lost right 101 to the closer left 100
    assert (report.matched, report.unmatched_left, report.unmatched_right,
            report.dropped_left, report.dropped_right) == (2, 1, 1, 1, 0)
    assert "2 matched" in str(report) and "dropped 1 left" in str(report)


def test_sequence_triples_never_straddle_a_scene_cut(bags, frames, tmp_path):
    ds = SequenceBagDataset(bags["mcap"], STEREO[0], STEREO[2], cache_dir=tmp_path,
                            progress=False)
    assert len(ds) == 2 * (PER_SCENE - 2)  # first and last frame of each scene have no triple
    centres = [1, 2, 3, 6, 7, 8]
    for i, n in enumerate(centres):
        item = ds[i]
        assert int(item["stamp_ns"]) == _stamp(n)
        np.testing.assert_array_equal(_u8(item["left"]), frames[n]["left"])
        np.testing.assert_array_equal(_u8(item["prev"]), frames[n - 1]["left"])
        np.testing.assert_array_equal(_u8(item["next"]), frames[n + 1]["left"])
    stereo = _stereo(bags["mcap"], tmp_path, sequence=True)
    assert len(stereo) == len(centres) and "right" in stereo[0] and "prev" in stereo[0]


def test_raw_images_are_rectified_with_their_camera_info(tmp_path):
    world = SyntheticWorld(seed=4, height=96, width=320)
    topics = BagTopics(left="/l/image_raw", right="/r/image_raw", left_info="/l/camera_info",
                       right_info="/r/camera_info")
    path = write_synthetic_bag(tmp_path / "raw", world, 1, raw=RawRig(), topics=topics,
                               with_depth=False)
    args = ("/l/image_raw", "/r/image_raw", "/l/camera_info", "/r/camera_info")
    ds = StereoBagDataset(path, *args, cache_dir=tmp_path, progress=False)
    assert ds.rectify == {"/l/image_raw": True, "/r/image_raw": True}  # D != 0, R != I
    raw = StereoBagDataset(path, *args, cache_dir=tmp_path, progress=False, rectify="never")
    frame, inner = world.sample(0), np.s_[8:-8, 8:-8]
    for key in ("left", "right"):
        err = np.abs(_u8(ds[0][key]).astype(int) - frame[key])[inner].mean()
        err_raw = np.abs(_u8(raw[0][key]).astype(int) - frame[key])[inner].mean()
        assert err < 3.0 and err_raw > 2 * err, (key, err, err_raw)
    np.testing.assert_allclose(ds[0]["K"].numpy(), world.K, rtol=1e-6)  # P[:3, :3]
    assert float(ds[0]["baseline"]) == pytest.approx(0.54)
    # rectified and resized in one remap: matches the area-resized rectified frame
    half = StereoBagDataset(path, *args, cache_dir=tmp_path, progress=False, height=48,
                            width=160)
    np.testing.assert_allclose(half[0]["K"].numpy(), SyntheticWorld(0, 48, 160).K, rtol=1e-6)
    expected = resize_image(frame["left"], 48, 160).astype(int)
    assert np.abs(_u8(half[0]["left"]).astype(int) - expected)[4:-4, 4:-4].mean() < 4.0


def test_fast_tensor_conversion_equals_the_schema_conversion():
    img = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    fast = rgb_to_tensor(img)
    assert fast.is_contiguous() and fast.dtype == torch.float32
    torch.testing.assert_close(fast, image_to_tensor(img), rtol=0, atol=0)


def test_mcap_messages_are_read_at_their_indexed_offsets(bags, tmp_path, monkeypatch):
    ds = _stereo(bags["mcap"], tmp_path, depth_topic=DEPTH)
    assert ds.mcap_file.endswith(".mcap")
    assert all(ds.topics[t].offset is not None for t in (*STEREO[:2], DEPTH))
    direct = [ds[i] for i in (0, 4, 9)]
    monkeypatch.setattr(ds, "mcap_file", "")  # force rosbags time-window reads
    for item, i in zip(direct, (0, 4, 9)):
        window = ds[i]
        for key in ("left", "right", "depth_gt", "stamp_ns"):
            torch.testing.assert_close(item[key], window[key], rtol=0, atol=0)
    assert _stereo(bags["sqlite3"], tmp_path).mcap_file == ""  # no offsets: window reads


def test_index_is_cached_and_reused(bags, tmp_path, monkeypatch):
    first = _stereo(bags["mcap"], tmp_path)
    assert len(list(tmp_path.glob("*.depth_kd_index.npz"))) == 1

    def no_rescan(*args, **kwargs):
        raise AssertionError("the bag was scanned again")

    monkeypatch.setattr(bi, "scan", no_rescan)
    again = _stereo(bags["mcap"], tmp_path)
    assert again.rows.tolist() == first.rows.tolist()
    torch.testing.assert_close(again[4]["left"], first[4]["left"])


def test_datasets_pickle_without_an_open_reader_and_work_in_workers(bags, tmp_path):
    ds = _stereo(bags["mcap"], tmp_path, depth_topic=DEPTH)
    expected = default_collate([ds[i] for i in range(4)])  # opens the reader here
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.bag._reader is None
    torch.testing.assert_close(clone[3]["right"], expected["right"][3])
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    torch.testing.assert_close(torch.cat([b["left"] for b in batches[:2]]), expected["left"])
    torch.testing.assert_close(torch.cat([b["depth_gt"] for b in batches[:2]]),
                               expected["depth_gt"])


def test_guess_info_topic_follows_ros_namespaces():
    topics = {"/cam/image_raw": ("sensor_msgs/msg/Image", 1),
              "/cam/camera_info": (bi.CAMERA_INFO, 1),
              "/other/camera_info": (bi.CAMERA_INFO, 1)}
    assert guess_info_topic("/cam/image_raw", topics) == "/cam/camera_info"
    assert guess_info_topic("/cam/image_raw/compressed", topics) == "/cam/camera_info"
    assert guess_info_topic("/x/image", topics) is None  # two candidates: no guess
    only = {"/y/camera_info": (bi.CAMERA_INFO, 1)}
    assert guess_info_topic("/x/image", only) == "/y/camera_info"  # the bag's only one


@pytest.mark.realdata
def test_real_ros1_compressed_camera_bag_loads_as_a_monocular_source(tmp_path):
    path = realdata_path("ros1_compressed_camera_bag", "aruco_images.bag")
    topic = "/raspicam_node/image/compressed"
    ds = MonoBagDataset(path, topic, cache_dir=tmp_path, progress=False)
    assert ds.info_topic == "/raspicam_node/camera_info" and len(ds) == 1
    item = ds[0]
    check_item(item)
    assert item["left"].shape == (3, 960, 1280)
    assert int(item["stamp_ns"]) == 1491682360_314066469  # header stamp, not log time
    # plumb_bob with k1 = 0.157: undistorted into the projection P (fx 1031.87, fy 1032.94)
    np.testing.assert_allclose(item["K"].numpy(), [[1031.86841, 0, 638.556565],
                                                   [0, 1032.94128, 468.938038], [0, 0, 1]],
                               rtol=1e-6)
    raw = MonoBagDataset(path, topic, cache_dir=tmp_path, progress=False, rectify="never")[0]
    msg = ds.bag.fetch([ds.topics[topic].address(0)])[0]
    assert msg.format == "jpg"
    decoded = cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(_u8(raw["left"]), decoded)
    calib = ds.calib[topic]
    m1, m2 = cv2.initUndistortRectifyMap(calib.K, calib.D, calib.R, calib.P[:, :3],
                                         (1280, 960), cv2.CV_32FC1)
    expected = cv2.remap(decoded, m1, m2, cv2.INTER_LINEAR)
    assert np.abs(_u8(item["left"]).astype(int) - expected).mean() < 1.0
    small = MonoBagDataset(path, topic, cache_dir=tmp_path, progress=False, height=240,
                           width=320)[0]
    assert small["K"][0, 0] == pytest.approx(1031.86841 / 4, rel=1e-6)
