"""Atomic writes: a failure mid-write never replaces what was already there."""

from __future__ import annotations

import pytest

from depth_kd_core.fileio import atomic_dir, atomic_path, atomic_write_text


def test_atomic_file_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "bag"
    with atomic_dir(target) as tmp:
        assert not tmp.exists()  # writers such as rosbags create the folder themselves
        tmp.mkdir()
        (tmp / "a.mcap").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "a.mcap").write_text("v2-partial")
            raise RuntimeError("interrupted")
    assert (target / "a.mcap").read_text() == "v1"
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "b.mcap").write_text("v3")
    assert [p.name for p in target.iterdir()] == ["b.mcap"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
