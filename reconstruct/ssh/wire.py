"""Flat readers for SSH wire types (RFC 4251 section 5) over bytes, dpkt-style: no objects
per field, just offsets. Every read is bounds-checked and raises ``WireError``."""
from __future__ import annotations

import struct

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class WireError(Exception):
    """A message is shorter than its fields say."""


class Reader:
    __slots__ = ("b", "i")

    def __init__(self, b: bytes, i: int = 0) -> None:
        self.b = b
        self.i = i

    def u8(self) -> int:
        if self.i >= len(self.b):
            raise WireError("message truncated")
        v = self.b[self.i]
        self.i += 1
        return v

    def boolean(self) -> bool:
        return self.u8() != 0

    def u32(self) -> int:
        if self.i + 4 > len(self.b):
            raise WireError("message truncated")
        v = _U32.unpack_from(self.b, self.i)[0]
        self.i += 4
        return v

    def u64(self) -> int:
        if self.i + 8 > len(self.b):
            raise WireError("message truncated")
        v = _U64.unpack_from(self.b, self.i)[0]
        self.i += 8
        return v

    def string(self) -> bytes:
        n = self.u32()
        if self.i + n > len(self.b):
            raise WireError(f"string of {n} bytes runs past the end of the message")
        v = bytes(self.b[self.i:self.i + n])
        self.i += n
        return v

    def text(self) -> str:
        return self.string().decode("utf-8", "replace")

    def namelist(self) -> list[str]:
        s = self.string()
        return s.decode("ascii", "replace").split(",") if s else []

    def rest(self) -> bytes:
        v = bytes(self.b[self.i:])
        self.i = len(self.b)
        return v

    @property
    def left(self) -> int:
        return len(self.b) - self.i
