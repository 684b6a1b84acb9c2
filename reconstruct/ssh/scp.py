"""Legacy scp (the rcp protocol, ``scp -O``) on an exec channel running ``scp -t`` (upload:
the client is the source) or ``scp -f`` (download: the server is the source).

The source sends control lines -- ``C<mode> <size> <name>`` (a file follows), ``D<mode> 0
<name>`` / ``E`` (enter / leave a directory), ``T<mtime> 0 <atime> 0`` (times) -- each
acknowledged by a zero byte from the sink; a file's bytes are followed by one status byte.
Only the source direction matters for what was transferred.
"""
from __future__ import annotations

import hashlib
import re

from reconstruct.events import Event, FileTransfer, Notice

MAX_LINE = 4096
MAX_CONTENT = 64 * 1024 * 1024
_C_LINE = re.compile(rb"^C([0-7]{4}) (\d+) (.+)$")
_D_LINE = re.compile(rb"^D([0-7]{4}) \d+ (.+)$")


class ScpError(Exception):
    pass


def scp_mode(command: str) -> str | None:
    """"upload" (scp -t), "download" (scp -f) or None when ``command`` is not a scp server."""
    parts = command.split()
    if not parts or parts[0].rsplit("/", 1)[-1] != "scp":
        return None
    flags = [p for p in parts[1:] if p.startswith("-")]
    if any("t" in f for f in flags):
        return "upload"
    if any("f" in f for f in flags):
        return "download"
    return None


class ScpDecoder:
    def __init__(self, direction: str) -> None:
        self.direction = direction               # "upload" | "download"
        self.source = "c2s" if direction == "upload" else "s2c"
        self._buf = bytearray()
        self._dirs: list[str] = []
        self._file: tuple[str, int] | None = None
        self._left = 0
        self._sha = hashlib.sha256()
        self._content: bytearray | None = None
        self._await_status = False

    def feed(self, direction: str, data: bytes, ts: float) -> list[Event]:
        if direction != self.source:
            return []
        self._buf += data
        out: list[Event] = []
        while self._buf:
            if self._file is not None:
                if self._left:
                    take = bytes(self._buf[:self._left])
                    del self._buf[:len(take)]
                    self._left -= len(take)
                    self._sha.update(take)
                    if self._content is not None:
                        if len(self._content) + len(take) > MAX_CONTENT:
                            self._content = None
                        else:
                            self._content += take
                    continue
                status = self._buf[0]                # the source's end-of-file status byte
                del self._buf[:1]
                name, size = self._file
                self._file = None
                content = bytes(self._content) if self._content is not None else None
                out.append(FileTransfer(ts, self.direction, name, size, self._sha.hexdigest(),
                                        "scp", content if status == 0 else None, status == 0))
                continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    raise ScpError("scp control line longer than 4096 bytes")
                break
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            self._control(line, ts, out)
        return out

    def _control(self, line: bytes, ts: float, out: list[Event]) -> None:
        line = line.lstrip(b"\0")                    # stray acks when both sides share a pipe
        if not line:
            return
        k = line[:1]
        if k == b"C":
            m = _C_LINE.match(line)
            if not m:
                raise ScpError(f"bad scp file line {line[:60]!r}")
            name = m.group(3).decode("utf-8", "replace")
            path = "/".join(self._dirs + [name])
            size = int(m.group(2))
            self._file = (path, size)
            self._left = size
            self._sha = hashlib.sha256()
            self._content = bytearray() if size <= MAX_CONTENT else None
        elif k == b"D":
            m = _D_LINE.match(line)
            if not m:
                raise ScpError(f"bad scp directory line {line[:60]!r}")
            self._dirs.append(m.group(2).decode("utf-8", "replace"))
        elif k == b"E":
            if self._dirs:
                self._dirs.pop()
        elif k == b"T":
            pass
        elif k in (b"\x01", b"\x02"):
            out.append(Notice(ts, "scp-error", line[1:200].decode("utf-8", "replace"),
                              severity="low"))
        else:
            raise ScpError(f"unexpected scp control line {line[:60]!r}")

    def close(self, ts: float) -> list[Event]:
        if self._file is None:
            return []
        name, size = self._file
        self._file = None
        return [FileTransfer(ts, self.direction, name, size - self._left, self._sha.hexdigest(),
                             "scp", None, False)]
