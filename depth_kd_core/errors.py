"""The one exception family of depth_kd.

Every error raised at a boundary (config files, bags, images, checkpoints, messages) derives
from :class:`DepthKDError`, so callers such as a ROS node can catch one type, log it and drop
the frame. Each subclass also derives from the matching builtin (``ValueError``,
``FileNotFoundError`` …) so generic handlers keep working. Messages name the offending file,
topic, key or field and say what was expected.
``depth_kd_core.cli.run_cli`` turns them into one ``error: ...`` line and exit status 2 at the
command-line tools' boundary.
"""

from __future__ import annotations


class DepthKDError(Exception):
    """Base class of every depth_kd error."""


class ConfigError(DepthKDError, ValueError):
    """A configuration key is unknown, has the wrong type or an invalid value."""


class RegistryError(DepthKDError, KeyError):
    """A model or recipe name is not registered (or registered twice)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DataError(DepthKDError, ValueError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class BagError(DataError):
    """A bag cannot be read (missing topic, corrupt chunk, nothing synchronised …)."""


class ImageError(DataError):
    """An image message or array has an unsupported encoding or an inconsistent size/step."""


class CheckpointError(DepthKDError, ValueError):
    """A checkpoint file is missing, corrupt or of an unknown format version."""


class OutputError(DepthKDError, OSError):
    """An output cannot be written.

    A read-only place, a file in the way, or an existing run or bag that would be replaced
    without being asked to.
    """

    def __str__(self) -> str:  # OSError formats one argument as itself; keep that for all
        return str(self.args[0]) if self.args else ""

