"""Atomic file writes: a crash or a full disk never leaves a half-written file behind.

Checkpoints, configs, metric tables and output bags are written to a temporary sibling and
renamed into place (``os.replace`` is atomic on POSIX within one filesystem).

Permissions: the finished file or folder gets the modes a plain ``open``/``mkdir`` would give
it under the process umask (0644/0755 with the usual umask 022), so a node running as another
user can read a checkpoint. Temporaries are named ``.<name>.<pid>.<random>.tmp``; one left by
a process that was killed (kill -9, power loss) is removed by the next writer of the same
``<name>`` once that pid is no longer running (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from depth_kd_core.errors import OutputError

LOG = logging.getLogger(__name__)
FILE_MODE, DIR_MODE = 0o666, 0o777  # what open()/mkdir() request before the umask


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return mask


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | Path, name: str) -> list[Path]:
    """Delete this module's temporaries of ``folder/name`` whose writer process is gone.

    ``name`` may hold ``*`` wildcards (``step_*.pt``). Only names matching
    ``.<name>.<pid>.<random>.tmp`` are touched (and, from before pids were part of the name,
    ``.<name>.<random>.tmp`` with mkstemp's 8-character random part), so a user's own files
    are never removed. Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = re.escape(name).replace(r"\*", "[^/]*?")
    pattern = re.compile(rf"^\.{stem}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp$")
    removed = []
    for entry in folder.iterdir():
        m = pattern.match(entry.name)
        if m is None or (m.group(1) and _pid_alive(int(m.group(1)))):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError as exc:
            LOG.warning("could not remove stale temporary %s: %s", entry, exc)
            continue
        removed.append(entry)
    if removed:
        LOG.warning("removed %d temporary file(s) left by an interrupted writer of %s",
                    len(removed), folder / name)
    return removed


def ensure_dir(path: str | Path, what: str) -> Path:
    """Create folder ``path`` (and parents) or raise :class:`OutputError`.

    The error names the folder and ``what`` it is for: a read-only mount, a missing permission
    or a file in the way.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.filename or path} is a file, "
                          f"not a folder; choose another path") from exc
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror or exc}; choose a "
                          f"writable location") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path} is not writable (read-only mount or missing "
                          f"permission); choose a writable location")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` keeps its old content. The
    result has mode 0666 & ~umask, as a plain ``open(path, "w")`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE & ~_umask())  # mkstemp creates 0600
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a not-yet-existing folder path next to ``path``; move it onto ``path`` on success.

    Used for outputs that are folders (rosbag2 bags, whose writers insist on creating the
    folder themselves). An existing ``path`` is replaced only once the new folder is complete
    (callers decide whether it may be: see ``bag_infer``); on an exception everything
    temporary is deleted and ``path`` is untouched. The result has mode 0777 & ~umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(path.name), suffix=".tmp",
                                    dir=path.parent))
    tmp_path = staging / path.name
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise FileNotFoundError(f"nothing was written to {tmp_path} for {path}")
        if tmp_path.is_dir():
            os.chmod(tmp_path, DIR_MODE & ~_umask())
        if path.exists():
            old = staging / f"{path.name}.old"
            os.replace(path, old)
        os.replace(tmp_path, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
