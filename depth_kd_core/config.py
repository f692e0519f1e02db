"""Typed configuration: dataclass defaults, then a YAML file, then ``key=value`` overrides.

Every section is a dataclass, so a typo or a wrong type fails at load time with a message that
names the full key (``optim.lrr``) and the closest valid one (``optim.lr``). Two sections are
polymorphic: ``model``/``teacher`` take the config class registered for their ``name`` in the
model registry, ``recipe`` the one registered in the recipe registry.

The merged config and the git SHA are written into each run folder by
:func:`save_run_config`, so a run can always be reproduced.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import subprocess
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from depth_kd_core.errors import ConfigError
from depth_kd_core.fileio import atomic_write_text

# Field metadata marking a polymorphic section: its dataclass comes from this registry.
REGISTRY_KEY = "registry"
# Field metadata holding a numeric field's allowed range (see :func:`bounded`).
RANGE_KEY = "range"


def _registry(kind: str):
    """The registry whose entries give the config class of a polymorphic section."""
    if kind == "model":
        from depth_kd_core.models.registry import MODELS

        return MODELS
    if kind == "recipe":
        from depth_kd_core.recipes.registry import RECIPES

        return RECIPES
    raise ValueError(f"unknown registry kind {kind!r}")


# --------------------------------------------------------------------------------------------
# Building dataclasses from plain data, with type checks
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(tp: Any, value: Any, path: str) -> Any:
    """Validate (and lightly coerce) ``value`` against annotation ``tp``; return the result."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _check_value(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key '{path}' expects {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"config key '{path}' must be one of {list(args)}, got {value!r}{hint}"
        )
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}' is a section; expected a mapping, got {value!r}")
        return build_dataclass(tp, value, path)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"config key '{path}' expects a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"config key '{path}' expects {len(args)} values, got {len(value)}: {value!r}"
                )
            return tuple(_check_value(a, v, f"{path}[{i}]") for i, (a, v) in
                         enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        items = [_check_value(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}' expects a mapping, got {value!r}")
        val_tp = args[1] if args else Any
        return {str(k): _check_value(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if math.isnan(number):  # no setting means anything with NaN
                raise ConfigError(f"config key '{path}' is NaN; give a number")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
    else:
        raise TypeError(f"config key '{path}': unsupported annotation {tp!r}")
    raise ConfigError(
        f"config key '{path}' expects {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def _resolve_polymorphic(f: dataclasses.Field, value: Any, default: Any, path: str) -> type:
    """The dataclass of a registry-backed section, chosen by its ``name``."""
    name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
    if name is None:
        name = getattr(default, "name", None)
    if not name:
        raise ConfigError(f"config section '{path}' needs a 'name' ({f.metadata[REGISTRY_KEY]})")
    try:
        return _registry(f.metadata[REGISTRY_KEY]).entry(name).cfg_cls
    except KeyError as exc:
        raise ConfigError(f"config key '{path}.name': {exc}") from exc


def build_dataclass(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``data``, checking every key and type.

    Missing keys take the dataclass defaults; unknown keys raise :class:`ConfigError` naming
    the full dotted key and the closest valid one.
    """
    if isinstance(data, cls):
        data = to_dict(data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown config key '{prefix}{key}'{hint} "
                f"(valid keys{' under ' + repr(path) if path else ''}: {', '.join(fields)})"
            )
    kwargs = {}
    defaults = cls() if _all_defaulted(cls) else None
    for name, f in fields.items():
        if name not in data:
            continue
        value, key = data[name], f"{prefix}{name}"
        if REGISTRY_KEY in f.metadata and value is not None:
            sub_cls = _resolve_polymorphic(f, value, getattr(defaults, name, None), key)
            kwargs[name] = build_dataclass(sub_cls, value, key)
        else:
            kwargs[name] = _check_value(hints[name], value, key)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"config section '{path or cls.__name__}': {exc}") from exc
    for name, f in fields.items():
        if RANGE_KEY in f.metadata:
            check_range(getattr(obj, name), f"{prefix}{name}", **f.metadata[RANGE_KEY])
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None,
            lt: float | None = None, le: float | None = None, hint: str = "") -> Any:
    """A dataclass field with an allowed range, checked when the config is built.

    ``lr: float = bounded(1e-4, gt=0)`` rejects ``optim.lr=-1``, ``nan`` and ``inf`` with a
    message naming ``optim.lr``, the range and ``hint`` (what the value means). Applies to
    every element of a list or tuple field.
    """
    rng = {"gt": gt, "ge": ge, "lt": lt, "le": le, "hint": hint}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={RANGE_KEY: rng})
    return field(default=default, metadata={RANGE_KEY: rng})


def check_range(value: Any, key: str, *, gt: float | None = None, ge: float | None = None,
                lt: float | None = None, le: float | None = None, hint: str = "") -> None:
    """Raise :class:`ConfigError` naming ``key`` if ``value`` (or an element) is out of range
    or not finite."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_range(v, f"{key}[{i}]", gt=gt, ge=ge, lt=lt, le=le, hint=hint)
        return
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    bounds = [f"> {gt:g}" if gt is not None else "", f">= {ge:g}" if ge is not None else "",
              f"< {lt:g}" if lt is not None else "", f"<= {le:g}" if le is not None else ""]
    ok = (math.isfinite(value) and (gt is None or value > gt) and (ge is None or value >= ge)
          and (lt is None or value < lt) and (le is None or value <= le))
    if not ok:
        need = " and ".join(b for b in bounds if b) or "finite"
        raise ConfigError(f"config key '{key}' must be {need}, got {value!r}"
                          f"{'; ' + hint if hint else ''}")


def _all_defaulted(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls) if f.init
    )


def to_dict(obj: Any) -> Any:
    """Plain-data copy (dicts, lists, scalars) of a dataclass tree; safe for YAML and torch.save."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


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
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-4)")
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
    """A YAML mapping from ``path`` (merged onto its ``_base_``, recursively); a
    :class:`ConfigError` naming the file otherwise, or the files of a ``_base_`` loop."""
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
    """The config as YAML text (keys in declaration order)."""
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


def registry_section(kind: str, default_factory: Any) -> Any:
    """A dataclass field whose type is chosen by ``name`` in the ``kind`` registry."""
    return field(default_factory=default_factory, metadata={REGISTRY_KEY: kind})


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
