"""Checkpoint in, metres out: the depth estimators of monocular students and stereo teachers.

:class:`DepthEstimator` (monocular students) and :class:`StereoDepthEstimator` (stereo
teachers: a network checkpoint or OpenCV SGBM).

The one pipeline from an image (+ K) to metres and sigma: the ROS nodes, ``bag_infer`` and
``evaluate`` (:func:`estimator_for_model`, ``predict_batch``) all call it. One call takes an
image at the camera's resolution and returns depth at that resolution::

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
K is given, or when the checkpoint does not record ``focal_px`` (0). SDFA-Net runs with its
training focal length and baseline, then is scaled the same way.

``threads`` (every constructor): torch's and OpenCV's CPU threads for the process (0 = half
the cores; None leaves them alone). ``relative_depth`` models (video-trained Monodepth2) are
correct only up to a global scale. ``from_checkpoint`` also loads exported networks (.onnx,
.ts: :func:`load_network`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_kd_core.checkpoint import load_checkpoint
from depth_kd_core.data.camera import resize_image, scale_intrinsics
from depth_kd_core.depth_maps import resize_valid
from depth_kd_core.errors import CheckpointError, ConfigError, ImageError
from depth_kd_core.exported import is_exported, load_exported
from depth_kd_core.runtime import select_device, set_cpu_threads

LOG = logging.getLogger(__name__)
DEPTH_KINDS = ("metric_depth", "relative_depth", "disparity_volume", "dpm")


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


def check_rgb8(image: np.ndarray, name: str = "image") -> None:
    """Raise ImageError unless ``image`` is an H x W x 3 uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else \
            type(image).__name__
        raise ImageError(f"{name} must be an H x W x 3 uint8 RGB array, got {desc}")


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
                with_sigma: bool = True, index: int = 0
                ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Turn model output (item ``index`` of the batch) into (depth, sigma, has_sigma) numpy.

        The arrays are at out_size, scaled, NaN invalid (hole-aware: holes are not blended into
        neighbours).
        Depth and sigma are resized together in one call; ``with_sigma=False`` skips sigma
        (returned all NaN) when nobody needs it.
        """
        depth = out["depth"][index:index + 1].float()
        valid = torch.isfinite(depth) & (depth > 0)
        sigma = out.get("sigma")
        has_sigma = sigma is not None
        if has_sigma and with_sigma:
            sigma = sigma[index:index + 1].float()
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
        """Load a depth_kd checkpoint (.pt) or an exported network (.onnx, .ts), chosen by suffix.

        .onnx runs in ONNX Runtime, .ts in TorchScript (see :mod:`depth_kd_core.exported`);
        ``device`` None picks CUDA when available.
        """
        return cls(load_network(path), select_device(device), fp16=fp16,
                   focal_scaling=focal_scaling, threads=threads)

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
        return self.predict_batch([image], [K], out_size, with_sigma=with_sigma)[0]

    def predict_batch(self, images: list[np.ndarray], Ks: list[np.ndarray | None] | None = None,
                      out_size: tuple[int, int] | None = None, *, with_sigma: bool = True
                      ) -> list[DepthPrediction]:
        """:meth:`predict` of several images of one size in one forward pass (evaluation).

        Args:
            images: (H, W, 3) uint8 RGB each, all the same H x W.
            Ks: one 3 x 3 K (or None) per image; None = no K for any.
            out_size, with_sigma: as in :meth:`predict`.

        Returns:
            One :class:`DepthPrediction` per image; their timings are the whole batch's.
        """
        for i, image in enumerate(images):
            check_rgb8(image, f"image {i}" if len(images) > 1 else "image")
        if len({im.shape for im in images}) != 1:
            raise ImageError(f"a batch needs images of one size, got "
                             f"{sorted({im.shape for im in images})}")
        Ks = list(Ks) if Ks is not None else [None] * len(images)
        if len(Ks) != len(images):
            raise ImageError(f"{len(images)} images but {len(Ks)} intrinsics K")
        t0 = time.perf_counter()
        x = torch.cat([self._to_tensor(image, self.work_size) for image in images])
        self._sync()
        t1 = time.perf_counter()
        out = self._run(x, None)
        self._sync()
        t2 = time.perf_counter()
        h, w = images[0].shape[:2]
        results = []
        for b, K in enumerate(Ks):
            scale, note = self._scale(K, w, self.work_size[1])
            depth, sigma, has_sigma = self._finish(out, out_size or (h, w), scale, with_sigma,
                                                   index=b)
            results.append(DepthPrediction(depth, sigma, has_sigma, {}, scale, note))
        t3 = time.perf_counter()
        for r in results:
            r.timings_ms = _timings(t0, t1, t2, t3)
        return results


class StereoDepthEstimator(_EstimatorBase):
    """A stereo teacher on a rectified left/right pair: a network checkpoint or SGBM.

    Networks run at their training resolution (K scaled to it) and are rescaled to the
    camera by ``(f_cam / focal_px) * (baseline / baseline_m)`` when the checkpoint records
    them. Classical matchers (``cfg.classical``, e.g. SGBM) need no scaling: depth =
    fx * baseline / disparity with the camera's K and baseline, at the camera resolution
    unless ``work_size`` is given.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, *, fp16: bool = False,
                 focal_scaling: bool = True, work_size: tuple[int, int] | None = None,
                 threads: int | None = None) -> None:
        if not model.cfg.stereo_input:
            raise CheckpointError(f"model '{model.cfg.name}' is monocular; use DepthEstimator")
        super().__init__(model, device, fp16, focal_scaling, work_size, threads)
        self.classical = bool(model.cfg.classical)  # a matcher's depth is already the camera's

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        fp16: bool = False, focal_scaling: bool = True,
                        threads: int | None = None) -> StereoDepthEstimator:
        """Load a stereo teacher checkpoint (e.g. ``stereo_concat_teacher``)."""
        model = load_network(path)
        return cls(model, select_device(device), fp16=fp16, focal_scaling=focal_scaling,
                   work_size=stereo_work_size(model.cfg), threads=threads)

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
        if self.classical and (K is None or baseline is None or not baseline > 0):
            raise ConfigError(f"the classical matcher '{self.name}' needs K and a positive "
                              f"baseline (from the CameraInfo P matrices of the rectified "
                              f"pair)")
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
        scale, note = (1.0, "") if self.classical else self._scale(K, w, size[1])
        train_b = float(getattr(self.cfg, "baseline_m", 0.0) or 0.0)
        if not self.classical and not note and baseline and train_b > 0:
            scale *= float(baseline) / train_b
        depth, sigma, has_sigma = self._finish(out, out_size or (h, w), scale)
        t3 = time.perf_counter()
        return DepthPrediction(depth, sigma, has_sigma, _timings(t0, t1, t2, t3), scale, note)


def stereo_work_size(cfg: Any) -> tuple[int, int] | None:
    """Return the (height, width) a stereo model runs at; None for the camera's own size.

    A network runs at its training size, a classical matcher (``cfg.classical``, e.g. SGBM) at
    the camera's own size (None).
    """
    if cfg.classical:
        return None
    return int(cfg.input_height), int(cfg.input_width)


def estimator_for_model(model: torch.nn.Module, device: torch.device, *, fp16: bool = False,
                        focal_scaling: bool = True) -> DepthEstimator | StereoDepthEstimator:
    """Wrap a built model in its estimator.

    Mono networks as :class:`DepthEstimator`, stereo ones as :class:`StereoDepthEstimator` at
    :func:`stereo_work_size`.
    """
    if not model.cfg.stereo_input:
        return DepthEstimator(model, device, fp16=fp16, focal_scaling=focal_scaling)
    return StereoDepthEstimator(model, device, fp16=fp16, focal_scaling=focal_scaling,
                                work_size=stereo_work_size(model.cfg))


def load_network(path: str | Path) -> torch.nn.Module:
    """Load the network of a checkpoint (.pt) or an exported file (.onnx, .ts) on the CPU.

    Chosen by suffix: a depth_kd checkpoint, or an exported file (.onnx: ONNX Runtime, .ts:
    TorchScript; :mod:`depth_kd_core.exported`).
    """
    from depth_kd_core.models.registry import model_from_checkpoint

    if is_exported(path):
        return load_exported(path)
    return model_from_checkpoint(load_checkpoint(path, "cpu"), "cpu")[0]


def _stereo_context(K: np.ndarray | None, baseline: float | None, size: tuple[int, int],
                    work: tuple[int, int], device: torch.device) -> dict[str, torch.Tensor]:
    """K (scaled to the work size) and baseline as (1, 3, 3) and (1,) tensors."""
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

