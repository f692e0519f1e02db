"""Export (issue 16 part 2).

Every student's ONNX graph equals its PyTorch model (depth and sigma, max relative
difference <= 1e-3 on rendered street views), the exported file carries its deployment
metadata, DepthEstimator and the node load it exactly as the .pt, TorchScript and dynamic
batch work, and bad files or outputs fail with one line naming them.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

from depth_kd_core.errors import CheckpointError, ConfigError, OutputError
from depth_kd_core.export import export, main
from depth_kd_core.export_check import FP32_TOLERANCE, check_parity, parity_images
from depth_kd_core.exported import META_KEY, load_exported, read_metadata
from depth_kd_core.inference import DepthEstimator

from inference_helpers import (
    NET_H,
    NET_W,
    TRAIN_FOCAL_PX,
    tiny_checkpoint,
    torch_single_thread,  # noqa: F401 - module fixture
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# The five methods' students (recipes/*: dacnn, adu_depth, x_distill = Monodepth2,
# sdfa_net, tie_kd); ADU with its CRF (window-attention) decoder, as the recipe builds it.
STUDENTS = {"dacnn_student": {}, "adu_student": {"decoder": "crf"}, "monodepth_student": {},
            "sdfa_net": {}, "tiekd_student": {}}
WITH_SIGMA = {"adu_student", "tiekd_student"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Map name -> (checkpoint, .onnx), each student exported once for the whole module."""
    folder = tmp_path_factory.mktemp("export")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            ckpt = tiny_checkpoint(folder / f"{name}.pt", name, **STUDENTS[name])
            cache[name] = ckpt, export(ckpt, folder / f"{name}.onnx", "onnx")
        return cache[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STUDENTS))
def test_onnx_equals_pytorch_for_every_student(exported, name):
    ckpt, onnx_path = exported(name)
    report = check_parity(onnx_path, ckpt)
    expected = ["depth", "sigma"] if name in WITH_SIGMA else ["depth"]
    assert list(report.max_rel) == expected and report.images == 2
    for out in expected:
        assert report.max_rel[out] <= FP32_TOLERANCE, report.format()
    assert report.passed


def test_parity_images_are_street_views_not_flat():
    x = parity_images(NET_H, NET_W)
    assert len(x) == 2 and x[0].shape == (1, 3, NET_H, NET_W)
    assert 0.0 <= float(x[0].min()) and float(x[0].max()) <= 1.0 and float(x[0].std()) > 0.05


def test_metadata_holds_deployment_fields(exported):
    ckpt, path = exported("tiekd_student")
    meta = read_metadata(path)
    assert (meta["input_height"], meta["input_width"]) == (NET_H, NET_W)
    assert meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert meta["output_kind"] == "dpm" and meta["focal_px"] == TRAIN_FOCAL_PX
    assert (meta["min_depth"], meta["max_depth"]) == (pytest.approx(1e-3), 80.0)
    assert meta["outputs"] == ["depth", "sigma"] and meta["precision"] == "fp32"
    net = load_exported(path)
    assert net.cfg.name == "tiekd_student" and net.cfg.decoder_channels == (8, 16, 16, 32, 32)
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["depth", "sigma"]


def test_estimator_loads_onnx_exactly_as_the_checkpoint(exported):
    ckpt, path = exported("tiekd_student")
    rgb = (np.asarray(parity_images(2 * NET_H, 3 * NET_W)[0][0].permute(1, 2, 0)) * 255
           ).astype(np.uint8)
    K = np.array([[3 * TRAIN_FOCAL_PX * 1.5, 0, 3 * NET_W / 2], [0, 300, NET_H], [0, 0, 1]])
    ref = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(rgb, K)
    est = DepthEstimator.from_checkpoint(path, "cpu")
    assert est.model.providers == ["CPUExecutionProvider"] and est.work_size == (NET_H, NET_W)
    got = est.predict(rgb, K)
    assert got.scale == ref.scale == pytest.approx(1.5) and got.has_sigma
    np.testing.assert_allclose(got.depth, ref.depth, rtol=FP32_TOLERANCE)
    np.testing.assert_allclose(got.sigma, ref.sigma, rtol=FP32_TOLERANCE)


def test_export_size_override_rescales_the_training_focal_length(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", "monodepth_student")
    path = export(ckpt, tmp_path / "m.ts", "torchscript", height=2 * NET_H, width=NET_W // 2 * 3)
    meta = read_metadata(path)
    assert (meta["input_height"], meta["input_width"]) == (2 * NET_H, NET_W // 2 * 3)
    assert meta["focal_px"] == pytest.approx(TRAIN_FOCAL_PX * 1.5)
    assert check_parity(path, ckpt).passed
    with pytest.raises(ConfigError, match="multiple of size_multiple"):
        export(ckpt, tmp_path / "bad.onnx", "onnx", height=100)


def test_torchscript_with_dynamic_batch_equals_pytorch_per_image(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "t.pt", "tiekd_student")
    path = export(ckpt, tmp_path / "t.ts", "torchscript", dynamic_batch=True)
    report = check_parity(path, ckpt)
    assert report.passed and report.backend == "torchscript", report.format()
    net = load_exported(path)
    x = torch.cat(parity_images(NET_H, NET_W))
    both = net(x)
    for i in range(2):
        one = net(x[i:i + 1])
        torch.testing.assert_close(both["depth"][i:i + 1], one["depth"], rtol=1e-5, atol=1e-5)


def test_batch_and_size_are_checked_with_the_file_named(exported):
    _, path = exported("tiekd_student")
    net = load_exported(path)
    with pytest.raises(CheckpointError, match=r"tiekd_student\.onnx takes \(B, 3, 64, 192\)"):
        net(torch.zeros(1, 3, 32, 96))
    with pytest.raises(CheckpointError, match="exported for batch 1.*--dynamic-batch"):
        net(torch.zeros(2, 3, NET_H, NET_W))


def test_file_without_or_with_broken_metadata_is_one_line_error(exported, tmp_path):
    _, path = exported("tiekd_student")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(CheckpointError, match=r"bare\.onnx: no depth_kd metadata"):
        DepthEstimator.from_checkpoint(tmp_path / "bare.onnx", "cpu")
    meta = read_metadata(path)
    del meta["input_width"], meta["focal_px"]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(tmp_path / "partial.onnx"))
    with pytest.raises(CheckpointError, match="partial.onnx: depth_kd metadata lacks "
                                              "input_width, focal_px"):
        load_exported(tmp_path / "partial.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="junk.onnx: not a readable ONNX file"):
        load_exported(tmp_path / "junk.onnx")


def test_existing_output_needs_force_and_suffix_must_match(exported, tmp_path):
    ckpt, path = exported("tiekd_student")
    before = path.read_bytes()
    with pytest.raises(OutputError, match="exists; pass --force"):
        export(ckpt, path, "onnx")
    assert path.read_bytes() == before
    with pytest.raises(ConfigError, match="must end in .ts"):
        export(ckpt, tmp_path / "x.onnx", "torchscript")


def test_cli_check_prints_parity_figures_and_errors_are_one_line(exported, capsys, tmp_path):
    ckpt, path = exported("tiekd_student")
    assert main(["--check", str(path), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "depth  max rel diff" in out and "sigma  max rel diff" in out and "PASS" in out
    assert main(["--checkpoint", str(ckpt), "--out", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path} exists; pass --force to overwrite it"]
    other = tiny_checkpoint(tmp_path / "other.pt", "monodepth_student")
    assert main(["--check", str(path), "--checkpoint", str(other)]) == 2
    assert "holds 'tiekd_student' but" in capsys.readouterr().err


def test_node_core_runs_an_onnx_file_as_it_runs_the_checkpoint(exported):
    from depth_kd_core.data.bags import codec as mc
    from depth_kd_ros.mono_depth_core import DEPTH, UNCERTAINTY, MonoDepthCore

    from bag_helpers import TS, image

    ckpt, path = exported("tiekd_student")
    rgb = np.random.default_rng(0).integers(0, 256, (2 * NET_H, 2 * NET_W, 3), dtype=np.uint8)
    outs = []
    for source in (ckpt, path):
        core = MonoDepthCore.from_params({"checkpoint": str(source), "device": "cpu"},
                                         TS.types, logging.getLogger("export_test"))
        outs.append(core.on_image(image(1_000, **mc.image_fields(rgb, "rgb8"))))
    for key in (DEPTH, UNCERTAINTY):
        pt, ox = (mc.image_to_array(o[key]) for o in outs)
        assert ox.shape == (2 * NET_H, 2 * NET_W) and np.isfinite(ox).all()
        np.testing.assert_allclose(ox, pt, rtol=FP32_TOLERANCE)


def test_evaluate_scores_an_onnx_file_as_it_scores_the_checkpoint(exported):
    from depth_kd_core.evaluate import Predictor

    ckpt, path = exported("tiekd_student")
    K = torch.tensor([[3 * TRAIN_FOCAL_PX * 1.5, 0, 3 * NET_W / 2], [0, 300, NET_H], [0, 0, 1]])
    batch = {"left": parity_images(2 * NET_H, 3 * NET_W)[0], "K": K[None]}
    ref, got = (Predictor.load(str(source), torch.device("cpu"))(batch) for source in (ckpt, path))
    for key in ("depth", "sigma"):
        assert got[key].shape == (1, 1, 2 * NET_H, 3 * NET_W) and (got[key] > 0).all()
        np.testing.assert_allclose(got[key], ref[key], rtol=FP32_TOLERANCE)
