r"""Evaluate a checkpoint (or a classical teacher) on a dataset.

    python -m depth_kd_core.evaluate --checkpoint runs/x/checkpoints/best.pt
    python -m depth_kd_core.evaluate --checkpoint student.pt --teacher teacher.pt \
        data.source=kitti data.kitti.root=/data/kitti ... eval.crop=garg
    python -m depth_kd_core.evaluate --model sgbm_teacher model.num_disparities=128

Images are scored at the ground truth's resolution through the pipeline ``bag_infer`` and the
nodes use (``inference``: resize to the network's input, focal scaling by f_camera /
f_training, hole-aware resize back), so the figures describe what is deployed. Metrics come
from ``depth_kd_core.metrics`` (Eigen and KITTI-benchmark sets, optional Garg/Eigen crop, 80 m
cap); relative-scale models (self-supervised monocular) are median-scaled per image, metric
ones are not. Pixels a model leaves without depth (SGBM holes) are not scored; ``coverage``
reports the fraction of scored ground-truth pixels (inside the crop) that got a prediction.
``model.*`` overrides configure a model named by ``--model``. With ``--teacher`` the student is
also scored against the teacher's depth (agreement, TIE-KD Table II). Models with sigma get
Spearman rho(sigma, |error|) and AUSE.

Outputs in ``eval.out_dir``: per_image.csv, summary.json, and grid_XXXXX.png (input, depth,
ground truth, error, sigma) every ``eval.grid_every`` images.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from depth_kd_core.baselines import DepthPrior, PriorPredictor, fit_depth_prior
from depth_kd_core.cli import run_cli
from depth_kd_core.config import deep_merge, dump_yaml, parse_overrides, read_yaml
from depth_kd_core.config_build import build_dataclass, registry_section
from depth_kd_core.data.config import DataCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.errors import DepthKDError
from depth_kd_core.fileio import atomic_path, atomic_write_text
from depth_kd_core.inference import estimator_for_model, load_network
from depth_kd_core.metrics import average_metrics, crop_mask, depth_metrics, uncertainty_metrics
from depth_kd_core.models.base import ModelCfg
from depth_kd_core.models.registry import MODELS, create_model
from depth_kd_core.runtime import select_device
from depth_kd_core.visualize import colorize, colorize_depth, to_rgb_u8


@dataclass
class EvalCfg:
    """The ``eval`` section.

    Attributes:
        checkpoint: checkpoint to score; or ``model``: a registered model needing no weights.
        teacher: checkpoint or model name whose depth the student is compared with.
        split: "val" (held-out) or "train" part of the data source.
        crop, min_depth, max_depth: evaluation protocol (KITTI Eigen: garg, 1e-3, 80).
        median_scaling: "auto" = only for relative-scale models.
        max_images: 0 = all.
        baselines: also score the no-image prior (per-pixel mean log-depth of the training
            split's ground truth) and a constant depth, so a reader sees what the image adds.
        prior_images: training images the prior averages (spread over the split).
    """

    checkpoint: str = ""
    model: str = ""
    teacher: str = ""
    split: Literal["val", "train"] = "val"
    crop: Literal["none", "garg", "eigen"] = "none"
    min_depth: float = 1e-3
    max_depth: float = 80.0
    median_scaling: Literal["auto", "on", "off"] = "auto"
    max_images: int = 0
    batch_size: int = 1
    out_dir: str = "outputs/eval"
    grid_every: int = 10
    device: str = "auto"
    baselines: bool = True
    prior_images: int = 200


@dataclass
class EvaluateConfig:
    """The evaluation settings: ``eval`` (protocol), ``data`` (what is scored) and ``model``.

    ``model`` is the configuration of a model named by ``eval.model`` (``--model``), e.g.
    ``model.num_disparities=128``.
    """

    eval: EvalCfg = field(default_factory=EvalCfg)
    data: DataCfg = field(default_factory=lambda: DataCfg(augment=_no_augment()))
    model: ModelCfg | None = registry_section(MODELS, lambda: None)


def _no_augment():
    from depth_kd_core.data.config import AugmentCfg

    return AugmentCfg(enabled=False)


class Predictor:
    """A model behind the evaluation loop, run through :mod:`depth_kd_core.inference`.

    Each batch item is handed to the same estimator call ``bag_infer`` and the nodes make
    (as uint8 RGB with its K): resize to the network, normalisation, focal scaling by
    f_camera / f_training, hole-aware resizing back. Items come as floats in [0, 1] and are
    rounded to uint8 first, exact for images decoded from a camera or bag.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.estimator = estimator_for_model(model, device)
        self.cfg = model.cfg

    @classmethod
    def load(cls, spec: str, device: torch.device, cfg: ModelCfg | None = None
             ) -> "Predictor":
        """Load the predictor named by ``spec``.

        ``spec``: a checkpoint path (.pt, or an exported .onnx / .ts), or the name of a
        registered model without weights, built from ``cfg`` when given (the ``model``
        section: ``model.num_disparities=128``).
        """
        if Path(spec).is_file():
            model = load_network(spec)
        else:
            model = create_model(spec, cfg)
            if any(True for _ in model.parameters()):
                raise DepthKDError(f"'{spec}' is neither a checkpoint file nor a model that "
                                   f"works without trained weights (like sgbm_teacher)")
        return cls(model, device)

    @property
    def resizes(self) -> bool:
        """Whether the model runs at its own input size (False: at the camera's, SGBM)."""
        return self.estimator.work_size is not None

    def __call__(self, batch: dict, out_size: tuple[int, int] | None = None
                 ) -> dict[str, torch.Tensor]:
        """Depth (and sigma): (B, 1, H, W) metres, 0 = no depth.

        At the batch's resolution, or at ``out_size`` (height, width): resized hole-aware.
        """
        images = _to_rgb8(batch["left"])
        Ks = [k.double().numpy() for k in batch["K"]] if "K" in batch else [None] * len(images)
        if self.cfg.stereo_input:
            rights = _to_rgb8(batch["right"])
            base = batch["baseline"]
            preds = [self.estimator.predict(left, right, K, float(b), out_size)
                     for left, right, K, b in zip(images, rights, Ks, base)]
        else:
            preds = self.estimator.predict_batch(images, Ks, out_size)
        result = {"depth": _stack([p.depth for p in preds])}
        if preds[0].has_sigma:
            result["sigma"] = _stack([p.sigma for p in preds])
        return result


def _to_rgb8(images: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) float in [0, 1] -> B arrays (H, W, 3) uint8 RGB."""
    u8 = (images.detach().float().cpu() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return list(u8.permute(0, 2, 3, 1).numpy())


def _stack(maps: list[np.ndarray]) -> torch.Tensor:
    """B maps (H, W), NaN = invalid -> (B, 1, H, W) with 0 = invalid (the metrics' rule)."""
    return torch.from_numpy(np.nan_to_num(np.stack(maps), nan=0.0))[:, None].float()


def _image_row(i: int, m: dict, agree: dict | None, unc: dict | None) -> dict:
    row = {"image": i, **m}
    row.update({f"agree_{k}": v for k, v in (agree or {}).items()})
    row.update(unc or {})
    return row


def _grid(batch: dict, b: int, depth: torch.Tensor, sigma, max_depth: float) -> np.ndarray:
    gt = batch["depth_gt"][b, 0].numpy()
    pred = depth[b, 0].numpy()
    err = np.where(gt > 0, np.abs(pred - gt), np.nan)
    err_max = max(np.nanpercentile(err, 95) if np.isfinite(err).any() else 1.0, 1e-3)
    panels = [to_rgb_u8(batch["left"][b]), colorize_depth(pred, max_depth=max_depth),
              colorize_depth(gt, max_depth=max_depth), colorize(err, 0.0, err_max)]
    if sigma is not None:
        s = sigma[b, 0].numpy()
        panels.append(colorize(s, 0.0, float(np.percentile(s, 99)) + 1e-6))
    return np.concatenate(panels, axis=0)


def _score_item(i: int, gt: torch.Tensor, out: dict, b: int, t_depth: torch.Tensor | None,
                median: bool, cfg: EvalCfg) -> dict | None:
    """Metrics of batch item ``b`` (None when it has no valid ground truth).

    Pixels without a prediction (classical matchers' holes, 0) are not scored; ``coverage``
    is the fraction of scored ground truth (inside the crop, in range) that got one.
    """
    crop = None if cfg.crop == "none" else cfg.crop
    kw = dict(min_depth=cfg.min_depth, max_depth=cfg.max_depth, crop=crop)
    pred = out["depth"][b, 0]
    predicted = pred > 0
    try:
        m = depth_metrics(pred, torch.where(predicted, gt, torch.zeros_like(gt)),
                          median_scaling=median, **kw)
    except ValueError:  # no valid ground truth in this image
        return None
    scored = (gt > cfg.min_depth) & (gt < cfg.max_depth) & \
        torch.from_numpy(crop_mask(*gt.shape, crop))
    m["coverage"] = float((scored & predicted).sum() / scored.sum().clamp_min(1))
    agree = depth_metrics(pred, t_depth[b, 0], median_scaling=median, **kw) \
        if t_depth is not None else None
    unc = uncertainty_metrics(pred, out["sigma"][b, 0], gt, **kw) if "sigma" in out else None
    return _image_row(i, m, agree, unc)


def evaluate(predictor: Predictor, dataset, cfg: EvalCfg, teacher: Predictor | None = None,
             write: bool = True, progress: bool = True) -> dict:
    """Score ``predictor`` on ``dataset`` (items in the batch schema with ``depth_gt``).

    Returns {"summary": mean metrics, "rows": per-image metrics}; writes the CSV, JSON and
    grids into ``cfg.out_dir`` when ``write``.
    """
    median = cfg.median_scaling == "on" or (cfg.median_scaling == "auto" and
                                            predictor.cfg.output_kind == "relative_depth")
    out_dir = Path(cfg.out_dir)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(dataset, batch_size=cfg.batch_size)
    rows, i = [], 0
    total = min(len(dataset), cfg.max_images) if cfg.max_images else len(dataset)
    for batch in tqdm(loader, total=-(-total // cfg.batch_size), desc="evaluate",
                      disable=not progress):
        if "depth_gt" not in batch:
            raise DepthKDError("evaluation needs ground truth (depth_gt) in the data source")
        out = predictor(batch)
        t_depth = teacher(batch)["depth"] if teacher is not None else None
        for b in range(batch["left"].shape[0]):
            if i >= total:
                break
            row = _score_item(i, batch["depth_gt"][b, 0], out, b, t_depth, median, cfg)
            if row is not None:
                rows.append(row)
                if write and cfg.grid_every and i % cfg.grid_every == 0:
                    grid = _grid(batch, b, out["depth"], out.get("sigma"), cfg.max_depth)
                    cv2.imwrite(str(out_dir / f"grid_{i:05d}.png"), grid[..., ::-1])
            i += 1
        if i >= total:
            break
    if not rows:
        raise DepthKDError("no image of the evaluation set had valid ground truth")
    summary = average_metrics([{k: v for k, v in r.items() if k != "image"} for r in rows])
    summary.update(images=len(rows), median_scaling=median, crop=cfg.crop)
    if write:
        _write_outputs(out_dir, rows, summary)
    return {"summary": summary, "rows": rows}


def _write_outputs(out_dir: Path, rows: list[dict], summary: dict) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(out_dir / "per_image.csv") as tmp:
        tmp.write_text(buf.getvalue())
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def load_eval_config(path: str | None, overrides, checkpoint: str | None = None,
                     model: str | None = None, teacher: str | None = None) -> EvaluateConfig:
    data = read_yaml(path) if path else {}
    data = {k: v for k, v in data.items() if k in ("eval", "data")}  # a training config works
    data = deep_merge(data, parse_overrides(overrides))
    ev = data.setdefault("eval", {})
    for key, value in (("checkpoint", checkpoint), ("model", model), ("teacher", teacher)):
        if value:
            ev[key] = value
    if "model" in data:
        if not ev.get("model"):
            raise DepthKDError(f"model.* overrides ({', '.join(sorted(data['model']))}) need a "
                               f"model named by --model (e.g. --model sgbm_teacher)")
        data["model"] = {**data["model"], "name": ev["model"]}
    data.setdefault("data", {}).setdefault("augment", {})["enabled"] = False
    return build_dataclass(EvaluateConfig, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depth_kd_core.evaluate",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkpoint", help="checkpoint to evaluate")
    parser.add_argument("--model", help="or: a registered model without weights (sgbm_teacher)")
    parser.add_argument("--teacher", help="checkpoint or model to measure agreement against")
    parser.add_argument("--config", help="YAML with 'eval' and/or 'data' sections (a training "
                                         "config works: its data section is used)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="e.g. eval.crop=garg data.source=kitti data.kitti.root=...")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: DEPTH_KD_DEBUG=1)")
    args = parser.parse_args(argv)
    return run_cli(lambda: _main(args), debug=args.debug, prog="depth_kd_core.evaluate")


def _main(args: argparse.Namespace) -> int:
    cfg = load_eval_config(args.config, args.overrides, args.checkpoint, args.model,
                           args.teacher)
    result = run(cfg)
    s = result["summary"]
    keys = [k for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "silog", "coverage",
                        "agree_abs_rel", "spearman_sigma_abs_err", "ause_abs_err") if k in s]
    print("\n".join(f"{k:>24} {s[k]:10.4f}" for k in keys))
    if s.get("baselines"):
        print("\n" + baseline_table({"model": s, **s["baselines"]}))
    print(f"{s['images']} images; results in {cfg.eval.out_dir}")
    return 0


TABLE_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "coverage")


def baseline_table(rows: dict[str, dict]) -> str:
    """Markdown table of models' summaries (missing keys shown as '-')."""
    lines = ["| model | " + " | ".join(TABLE_KEYS) + " |", "|---" * (len(TABLE_KEYS) + 1) + "|"]
    for name, m in rows.items():
        cells = (f"{m[k]:.3f}" if k in m else "-" for k in TABLE_KEYS)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def score_baselines(prior: DepthPrior, dataset, cfg: EvalCfg) -> dict[str, dict]:
    """Summaries of the no-image prior and the constant on ``dataset`` (same protocol)."""
    out = {}
    for name, constant in (("no-image prior", False), ("constant depth", True)):
        summary = evaluate(PriorPredictor(prior, constant), dataset, cfg, write=False,
                           progress=False)["summary"]
        out[name] = {k: v for k, v in summary.items() if k != "coverage"}
    return out


def run(cfg: EvaluateConfig, prior: DepthPrior | None = None) -> dict:
    """Load the model(s) and data named by ``cfg`` and evaluate.

    With ``eval.baselines`` the summary gains ``baselines`` (no-image prior, constant); the
    prior is fitted on the data's training split unless ``prior`` is given (a caller whose
    training ground truth lives elsewhere, like the demo's LiDAR bag).
    """
    ev = cfg.eval
    spec = ev.checkpoint or ev.model
    if not spec:
        raise DepthKDError("name what to evaluate: --checkpoint PATH or --model NAME")
    device = select_device(ev.device, 0, "eval.device")
    predictor = Predictor.load(spec, device, cfg.model if not ev.checkpoint else None)
    teacher = Predictor.load(ev.teacher, device) if ev.teacher else None
    needs = {"depth_gt"}
    if predictor.cfg.stereo_input or (teacher is not None and teacher.cfg.stereo_input):
        needs |= {"right", "baseline"}
    data = cfg.data
    if data.source == "synthetic" and predictor.resizes:  # render at the network's size
        data = _with_size(data, predictor.cfg.input_height, predictor.cfg.input_width)
    train, val = build_datasets(data, needs)
    Path(ev.out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(ev.out_dir) / "config.yaml", dump_yaml(cfg))
    scored = val if ev.split == "val" else train
    result = evaluate(predictor, scored, ev, teacher)
    if ev.baselines:
        if prior is None:
            prior = fit_depth_prior(train, ev.prior_images)
        # the baselines get the model's protocol: median-scaled when the model was
        same = dataclasses.replace(ev, median_scaling="on" if result["summary"]["median_scaling"]
                                   else "off")
        result["summary"]["baselines"] = score_baselines(prior, scored, same)
        atomic_write_text(Path(ev.out_dir) / "summary.json",
                          json.dumps(result["summary"], indent=2) + "\n")
    return result


def _with_size(data: DataCfg, height: int, width: int) -> DataCfg:
    return dataclasses.replace(data, height=height, width=width)


if __name__ == "__main__":
    sys.exit(main())
