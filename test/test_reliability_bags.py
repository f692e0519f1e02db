"""Reliability corpus (issue 19), bag side.

Damaged, uncalibrated or duplicate-stamped bags, bad frames in DataLoader workers, corrupt
index caches, and bag-to-bag outputs (OUT holding IN, non-bag OUT, failed runs); each handled
without a traceback, without silently dropping data, and without losing what is already
written. Every case is generated here (tiny bags).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from depth_kd_core import bag_infer, train
from depth_kd_core.data.bags.datasets import MonoBagDataset, StereoBagDataset
from depth_kd_core.data.config import DataCfg, RosbagSourceCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.errors import BagError

from bag_helpers import stereo_messages, write_bag
from inference_helpers import tiny_checkpoint, torch_single_thread  # noqa: F401 - fixture
from reliability_helpers import MONO, H, W, bag_run_args, dead_pid, digest, mono_messages, run_cli

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


# ------------------------------------------------------------------------------- bags

def test_bad_frame_in_a_worker_is_one_line_or_skipped_and_counted(tmp_path, capsys):
    bag = write_bag(tmp_path / "bad", mono_messages(12, bad=(2,)))
    code, err = run_cli(train.main, [*bag_run_args(bag, tmp_path / "a"), "data.num_workers=1"],
                        capsys)
    assert code == 2 and "item 2" in err and "skip_bad_frames" in err
    assert "DataLoader worker" in err and "Original Traceback" not in err
    # in-process loading, so the per-item warning reaches this test's stderr
    code, err = run_cli(train.main, [*bag_run_args(bag, tmp_path / "b"),
                                     "data.skip_bad_frames=true"], capsys)
    assert code == 0, err
    assert "skipped bad training item 2" in err and "skipped 1 bad training items" in err


def test_duplicate_stamps_are_reported_not_silently_dropped(tmp_path, caplog):
    msgs = stereo_messages(12, H, W)
    for k, m in enumerate(msgs):  # left stamps in groups of four: 12 frames, 3 distinct
        if m[0].endswith("left/image_rect"):
            ns = 10**18 + (k // 16) * 4 * 100_000_000
            m[3].header.stamp.sec, m[3].header.stamp.nanosec = ns // 10**9, ns % 10**9
    bag = write_bag(tmp_path / "dup", msgs)
    ds = StereoBagDataset(bag, "/stereo/left/image_rect", "/stereo/right/image_rect",
                          "/stereo/left/camera_info", "/stereo/right/camera_info",
                          progress=False)
    summary, reduced = ds.summary()
    assert reduced and f"{len(ds)} items from 12 frames" in summary and "dropped" in summary
    cfg = DataCfg(source="rosbag", height=H, width=W, rosbag=RosbagSourceCfg(path=str(bag)))
    with caplog.at_level("INFO", logger="depth_kd_core"):
        build_datasets(cfg, {"right"})
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("matched" in m and "dropped" in m for m in warned), caplog.text


def test_uncalibrated_camera_info_is_an_error(tmp_path):
    bag = write_bag(tmp_path / "k0", mono_messages(4, fx=0))
    with pytest.raises(BagError, match="uncalibrated"):
        MonoBagDataset(bag, MONO[0], MONO[1], progress=False)


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04trunc", "half"])
def test_corrupt_index_cache_is_rebuilt(damage, tmp_path, caplog):
    bag = write_bag(tmp_path / "b", mono_messages(4))
    n = len(MonoBagDataset(bag, MONO[0], MONO[1], progress=False))
    (cache,) = tmp_path.glob(".*.depth_kd_index.npz")
    cache.write_bytes(cache.read_bytes()[:cache.stat().st_size // 2] if damage == "half"
                      else damage)
    with caplog.at_level("WARNING"):
        assert len(MonoBagDataset(bag, MONO[0], MONO[1], progress=False)) == n
    assert "unreadable" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # rebuilt: the third run reads it quietly
        MonoBagDataset(bag, MONO[0], MONO[1], progress=False)
    assert "unreadable" not in caplog.text


def test_stale_index_cache_temporaries_are_removed(tmp_path):
    bag = write_bag(tmp_path / "b", mono_messages(2))
    stale = tmp_path / f"..b.0123abcd.depth_kd_index.npz.{dead_pid()}.abcd1234.tmp"
    stale.write_bytes(bytes(100))
    MonoBagDataset(bag, MONO[0], MONO[1], progress=False)
    assert not stale.exists() and len(list(tmp_path.glob(".b.*.depth_kd_index.npz"))) == 1


def _zero_first_chunk(mcap: Path, truncate: bool) -> None:
    import struct

    data = bytearray(mcap.read_bytes())
    pos = 8
    while pos < len(data):
        op, length = struct.unpack_from("<BQ", data, pos)
        if op == 0x06:  # Chunk
            data[pos:pos + 9 + length] = bytes(9 + length)
            end = pos + 9 + length
            break
        pos += 9 + length
    mcap.write_bytes(bytes(data[:end]) if truncate else bytes(data))


@pytest.mark.parametrize("truncate", [False, True])
def test_damaged_mcap_names_the_damage(truncate, ckpt, tmp_path, capsys):
    bag = write_bag(tmp_path / "d", mono_messages(3))
    _zero_first_chunk(next(bag.glob("*.mcap")), truncate)
    code, err = run_cli(bag_infer.main, [bag, tmp_path / "out", "--checkpoint", ckpt,
                                         "--image-topic", MONO[0], "--device", "cpu",
                                         "--no-progress"], capsys)
    assert "damaged" in err or "cannot be read" in err, err
    if code == 0:  # what could be read was written, and the damage is said
        assert "warning:" in err
    else:
        assert code == 2


# ------------------------------------------------------------------------------- bag outputs

def test_bag_infer_never_deletes_the_input_or_a_non_bag_folder(ckpt, tmp_path, capsys):
    out = tmp_path / "OUT"
    bag = write_bag(out / "drive", mono_messages(3))  # IN inside OUT
    before = {p: digest(p) for p in bag.rglob("*") if p.is_file()}
    code, err = run_cli(bag_infer.main, [bag, out, "--checkpoint", ckpt, "--overwrite",
                                         "--device", "cpu", "--no-progress"], capsys)
    assert code == 2 and "holds it" in err
    code, err = run_cli(bag_infer.main, [bag, bag / "x", "--checkpoint", ckpt, "--device",
                                         "cpu", "--no-progress"], capsys)
    assert code == 2 and "inside the input" in err
    assert {p: digest(p) for p in bag.rglob("*") if p.is_file()} == before
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "thesis.tex").write_text("years of work")
    code, err = run_cli(bag_infer.main, [bag, home, "--checkpoint", ckpt, "--overwrite",
                                         "--device", "cpu", "--no-progress"], capsys)
    assert code == 2 and "not a rosbag2 bag folder" in err
    assert (home / "docs" / "thesis.tex").read_text() == "years of work"


def test_bag_infer_output_is_atomic_readable_and_cleans_stale_temps(ckpt, tmp_path, capsys):
    bag = write_bag(tmp_path / "in", mono_messages(4, bad=(2,)))
    out = tmp_path / "out"
    stale = tmp_path / f".out.{dead_pid()}.abcd1234.tmp"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "big.mcap").write_bytes(bytes(1000))
    args = [bag, out, "--checkpoint", ckpt, "--image-topic", MONO[0], "--device", "cpu",
            "--no-progress"]
    code, err = run_cli(bag_infer.main, args, capsys)
    assert code == 2 and "frame 2" in err
    assert not out.exists() and not stale.exists()
    assert not list(tmp_path.glob(".out.*"))  # the failed run left nothing behind
    old = os.umask(0o022)
    try:
        code, err = run_cli(bag_infer.main, [*args, "--skip-bad-frames"], capsys)
    finally:
        os.umask(old)
    assert code == 0 and "skipped" in err
    assert out.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in out.iterdir())
