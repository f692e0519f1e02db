"""The boundary of the command-line tools (train, evaluate, bag_infer).

:func:`run_cli` runs a tool's body: a :class:`~depth_kd_core.errors.DepthKDError` or an
``OSError`` (read-only folder, full disk) becomes one ``error: ...`` line on stderr and exit
status 2; anything else is a bug and says how to see its traceback (exit 1).
:func:`setup_cli_logging` shows depth_kd's own warnings and summaries as ``[depth_kd]`` lines.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable

from depth_kd_core.errors import DepthKDError

DEBUG_ENV = "DEPTH_KD_DEBUG"  # set to 1 to see full tracebacks from the command-line tools
EXIT_USAGE = 2  # a bad input, config, file or output: the message says what to change
EXIT_BUG = 1  # an unexpected exception: a bug to report
_WORKER_WRAP = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.", re.S)


def error_message(exc: BaseException) -> str:
    """Return the one-line user message of ``exc``.

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


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_cli_logging(level: int = logging.INFO) -> None:
    """Show depth_kd's own log records on stderr as ``[depth_kd] message`` lines.

    These are data summaries, skipped frames, cache rebuilds; other libraries keep their
    settings.
    """
    log = logging.getLogger("depth_kd_core")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[depth_kd] %(message)s"))
        log.addHandler(handler)
    log.setLevel(level)
