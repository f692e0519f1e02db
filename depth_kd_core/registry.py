"""A name -> (builder, config dataclass) registry, used for models and for recipes.

Each entry pairs a builder with the typed config dataclass it consumes, so that a name alone
is enough to build a default object, and ``key=value`` overrides are validated against the
dataclass before anything is built (timm's ``register_model``/``create_model`` pattern).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from depth_kd_core.config_build import build_dataclass, to_dict
from depth_kd_core.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered name: ``builder(cfg)`` returns the object, ``cfg_cls()`` its defaults."""

    name: str
    builder: Callable[[Any], T]
    cfg_cls: type


class Registry(Generic[T]):
    """Registered builders of one kind ("model", "recipe").

    Args:
        kind: word used in error messages.
        populate: module imported before the first lookup, so that every built-in entry
            has registered itself (registration happens at import time).
    """

    def __init__(self, kind: str, populate: str) -> None:
        self.kind = kind
        self._populate_module = populate
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(self, name: str, cfg_cls: type) -> Callable[[Callable[[Any], T]], Callable]:
        """Return a decorator registering ``builder(cfg) -> object`` under ``name``."""
        if not dataclasses.is_dataclass(cfg_cls):
            raise TypeError(f"{self.kind} '{name}': cfg_cls must be a dataclass, got {cfg_cls!r}")

        def decorator(builder: Callable[[Any], T]) -> Callable[[Any], T]:
            if name in self._entries and self._entries[name].builder is not builder:
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = RegistryEntry(name, builder, cfg_cls)
            return builder

        return decorator

    def _ensure_populated(self) -> None:
        importlib.import_module(self._populate_module)

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._ensure_populated()
        return sorted(self._entries)

    def entry(self, name: str) -> RegistryEntry[T]:
        """Return the entry for ``name``; raise an error naming the closest name otherwise."""
        self._ensure_populated()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.4)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint} Registered: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build_cfg(self, name: str, cfg: Any = None, **overrides: Any) -> Any:
        """Return the validated config for ``name``.

        That is ``cfg`` (or defaults) with ``overrides`` applied.
        """
        entry = self.entry(name)
        base = to_dict(cfg) if cfg is not None else {}
        base.update(overrides)
        base["name"] = name
        return build_dataclass(entry.cfg_cls, base, path=name)

    def create(self, name: str, cfg: Any = None, **overrides: Any) -> T:
        """Build the object registered as ``name`` from a validated config."""
        return self.entry(name).builder(self.build_cfg(name, cfg, **overrides))
