"""Bag writing (``bags/writer.py``, driven by ``synthetic/recording.py``).

Bags carry REP 104 camera calibration and are written atomically (a failure leaves the
previous bag untouched and no debris).
"""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from depth_kd_core.data.bags.writer import RECORD_LATENCY_NS
from depth_kd_core.data.synthetic import recording
from depth_kd_core.data.synthetic.world import SyntheticWorld


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=1, height=24, width=64)


@pytest.mark.parametrize("storage, name", [("mcap", "bag"), ("ros1", "drive.bag")])
def test_camera_info_follows_rep_104(world, storage, name, tmp_path):
    path = recording.write_synthetic_bag(tmp_path / name, world, 2, storage=storage,
                                         with_depth=False)
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic == "/stereo/right/camera_info"]
        _, log_ns, raw = next(reader.messages(connections=conns))
        info = reader.deserialize(raw, conns[0].msgtype)
    P = np.asarray(info.p if hasattr(info, "p") else info.P).reshape(3, 4)
    assert P[0, 3] == pytest.approx(-world.focal * world.baseline)  # Tx = -fx * B
    np.testing.assert_allclose(P[:, :3], world.K)
    stamp = info.header.stamp.sec * 10**9 + info.header.stamp.nanosec
    assert stamp == recording.BAG_START_NS and log_ns == stamp + RECORD_LATENCY_NS
    assert (info.width, info.height) == (64, 24)


def test_a_failed_write_keeps_the_previous_bag_and_leaves_no_debris(world, tmp_path, monkeypatch):
    path = recording.write_synthetic_bag(tmp_path / "bag", world, 2, with_depth=False)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = recording.write_frame
    monkeypatch.setattr(recording, "write_frame", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        recording.write_synthetic_bag(path, world, 3, with_depth=False)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
