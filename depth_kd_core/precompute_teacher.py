r"""Precompute a teacher's depth for every training item, optionally at a higher resolution.

    python -m depth_kd_core.precompute_teacher --config config/tie_kd_quick.yaml \
        --teacher sgbm_teacher model.num_disparities=64 --scale 2 --out runs/quick/sgbm_x2
    python -m depth_kd_core.train --config config/tie_kd_quick.yaml recipe.teacher_checkpoint= \
        recipe.confidence_weight=false teacher.name=precomputed_teacher \
        data.teacher_depth_dir=runs/quick/sgbm_x2 trainer.out_dir=runs/quick/tie_kd_x2

TIE-KD's teacher is any depth model whose output is computed once and stored (METHODS §2).
With ``--scale K`` the teacher sees each training item loaded at K times the configured size
(data.height/width, or data.resize_height/width when training crops) and its depth is resized
back, hole-aware, to that size: a stereo matcher at twice the resolution measures twice the
disparity per metre, so it is clearly stronger than a student trained at the lower one. The
teacher runs through the same inference path as evaluation and the nodes.

The config's ``data`` section says which items (a training config works); ``model.*``
overrides configure a teacher named by registry name (SGBM's ``num_disparities`` should grow
with ``--scale`` to keep the same nearest depth). ``--out`` gets one
16-bit PNG per item (metres x 256, 0 = no depth; the KITTI encoding) named by the item's
position, and ``teacher_depth.json`` (teacher, its settings, scale, size, item count, and the
coverage of the maps written by the last run). An
interrupted run continues where it stopped when started again with the same settings; a
finished folder, or one written with other settings, is only replaced with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from depth_kd_core.cli import run_cli, setup_cli_logging
from depth_kd_core.config import deep_merge, parse_overrides, read_yaml
from depth_kd_core.config_build import build_dataclass
from depth_kd_core.data.config import AugmentCfg, DataCfg
from depth_kd_core.data.datasets import load_size, training_items
from depth_kd_core.data.depth_png import write_depth_png
from depth_kd_core.data.teacher_depth import MANIFEST, depth_file, read_manifest
from depth_kd_core.errors import ConfigError
from depth_kd_core.evaluate import Predictor
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.models.registry import model_cfg
from depth_kd_core.runtime import select_device


def scaled(data: DataCfg, scale: int) -> DataCfg:
    """Return ``data`` with its load size (and crop) times ``scale``, augmentation off.

    The items are read once, so the synthetic source does not keep them in memory.
    """
    if scale < 1:
        raise ConfigError(f"--scale must be an integer >= 1, got {scale}")
    if scale > 1 and 0 in load_size(data):
        raise ConfigError("--scale needs a fixed size: set data.height and data.width (or "
                          "data.resize_height/width); 0 keeps each image's native size")
    return dataclasses.replace(
        data, height=data.height * scale, width=data.width * scale,
        resize_height=data.resize_height * scale, resize_width=data.resize_width * scale,
        teacher_depth_dir="", augment=AugmentCfg(enabled=False),
        synthetic=dataclasses.replace(data.synthetic, cache=False))


def precompute(data: DataCfg, teacher: str, out: str | Path, scale: int = 1, *,
               model: dict | None = None, overwrite: bool = False, device: str = "auto",
               batch_size: int = 8, progress: bool = True) -> dict:
    """Write ``teacher``'s depth of every training item of ``data`` into ``out``.

    Args:
        data: the ``data`` section whose training items are precomputed.
        teacher: a checkpoint (.pt/.onnx/.ts) or a model without weights (sgbm_teacher).
        model: settings of a teacher given by name (``{"num_disparities": 64}``).
        out: the folder (``data.teacher_depth_dir`` of the training run).
        scale: the teacher sees the items at ``scale`` times their load size.
        overwrite: replace a finished folder, or one written with other settings.

    Returns:
        The manifest: teacher, scale, size [H, W], items, coverage (fraction of pixels with
        depth), seconds.
    """
    out, hires = Path(out), scaled(data, scale)  # a bad scale fails before any file is touched
    model = dict(model or {})
    if model and Path(teacher).is_file():
        raise ConfigError(f"model.* overrides configure a teacher named by registry name "
                          f"(sgbm_teacher), not the checkpoint {teacher}")
    predictor = Predictor.load(teacher, select_device(device, None, "--device"),
                               model_cfg(teacher, **model) if model else None)
    size = load_size(data)
    settings = {"teacher": str(teacher), "model": model, "scale": scale, "size": list(size),
                "source": data.source}
    _prepare(out, settings, overwrite)
    needs = {"right", "baseline"} if predictor.cfg.stereo_input else set()
    items = training_items(hires, needs)
    settings["items"] = len(items)
    atomic_write_text(out / MANIFEST, json.dumps({**settings, "complete": False}, indent=2))
    start, covered, done = time.time(), 0.0, 0
    out_size = tuple(size) if 0 not in size else None  # native size: scale is 1 (scaled())
    loader = DataLoader(items, batch_size=batch_size)
    for batch in tqdm(loader, desc=f"teacher depth x{scale}", unit="batch", disable=not progress):
        todo = {b: depth_file(out, i) for b, i in enumerate(batch["index"].tolist())
                if overwrite or not depth_file(out, i).exists()}
        if not todo:
            continue
        depth = predictor(batch, out_size=out_size)["depth"][:, 0].numpy()
        for b, path in todo.items():
            write_depth_png(path, depth[b])
            covered += float(np.mean(depth[b] > 0))
            done += 1
    manifest = {**settings, "complete": True, "coverage": covered / max(done, 1),
                "seconds": round(time.time() - start, 1)}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def _prepare(out: Path, settings: dict, overwrite: bool) -> None:
    """Create ``out``, or check that continuing or replacing what it holds is allowed."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if not out.exists() or not any(out.iterdir()) or overwrite:
        out.mkdir(parents=True, exist_ok=True)
        return
    found = read_manifest(out)
    if found is None:
        raise ConfigError(f"--out {out} already holds files that are not a teacher-depth "
                          f"precomputation; choose an empty folder (or pass --overwrite)")
    if found.get("complete"):
        raise ConfigError(f"--out {out} already holds a finished precomputation "
                          f"({found.get('teacher')}, x{found.get('scale')}); pass --overwrite "
                          f"to replace it")
    earlier = {k: found.get(k) for k in settings}
    if earlier != settings:
        raise ConfigError(f"--out {out} holds an unfinished precomputation with other settings "
                          f"({earlier}); pass --overwrite to start again")


def load_sections(path: str | None, overrides: list[str]) -> tuple[DataCfg, dict]:
    """Return a config file's ``data`` section with overrides, and the ``model.*`` overrides.

    A training config works; the ``model.*`` overrides are the teacher's settings.
    """
    raw = read_yaml(path) if path else {}
    raw = deep_merge({"data": raw.get("data", {})}, parse_overrides(overrides))
    extra = sorted(set(raw) - {"data", "model"})
    if extra:
        raise ConfigError(f"only data.* and model.* overrides apply here, got sections {extra}")
    return build_dataclass(DataCfg, raw["data"]), raw.get("model", {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depth_kd_core.precompute_teacher",
                                     description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument("--teacher", required=True,
                        help="teacher checkpoint (.pt/.onnx/.ts) or a model without weights "
                             "(sgbm_teacher)")
    parser.add_argument("--out", required=True, help="folder for the depth maps "
                                                     "(data.teacher_depth_dir of training)")
    parser.add_argument("--config", help="YAML whose data section names the training items "
                                         "(a training config works)")
    parser.add_argument("--scale", type=int, default=1,
                        help="teacher input size = this x the items' load size (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished folder or one written with other settings")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="data.* overrides (e.g. data.synthetic.scenes=384) and model.* "
                        "settings of a teacher named by registry name")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: DEPTH_KD_DEBUG=1)")
    args = parser.parse_args(argv)
    setup_cli_logging()
    return run_cli(lambda: _main(args), debug=args.debug,
                   prog="depth_kd_core.precompute_teacher")


def _main(args: argparse.Namespace) -> int:
    data, model = load_sections(args.config, args.overrides)
    m = precompute(data, args.teacher, args.out, args.scale, model=model,
                   overwrite=args.overwrite, device=args.device)
    print(f"{m['items']} teacher depth maps ({m['size'][0]}x{m['size'][1]}, teacher at "
          f"x{m['scale']}, {100 * m['coverage']:.1f} % of pixels with depth) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
