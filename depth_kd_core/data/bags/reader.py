"""Opening rosbag2 (mcap, sqlite3) and ROS 1 bags through ``rosbags.highlevel.AnyReader``.

:class:`BagReader` is what datasets hold: it opens its reader lazily in whichever process
uses it (DataLoader workers each open their own after fork) and pickles without it. Messages
are fetched by (topic, log time, ordinal) — the index's address of a message — with a
time-window read, which all three formats serve from their own indexes (mcap chunk index,
sqlite timestamp index, ROS 1 chunk index).

A truncated mcap file (a recorder killed mid-write leaves no summary or footer) is read up to
the last complete record, so the frames before the damage stay usable; other damage is
reported as a :class:`~depth_kd_core.errors.BagError` naming the file.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.bags.mcap_offsets import single_mcap_file
from depth_kd_core.errors import BagError

LOG = logging.getLogger(__name__)
MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER, _OP_DATA_END = 0x02, 0x0F
# DataEnd (crc 0) + Footer (no summary) + magic: what a cleanly closed mcap ends with.
_MCAP_TAIL = (bytes([_OP_DATA_END]) + struct.pack("<QI", 4, 0) + bytes([_OP_FOOTER])
              + struct.pack("<QQQI", 20, 0, 0, 0) + MCAP_MAGIC)


def intact_mcap_length(path: Path) -> int:
    """Bytes of ``path`` up to the end of its last complete top-level record (0 = none)."""
    with path.open("rb") as f:
        if f.read(8) != MCAP_MAGIC:
            return 0
        size, end = path.stat().st_size, 8
        while end + 9 <= size:
            f.seek(end)
            op, length = struct.unpack("<BQ", f.read(9))
            if op in (_OP_DATA_END, _OP_FOOTER) or end + 9 + length > size:
                break
            end += 9 + length
        return end


class _SalvageFile(io.RawIOBase):
    """The intact prefix of a damaged mcap followed by a synthetic clean ending."""

    def __init__(self, path: Path, length: int) -> None:
        self._f = path.open("rb")
        self._length, self._size, self._pos = length, length + len(_MCAP_TAIL), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), max(self._size - self._pos, 0))
        out, pos = bytearray(), self._pos
        if pos < self._length:
            self._f.seek(pos)
            out += self._f.read(min(n, self._length - pos))
        if len(out) < n:
            tail_pos = pos + len(out) - self._length
            out += _MCAP_TAIL[tail_pos:tail_pos + n - len(out)]
        buf[:len(out)] = out
        self._pos += len(out)
        return len(out)

    def close(self) -> None:
        self._f.close()
        super().close()


class SalvagedMcapPath:
    """A ``rosbags`` RPath over the readable part of a truncated mcap file."""

    def __init__(self, path: Path, length: int) -> None:
        self.path, self.length = path, length
        self.name, self.stem, self.suffix = path.name, path.stem, path.suffix

    def exists(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def open(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if "w" in mode or "x" in mode or "a" in mode:
            raise PermissionError(f"{self.path} is opened read-only for salvage")
        return io.BufferedReader(_SalvageFile(self.path, self.length))

    def stat(self, **kwargs: Any) -> os.stat_result:
        return self.path.stat()

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)


def _reader_error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def open_reader(path: Path) -> tuple[AnyReader, str]:
    """Open a bag; returns (open AnyReader, damage note or "" when intact)."""
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    typestore = get_typestore(Stores.ROS2_HUMBLE)  # for bags without embedded definitions
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
        return reader, ""
    except Exception as exc:  # rosbags raises many types (ReaderError, apsw, struct, OSError)
        first = exc
    mcap = single_mcap_file(path)
    length = intact_mcap_length(mcap) if mcap is not None else 0
    if length:
        try:
            reader = AnyReader([SalvagedMcapPath(mcap, length)], default_typestore=typestore)
            reader.open()
            note = (f"{mcap} is damaged ({_reader_error_text(first)}); reading the "
                    f"{length} intact bytes of {mcap.stat().st_size}")
            LOG.warning(note)
            return reader, note
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
    hint = (" (a ROS 1 bag needs its index: try 'rosbag reindex')"
            if path.suffix == ".bag" else "")
    raise BagError(f"bag {path} cannot be read: {_reader_error_text(first)}{hint}") from first


class BagReader:
    """A bag opened lazily per process; safe to pickle into DataLoader workers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        self._reader: AnyReader | None = None
        self._pid: int | None = None
        self._files: dict[str, Any] = {}  # this process's raw file handles for read_at
        self.damage = ""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # never ship open files to a worker
        state["_reader"], state["_pid"], state["_files"] = None, None, {}
        return state

    @property
    def reader(self) -> AnyReader:
        """The open AnyReader of this process."""
        if self._reader is None or self._pid != os.getpid():
            self._files = {}  # handles inherited through fork belong to the parent
            self._reader, self.damage = open_reader(self.path)
            self._pid = os.getpid()
        return self._reader

    def close(self) -> None:
        """Close this process's reader and files (reopened on next use)."""
        if self._pid == os.getpid():
            if self._reader is not None:
                self._reader.close()
            for f in self._files.values():
                f.close()
        self._reader, self._pid, self._files = None, None, {}

    def read_at(self, file: str, requests: list[tuple[str, int, int]]) -> list[Any]:
        """Deserialise messages from known byte ranges: (message type, offset, length)."""
        reader = self.reader  # (re)opens per process; also resets the file handles
        if file not in self._files:
            self._files[file] = open(file, "rb")  # noqa: SIM115 - kept open across items
        fd = self._files[file].fileno()
        out = []
        for msgtype, offset, length in requests:
            raw = os.pread(fd, length, offset)
            if len(raw) != length:
                raise BagError(f"bag {self.path}: {file} ends before byte {offset + length}; "
                               f"was it truncated after indexing? Delete its index cache.")
            out.append(reader.deserialize(raw, msgtype))
        return out

    def topics(self) -> dict[str, tuple[str, int]]:
        """{topic: (message type, message count)} of every topic in the bag."""
        return {name: (info.msgtype or "?", info.msgcount)
                for name, info in self.reader.topics.items()}

    def describe_topics(self) -> str:
        """Human-readable topic list for error messages; names the damage of a damaged bag."""
        text = ", ".join(f"{t} ({typ}, {n} msgs)" for t, (typ, n) in sorted(self.topics().items()))
        text = text or "none could be read"
        return f"{text} ({self.damage})" if self.damage else text

    def connections(self, topics: Iterable[str]) -> list:
        wanted = set(topics)
        return [c for c in self.reader.connections if c.topic in wanted]

    def iterate(self, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
        """Yield (topic, log time ns, deserialised message) in log-time order."""
        reader = self.reader
        for conn, log_ns, raw in reader.messages(connections=self.connections(topics)):
            yield conn.topic, int(log_ns), reader.deserialize(raw, conn.msgtype)

    def fetch(self, requests: list[tuple[str, int, int]]) -> list[Any]:
        """Messages addressed by (topic, log time ns, ordinal among equal log times)."""
        wanted = {(t, ns, k): i for i, (t, ns, k) in enumerate(requests)}
        out: list[Any] = [None] * len(requests)
        seen: dict[tuple[str, int], int] = {}
        reader = self.reader
        start = min(ns for _, ns, _ in requests)
        stop = max(ns for _, ns, _ in requests) + 1
        conns = self.connections({t for t, _, _ in requests})
        try:
            for conn, log_ns, raw in reader.messages(connections=conns, start=start, stop=stop):
                key = (conn.topic, int(log_ns))
                k = seen.get(key, 0)
                seen[key] = k + 1
                if (conn.topic, int(log_ns), k) in wanted:
                    out[wanted[(conn.topic, int(log_ns), k)]] = reader.deserialize(raw,
                                                                                   conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged bag
            raise BagError(f"bag {self.path}: reading messages at {start} ns failed: "
                           f"{_reader_error_text(exc)}") from exc
        missing = [requests[i] for i, m in enumerate(out) if m is None]
        if missing:
            raise BagError(f"bag {self.path}: messages {missing} are not in the bag any more; "
                           f"was it modified after indexing? Delete its index cache.")
        return out
