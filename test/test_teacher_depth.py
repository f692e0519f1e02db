"""Precomputed teacher depth: a teacher run once, at a chosen resolution, read by training.

``precompute_teacher`` writes one map per training item; ``data.teacher_depth_dir`` adds them
to the items as ``teacher_depth``; a TIE-KD student trains from them through
``precomputed_teacher``. A teacher at twice the students' resolution is a stronger teacher.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from depth_kd_core.data.config import AugmentCfg, DataCfg, SyntheticSourceCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.data.synthetic.dataset import SyntheticStereoDataset
from depth_kd_core.data.teacher_depth import MANIFEST, depth_file
from depth_kd_core.errors import ConfigError, DataError
from depth_kd_core.inference import StereoDepthEstimator
from depth_kd_core.precompute_teacher import main as precompute_main
from depth_kd_core.precompute_teacher import precompute
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import load_train_config
from depth_kd_core.visualize import to_rgb_u8

SCENES = 4
DATA = DataCfg(height=64, width=192, augment=AugmentCfg(enabled=False),
               synthetic=SyntheticSourceCfg(scenes=SCENES, val_scenes=2, gt="dense"))


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Precompute the default SGBM's depth of the DATA items, seen at 1x and at 2x."""
    root = tmp_path_factory.mktemp("teacher_depth")
    return {scale: precompute(DATA, "sgbm_teacher", root / f"x{scale}", scale, progress=False)
            | {"dir": root / f"x{scale}"} for scale in (1, 2)}


def _items(folder) -> list[dict]:
    train, _ = build_datasets(dataclasses.replace(DATA, teacher_depth_dir=str(folder)),
                              {"teacher_depth", "depth_gt"})
    return [train[i] for i in range(len(train))]


def test_items_carry_the_teacher_depth_of_the_pair_seen_at_k_times_the_size(maps):
    items = _items(maps[2]["dir"])
    hires = SyntheticStereoDataset(0, SCENES, 128, 384, gt="none")
    sgbm = StereoDepthEstimator.sgbm()
    for i, item in enumerate(items):
        h = hires[i]
        expected = sgbm.predict(to_rgb_u8(h["left"]), to_rgb_u8(h["right"]), h["K"].numpy(),
                                float(h["baseline"]), out_size=(64, 192)).depth
        got = item["teacher_depth"][0].numpy()
        assert got.shape == (64, 192)
        assert np.array_equal(got > 0, np.isfinite(expected))  # holes stay holes (0)
        ok = got > 0
        assert np.abs(got[ok] - expected[ok]).max() <= 1 / 256  # the PNG's metres x 256
    assert maps[2]["items"] == SCENES and maps[2]["size"] == [64, 192]


def test_the_teacher_at_twice_the_resolution_is_closer_to_the_ground_truth(maps):
    def median_rel_error(folder) -> float:
        errors = []
        for item in _items(folder):
            t, gt = item["teacher_depth"], item["depth_gt"]
            ok = (t > 0) & (gt > 0) & (gt < 80)
            errors.append(((t - gt).abs() / gt)[ok])
        return float(torch.cat(errors).median())

    at1, at2 = median_rel_error(maps[1]["dir"]), median_rel_error(maps[2]["dir"])
    assert at2 < 0.6 * at1, (at1, at2)  # twice the disparity per metre (0.072 -> 0.031)


def test_a_tie_kd_student_trains_from_precomputed_depth(maps, tmp_path):
    cfg = load_train_config(None, [
        "recipe.name=tie_kd", "teacher.name=precomputed_teacher",
        f"data.teacher_depth_dir={maps[2]['dir']}", "model.name=test_tiekd_student",
        "data.height=64", "data.width=192", f"data.synthetic.scenes={SCENES}",
        "data.synthetic.val_scenes=2", "data.batch_size=2", "data.augment.enabled=false",
        "trainer.max_steps=2", f"trainer.out_dir={tmp_path}", "trainer.progress=false"])
    trainer = Trainer(cfg)
    seen = []
    step = trainer.recipe.training_step
    trainer.recipe.training_step = lambda batch, i: seen.append(batch["teacher_depth"]) or \
        step(batch, i)
    trainer.fit()  # validation too: its items have no teacher depth, and need none
    assert trainer.step == 2 and len(seen) == 2
    assert all(bool((t > 0).any()) for t in seen)


def test_a_finished_folder_is_kept_and_an_interrupted_one_continues(maps, tmp_path):
    folder = tmp_path / "x1"
    precompute(DATA, "sgbm_teacher", folder, 1, progress=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        precompute(DATA, "sgbm_teacher", folder, 1, progress=False)
    with pytest.raises(ConfigError, match="--overwrite"):  # other settings, unfinished
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
        precompute(DATA, "sgbm_teacher", folder, 2, progress=False)
    kept = depth_file(folder, 0).stat().st_mtime_ns
    depth_file(folder, 2).unlink()  # interrupted after three maps
    precompute(DATA, "sgbm_teacher", folder, 1, progress=False)
    assert depth_file(folder, 2).exists() and depth_file(folder, 0).stat().st_mtime_ns == kept
    assert json.loads((folder / MANIFEST).read_text())["complete"]
    precompute(DATA, "sgbm_teacher", folder, 1, overwrite=True, progress=False)
    assert depth_file(folder, 0).stat().st_mtime_ns != kept
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("a user's file")
    with pytest.raises(ConfigError, match="not a teacher-depth precomputation"):
        precompute(DATA, "sgbm_teacher", other, 1, progress=False)
    assert (other / "mine.txt").read_text() == "a user's file"


def test_maps_for_other_items_or_sizes_are_refused_by_key(maps, tmp_path):
    folder = str(maps[1]["dir"])
    more = dataclasses.replace(DATA, teacher_depth_dir=folder, synthetic=dataclasses.replace(
        DATA.synthetic, scenes=SCENES + 1))
    with pytest.raises(DataError, match=r"data.teacher_depth_dir .* holds 4 maps, but the "
                                        r"training set has 5 items"):
        build_datasets(more, {"teacher_depth"})
    larger = dataclasses.replace(DATA, teacher_depth_dir=folder, height=96, width=320)
    with pytest.raises(DataError, match=r"holds \[64, 192\] maps, but the training items are "
                                        r"loaded at \[96, 320\]"):
        build_datasets(larger, {"teacher_depth"})
    with pytest.raises(DataError, match="set data.teacher_depth_dir"):
        build_datasets(DATA, {"teacher_depth"})
    missing = dataclasses.replace(DATA, teacher_depth_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="is not a folder"):
        build_datasets(missing, {"teacher_depth"})


def test_command_line_says_what_it_wrote_and_refuses_a_bad_scale(tmp_path, capsys):
    args = ["--teacher", "sgbm_teacher", "--out", str(tmp_path / "d"), "data.height=32",
            "data.width=96", "data.synthetic.scenes=2", "data.synthetic.val_scenes=1",
            "model.num_disparities=32"]
    assert precompute_main(args) == 0
    assert "2 teacher depth maps (32x96, teacher at x1" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "d" / MANIFEST).read_text())
    assert manifest["model"] == {"num_disparities": 32}  # the teacher's own settings
    assert precompute_main([*args[:4], "--scale", "0", *args[4:]]) == 2
    assert "--scale must be an integer >= 1" in capsys.readouterr().err
    ckpt = tmp_path / "teacher.pt"
    ckpt.write_bytes(b"")
    assert precompute_main(["--teacher", str(ckpt), "--out", str(tmp_path / "e"),
                            "model.num_disparities=32"]) == 2
    assert "model.* overrides configure a teacher named by registry name" in \
        capsys.readouterr().err
