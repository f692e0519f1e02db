"""Typed config dataclasses built from plain data (dicts from YAML or overrides), with checks.

Every section is a dataclass, so a typo or a wrong type fails at load time with a message that
names the full key (``optim.lrr``) and the closest valid one (``optim.lr``). A polymorphic
section (``model``, ``teacher``, ``recipe``) holds the registry whose entry for its ``name``
gives its config class (:func:`registry_section`). This module sits below the registries and
``config.py`` (YAML files, overrides, run snapshot), so neither has to import the other.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, Union

from depth_kd_core.errors import ConfigError

# Field metadata marking a polymorphic section: the registry that gives its dataclass.
REGISTRY_KEY = "registry"
# Field metadata holding a numeric field's allowed range (see :func:`bounded`).
RANGE_KEY = "range"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(tp: Any, value: Any, path: str) -> Any:
    """Validate (and lightly coerce) ``value`` against annotation ``tp``; return the result."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _check_union(tp, value, path)
    if origin is Literal:
        return _check_literal(typing.get_args(tp), value, path)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}' is a section; expected a mapping, got "
                              f"{value!r}")
        return build_dataclass(tp, value, path)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _check_sequence(tp, value, path)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}' expects a mapping, got {value!r}")
        args = typing.get_args(tp)
        val_tp = args[1] if args else Any
        return {str(k): _check_value(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    return _check_scalar(tp, value, path)


def _check_union(tp: Any, value: Any, path: str) -> Any:
    """Return the first option of ``X | Y | None`` that accepts ``value``."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for option in args:
        if option is type(None):
            continue
        try:
            return _check_value(option, value, path)
        except ConfigError:
            pass
    raise ConfigError(f"config key '{path}' expects {_type_name(tp)}, got {value!r}")


def _check_literal(choices: tuple, value: Any, path: str) -> Any:
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(a) for a in choices], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"config key '{path}' must be one of {list(choices)}, got {value!r}{hint}")


def _check_sequence(tp: Any, value: Any, path: str) -> list | tuple:
    """Check a list or a tuple (``tuple[A, B]`` or ``tuple[A, ...]``), item by item."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
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


def _check_scalar(tp: Any, value: Any, path: str) -> Any:
    """bool, int (a whole float is accepted), float (YAML 1.1's "1e-4" string too) or str."""
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
    """Return the dataclass of a registry-backed section, chosen by its ``name``."""
    registry = f.metadata[REGISTRY_KEY]
    name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
    if name is None:
        name = getattr(default, "name", None)
    if not name:
        raise ConfigError(f"config section '{path}' needs a 'name' ({registry.kind})")
    try:
        return registry.entry(name).cfg_cls
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
    """Make a dataclass field with an allowed range, checked when the config is built.

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
    """Raise :class:`ConfigError` naming ``key`` if ``value`` is out of range or not finite.

    A list or tuple ``value`` is checked element by element.
    """
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
    """Return a plain-data copy (dicts, lists, scalars) of a dataclass tree.

    The copy is safe for YAML and torch.save.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def registry_section(registry: Any, default_factory: Any) -> Any:
    """Make a dataclass field whose type is chosen by ``name`` in ``registry``.

    The type is ``registry.entry(name).cfg_cls`` (models' ``MODELS``, recipes' ``RECIPES``).
    """
    return field(default_factory=default_factory, metadata={REGISTRY_KEY: registry})
