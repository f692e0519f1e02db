"""The no-image prior and the constant: fitted values by hand, scored by the evaluation loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_kd_core.baselines import PriorPredictor, fit_depth_prior
from depth_kd_core.errors import DepthKDError
from depth_kd_core.evaluate import EvalCfg, evaluate, score_baselines


def _items(*depths: list[list[float]]) -> list[dict]:
    """Dataset items with a 1x1xHxW depth_gt (metres, 0 = invalid) and a matching image."""
    out = []
    for d in depths:
        gt = torch.tensor(d, dtype=torch.float32)[None]
        out.append({"depth_gt": gt, "left": torch.zeros(3, *gt.shape[-2:])})
    return out


def test_prior_is_the_per_pixel_geometric_mean_and_rows_without_data_copy_the_nearest():
    data = _items([[0.0, 0.0], [2.0, 10.0], [4.0, 0.0]],
                  [[0.0, 0.0], [8.0, 10.0], [1.0, 90.0]])  # 90 m is beyond range: ignored
    prior = fit_depth_prior(data, progress=False)
    got = prior.log_depth
    np.testing.assert_allclose(got[1], [math.log(4.0), math.log(10.0)])  # sqrt(2*8) = 4
    np.testing.assert_allclose(got[2, 0], math.log(2.0))  # sqrt(4*1) = 2
    np.testing.assert_allclose(got[2, 1], math.log(10.0))  # no valid sample: row above
    np.testing.assert_allclose(got[0], got[1])  # the top row never had data: row below
    logs = np.log([2.0, 10.0, 4.0, 8.0, 10.0, 1.0])
    assert prior.constant_m == pytest.approx(math.exp(logs.mean()))
    assert prior.images == 2


def test_prior_resizes_in_log_space_and_the_constant_is_flat():
    prior = fit_depth_prior(_items([[1.0, 50.0], [4.0, 16.0]]), progress=False)
    big = prior.depth(4, 4)
    assert big.shape == (1, 1, 4, 4) and torch.isfinite(big).all()
    assert float(prior.depth(2, 2)[0, 0, 1, 1]) == pytest.approx(16.0)
    flat = prior.depth(3, 5, constant=True)
    assert torch.allclose(flat, torch.full_like(flat, prior.constant_m))


def test_prior_without_ground_truth_is_an_error_naming_depth_gt():
    with pytest.raises(DepthKDError, match="no ground truth \\(depth_gt\\)"):
        fit_depth_prior([{"left": torch.zeros(3, 2, 2)}], progress=False)
    with pytest.raises(DepthKDError, match="no valid ground-truth pixel"):
        fit_depth_prior(_items([[0.0, 0.0]]), progress=False)


def test_a_perfect_prior_scores_zero_error_and_the_constant_does_not(tmp_path):
    scene = [[5.0, 5.0, 5.0], [2.0, 3.0, 4.0]]
    data = _items(scene, scene)
    prior = fit_depth_prior(data, progress=False)
    cfg = EvalCfg(out_dir=str(tmp_path), grid_every=0)
    scores = score_baselines(prior, data, cfg)
    assert scores["no-image prior"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scores["no-image prior"]["a1"] == 1.0
    assert scores["constant depth"]["abs_rel"] > 0.2
    direct = evaluate(PriorPredictor(prior), data, cfg, write=False, progress=False)
    assert direct["summary"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
