"""Checkpoint in, metres out: :class:`DepthEstimator` (monocular students) and
:class:`StereoDepthEstimator` (stereo teachers: a network checkpoint or OpenCV SGBM).

The ROS nodes and ``bag_infer`` use only this module. One call takes an image at the camera's
resolution and returns depth at that resolution::

    est = DepthEstimator.from_checkpoint("best.pt")          # CUDA when available
    pred = est.predict(rgb, K=K)    # rgb: H x W x 3 uint8 RGB; K: 3 x 3 at H x W (optional)
    pred.depth      # H x W float32 metres, NaN = invalid
    pred.sigma      # H x W float32 metres (1-sigma), all NaN when the model predicts none
    pred.timings_ms # {"preprocess", "inference", "postprocess", "total"}

Preprocessing (from the checkpoint's ``ModelCfg``): the image is resized — not padded — to the
training resolution ``input_height x input_width`` (area filter when shrinking, bilinear
otherwise), so the network sees what it was trained on; a camera with another aspect ratio is
stretched, and its intrinsics follow the resize (``fx * W_net / W``). Output is resized back
(normalised bilinear interpolation: invalid pixels are not blended into valid ones).

Metric scale on another camera: a monocular network learns depth from apparent size, which
depends on the focal length of the training camera ``focal_px`` (pixels at the training
resolution). On a camera whose focal length at the network input is ``f_cam`` (K's fx scaled
to the network input), depth and sigma are multiplied by ``f_cam / focal_px``. The factor is 1
(and ``pred.scale_note`` says why) when scaling is disabled (``focal_scaling=False``), when no
K is given, or when the checkpoint does not record ``focal_px`` (0). SDFA-Net is run with its
training focal length and baseline and then scaled the same way, which equals using the
camera's focal length in its disparity-to-depth conversion.

CPU threads: ``threads`` (every constructor) sets torch's intra-op threads and OpenCV's for
the whole process (:func:`set_cpu_threads`); ``0`` picks :func:`auto_threads`, half the
usable cores. torch's default (all cores) lets one busy neighbour process stall every
OpenMP barrier: on 2 shared cores one ``predict`` took 1771 ms with 2 threads and 63 ms with
1. None (the default) leaves the process setting alone.

``relative_depth`` models (Monodepth2 trained from video) have no metric guarantee: their
depth is correct up to an unknown global scale (evaluate with median scaling); it is returned
in the same units for convenience and should not be used as metres.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from depth_kd_core.checkpoint import load_checkpoint, model_from_checkpoint
from depth_kd_core.data.camera_model import CameraCalibration
from depth_kd_core.data.transforms import resize_image
from depth_kd_core.errors import CheckpointError, ConfigError, ImageError
from depth_kd_core.exported import is_exported, load_exported
from depth_kd_core.visualize import COLORMAPS  # (re-exported for the nodes)

LOG = logging.getLogger(__name__)
DEPTH_KINDS = ("metric_depth", "relative_depth", "disparity_volume", "dpm")
MIN_WEIGHT = 0.5  # an output pixel is valid when >= half of its interpolation weight is valid


@dataclass
class DepthPrediction:
    """One prediction at the requested output size (the input size unless told otherwise).

    Attributes:
        depth: (H, W) float32 metres, NaN = invalid.
        sigma: (H, W) float32 metres, NaN where invalid or when the model predicts no sigma.
        has_sigma: whether the model predicts sigma.
        timings_ms: "preprocess", "inference", "postprocess" and "total", milliseconds.
        scale: factor applied for the focal length (1.0 when not applied).
        scale_note: why no focal scaling was applied ("" when it was).
    """

    depth: np.ndarray
    sigma: np.ndarray
    has_sigma: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    scale_note: str = ""


def select_device(device: str | torch.device | None) -> torch.device:
    """None -> CUDA when available, else CPU; refuse a CUDA device that is not there."""
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device ('cpu', 'cuda', "
                          f"'cuda:1' ...)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this "
                          f"machine; use device='cpu' (or leave it empty to choose)")
    return dev


def auto_threads() -> int:
    """Half the CPU cores this process may use, at least 1 (leaves room for the neighbours a
    robot's computer always has: drivers, other nodes)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


def set_cpu_threads(threads: int) -> int:
    """Set torch's intra-op and OpenCV's thread counts (process-wide); returns the count.

    Args:
        threads: >= 1, or 0 for :func:`auto_threads`.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be an integer >= 0 (0 = auto: half the cores), got "
                          f"{threads!r}")
    n = threads or auto_threads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


def check_rgb8(image: np.ndarray, name: str = "image") -> None:
    """Raise ImageError unless ``image`` is an H x W x 3 uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else \
            type(image).__name__
        raise ImageError(f"{name} must be an H x W x 3 uint8 RGB array, got {desc}")


def resize_valid(value: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]
                 ) -> torch.Tensor:
    """Resize (B, C, h, w) values to ``size`` without blending in invalid pixels.

    Normalised interpolation: interp(value * valid) / interp(valid); NaN where less than
    ``MIN_WEIGHT`` of the weight is valid. Antialiased when shrinking. When every pixel is
    valid (the usual network output) this is one plain interpolation: the weights sum to 1.
    """
    if tuple(value.shape[-2:]) == tuple(size):
        return torch.where(valid, value, torch.full_like(value, float("nan")))
    shrink = size[0] < value.shape[-2] or size[1] < value.shape[-1]
    kw = dict(size=size, mode="bilinear", align_corners=False, antialias=shrink)
    if bool(valid.all()):
        if not shrink and value.device.type == "cpu" and value.shape[0] == 1 \
                and value.shape[1] <= 4:
            return _upsample_cv2(value, size)
        return F.interpolate(value, **kw)
    w = valid.to(value.dtype)
    num = F.interpolate(torch.where(valid, value, torch.zeros_like(value)) * w, **kw)
    den = F.interpolate(w, **kw)
    return torch.where(den >= MIN_WEIGHT, num / den.clamp_min(1e-6),
                       torch.full_like(num, float("nan")))


def _upsample_cv2(value: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of (1, C <= 4, h, w) CPU values with OpenCV: the same half-pixel
    sampling as ``F.interpolate(mode="bilinear", align_corners=False)`` (edges replicated),
    several times faster on one core at camera resolution."""
    hwc = np.ascontiguousarray(value[0].permute(1, 2, 0).numpy())
    out = cv2.resize(hwc, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    out = out.reshape(size[0], size[1], -1)
    return torch.from_numpy(out).permute(2, 0, 1)[None]


def resize_depth_nan(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) metres with NaN = invalid -> (height, width), invalid pixels not blended in."""
    t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    valid = torch.isfinite(t) & (t > 0)
    return resize_valid(t, valid, (height, width))[0, 0].numpy()


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float,
                   colormap: str = "turbo") -> np.ndarray:
    """(H, W) metres (NaN/<= 0 invalid) -> (H, W, 3) uint8 BGR over a fixed range (for bgr8
    messages): :func:`depth_kd_core.visualize.colorize_depth`'s colours, computed directly
    in OpenCV's channel order (one colour-map pass, no channel reversal copies)."""
    if not 0 < min_depth < max_depth:
        raise ConfigError(f"colour range needs 0 < min_depth < max_depth, got {min_depth}, "
                          f"{max_depth}")
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap {colormap!r} is unknown; choose one of "
                          f"{', '.join(COLORMAPS)}")
    d = np.asarray(depth, dtype=np.float32)
    valid = (d > 0) & (d < np.inf)
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the same float32 steps as visualize.colorize (inverse depth, normalise, clip, x255),
        # in place; invalid pixels give junk indices that are blacked out below
        norm = np.divide(np.float32(1.0), d)
        norm -= np.float32(lo)
        norm /= np.float32(max(hi - lo, 1e-9))
        np.clip(norm, 0, 1, out=norm)
        norm *= np.float32(255)
        index = norm.astype(np.uint8)
    bgr = cv2.applyColorMap(index, COLORMAPS[colormap])
    if not valid.all():
        np.copyto(bgr, 0, where=~valid[..., None])
    return bgr


class _EstimatorBase:
    """Device, precision, timing and resizing shared by the mono and stereo estimators."""

    def __init__(self, model: torch.nn.Module, device: torch.device, fp16: bool,
                 focal_scaling: bool, work_size: tuple[int, int] | None,
                 threads: int | None = None) -> None:
        self.cfg = model.cfg
        self.threads = set_cpu_threads(threads) if threads is not None else \
            torch.get_num_threads()
        if self.cfg.output_kind not in DEPTH_KINDS:
            raise CheckpointError(f"model '{self.cfg.name}' outputs {self.cfg.output_kind!r}, "
                                  f"not depth; expected one of {', '.join(DEPTH_KINDS)}")
        self.device = device
        self.fp16 = bool(fp16) and device.type == "cuda"
        if fp16 and not self.fp16:
            LOG.warning("fp16 needs a CUDA device; running %s in float32 on %s",
                        self.cfg.name, device)
        self.model = model.to(device).eval()
        self.focal_scaling = focal_scaling
        self.work_size = work_size
        self.focal_px = float(getattr(self.cfg, "focal_px", 0.0) or 0.0)

    @property
    def name(self) -> str:
        """Registry name of the network."""
        return str(self.cfg.name)

    @property
    def metric(self) -> bool:
        """False for relative-depth models (see the module docstring)."""
        return self.cfg.output_kind != "relative_depth"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _to_tensor(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """H x W x 3 uint8 -> (1, 3, h, w) float in [0, 1] on the device, resized to size."""
        resized = np.ascontiguousarray(resize_image(image, size[0], size[1]))
        t = torch.from_numpy(resized).to(self.device, non_blocking=True)
        return t.permute(2, 0, 1)[None].float().div_(255.0)

    def _run(self, left: torch.Tensor, right: torch.Tensor | None, **context: Any) -> dict:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16,
                                                    enabled=self.fp16):
            return self.model(left, right, **context)

    def _scale(self, K: np.ndarray | None, width: int, net_width: int) -> tuple[float, str]:
        """f_cam / f_train with f_cam = K's fx scaled to the network input width."""
        if not self.focal_scaling:
            return 1.0, "focal scaling disabled"
        if K is None:
            return 1.0, "no camera intrinsics K given; depth assumes the training camera"
        if self.focal_px <= 0:
            return 1.0, (f"checkpoint of '{self.name}' records no training focal length "
                         f"(focal_px = 0); depth assumes the training camera")
        fx = float(np.asarray(K, dtype=np.float64).reshape(3, 3)[0, 0])
        if not fx > 0:
            return 1.0, f"K has fx = {fx}; focal scaling skipped"
        return fx * net_width / width / self.focal_px, ""

    def _finish(self, out: dict, out_size: tuple[int, int], scale: float,
                with_sigma: bool = True) -> tuple[np.ndarray, np.ndarray, bool]:
        """Model output -> (depth, sigma, has_sigma) numpy at out_size, scaled, NaN invalid.

        Depth and sigma are resized together in one call; ``with_sigma=False`` skips sigma
        (returned all NaN) when nobody needs it.
        """
        depth = out["depth"].float()
        valid = torch.isfinite(depth) & (depth > 0)
        sigma = out.get("sigma")
        has_sigma = sigma is not None
        if has_sigma and with_sigma:
            sigma = sigma.float()
            s_valid = valid & torch.isfinite(sigma) & (sigma >= 0)
            both = resize_valid(torch.cat([depth, sigma], 1), torch.cat([valid, s_valid], 1),
                                out_size)
            both.mul_(scale)
            depth_o, sigma_o = both[:, :1], both[:, 1:]
            sigma_o = torch.where(torch.isfinite(depth_o), sigma_o, torch.nan)
            sigma_np = sigma_o[0, 0].cpu().numpy()
        else:
            depth_o = resize_valid(depth, valid, out_size).mul_(scale)
            sigma_np = np.full(out_size, np.nan, dtype=np.float32)
        return depth_o[0, 0].cpu().numpy(), sigma_np, has_sigma


class DepthEstimator(_EstimatorBase):
    """A monocular depth network with its pre- and post-processing (see module docstring).

    Args:
        model: a registered monocular depth model (``model.cfg`` is its ModelCfg).
        device: where it runs (use :func:`select_device` to choose).
        fp16: half-precision autocast; honoured on CUDA only (float32 elsewhere, logged).
        focal_scaling: scale depth by f_cam / focal_px when K is given (module docstring).
        threads: CPU threads for the process (:func:`set_cpu_threads`; None = unchanged).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, *, fp16: bool = False,
                 focal_scaling: bool = True, threads: int | None = None) -> None:
        if model.cfg.stereo_input:
            raise CheckpointError(f"model '{model.cfg.name}' needs a stereo pair; use "
                                  f"StereoDepthEstimator")
        super().__init__(model, device, fp16, focal_scaling,
                         (int(model.cfg.input_height), int(model.cfg.input_width)), threads)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        fp16: bool = False, focal_scaling: bool = True,
                        threads: int | None = None) -> DepthEstimator:
        """Load a depth_kd checkpoint (.pt) or an exported network (.onnx: ONNX Runtime,
        .ts: TorchScript; see :mod:`depth_kd_core.exported`), chosen by the file's suffix;
        ``device`` None picks CUDA when available."""
        dev = select_device(device)
        if is_exported(path):
            model = load_exported(path)
        else:
            model, _ = model_from_checkpoint(load_checkpoint(path, "cpu"), "cpu")
        return cls(model, dev, fp16=fp16, focal_scaling=focal_scaling, threads=threads)

    def assumed_calibration(self, height: int, width: int) -> CameraCalibration | None:
        """The training camera at ``height x width`` (for outputs without a camera_info).

        fx = fy = ``focal_px`` scaled from the network input width, principal point at the
        image centre, no distortion; None when the checkpoint records no focal length.
        """
        if self.focal_px <= 0:
            return None
        f = self.focal_px * width / self.work_size[1]
        K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0],
                      [0.0, 0.0, 1.0]])
        return CameraCalibration(int(width), int(height), "plumb_bob", np.zeros(5), K,
                                 np.eye(3), np.hstack([K, np.zeros((3, 1))]))

    def predict(self, image: np.ndarray, K: np.ndarray | None = None,
                out_size: tuple[int, int] | None = None, *, with_sigma: bool = True
                ) -> DepthPrediction:
        """Depth (and sigma) of one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            K: 3 x 3 intrinsics of ``image`` (pixels at H x W); None skips focal scaling.
            out_size: (height, width) of the result; default (H, W).
            with_sigma: False skips resizing sigma (``pred.sigma`` all NaN; ``has_sigma``
                still says whether the model predicts it).

        Returns:
            A :class:`DepthPrediction` at ``out_size``.
        """
        check_rgb8(image)
        t0 = time.perf_counter()
        x = self._to_tensor(image, self.work_size)
        self._sync()
        t1 = time.perf_counter()
        out = self._run(x, None)
        self._sync()
        t2 = time.perf_counter()
        scale, note = self._scale(K, image.shape[1], self.work_size[1])
        depth, sigma, has_sigma = self._finish(out, out_size or image.shape[:2], scale,
                                               with_sigma)
        t3 = time.perf_counter()
        return DepthPrediction(depth, sigma, has_sigma, _timings(t0, t1, t2, t3), scale, note)


class StereoDepthEstimator(_EstimatorBase):
    """A stereo teacher on a rectified left/right pair: a network checkpoint or SGBM.

    Networks run at their training resolution (K scaled to it) and are rescaled to the
    camera by ``(f_cam / focal_px) * (baseline / baseline_m)`` when the checkpoint records
    them. SGBM needs no scaling: depth = fx * baseline / disparity with the camera's K and
    baseline, at the camera resolution unless ``work_size`` is given.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, *, fp16: bool = False,
                 focal_scaling: bool = True, work_size: tuple[int, int] | None = None,
                 threads: int | None = None) -> None:
        if not model.cfg.stereo_input:
            raise CheckpointError(f"model '{model.cfg.name}' is monocular; use DepthEstimator")
        super().__init__(model, device, fp16, focal_scaling, work_size, threads)
        self.is_sgbm = model.cfg.name == "sgbm_teacher"

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        fp16: bool = False, focal_scaling: bool = True,
                        threads: int | None = None) -> StereoDepthEstimator:
        """Load a stereo network teacher checkpoint (e.g. ``stereo_concat_teacher``)."""
        model, _ = model_from_checkpoint(load_checkpoint(path, "cpu"), "cpu")
        size = (int(model.cfg.input_height), int(model.cfg.input_width))
        return cls(model, select_device(device), fp16=fp16, focal_scaling=focal_scaling,
                   work_size=size, threads=threads)

    @classmethod
    def sgbm(cls, work_size: tuple[int, int] | None = None, threads: int | None = None,
             **sgbm_cfg: Any) -> StereoDepthEstimator:
        """OpenCV SGBM (no weights; always on CPU). ``sgbm_cfg``: ``SgbmCfg`` fields."""
        from depth_kd_core.models.registry import create_model

        model = create_model("sgbm_teacher", **sgbm_cfg)
        return cls(model, torch.device("cpu"), work_size=work_size, threads=threads)

    @classmethod
    def from_spec(cls, spec: str, device: str | torch.device | None = None,
                  threads: int | None = None, **sgbm_cfg: Any) -> StereoDepthEstimator:
        """"sgbm" (configured by ``sgbm_cfg``) or the path of a stereo teacher checkpoint."""
        if spec.strip().lower() == "sgbm":
            return cls.sgbm(threads=threads, **sgbm_cfg)
        return cls.from_checkpoint(spec, device, threads=threads)

    def predict(self, left: np.ndarray, right: np.ndarray, K: np.ndarray | None,
                baseline: float | None, out_size: tuple[int, int] | None = None
                ) -> DepthPrediction:
        """Depth of the left view of a rectified pair.

        Args:
            left, right: (H, W, 3) uint8 RGB, same size.
            K: 3 x 3 rectified intrinsics at H x W (CameraInfo P[:, :3]); required by SGBM.
            baseline: metres (from the right CameraInfo, -P[0, 3] / fx); required by SGBM.
            out_size: (height, width) of the result; default (H, W).
        """
        check_rgb8(left, "left")
        check_rgb8(right, "right")
        if left.shape != right.shape:
            raise ImageError(f"left {left.shape} and right {right.shape} differ in size")
        if self.is_sgbm and (K is None or baseline is None or not baseline > 0):
            raise ConfigError("SGBM needs K and a positive baseline (from the CameraInfo P "
                              "matrices of the rectified pair)")
        h, w = left.shape[:2]
        size = self.work_size or (h, w)
        t0 = time.perf_counter()
        lt, rt = self._to_tensor(left, size), self._to_tensor(right, size)
        context = _stereo_context(K, baseline, (h, w), size, self.device)
        self._sync()
        t1 = time.perf_counter()
        out = self._run(lt, rt, **context)
        self._sync()
        t2 = time.perf_counter()
        scale, note = (1.0, "") if self.is_sgbm else self._scale(K, w, size[1])
        train_b = float(getattr(self.cfg, "baseline_m", 0.0) or 0.0)
        if not self.is_sgbm and not note and baseline and train_b > 0:
            scale *= float(baseline) / train_b
        depth, sigma, has_sigma = self._finish(out, out_size or (h, w), scale)
        t3 = time.perf_counter()
        return DepthPrediction(depth, sigma, has_sigma, _timings(t0, t1, t2, t3), scale, note)


def _stereo_context(K: np.ndarray | None, baseline: float | None, size: tuple[int, int],
                    work: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    """K (scaled to the work size) and baseline as (1, 3, 3) and (1,) tensors."""
    from depth_kd_core.data.transforms import scale_intrinsics

    context: dict[str, torch.Tensor] = {}
    if K is not None:
        Kw = scale_intrinsics(np.asarray(K, np.float64).reshape(3, 3), work[1] / size[1],
                              work[0] / size[0])
        context["K"] = torch.as_tensor(Kw, dtype=torch.float32, device=device)[None]
    if baseline is not None:
        context["baseline"] = torch.tensor([float(baseline)], device=device)
    return context


def _timings(t0: float, t1: float, t2: float, t3: float) -> dict[str, float]:
    return {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
