"""File offsets of messages in uncompressed mcap chunks, read from the mcap summary.

An mcap file's summary lists every chunk (ChunkIndex) and, per chunk and channel, a
MessageIndex of (log time, offset in the chunk). For chunks stored without compression that
locates each message's bytes in the file, so a dataset can read one message with one
``pread`` instead of parsing the whole ~1 MB chunk around it (what a time-window read does).
Compressed chunks, split bags and files without a summary get no offsets; readers then fall
back to ``rosbags`` time-window reads. Record layouts: https://mcap.dev/spec.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"\x89MCAP0\r\n"
OP_CHANNEL, OP_MESSAGE, OP_CHUNK_INDEX, OP_MESSAGE_INDEX = 0x04, 0x05, 0x08, 0x07
FOOTER_LEN = 37  # op, length, summary_start, summary_offset_start, summary_crc, magic
MESSAGE_HEADER = 22  # channel_id u16, sequence u32, log_time u64, publish_time u64


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    return buf[pos + 4: pos + 4 + n].decode(), pos + 4 + n


def _summary(f, size: int) -> bytes | None:
    if size < 8 + FOOTER_LEN:
        return None
    f.seek(size - FOOTER_LEN)
    footer = f.read(FOOTER_LEN)
    if footer[-8:] != MAGIC or footer[0] != 0x02:
        return None
    (start,) = struct.unpack_from("<Q", footer, 9)
    if not start or start > size - FOOTER_LEN:
        return None
    f.seek(start)
    return f.read(size - FOOTER_LEN - start)


def _parse_summary(summary: bytes) -> tuple[dict[int, str], list[tuple[int, str, dict]]]:
    """({channel id: topic}, [(chunk start offset, compression, {channel: index offset})])."""
    channels, chunks, pos = {}, [], 0
    while pos + 9 <= len(summary):
        op, length = struct.unpack_from("<BQ", summary, pos)
        body = pos + 9
        if op == OP_CHANNEL:
            (cid,) = struct.unpack_from("<H", summary, body)
            channels[cid], _ = _string(summary, body + 4)  # skip schema id
        elif op == OP_CHUNK_INDEX:
            chunk_start = struct.unpack_from("<Q", summary, body + 16)[0]
            (map_len,) = struct.unpack_from("<I", summary, body + 32)
            entries = summary[body + 36: body + 36 + map_len]
            index = {cid: off for cid, off in struct.iter_unpack("<HQ", entries)}
            compression, _ = _string(summary, body + 36 + map_len + 8)
            chunks.append((chunk_start, compression, index))
        pos = body + length
    return channels, chunks


def read_message_offsets(path: Path, topics: set[str]) -> dict[str, np.ndarray]:
    """Read the message offsets of the wanted topics from an mcap file; {} when unavailable.

    Per wanted topic, an N x 3 int64 array (log time ns, data offset, data length) sorted by
    (log time, offset), for messages in uncompressed chunks.
    """
    out: dict[str, list[tuple[int, int, int]]] = {t: [] for t in topics}
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        summary = _summary(f, size)
        if summary is None:
            return {}
        channels, chunks = _parse_summary(summary)
        for chunk_start, compression, index in chunks:
            if compression:
                continue
            f.seek(chunk_start + 1 + 8 + 28)  # op, length, 3 x u64 + crc u32
            (comp_len,) = struct.unpack("<I", f.read(4))
            records = chunk_start + 1 + 8 + 28 + 4 + comp_len + 8
            for cid, index_offset in index.items():
                if channels.get(cid) not in topics:
                    continue
                f.seek(index_offset + 9 + 2)
                (n_bytes,) = struct.unpack("<I", f.read(4))
                entries = np.frombuffer(f.read(n_bytes), dtype="<u8").reshape(-1, 2)
                for log_ns, rel in entries.tolist():
                    f.seek(records + rel)
                    op, length = struct.unpack("<BQ", f.read(9))
                    if op != OP_MESSAGE:
                        return {}  # not the layout the spec promises: trust nothing
                    out[channels[cid]].append((log_ns, records + rel + 9 + MESSAGE_HEADER,
                                               length - MESSAGE_HEADER))
    return {t: np.array(sorted(v), dtype=np.int64).reshape(-1, 3) for t, v in out.items()}


def single_mcap_file(path: Path) -> Path | None:
    """Return the one mcap file of a bag (the path itself or a rosbag2 folder's only .mcap)."""
    if path.is_file():
        return path if path.suffix == ".mcap" else None
    files = sorted(path.glob("*.mcap")) if path.is_dir() else []
    return files[0] if len(files) == 1 else None
