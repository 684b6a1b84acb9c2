"""SFTP (draft-ietf-secsh-filexfer-02, "version 3", what OpenSSH speaks) seen from the wire:
which files were opened, read, written, renamed, removed, created -- with sizes, SHA-256 and
(bounded) content.

Fed the data of one "sftp" subsystem channel per direction. Requests go client->server,
responses server->client; the request id ties them together.
"""
from __future__ import annotations

import hashlib
import struct

from reconstruct.events import Event, FileTransfer, Notice
from reconstruct.ssh.wire import Reader, WireError

MAX_SFTP_PACKET = 1024 * 1024          # OpenSSH caps at 256 KiB; be lenient, stay bounded
MAX_CONTENT = 64 * 1024 * 1024         # per file: beyond this content=None, hash still computed
MAX_PENDING = 4096                     # outstanding requests / out-of-order chunks per file

INIT, VERSION, OPEN, CLOSE, READ, WRITE = 1, 2, 3, 4, 5, 6
REMOVE, MKDIR, RMDIR, RENAME = 13, 14, 15, 18
STATUS, HANDLE, DATA = 101, 102, 103
FXF_READ, FXF_WRITE = 1, 2
_U32 = struct.Struct(">I")


class SftpError(Exception):
    pass


class _File:
    """One open handle. Data is hashed in offset order; chunks that arrive ahead of the
    current end wait (bounded) for the gap to fill."""
    __slots__ = ("path", "flags", "wrote", "read", "next_off", "sha", "content", "ahead",
                 "size", "complete")

    def __init__(self, path: str, flags: int) -> None:
        self.path = path
        self.flags = flags
        self.wrote = False
        self.read = False
        self.next_off = 0
        self.sha = hashlib.sha256()
        self.content: bytearray | None = bytearray()
        self.ahead: dict[int, bytes] = {}
        self.size = 0
        self.complete = True

    def add(self, off: int, data: bytes) -> None:
        if off < self.next_off:                       # re-read / rewrite of earlier bytes
            if off + len(data) <= self.next_off:
                return
            data = data[self.next_off - off:]
            off = self.next_off
        if off > self.next_off:
            if len(self.ahead) >= MAX_PENDING:
                self.complete = False                  # a hole we cannot wait for any longer
                self.ahead.clear()
                return
            self.ahead[off] = data
            return
        self._append(data)
        while self.next_off in self.ahead:
            self._append(self.ahead.pop(self.next_off))

    def _append(self, data: bytes) -> None:
        self.sha.update(data)
        self.next_off += len(data)
        self.size = self.next_off
        if self.content is not None:
            if len(self.content) + len(data) > MAX_CONTENT:
                self.content = None
            else:
                self.content += data


class SftpDecoder:
    def __init__(self) -> None:
        self._buf = {"c2s": bytearray(), "s2c": bytearray()}
        self._req: dict[int, tuple] = {}        # id -> (kind, args...)
        self._handles: dict[bytes, _File] = {}
        self.version: int | None = None

    def feed(self, direction: str, data: bytes, ts: float) -> list[Event]:
        buf = self._buf[direction]
        buf += data
        out: list[Event] = []
        pos = 0
        while len(buf) - pos >= 4:
            n = _U32.unpack_from(buf, pos)[0]
            if n == 0 or n > MAX_SFTP_PACKET:
                raise SftpError(f"SFTP packet length {n} is out of range")
            if len(buf) - pos < 4 + n:
                break
            pkt = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            try:
                if direction == "c2s":
                    self._request(pkt, ts, out)
                else:
                    self._response(pkt, ts, out)
            except WireError as exc:
                raise SftpError(f"malformed SFTP message type {pkt[0]}: {exc}") from None
        if pos:
            del buf[:pos]
        return out

    def _request(self, pkt: bytes, ts: float, out: list[Event]) -> None:
        t = pkt[0]
        r = Reader(pkt, 1)
        if t == INIT:
            self.version = r.u32()
            return
        rid = r.u32()
        if len(self._req) > MAX_PENDING:
            self._req.clear()              # a client that never gets answers: forget, stay bounded
        if t == OPEN:
            self._req[rid] = ("open", r.text(), r.u32())
        elif t == CLOSE:
            self._req[rid] = ("close", r.string())
        elif t == READ:
            self._req[rid] = ("read", r.string(), r.u64(), r.u32())
        elif t == WRITE:
            h = r.string()
            off = r.u64()
            data = r.string()
            f = self._handles.get(h)
            if f is not None:
                f.wrote = True
                f.add(off, data)
        elif t in (REMOVE, MKDIR, RMDIR):
            self._req[rid] = ({REMOVE: "remove", MKDIR: "mkdir", RMDIR: "rmdir"}[t], r.text())
        elif t == RENAME:
            self._req[rid] = ("rename", r.text(), r.text())

    def _response(self, pkt: bytes, ts: float, out: list[Event]) -> None:
        t = pkt[0]
        r = Reader(pkt, 1)
        if t == VERSION:
            return
        rid = r.u32()
        req = self._req.pop(rid, None)
        if req is None:
            return
        kind = req[0]
        if t == HANDLE and kind == "open":
            self._handles[r.string()] = _File(req[1], req[2])
        elif t == DATA and kind == "read":
            f = self._handles.get(req[1])
            if f is not None:
                f.read = True
                f.add(req[2], r.string())
        elif t == STATUS:
            code = r.u32()
            if kind == "close":
                f = self._handles.pop(req[1], None)
                if f is not None:
                    out.extend(self._transfer(f, ts))
            elif kind in ("remove", "mkdir", "rmdir", "rename"):
                what = f"{kind} {req[1]}" + (f" -> {req[2]}" if kind == "rename" else "")
                ok = code == 0
                out.append(Notice(ts, f"sftp-{kind}", what + ("" if ok else f" (failed, status {code})"),
                                  tags=("file-operation",), severity="info" if ok else "low"))

    def _transfer(self, f: _File, ts: float) -> list[Event]:
        if not (f.wrote or f.read):
            return []
        complete = f.complete and not f.ahead
        return [FileTransfer(ts, "upload" if f.wrote else "download", f.path, f.size,
                             f.sha.hexdigest(), "sftp",
                             bytes(f.content) if complete and f.content is not None else None,
                             complete)]

    def close(self, ts: float) -> list[Event]:
        """Handles never closed (connection cut): report what was seen, incomplete."""
        out: list[Event] = []
        for f in self._handles.values():
            if f.wrote or f.read:
                out.append(FileTransfer(ts, "upload" if f.wrote else "download", f.path, f.size,
                                        f.sha.hexdigest(), "sftp", None, False))
        self._handles.clear()
        return out
