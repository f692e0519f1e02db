"""Evaluation: sigma-quality metrics by hand, and the CLI's outputs and protocol choices."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.config import to_dict
from depth_kd_core.errors import DepthKDError
from depth_kd_core.evaluate import EvalCfg, Predictor, evaluate, load_eval_config, main
from depth_kd_core.metrics import sparsification, spearman, uncertainty_metrics
from depth_kd_core.models.registry import create_model, model_cfg


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (0,1,2,3) vs (1,0,3,2): 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/60 = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)


def test_sparsification_oracle_and_reversed_order():
    error = np.arange(1.0, 101.0)
    perfect = sparsification(error, error)  # sigma ranks pixels exactly like the error
    assert perfect["ause"] == pytest.approx(0.0)
    np.testing.assert_allclose(perfect["sigma_curve"], perfect["oracle_curve"])
    # removing 5 % (the 5 largest of 1..100): mean of 1..95 = 48 over the full mean 50.5
    assert perfect["oracle_curve"][1] == pytest.approx(48.0 / 50.5)
    worst = sparsification(-error, error)  # removes the best pixels first
    assert worst["ause"] > 0.5 and worst["sigma_curve"][-1] > 1.0


def test_uncertainty_metrics_reward_informative_sigma():
    rng = np.random.default_rng(0)
    gt = rng.uniform(5, 50, (20, 30))
    noise = rng.normal(0, 1, gt.shape) * rng.uniform(0.1, 3.0, gt.shape)
    pred = gt + noise
    good = uncertainty_metrics(pred, np.abs(noise), gt)
    random = uncertainty_metrics(pred, rng.random(gt.shape), gt)
    assert good["spearman_sigma_abs_err"] > 0.99 and good["ause_abs_err"] < 1e-6
    assert abs(random["spearman_sigma_abs_err"]) < 0.1 and random["ause_abs_err"] > 0.2


class Constant(torch.nn.Module):
    """A stand-in network predicting a fixed depth (and sigma), to check the protocol."""

    def __init__(self, cfg, depth=10.0, sigma=None):
        super().__init__()
        self.cfg, self.depth, self.sigma = cfg, depth, sigma

    def forward(self, left, right=None, **ctx):
        out = {"depth": torch.full_like(left[:, :1], self.depth)}
        if self.sigma is not None:
            out["sigma"] = torch.full_like(left[:, :1], self.sigma)
        return out


def _dataset(gt_values, fx=1.0):
    items = []
    for i, v in enumerate(gt_values):
        gt = torch.full((1, 8, 16), v)
        gt[0, 0, :] = 0.0  # a row without ground truth
        K = torch.tensor([[fx, 0.0, 7.5], [0.0, fx, 3.5], [0.0, 0.0, 1.0]])
        items.append({"left": torch.rand(3, 8, 16), "right": torch.rand(3, 8, 16), "K": K,
                      "baseline": torch.tensor(0.5), "depth_gt": gt})
    return items


def test_metric_models_are_not_median_scaled_relative_ones_are(tmp_path):
    cfg = create_model("test_monodepth_student").cfg
    data = _dataset([20.0, 40.0])
    cfg.size_multiple = 1
    metric = type(cfg)(**{**vars(cfg), "output_kind": "metric_depth"})
    scored = evaluate(Predictor(Constant(metric), torch.device("cpu")), data,
                      EvalCfg(out_dir=str(tmp_path / "m"), grid_every=0), write=False)
    assert scored["summary"]["abs_rel"] == pytest.approx((0.5 + 0.75) / 2)  # 10 vs 20 and 40
    assert not scored["summary"]["median_scaling"]
    relative = evaluate(Predictor(Constant(cfg), torch.device("cpu")), data,
                        EvalCfg(out_dir=str(tmp_path / "r"), grid_every=0), write=False)
    # median scaling fixes scale (float32 resizing of a constant leaves ~1e-8)
    assert relative["summary"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)


def test_holes_are_coverage_not_errors(tmp_path):
    cfg = create_model("sgbm_teacher").cfg
    model = Constant(cfg)

    def with_holes(left, right=None, **ctx):
        depth = torch.full_like(left[:, :1], 20.0)
        depth[..., :8] = 0.0  # no match on the left half
        return {"depth": depth}

    model.forward = with_holes
    s = evaluate(Predictor(model, torch.device("cpu")), _dataset([20.0]),
                 EvalCfg(out_dir=str(tmp_path), grid_every=0), write=False)["summary"]
    assert s["abs_rel"] == pytest.approx(0.0) and s["coverage"] == pytest.approx(0.5)


def test_focal_scaling_is_applied_as_in_bag_infer_and_the_node(tmp_path):
    # a 10 m network trained at fx = 50 px (8 x 32 input) on a camera with fx = 50 px at
    # 16 px wide, i.e. 100 px at the network's 32 px: depth x 100 / 50 = 20 m, the ground truth
    cfg = create_model("test_monodepth_student").cfg
    cfg = type(cfg)(**{**vars(cfg), "output_kind": "metric_depth", "input_height": 8,
                       "input_width": 32, "focal_px": 50.0})
    s = evaluate(Predictor(Constant(cfg), torch.device("cpu")), _dataset([20.0], fx=50.0),
                 EvalCfg(out_dir=str(tmp_path), grid_every=0), write=False)["summary"]
    assert s["abs_rel"] == pytest.approx(0.0, abs=1e-6)


def test_classical_holes_are_not_blended_into_neighbours_when_resized_back(tmp_path):
    # a stereo network run at 4 x 8 whose left half is a hole: resized to 8 x 16, every pixel
    # is either 20 m or a hole; a bilinear blend would give 10 m next to the hole
    cfg = model_cfg("stereo_concat_teacher", size_multiple=4, input_height=4, input_width=8)
    model = Constant(cfg)

    def with_holes(left, right=None, **ctx):
        depth = torch.full_like(left[:, :1], 20.0)
        depth[..., :4] = 0.0
        return {"depth": depth}

    model.forward = with_holes
    predictor = Predictor(model, torch.device("cpu"))
    depth = predictor(_collate(_dataset([20.0])))["depth"]
    assert set(np.unique(depth.numpy()).tolist()) == {0.0, 20.0}
    s = evaluate(predictor, _dataset([20.0]), EvalCfg(out_dir=str(tmp_path), grid_every=0),
                 write=False)["summary"]
    assert s["abs_rel"] == pytest.approx(0.0, abs=1e-6) and s["coverage"] == pytest.approx(0.5)


def test_coverage_is_counted_inside_the_crop(tmp_path):
    cfg = create_model("sgbm_teacher").cfg
    model = Constant(cfg)

    def holes_left_of_the_garg_crop(left, right=None, **ctx):
        depth = torch.full_like(left[:, :1], 20.0)
        depth[..., :2, :] = 0.0  # top rows: outside the Garg crop (it starts at 41 %)
        return {"depth": depth}

    model.forward = holes_left_of_the_garg_crop
    predictor, data = Predictor(model, torch.device("cpu")), _dataset([20.0])
    whole = evaluate(predictor, data, EvalCfg(out_dir=str(tmp_path), grid_every=0),
                     write=False)["summary"]
    garg = evaluate(predictor, data, EvalCfg(out_dir=str(tmp_path), grid_every=0, crop="garg"),
                    write=False)["summary"]
    assert whole["coverage"] == pytest.approx(6 / 7)  # row 0 has no ground truth, row 1 a hole
    assert garg["coverage"] == pytest.approx(1.0)


def test_model_overrides_reach_a_model_named_by_model(tmp_path):
    cfg = load_eval_config(None, ["model.num_disparities=128", "model.fill=none"],
                           model="sgbm_teacher")
    predictor = Predictor.load(cfg.eval.model, torch.device("cpu"), cfg.model)
    assert (predictor.cfg.num_disparities, predictor.cfg.fill) == (128, "none")
    with pytest.raises(DepthKDError, match=r"need a model named by --model"):
        load_eval_config(None, ["model.num_disparities=128"])


def _collate(items):
    return {k: torch.stack([torch.as_tensor(item[k]) for item in items]) for k in items[0]}


def test_cli_writes_csv_json_grids_with_agreement_and_sigma(tmp_path):
    model = create_model("test_tiekd_student", input_height=64, input_width=192)
    ckpt = tmp_path / "student.pt"
    save_checkpoint(ckpt, {"model_name": "test_tiekd_student", "model_cfg": to_dict(model.cfg),
                           "state_dict": model.state_dict()})
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(ckpt), "--teacher", "sgbm_teacher",
                 "data.synthetic.val_scenes=3", "data.synthetic.gt=dense", "eval.grid_every=2",
                 "eval.prior_images=4",  # the prior's path, without rendering 200 frames
                 f"eval.out_dir={out}"])
    assert code == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 3
    assert {"abs_rel", "agree_abs_rel", "spearman_sigma_abs_err"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3
    assert summary["abs_rel"] == pytest.approx(np.mean([float(r["abs_rel"]) for r in rows]))
    assert sorted(p.name for p in out.glob("grid_*.png")) == ["grid_00000.png", "grid_00002.png"]


def test_cli_names_missing_inputs(tmp_path, capsys):
    assert main([f"eval.out_dir={tmp_path}"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["--model", "tiekd_student", f"eval.out_dir={tmp_path}"]) == 2
    assert "without trained weights" in capsys.readouterr().err
