"""Typed configuration: dataclass defaults, then a YAML file, then ``key=value`` overrides.

Sections are dataclasses built and checked by :mod:`depth_kd_core.config_build` (re-exported
here: ``bounded``, ``build_dataclass``, ``to_dict`` ...); this module reads YAML files (with
``_base_``), parses overrides and merges them.

The merged config and the git SHA are written into each run folder by
:func:`save_run_config`, so a run can always be reproduced.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from depth_kd_core.config_build import (
    bounded,
    build_dataclass,
    check_range,
    registry_section,
    to_dict,
)
from depth_kd_core.errors import ConfigError
from depth_kd_core.fileio import atomic_write_text

# --------------------------------------------------------------------------------------------
# YAML files and key=value overrides
# --------------------------------------------------------------------------------------------


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "model.encoder=resnet18"]`` -> nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value "
                              "(e.g. optim.lr=1e-4)")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' was already given a value")
            node = child
        node[parts[-1]] = value
    return nested


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge; ``update`` wins. A section whose ``name`` changes is replaced whole."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            renamed = "name" in value and "name" in old and value["name"] != old["name"]
            out[key] = dict(value) if renamed else deep_merge(old, value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping from ``path``, merged onto its ``_base_`` (recursively).

    Otherwise a :class:`ConfigError` names the file, or the files of a ``_base_`` loop.
    """
    path = Path(path)
    if path.resolve() in _chain:
        loop = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"config files extend each other in a loop through '_base_': {loop}; "
                          f"remove one of these '_base_' lines")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    base = data.pop("_base_", None)
    if base:  # a config may extend another one, relative to itself
        if not isinstance(base, str):
            raise ConfigError(f"config file {path}: '_base_' must be a file name, got {base!r}")
        data = deep_merge(read_yaml(path.parent / base, (*_chain, path.resolve())), data)
    return dict(data)


def load_config(cls: type, path: str | Path | None = None,
                overrides: Sequence[str] = ()) -> Any:
    """Defaults of ``cls``, then the YAML file at ``path``, then ``overrides`` (key=value)."""
    data = read_yaml(path) if path else {}
    data = deep_merge(data, parse_overrides(overrides))
    return build_dataclass(cls, data)


def dump_yaml(cfg: Any) -> str:
    """Return the config as YAML text (keys in declaration order)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# --------------------------------------------------------------------------------------------
# Run-folder snapshot
# --------------------------------------------------------------------------------------------


def git_sha(repo_dir: str | Path | None = None) -> str:
    """HEAD's SHA of the checkout holding this package (``+dirty`` if modified), or 'unknown'."""
    repo_dir = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo_dir, capture_output=True, text=True, timeout=10).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_run_config(cfg: Any, run_dir: str | Path) -> Path:
    """Write ``config.yaml`` (the merged config) and ``git_sha.txt`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    atomic_write_text(path, dump_yaml(cfg))
    atomic_write_text(run_dir / "git_sha.txt", git_sha() + "\n")
    return path


__all__ = [
    "ConfigError",
    "bounded",
    "build_dataclass",
    "check_range",
    "deep_merge",
    "dump_yaml",
    "git_sha",
    "load_config",
    "parse_overrides",
    "read_yaml",
    "registry_section",
    "save_run_config",
    "to_dict",
]
