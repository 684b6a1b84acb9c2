"""A flow's reassembled byte streams as one compact blob, so encrypted sessions can be
decoded again when their key arrives later (``sessiontap keys add``).

Record: kind (1 byte: D data c2s, d data s2c, G gap c2s, g gap s2c), ts (float64),
length (uint32), then ``length`` bytes for data records (a gap's length is its byte count).
"""
from __future__ import annotations

import struct
from typing import Iterator

_HDR = struct.Struct("<cdI")
_KINDS = {("data", "c2s"): b"D", ("data", "s2c"): b"d", ("gap", "c2s"): b"G", ("gap", "s2c"): b"g"}
_BACK = {v: k for k, v in _KINDS.items()}


class StreamLog:
    def __init__(self, limit: int = 512 * 1024 * 1024) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.truncated = False

    def data(self, direction: str, data: bytes, ts: float) -> None:
        self._add(_KINDS[("data", direction)], ts, len(data), data)

    def gap(self, direction: str, nbytes: int, ts: float) -> None:
        self._add(_KINDS[("gap", direction)], ts, nbytes, b"")

    def _add(self, kind: bytes, ts: float, n: int, data: bytes) -> None:
        if self.size + len(data) + _HDR.size > self.limit:
            self.truncated = True
            return
        self.parts.append(_HDR.pack(kind, ts, n))
        if data:
            self.parts.append(data)
        self.size += _HDR.size + len(data)

    def blob(self) -> bytes:
        return b"".join(self.parts)


def replay(blob: bytes) -> Iterator[tuple[str, str, float, bytes | int]]:
    """Yield ("data", direction, ts, bytes) and ("gap", direction, ts, nbytes) records."""
    off = 0
    n = len(blob)
    while off + _HDR.size <= n:
        kind, ts, length = _HDR.unpack_from(blob, off)
        off += _HDR.size
        what, direction = _BACK[kind]
        if what == "data":
            yield what, direction, ts, blob[off:off + length]
            off += length
        else:
            yield what, direction, ts, length
