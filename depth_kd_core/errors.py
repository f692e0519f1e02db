"""The one exception family of depth_kd.

Every error raised at a boundary (config files, bags, images, checkpoints, messages) derives
from :class:`DepthKDError`, so callers such as a ROS node can catch one type, log it and drop
the frame. Each subclass also derives from the matching builtin (``ValueError``,
``FileNotFoundError`` …) so generic handlers keep working. Messages name the offending file,
topic, key or field and say what was expected.

:func:`run_cli` is the one boundary of the command-line tools (train, evaluate, bag_infer):
these errors become one ``error: ...`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable


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
    """A bag cannot be read: missing topic, corrupt chunk, nothing synchronised…"""


class ImageError(DataError):
    """An image message or array has an unsupported encoding or an inconsistent size/step."""


class CheckpointError(DepthKDError, ValueError):
    """A checkpoint file is missing, corrupt or of an unknown format version."""


class OutputError(DepthKDError, OSError):
    """An output cannot be written: read-only place, a file in the way, an existing run or bag
    that would be replaced without being asked to."""

    def __str__(self) -> str:  # OSError formats one argument as itself; keep that for all
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------------- the CLI boundary

DEBUG_ENV = "DEPTH_KD_DEBUG"  # set to 1 to see full tracebacks from the command-line tools
EXIT_USAGE = 2  # a bad input, config, file or output: the message says what to change
EXIT_BUG = 1  # an unexpected exception: a bug to report
_WORKER_WRAP = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.", re.S)


def error_message(exc: BaseException) -> str:
    """The one-line user message of ``exc``.

    A :class:`DepthKDError` raised inside a DataLoader worker reaches the main process wrapped
    by torch (``Caught BagError in DataLoader worker process 0. Original Traceback ...``);
    the original message is taken back out of the wrapped traceback.
    """
    text = str(exc)
    if _WORKER_WRAP.match(text):
        name = re.escape(type(exc).__name__)
        found = re.search(rf"^(?:[\w.]+\.)?{name}: (.*)\Z", text, re.M | re.S)
        if found:
            text = f"{found.group(1).strip()} (in a DataLoader worker)"
    if isinstance(exc, OSError) and not isinstance(exc, DepthKDError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or text}"
    return re.sub(r"\s*\n\s*", " ", text.strip())  # one line, whatever the message held


def run_cli(main: Callable[[], int], *, debug: bool = False,
            prog: str = "depth_kd") -> int:
    """Run a command-line tool's body; turn known failures into one line and an exit code.

    :class:`DepthKDError` and ``OSError`` (a read-only folder, a full disk) are the user's to
    fix: ``error: <message>`` on stderr, exit 2. Anything else is a bug: one line naming the
    exception type and how to see the traceback (``--debug`` or ``DEPTH_KD_DEBUG=1``), exit 1.
    With ``debug`` or that variable set, exceptions propagate with their traceback.
    """
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return main()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (DepthKDError, OSError) as exc:
        if debug:
            raise
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the boundary of a command-line tool
        if debug:
            raise
        print(f"error: internal error in {prog}: {type(exc).__name__}: {error_message(exc)} "
              f"(a bug; rerun with --debug or {DEBUG_ENV}=1 for the traceback and report it)",
              file=sys.stderr)
        return EXIT_BUG
