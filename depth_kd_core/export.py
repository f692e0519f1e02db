r"""Export a student checkpoint to ONNX or TorchScript with its deployment metadata.

    python -m depth_kd_core.export --checkpoint best.pt --format onnx
    python -m depth_kd_core.export --checkpoint best.pt --format onnx --height 352 --width 1216 \
        --dynamic-batch --out student_352x1216.onnx
    python -m depth_kd_core.export --checkpoint best.pt --format torchscript --fp16
    python -m depth_kd_core.export --check student.onnx --checkpoint best.pt [--image a.png]

The exported graph is the whole network, input normalisation included: ``image`` (B, 3, H, W)
RGB in [0, 1] at the export size -> ``depth`` and, when the model predicts it, ``sigma``
(B, 1, H, W) metres. The metadata (:mod:`depth_kd_core.exported`) lets ``DepthEstimator`` and
the ROS node load the file exactly as the ``.pt``. ``--height/--width`` change the input
size (multiples of the model's ``size_multiple``); the training focal length is rescaled
with the width, so metric scaling on other cameras stays right. After writing, the file is
checked against the checkpoint's PyTorch model (:mod:`depth_kd_core.export_check`) and the
figures are printed; exit status 3 when parity fails.

ONNX goes through torch's ``torch.export``-based exporter (opset 18, needs ``onnx`` and
``onnxscript``); TorchScript is a trace. ``--tensorrt`` (ONNX only, needs CUDA and an
onnxruntime-gpu built with TensorRT) also builds the TensorRT engine into
``<file>.trt_cache/``, which the loader reuses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depth_kd_core.checkpoint import load_checkpoint
from depth_kd_core.cli import run_cli
from depth_kd_core.config import to_dict
from depth_kd_core.errors import ConfigError, OutputError
from depth_kd_core.exported import (
    EXPORT_FORMAT_VERSION,
    INPUT_NAME,
    META_KEY,
    TS_EXTRA_FILE,
)
from depth_kd_core.fileio import atomic_path

LOG = logging.getLogger(__name__)
FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
ONNX_OPSET = 18
EXIT_PARITY_FAILED = 3
MAX_DYNAMIC_BATCH = 64  # upper bound declared for the dynamic batch axis
# A traceable implementation for configs that choose one at run time (DACNN's depth-aware
# convolution: "auto" may pick Triton or a custom autograd Function; the reference is one
# unfold, which exports in a fraction of the time of the tap-by-tap slices).
TRACEABLE_OVERRIDES = {"impl": "reference"}


class DeployNet(nn.Module):
    """image (B, 3, H, W) in [0, 1] -> (depth, [sigma]) of the wrapped depth_kd model."""

    def __init__(self, model: nn.Module, outputs: list[str]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[k] for k in self.outputs)


def export_model(checkpoint: str | Path, height: int | None = None, width: int | None = None
                 ) -> tuple[nn.Module, dict[str, Any], Any]:
    """Rebuild a checkpoint's network for export at ``height x width``.

    Returns:
        (model in eval mode with traceable kernels, the checkpoint, the ``ModelCfg`` to
        record: the checkpoint's with the export size and rescaled ``focal_px``).
    """
    from depth_kd_core.models.registry import model_from_checkpoint

    ckpt = load_checkpoint(checkpoint, "cpu")
    cfg = ckpt["model_cfg"]
    if cfg.get("stereo_input"):
        raise ConfigError(f"{checkpoint} holds the stereo teacher '{ckpt['model_name']}'; "
                          f"only monocular students are exported")
    h, w = int(height or cfg["input_height"]), int(width or cfg["input_width"])
    size = {"input_height": h, "input_width": w}
    if cfg.get("focal_px"):  # pixels at the input width: follows the width
        size["focal_px"] = float(cfg["focal_px"]) * w / int(cfg["input_width"])
    trace = {k: v for k, v in TRACEABLE_OVERRIDES.items() if k in cfg}
    model, _ = model_from_checkpoint(ckpt, "cpu", **size, **trace)
    # the recorded config keeps the checkpoint's kernel choice, not the export-time one
    record = dataclasses.replace(model.cfg, **{k: cfg[k] for k in trace})
    return model.eval(), ckpt, record


def deployment_metadata(model_name: str, cfg: Any, outputs: list[str], fp16: bool,
                        dynamic_batch: bool) -> dict[str, Any]:
    """Build the metadata document (keys: :data:`depth_kd_core.exported.METADATA_KEYS`)."""
    return {"format_version": EXPORT_FORMAT_VERSION, "model_name": model_name,
            "model_cfg": to_dict(cfg), "input_height": int(cfg.input_height),
            "input_width": int(cfg.input_width), "mean": list(cfg.mean), "std": list(cfg.std),
            "output_kind": cfg.output_kind, "focal_px": float(cfg.focal_px or 0.0),
            "min_depth": float(cfg.min_depth), "max_depth": float(cfg.max_depth),
            "outputs": outputs, "precision": "fp16" if fp16 else "fp32",
            "dynamic_batch": bool(dynamic_batch),
            "input": "image (B, 3, H, W) float RGB in [0, 1]; normalised inside the graph"}


def _write_onnx(net: DeployNet, example: torch.Tensor, tmp: Path, meta: dict,
                dynamic_batch: bool) -> None:
    import onnx

    dyn = None
    if dynamic_batch:
        dyn = {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example,), dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=[INPUT_NAME], output_names=net.outputs,
                                    dynamic_shapes=dyn, verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(tmp))


def _write_torchscript(net: DeployNet, example: torch.Tensor, tmp: Path, meta: dict,
                       dynamic_batch: bool) -> None:
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
        if dynamic_batch:  # a trace may bake the batch size into a reshape: prove it does not
            two = torch.cat([example, example.flip(-1)])
            for a, b in zip(traced(two), net(two)):
                if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-3, atol=1e-5):
                    raise ConfigError(f"model '{meta['model_name']}' does not trace with a "
                                      f"dynamic batch; export without --dynamic-batch or as "
                                      f"ONNX")
        torch.jit.save(traced, str(tmp), _extra_files={TS_EXTRA_FILE: json.dumps(meta)})


def export(checkpoint: str | Path, out: str | Path, fmt: str = "onnx", *,
           height: int | None = None, width: int | None = None, fp16: bool = False,
           dynamic_batch: bool = False, force: bool = False) -> Path:
    """Write ``checkpoint``'s network to ``out`` (see the module docstring); returns ``out``.

    Raises:
        ConfigError: unknown format, suffix not matching it, a bad size, a stereo teacher.
        OutputError: ``out`` exists and ``force`` is False.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if out.suffix.lower() != FORMATS[fmt]:
        raise ConfigError(f"output {out} must end in {FORMATS[fmt]} for --format {fmt} "
                          f"(the loader picks the backend by suffix)")
    if out.exists() and not force:
        raise OutputError(f"{out} exists; pass --force to overwrite it")
    model, ckpt, cfg = export_model(checkpoint, height, width)
    example = torch.rand(2 if dynamic_batch else 1, 3, cfg.input_height, cfg.input_width,
                         generator=torch.Generator().manual_seed(0))
    # deployed outputs in graph order; the rest of the output dict is for training
    net = DeployNet(model, ["depth", "sigma"] if cfg.has_sigma else ["depth"]).eval()
    if fp16:
        net, example = net.half(), example.half()
    meta = deployment_metadata(ckpt["model_name"], cfg, net.outputs, fp16, dynamic_batch)
    meta["source"] = {"checkpoint": Path(checkpoint).name,
                      "git_sha": str(ckpt.get("git_sha", "")), "step": ckpt.get("step")}
    writer = _write_onnx if fmt == "onnx" else _write_torchscript
    with atomic_path(out) as tmp:
        writer(net, example, tmp, meta, dynamic_batch)
    return out


def build_tensorrt_engine(path: str | Path) -> Path:
    """Build (and cache in ``<path>.trt_cache/``) the TensorRT engine of an ONNX export.

    Raises:
        ConfigError: no CUDA, or an onnxruntime without the TensorRT provider.
    """
    import onnxruntime as ort

    from depth_kd_core.exported import OnnxNet

    if not torch.cuda.is_available():
        raise ConfigError("--tensorrt needs a CUDA GPU; none is present on this machine")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise ConfigError(f"--tensorrt needs onnxruntime-gpu with TensorRT; this onnxruntime "
                          f"has {', '.join(ort.get_available_providers())}")
    net = OnnxNet(path).to("cuda")
    if net.providers[0] != "TensorrtExecutionProvider":
        raise ConfigError(f"{path}: TensorRT did not take the graph (providers "
                          f"{net.providers})")
    h, w = int(net.meta["input_height"]), int(net.meta["input_width"])
    net(torch.zeros(1, 3, h, w))  # the first run builds and caches the engine
    return Path(str(path) + ".trt_cache")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m depth_kd_core.export",
        description="Export a depth_kd student checkpoint to ONNX or TorchScript with its "
                    "deployment metadata (input size, normalisation, output kind, training "
                    "focal length, depth range), then check it against PyTorch; or, with "
                    "--check, print the parity figures of an exported file.",
        epilog="Exit status: 0 written/parity within tolerance, 2 bad input (one 'error:' "
               "line), 3 parity outside tolerance (fp32: 1e-3 relative).")
    p.add_argument("--checkpoint", required=True, help="depth_kd .pt checkpoint (a student)")
    p.add_argument("--format", choices=sorted(FORMATS), default="onnx",
                   help="onnx (ONNX Runtime, TensorRT) or torchscript (.ts); default onnx")
    p.add_argument("--out", help="output file (default: the checkpoint's path with .onnx or "
                                 ".ts); never overwritten without --force")
    p.add_argument("--height", type=int, help="input height in pixels (default: training)")
    p.add_argument("--width", type=int, help="input width in pixels (default: training)")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision weights and input (meant for GPUs)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help=f"accept batches of 1..{MAX_DYNAMIC_BATCH} (default: batch 1 only)")
    p.add_argument("--tensorrt", action="store_true",
                   help="ONNX only: also build the TensorRT engine cache (needs CUDA)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--no-check", action="store_true", help="skip the parity check after export")
    p.add_argument("--check", metavar="FILE",
                   help="do not export: compare FILE (.onnx/.ts) with --checkpoint and print "
                        "max relative/absolute differences of depth and sigma")
    p.add_argument("--image", action="append", metavar="PNG",
                   help="image to compare on (repeatable; default two synthetic views)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _main(args: argparse.Namespace) -> int:
    from depth_kd_core.export_check import check_parity

    target = args.check
    if target is None:
        if args.tensorrt and args.format != "onnx":
            raise ConfigError("--tensorrt needs --format onnx")
        target = args.out or str(Path(args.checkpoint).with_suffix(FORMATS[args.format]))
        export(args.checkpoint, target, args.format, height=args.height, width=args.width,
               fp16=args.fp16, dynamic_batch=args.dynamic_batch, force=args.force)
        print(f"wrote {target}")
        if args.tensorrt:
            print(f"TensorRT engine cached in {build_tensorrt_engine(target)}")
        if args.no_check:
            return 0
    report = check_parity(target, args.checkpoint, args.image)
    print(report.format())
    return 0 if report.passed else EXIT_PARITY_FAILED


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see ``--help``)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[depth_kd] %(message)s")
    return run_cli(lambda: _main(args), debug=args.debug, prog="depth_kd_export")


if __name__ == "__main__":
    sys.exit(main())

