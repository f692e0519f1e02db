"""Inference speed of the students per backend, batch 1: ``python -m benchmarks.inference``.

For each student and input size the network (random weights: speed does not depend on them)
runs through PyTorch eager, ``torch.compile`` (inductor), the TorchScript export and the ONNX
export under ONNX Runtime's CPU provider; the exports are written by
``depth_kd_core.export`` and loaded by ``depth_kd_core.exported``, the path the node uses.
With CUDA present, the same networks also run eager fp16, eager under a CUDA graph and ONNX
Runtime with TensorRT (fp16). Times are the median of ``--repeat`` calls after ``--warmup``
calls; ratios are against eager in the same run. Separately, the node-side overhead is the
time of ``MonoDepthCore.on_image`` (decode, resize, focal scaling, NaN fill, colourise,
message build, all outputs wanted) minus the network time the estimator reports, on
camera frames of the same size (eager backend).

    python -m benchmarks.inference                          # default TIE-KD student
    python -m benchmarks.inference --students all --repeat 5
    python -m benchmarks.inference --sizes 192x640 --backends eager,onnx

CPU threads: torch's current setting (run it pinned, e.g. ``OMP_NUM_THREADS=1 taskset -c 1``);
ONNX Runtime gets the same count.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import wall_times
from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.config import to_dict
from depth_kd_core.export import export
from depth_kd_core.exported import load_exported
from depth_kd_core.models import create_model

# The demo's student (depth_kd_core/demo.py STUDENT): what "the default student" means.
DEFAULT = ("tiekd_student", dict(encoder="mobilenetv2_100", decoder_channels=(16, 32, 64, 96, 128),
                                 n_bins=64))
# The five methods' students with their recipes' default architectures.
ALL = [DEFAULT, ("tiekd_student", {}), ("dacnn_student", {}), ("adu_student", {}),
       ("monodepth_student", {}), ("sdfa_net", {})]
SIZES = ((192, 640), (352, 1216))
BACKENDS = ("eager", "compile", "torchscript", "onnx")


def _label(name: str, overrides: dict) -> str:
    if (name, overrides) == DEFAULT:
        return "tiekd_student (default, 64 bins)"
    return name + (" (257 bins)" if name == "tiekd_student" else "")


def _checkpoint(folder: Path, name: str, overrides: dict, size: tuple[int, int]) -> Path:
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, input_height=size[0], input_width=size[1],
                         **overrides)
    path = folder / f"{name}_{size[0]}x{size[1]}.pt"
    save_checkpoint(path, {"model_name": name, "model_cfg": to_dict(model.cfg),
                           "state_dict": model.state_dict()})
    return path


def _time(fn, x: torch.Tensor, warmup: int, repeat: int, sync) -> float:
    """Median milliseconds of fn(x)."""
    return 1e3 * statistics.median(wall_times(lambda: fn(x), repeat, warmup=warmup, sync=sync))


def _runners(ckpt: Path, backends: list[str], folder: Path, device: torch.device) -> dict:
    """Return {backend name: callable(x) returning the output dict}."""
    from depth_kd_core.models.registry import model_from_checkpoint

    model, _ = model_from_checkpoint(ckpt, "cpu")
    model = model.to(device).eval()
    runners = {"eager": model}
    if "compile" in backends:
        runners["compile"] = torch.compile(model)
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        if fmt in backends:
            path = export(ckpt, folder / (ckpt.stem + suffix), fmt, force=True)
            runners[fmt] = load_exported(path).to(device)
    if device.type == "cuda":
        runners.update(_cuda_runners(ckpt, model, folder))
    return {k: v for k, v in runners.items() if k in backends or device.type == "cuda"}


def _cuda_runners(ckpt: Path, model: torch.nn.Module, folder: Path) -> dict:
    """fp16 eager, fp16 CUDA graph, ONNX Runtime TensorRT fp16 (when the provider exists)."""
    half = model.half()

    def fp16(x):
        return half(x.half())
    runners = {"eager fp16": fp16, "cuda graph fp16": _cuda_graph(fp16)}
    try:
        path = export(ckpt, folder / (ckpt.stem + "_fp16.onnx"), "onnx", fp16=True, force=True)
        net = load_exported(path).to("cuda")
        if net.providers and net.providers[0] == "TensorrtExecutionProvider":
            runners["tensorrt fp16"] = net
    except Exception as exc:  # noqa: BLE001 - a missing TensorRT only drops its row
        print(f"tensorrt row skipped: {exc}")
    return runners


def _cuda_graph(fn):
    """Return fn captured in a CUDA graph on its first call's input shape, replayed afterwards."""
    state: dict = {}

    def run(x):
        if "graph" not in state:
            state["x"] = x.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    fn(state["x"])
            torch.cuda.current_stream().wait_stream(s)
            state["graph"] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(state["graph"]):
                state["out"] = fn(state["x"])
        state["x"].copy_(x)
        state["graph"].replay()
        return state["out"]
    return run


def node_overhead_ms(ckpt: Path, size: tuple[int, int], repeat: int) -> tuple[float, float]:
    """(median callback ms, median network ms) of MonoDepthCore.on_image on size frames."""
    from rosbags.typesys import Stores, get_typestore

    from depth_kd_ros.mono_depth_core import MonoDepthCore

    types = get_typestore(Stores.ROS2_JAZZY)
    core = MonoDepthCore.from_params({"checkpoint": str(ckpt), "device": "cpu"}, types.types,
                                     logging.getLogger("bench"))
    predict, seen = core.estimator.predict, []

    def timed(*args, **kwargs):
        pred = predict(*args, **kwargs)
        seen.append(pred.timings_ms["inference"])
        return pred
    core.estimator.predict = timed
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    msg = _image_msg(types, rgb)
    totals = []
    for i in range(repeat + 2):
        t0 = time.perf_counter()
        if not core.on_image(msg):
            raise RuntimeError("the node core dropped the benchmark frame (see the log)")
        if i >= 2:
            totals.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(totals), statistics.median(seen[2:])


def _image_msg(types, rgb: np.ndarray):
    from depth_kd_core.data.bags import codec as mc

    cls = types.types["sensor_msgs/msg/Image"]
    hdr = types.types["std_msgs/msg/Header"]
    stamp = types.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0)
    return cls(header=hdr(stamp=stamp, frame_id="cam"), **mc.image_fields(rgb, "rgb8"))


def bench(students: list[tuple[str, dict]], sizes, backends: list[str], warmup: int,
          repeat: int, device: torch.device) -> list[dict]:
    """One row per student, size and backend: ms/frame, frames/s, ratio to eager."""
    rows = []
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in students:
            for size in sizes:
                ckpt = _checkpoint(Path(tmp), name, overrides, size)
                x = torch.rand(1, 3, *size, device=device)
                runners = _runners(ckpt, backends, Path(tmp), device)
                eager = None
                for backend, fn in runners.items():
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        ms = _time(fn, x, warmup, repeat, sync)
                    eager = ms if backend == "eager" else eager
                    rows.append(dict(student=_label(name, overrides), size=size,
                                     backend=backend, ms=ms, ratio=eager / ms,
                                     wall_s=time.perf_counter() - t0))
                    print(_row(rows[-1]), flush=True)
                if device.type == "cpu":
                    total, net = node_overhead_ms(ckpt, size, repeat)
                    rows.append(dict(student=_label(name, overrides), size=size,
                                     backend="node overhead", ms=total - net,
                                     ratio=(total - net) / total, wall_s=0.0))
                    print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict) -> str:
    h, w = r["size"]
    if r["backend"] == "node overhead":
        return (f"| {r['student']} | {w}x{h} | node overhead | {r['ms']:.1f} | - | "
                f"{100 * r['ratio']:.1f} % of the callback |")
    return (f"| {r['student']} | {w}x{h} | {r['backend']} | {r['ms']:.1f} | "
            f"{1e3 / r['ms']:.1f} | {r['ratio']:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", default="default",
                   help="'default' (the demo's TIE-KD student) or 'all' (adds the five "
                        "methods' students at their recipes' architectures)")
    p.add_argument("--sizes", default=",".join(f"{h}x{w}" for h, w in SIZES),
                   help="comma-separated HxW network inputs (default 192x640,352x1216)")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated subset of {','.join(BACKENDS)}")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    p.add_argument("--repeat", type=int, default=10, help="timed calls (median reported)")
    p.add_argument("--device", default="", help="'' = CUDA when available, else cpu")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    students = [DEFAULT] if args.students == "default" else ALL
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {device}")
    print("| student | input WxH | backend | ms/frame | frames/s | vs eager |")
    print("|---|---|---|---:|---:|---:|")
    bench(students, sizes, args.backends.split(","), args.warmup, args.repeat, device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
