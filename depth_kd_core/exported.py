"""Exported networks (ONNX, TorchScript) loaded as objects that behave like the PyTorch model.

``python -m depth_kd_core.export`` writes a student as an ONNX (``.onnx``) or TorchScript
(``.ts``) file carrying its deployment metadata; :func:`load_exported` reads one back as an
:class:`ExportedNet`, which :class:`~depth_kd_core.inference.DepthEstimator` uses exactly as
it uses a model rebuilt from a ``.pt`` checkpoint: ``net.cfg`` is the model's ``ModelCfg``
rebuilt from the metadata, ``net(left)`` takes the same (B, 3, H, W) RGB batch in [0, 1] and
returns the same dict, ``{"depth": (B, 1, H, W) metres, "sigma": (B, 1, H, W) metres}``
(``sigma`` only for models that predict it).

The graph holds the whole network including its input normalisation; it takes ``image``
(B, 3, H, W) float RGB in [0, 1] at the exported size (B = 1 unless exported with a dynamic
batch) and outputs ``depth`` and, when predicted, ``sigma``. Metadata (one JSON document:
ONNX ``metadata_props["depth_kd"]``, TorchScript extra file ``depth_kd.json``) has the keys
of :data:`METADATA_KEYS`: ``input_height``, ``input_width`` (pixels), ``mean``, ``std``
(normalisation applied inside the graph), ``output_kind``, ``focal_px`` (training focal length
in pixels at the input size, 0 = unknown), ``min_depth``, ``max_depth`` (metres), ``outputs``,
``precision`` ("fp32"/"fp16"), ``dynamic_batch``, and ``model_name``/``model_cfg`` from which
the ``ModelCfg`` is rebuilt.

ONNX Runtime picks its execution providers from the device: on CUDA, TensorRT (engines
cached in ``<file>.trt_cache/``) then CUDA when the installed onnxruntime has them; the CPU
otherwise. Its CPU thread count follows torch's (``torch.get_num_threads()`` when the
session is created, i.e. what ``DepthEstimator(threads=...)`` set).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_kd_core.checkpoint import check_record
from depth_kd_core.errors import CheckpointError

LOG = logging.getLogger(__name__)
EXPORT_FORMAT_VERSION = 1
SUFFIXES = {".onnx": "onnx", ".ts": "torchscript"}  # file suffix -> backend
META_KEY = "depth_kd"  # ONNX metadata_props key holding the JSON document
TS_EXTRA_FILE = "depth_kd.json"  # TorchScript extra file holding it
INPUT_NAME = "image"
METADATA_KEYS = ("format_version", "model_name", "model_cfg", "input_height", "input_width",
                 "mean", "std", "output_kind", "focal_px", "min_depth", "max_depth", "outputs",
                 "precision", "dynamic_batch")


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` names an exported network (by suffix: .onnx, .ts)."""
    return Path(path).suffix.lower() in SUFFIXES


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read the deployment metadata of an exported file, checked for every key.

    Raises:
        CheckpointError: one line naming the file and what is missing or wrong.
    """
    path = Path(path)
    backend = SUFFIXES.get(path.suffix.lower())
    if backend is None:
        raise CheckpointError(f"{path}: unknown export suffix; expected one of "
                              f"{', '.join(SUFFIXES)}")
    if not path.is_file():
        raise CheckpointError(f"exported model not found: {path}")
    text = _read_onnx_meta(path) if backend == "onnx" else _read_ts_meta(path)
    if text is None:
        raise CheckpointError(f"{path}: no depth_kd metadata; write the file with "
                              f"'python -m depth_kd_core.export'")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: depth_kd metadata is not valid JSON ({exc})") from exc
    check_record(meta, METADATA_KEYS, EXPORT_FORMAT_VERSION, str(path), "depth_kd metadata")
    return meta


def _read_onnx_meta(path: Path) -> str | None:
    onnx = _import("onnx", path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a foreign or damaged file
        raise CheckpointError(f"{path}: not a readable ONNX file ({exc})") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    return props.get(META_KEY)


def _read_ts_meta(path: Path) -> str | None:
    extra = {TS_EXTRA_FILE: ""}
    try:
        _jit_load(path, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError/ValueError for foreign files
        raise CheckpointError(f"{path}: not a readable TorchScript file ({exc})") from exc
    return extra[TS_EXTRA_FILE] or None


def _jit_load(path: Path, **kwargs: Any) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", **kwargs)


def _import(name: str, path: Path):
    try:
        return __import__(name)
    except ImportError as exc:
        raise CheckpointError(f"{path}: loading it needs the '{name}' package; install it "
                              f"with pip install onnx onnxruntime (or onnxruntime-gpu)") from exc


def cfg_from_metadata(meta: dict[str, Any], path: str | Path) -> Any:
    """Return the validated ``ModelCfg`` of the metadata's ``model_name``/``model_cfg``."""
    from depth_kd_core.models.registry import model_cfg

    fields = dict(meta["model_cfg"])
    fields.pop("name", None)
    fields.update(pretrained=False)
    try:
        return model_cfg(meta["model_name"], **fields)
    except Exception as exc:  # unknown model or field: a newer or foreign export
        raise CheckpointError(f"{path}: metadata model '{meta['model_name']}' does not "
                              f"rebuild here ({exc})") from exc


class ExportedNet:
    """Base of the exported-network wrappers: metadata, cfg, input checks, output dict."""

    backend = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        self.cfg = cfg_from_metadata(self.meta, self.path)
        self.outputs = list(self.meta["outputs"])
        self.fp16 = self.meta["precision"] == "fp16"
        self.device = torch.device("cpu")

    def eval(self) -> ExportedNet:
        """No-op (an exported graph is always in inference mode); returns self."""
        return self

    def _check(self, left: torch.Tensor) -> None:
        size = (int(self.meta["input_height"]), int(self.meta["input_width"]))
        if left.dim() != 4 or left.shape[1] != 3 or tuple(left.shape[-2:]) != size:
            raise CheckpointError(f"{self.path} takes (B, 3, {size[0]}, {size[1]}) images "
                                  f"(its exported size), got {tuple(left.shape)}")
        if left.shape[0] != 1 and not self.meta["dynamic_batch"]:
            raise CheckpointError(f"{self.path} was exported for batch 1, got batch "
                                  f"{left.shape[0]}; re-export with --dynamic-batch")

    def _as_dict(self, values: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: v.float() for name, v in zip(self.outputs, values)}

    def __call__(self, left: torch.Tensor, right: torch.Tensor | None = None,
                 **context: Any) -> dict[str, torch.Tensor]:
        """Predict {"depth", ["sigma"]} (B, 1, H, W) metres from left (B, 3, H, W) RGB in [0, 1].

        ``right`` and ``context`` (K, baseline) are accepted and ignored, as the monocular
        PyTorch students do: the graph uses the training camera recorded at export.
        """
        self._check(left)
        return self._as_dict(self._forward(left))

    def _forward(self, left: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError


class OnnxNet(ExportedNet):
    """An exported ``.onnx`` run by ONNX Runtime (see the module docstring for providers)."""

    backend = "onnx"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.ort = _import("onnxruntime", self.path)
        self.session = None
        self.providers: list[str] = []

    def to(self, device: str | torch.device) -> OnnxNet:
        """Create the session for ``device``; CUDA devices use TensorRT/CUDA when present."""
        self.device = torch.device(device)
        available = self.ort.get_available_providers()
        wanted: list[Any] = []
        if self.device.type == "cuda":
            cache = str(self.path) + ".trt_cache"
            opts = {"device_id": self.device.index or 0}
            trt = {**opts, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                   "trt_fp16_enable": self.fp16}
            wanted = [(p, o) for p, o in (("TensorrtExecutionProvider", trt),
                                          ("CUDAExecutionProvider", opts)) if p in available]
            if not wanted:
                LOG.warning("%s: onnxruntime has no CUDA provider (install onnxruntime-gpu); "
                            "running on the CPU", self.path)
        wanted.append("CPUExecutionProvider")
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = self.ort.InferenceSession(str(self.path), options, providers=wanted)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise CheckpointError(f"{self.path}: ONNX Runtime cannot load it ({exc})") from exc
        self.providers = self.session.get_providers()
        return self

    def _forward(self, left: torch.Tensor) -> list[torch.Tensor]:
        if self.session is None:
            self.to("cpu")
        x = left.detach().to("cpu", torch.float16 if self.fp16 else torch.float32)
        outs = self.session.run(self.outputs, {INPUT_NAME: np.ascontiguousarray(x.numpy())})
        return [torch.from_numpy(o).to(self.device) for o in outs]


class TorchScriptNet(ExportedNet):
    """An exported ``.ts`` (traced TorchScript) run by torch."""

    backend = "torchscript"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.module = _jit_load(self.path).eval()

    def to(self, device: str | torch.device) -> TorchScriptNet:
        """Move the module to ``device``; returns self."""
        self.device = torch.device(device)
        self.module = self.module.to(self.device)
        return self

    def _forward(self, left: torch.Tensor) -> list[torch.Tensor]:
        x = left.to(self.device, torch.float16 if self.fp16 else torch.float32)
        with torch.inference_mode():
            return list(self.module(x))


def load_exported(path: str | Path) -> ExportedNet:
    """Open an exported file by its suffix (``.onnx`` -> ONNX Runtime, ``.ts`` -> TorchScript)."""
    backend = SUFFIXES.get(Path(path).suffix.lower())
    if backend == "onnx":
        return OnnxNet(path)
    if backend == "torchscript":
        return TorchScriptNet(path)
    raise CheckpointError(f"{path}: unknown export suffix; expected one of {', '.join(SUFFIXES)}")
