"""Publish -> receive latency of ``mono_depth_node`` on the CPU, as a user's camera sees it.

For each image size a TIE-KD student (MobileNetV2 encoder, the quick recipe's decoder, random
weights: speed does not depend on them) runs in a real ``mono_depth_node`` process under real
rclpy; this process publishes rgb8 frames at 30 Hz stamped with the wall clock, subscribes to
every output (depth, uncertainty, colourised depth, camera_info: the most work per frame) and
measures receive time - stamp for each depth image. Each size is measured quiet and then with
one competing busy process (a Python busy loop). The node's own ``/diagnostics`` give the
model time (network forward) and the callback time (decode -> messages built), whose
difference is the node's overhead.

    python -m benchmarks.node_latency                       # 640x480 and 1280x720, 15 s each
    python -m benchmarks.node_latency --threads 2           # torch's old default on 2 cores
    python -m benchmarks.node_latency --transport           # Fast DDS profile: frames delivered

DDS stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a random ROS_DOMAIN_ID in
100-200) and uses config/fastdds_large_images.xml. Needs rclpy (``pip install -e .[ros-pip]``
or a sourced ROS 2).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"
ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
       "ROS_DOMAIN_ID": str(random.Random(os.getpid()).randint(100, 200)),
       "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE), "RCUTILS_COLORIZED_OUTPUT": "0"}
RATE_HZ = 30.0
NET_SIZE = (96, 320)  # network input (H, W)
BUSY = "while True: pass"


def _setup_env() -> dict[str, str]:
    os.environ.update(ENV)
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def make_checkpoint(path: Path) -> Path:
    """Write a TIE-KD student (tie_kd_quick's architecture) at NET_SIZE with random weights."""
    import torch

    from depth_kd_core.checkpoint import save_checkpoint
    from depth_kd_core.config import to_dict
    from depth_kd_core.models import create_model

    torch.manual_seed(0)
    model = create_model("tiekd_student", encoder="mobilenetv2_100", pretrained=False,
                         decoder_channels=[16, 32, 64, 96, 128], input_height=NET_SIZE[0],
                         input_width=NET_SIZE[1], focal_px=0.58 * NET_SIZE[1])
    return save_checkpoint(path, {"model_name": model.cfg.name,
                                  "model_cfg": to_dict(model.cfg),
                                  "state_dict": model.state_dict()})


class Bench:
    """rclpy client: publishes frames, collects depth receive latencies and diagnostics."""

    def __init__(self, ns: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image

        rclpy.init()
        self.node = rclpy.create_node("node_latency_bench", namespace=ns)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.lat_ms: list[float] = []
        self.diag: dict[str, str] = {}
        self.pub = self.node.create_publisher(Image, "image", 10)
        self.node.create_subscription(Image, "depth", self._on_depth, 10)
        for topic, cls in (("uncertainty", Image), ("depth/colorized", Image),
                           ("depth/camera_info", CameraInfo)):
            self.node.create_subscription(cls, topic, lambda m: None, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_depth(self, msg) -> None:
        sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.lat_ms.append((time.time_ns() - sent) / 1e6)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith("mono depth"):
                self.diag = {v.key: v.value for v in status.values}

    def run(self, frame, seconds: float) -> None:
        """Publish ``frame`` at RATE_HZ for ``seconds`` while collecting outputs."""
        period, start = 1.0 / RATE_HZ, time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            due = start + k * period
            while time.monotonic() < due:
                self.executor.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
            now = time.time_ns()
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(now, 10**9)
            self.pub.publish(frame)
            k += 1
        end = time.monotonic() + 1.5  # the last frames and a diagnostics message
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.shutdown()


def _frame(height: int, width: int):
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding="rgb8", step=3 * width)
    msg.header.frame_id = "camera_optical_frame"
    msg.data = rgb.tobytes()
    return msg


def measure(ckpt: Path, size: tuple[int, int], threads: int, seconds: float, env: dict
            ) -> list[dict]:
    """Quiet and busy rows for one image size (one node process)."""
    ns = f"/bench_{size[1]}x{size[0]}_{threads}"
    log = open(Path(tempfile.gettempdir()) / f"node_latency_{size[1]}x{size[0]}.log", "wb")
    cmd = [sys.executable, "-m", "depth_kd_ros.mono_depth_node", "--ros-args", "-r",
           f"__ns:={ns}", "-p", f"checkpoint:={ckpt}", "-p", "device:=cpu", "-p",
           f"threads:={threads}", "-p", "use_camera_info:=false", "-p",
           "diagnostics_window:=60"]
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    bench = Bench(ns)
    frame = _frame(*size)
    rows = []
    try:
        deadline = time.monotonic() + 300
        while not bench.lat_ms:  # started, discovered, warm
            assert node.poll() is None and time.monotonic() < deadline, "node did not start"
            bench.run(frame, 1.0)
        bench.run(frame, 3.0)
        for load in ("quiet", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
            try:
                if busy is not None:
                    bench.run(frame, 3.0)  # let the scheduler settle with the neighbour
                bench.lat_ms.clear()
                bench.run(frame, seconds)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            lat = np.array(bench.lat_ms)
            model = float(bench.diag.get("inference_ms_mean", "nan"))
            callback = float(bench.diag.get("latency_ms_mean", "nan"))
            rows.append(dict(size=f"{size[1]}x{size[0]}", load=load, threads=threads,
                             median=float(np.median(lat)), p90=float(np.percentile(lat, 90)),
                             rate=len(lat) / (seconds + 1.5), model=model, callback=callback,
                             overhead=(callback - model) / callback * 100))
            print(_row(rows[-1]), flush=True)
    finally:
        bench.close()
        node.send_signal(2)
        node.wait(60)
        log.close()
    return rows


HEADER = ("| image | load | threads | latency median / p90 (ms) | output Hz | model ms | "
          "callback ms | overhead |\n|---|---|---|---|---|---|---|---|")


def _row(r: dict) -> str:
    return (f"| {r['size']} | {r['load']} | {r['threads']} | {r['median']:.0f} / "
            f"{r['p90']:.0f} | {r['rate']:.1f} | {r['model']:.1f} | {r['callback']:.1f} | "
            f"{r['overhead']:.0f} % |")


def transport_check(env: dict) -> None:
    """Count best-effort rgb8 frames delivered between two processes.

    Default transports vs the package's Fast DDS profile (30 frames at 30 Hz per case).
    """
    print("| image | Fast DDS profile | frames received |\n|---|---|---|")
    for profile in ("", str(PROFILE)):
        for h, w in ((480, 640), (720, 1280)):
            case_env = {k: v for k, v in env.items() if k != "FASTRTPS_DEFAULT_PROFILES_FILE"}
            if profile:
                case_env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile
            out = subprocess.run([sys.executable, "-m", "benchmarks.node_latency",
                                  "--_receive", f"{h}x{w}"], env=case_env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
            got = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "failed"
            print(f"| {w}x{h} | {'yes' if profile else 'no (defaults)'} | {got} |",
                  flush=True)


def _receive(size: str, send: bool = False) -> None:
    """Run the helper process of :func:`transport_check` (receiver, which starts the sender)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    h, w = map(int, size.split("x"))
    rclpy.init()
    node = rclpy.create_node("transport_send" if send else "transport_receive")
    if send:
        pub = node.create_publisher(Image, "transport_check", 10)
        frame = _frame(h, w)
        end = time.monotonic() + 20
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(1.0)
        for k in range(30):
            frame.header.stamp.sec = k
            pub.publish(frame)
            time.sleep(1 / RATE_HZ)
        time.sleep(1.0)
        return
    got: set[int] = set()
    node.create_subscription(Image, "transport_check", lambda m: got.add(m.header.stamp.sec),
                             qos_profile_sensor_data)
    sender = subprocess.Popen([sys.executable, "-m", "benchmarks.node_latency", "--_send",
                               size], cwd=ROOT)
    end = time.monotonic() + 60
    while sender.poll() is None and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    for _ in range(20):
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"{len(got)}/30")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="measured seconds per image size and load")
    parser.add_argument("--sizes", default="640x480,1280x720", help="WxH,WxH ...")
    parser.add_argument("--threads", type=int, default=0,
                        help="node parameter 'threads' (0 = half the cores)")
    parser.add_argument("--transport", action="store_true",
                        help="only count frames delivered with and without the DDS profile")
    parser.add_argument("--_receive", help=argparse.SUPPRESS)
    parser.add_argument("--_send", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._receive or args._send:  # the environment comes from transport_check
        return _receive(args._receive or args._send, send=bool(args._send))
    env = _setup_env()
    if args.transport:
        return transport_check(env)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(Path(tmp) / "tiekd_quick.pt")
        print(f"TIE-KD student {NET_SIZE[1]}x{NET_SIZE[0]} input, {RATE_HZ:g} Hz rgb8 input, "
              f"{args.seconds:g} s per row, {os.cpu_count()} CPUs\n{HEADER}", flush=True)
        for size in args.sizes.split(","):
            w, h = map(int, size.split("x"))
            measure(ckpt, (h, w), args.threads, args.seconds, env)


if __name__ == "__main__":
    main()
