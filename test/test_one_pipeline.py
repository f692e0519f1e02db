"""One pipeline: ``evaluate``, ``bag_infer`` and the mono node agree (issue 16).

They give the same depth for the same frame and checkpoint, on the real ROS 1 compressed
camera bag of ../shared/realdata (1280 x 960 JPEG, fx ~ 1014 px: the tiny student trained at
fx = 100 px on 192 px is focal-scaled by ~1.52, so a caller skipping focal scaling differs by
half).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.bag_infer import infer_bag
from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.datasets import MonoBagDataset
from depth_kd_core.evaluate import Predictor
from depth_kd_core.inference import DepthEstimator
from depth_kd_ros.mono_depth_core import MonoDepthCore

from conftest import realdata_path
from inference_helpers import tiny_checkpoint, tiny_model, torch_single_thread  # noqa: F401
from node_helpers import StubLogger

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.realdata]
TS = get_typestore(Stores.ROS2_HUMBLE)
BAG = ("ros1_compressed_camera_bag", "aruco_images.bag")
IMAGE_TOPIC, INFO_TOPIC = "/raspicam_node/image/compressed", "/raspicam_node/camera_info"
REL_TOL = 1e-5  # float32 round-off of the same computation; a skipped step differs by >= 30 %


@pytest.fixture(scope="module")
def frame():
    """Return the bag's image and the camera_info bag_infer pairs with it.

    That is the latest camera_info before the image, else the first (``bag_infer._run``).
    """
    src = realdata_path(*BAG)
    infos, image = [], None
    with AnyReader([src]) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == INFO_TOPIC:
                infos.append((image is None, msg))
            elif conn.topic == IMAGE_TOPIC:
                image = msg
    before = [m for early, m in infos if early]
    return src, image, (before[-1] if before else infos[0][1])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


def bag_infer_depth(src, ckpt, out) -> np.ndarray:
    result = infer_bag(src, out, ckpt, device="cpu", progress=False)
    with AnyReader([result.out], default_typestore=TS) as reader:
        conn = [c for c in reader.connections if c.topic == "/depth_kd/depth"]
        (_, _, raw), = list(reader.messages(connections=conn))
        return mc.image_to_array(reader.deserialize(raw, conn[0].msgtype))


def node_depth(ckpt, image, info) -> np.ndarray:
    core = MonoDepthCore(DepthEstimator.from_checkpoint(ckpt, "cpu"), {"checkpoint": str(ckpt)},
                         TS.types, StubLogger())
    core.on_camera_info(info)
    return mc.image_to_array(core.on_image(image, ("depth",))["depth"])


def evaluate_depth(src, ckpt, cache) -> np.ndarray:
    """Run evaluate's predictor on the item the data layer makes of the frame.

    At native size and not rectified, as the node and bag_infer take the image as it is.
    """
    data = MonoBagDataset(src, IMAGE_TOPIC, INFO_TOPIC, rectify="never", cache_dir=cache,
                          progress=False)
    item = data[0]
    batch = {k: torch.as_tensor(item[k])[None] for k in ("left", "K")}
    depth = Predictor.load(str(ckpt), torch.device("cpu"))(batch)["depth"][0, 0].numpy()
    return np.where(depth > 0, depth, np.nan)  # evaluate's 0 = no depth; ROS's NaN


def test_evaluate_bag_infer_and_the_node_give_the_same_depth(frame, ckpt, tmp_path):
    src, image, info = frame
    bag = bag_infer_depth(src, ckpt, tmp_path / "out")
    node = node_depth(ckpt, image, info)
    ev = evaluate_depth(src, ckpt, tmp_path / "cache")
    assert bag.shape == node.shape == ev.shape == (960, 1280)
    assert np.isfinite(bag).all() and bag.min() > 0
    for name, other in (("node", node), ("evaluate", ev)):
        rel = np.abs(other - bag) / bag
        print(f"{name} vs bag_infer: max abs {np.abs(other - bag).max():.3g} m, "
              f"max rel {rel.max():.3g}")
        assert rel.max() <= REL_TOL, name
    # the scale the three share is the camera's: f_cam at the net input / f_train
    est = DepthEstimator.from_checkpoint(ckpt, "cpu")
    unscaled = DepthEstimator(tiny_model(focal_px=0.0), torch.device("cpu"))
    rgb = mc.msg_to_rgb8(image)
    ratio = np.median(bag / unscaled.predict(rgb).depth)
    fx = np.asarray(info.P).reshape(3, 4)[0, 0]
    assert ratio == pytest.approx(fx * est.work_size[1] / 1280 / est.focal_px, rel=1e-4)
