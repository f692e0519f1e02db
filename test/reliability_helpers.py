"""Shared pieces of the reliability corpus (test_reliability_runs, test_reliability_bags).

The cheapest tiny training run, a monocular bag's messages, checkpoints of tiny models, and
the one-line-error check of an in-process CLI call.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.config import to_dict
from depth_kd_core.data.bags import codec as mc
from depth_kd_core.models.registry import create_model

from bag_helpers import TS, camera_info, rgb_image
from tiny import overrides, tiny

MONO = ("/cam/image_raw", "/cam/camera_info", "/cam/depth")
H, W = 64, 64  # the smallest the tiny student's reflection padding takes
# supervised (ground truth only) with the tiny Monodepth-style student: the cheapest trainer
TINY_RUN = ["recipe.name=supervised", *overrides("model", "monodepth_student"),
            f"data.height={H}", f"data.width={W}", "data.synthetic.scenes=4",
            "data.synthetic.val_scenes=2", "data.batch_size=2", "data.val_batch_size=2",
            "data.augment.enabled=false", "data.synthetic.gt=dense", "trainer.progress=false",
            "trainer.tensorboard=false", "trainer.device=cpu", "trainer.max_steps=2"]


def run_cli(main, argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of an in-process CLI call; an error must be ONE line, no trace."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    if code != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, err
        assert "Traceback" not in err, err
    return code, err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dead_pid() -> int:
    """Return a pid that no process has now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def model_checkpoint(path: Path, name: str) -> Path:
    model = create_model(tiny(name))
    return save_checkpoint(path, {"model_name": model.cfg.name, "model_cfg": to_dict(model.cfg),
                                  "state_dict": model.state_dict()})


def mono_messages(n: int, *, bad: tuple[int, ...] = (), fx: float = 30.0,
                  stamps: list[int] | None = None) -> list:
    """Make n frames of a monocular camera with camera_info and 32FC1 depth.

    Frames in ``bad`` have a truncated image buffer (an undecodable frame).
    """
    out = []
    for k in range(n):
        log = 10**18 + k * 100_000_000
        ns = stamps[k] if stamps else log
        img = rgb_image(ns, H, W, 20 * k % 250)
        if k in bad:
            img = rgb_image(ns, H, W, data=np.zeros(10, np.uint8))
        info = camera_info(ns, H, W, fx=fx)
        if fx == 0:
            info.k[:], info.p[:] = 0, 0
        depth = TS.types["sensor_msgs/msg/Image"](
            header=img.header, **mc.depth_image_fields(np.full((H, W), 5.0, np.float32)))
        out += [(MONO[0], "sensor_msgs/msg/Image", log, img),
                (MONO[1], "sensor_msgs/msg/CameraInfo", log, info),
                (MONO[2], "sensor_msgs/msg/Image", log, depth)]
    return out


def bag_run_args(bag: Path, out: Path) -> list[str]:
    return [*TINY_RUN, f"trainer.out_dir={out}", "data.source=rosbag",
            f"data.rosbag.path={bag}", f"data.rosbag.left_topic={MONO[0]}",
            "data.rosbag.right_topic=", f"data.rosbag.left_info_topic={MONO[1]}",
            f"data.rosbag.depth_topic={MONO[2]}", "data.rosbag.val_fraction=0.34",
            "trainer.max_steps=4"]
