"""Files copied through the RDP clipboard (MS-RDPECLIP 3.1.5.4: file stream transfers).

The side that owns the clipboard announces the format "FileGroupDescriptorW" in its Format List;
the other side asks for that format and gets a file list (CLIPRDR_FILELIST: names, sizes,
attributes), then pulls each file's bytes with File Contents Requests -- a SIZE request (8-byte
answer) and/or RANGE requests (position, byte count) -- answered by File Contents Responses that
carry only the ``streamId`` of their request. So a response is meaningful only next to its
request: we keep the requests outstanding per (owner, streamId), in order.

Each Format List starts a new generation of the owner's clipboard. The pasting side may lock a
generation (Lock Clipboard Data, a ``clipDataId``; Windows does) and go on reading its files
with requests naming that id after the owner's clipboard has changed again; without a lock,
requests are about the owner's current clipboard.

Each file is reassembled from its ranges and hashed as it goes (SHA-256 of the bytes in file
order). Its content is kept up to ``max_file`` bytes; beyond, the hash and size still come out
right when the ranges arrive in order (they do: every client and server we know reads files
front to back). A file is reported once every byte of its announced size was seen; a file read
only in part is reported, incomplete, when the owner's clipboard changes or the session ends.

Sans-I/O: ``ClipboardFiles`` is fed parsed-out cliprdr payloads by the RDP decoder and returns
sessiontap events. Everything it holds is bounded.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from reconstruct.events import Event, FileTransfer, Notice

FILE_LIST_FORMAT = "FileGroupDescriptorW"
FILECONTENTS_SIZE, FILECONTENTS_RANGE = 0x1, 0x2
CB_RESPONSE_OK = 0x1
FD_FILESIZE = 0x40
FILE_ATTRIBUTE_DIRECTORY = 0x10
DESCRIPTOR_SIZE = 592          # FILEDESCRIPTORW
MAX_FILES_IN_LIST = 4096       # a list longer than this is hostile or broken: the rest is ignored
MAX_PENDING = 1024             # outstanding File Contents Requests per session
MAX_LOCKS = 64                 # clipboard generations locked at once per session
MAX_AHEAD_PIECES = 256         # ranges held back waiting for an earlier one, per session (and at
                               # most max_file bytes of them)

OWNER_WORDS = {"c2s": ("client", "server", "upload"), "s2c": ("server", "client", "download")}


class ClipboardFileError(ValueError):
    """A malformed file list or File Contents PDU (one sentence for the analyst)."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    name: str                  # as the owner wrote it: may be a relative path with backslashes
    size: int | None           # None when the descriptor does not say (no FD_FILESIZE)
    directory: bool


def parse_file_list(data: bytes) -> list[Descriptor]:
    """CLIPRDR_FILELIST (MS-RDPECLIP 2.2.5.2.3.1): cItems, then cItems FILEDESCRIPTORW."""
    if len(data) < 4:
        raise ClipboardFileError("a clipboard file list is shorter than its item count")
    count = struct.unpack_from("<I", data, 0)[0]
    if 4 + count * DESCRIPTOR_SIZE > len(data):
        raise ClipboardFileError(f"a clipboard file list announces {count} files but holds "
                                 f"{(len(data) - 4) // DESCRIPTOR_SIZE}")
    out = []
    for k in range(min(count, MAX_FILES_IN_LIST)):
        off = 4 + k * DESCRIPTOR_SIZE
        flags, attrs = struct.unpack_from("<I", data, off)[0], struct.unpack_from("<I", data, off + 36)[0]
        high, low = struct.unpack_from("<II", data, off + 64)
        raw = data[off + 72:off + DESCRIPTOR_SIZE].decode("utf-16-le", "replace")
        name = raw.split("\x00", 1)[0]
        out.append(Descriptor(name, (high << 32 | low) if flags & FD_FILESIZE else None,
                              bool(attrs & FILE_ATTRIBUTE_DIRECTORY)))
    return out


@dataclass(frozen=True, slots=True)
class ContentsRequest:
    stream_id: int
    lindex: int
    flags: int
    position: int
    requested: int
    clip_id: int | None        # clipDataId, when the request carries one


def parse_contents_request(payload: bytes) -> ContentsRequest:
    """CLIPRDR_FILECONTENTS_REQUEST (2.2.5.3) without its 8-byte header; clipDataId is optional."""
    if len(payload) < 24:
        raise ClipboardFileError("a File Contents Request is shorter than 24 bytes")
    stream_id, lindex, flags, low, high, requested = struct.unpack_from("<IiIIII", payload, 0)
    clip_id = struct.unpack_from("<I", payload, 24)[0] if len(payload) >= 28 else None
    return ContentsRequest(stream_id, lindex, flags, high << 32 | low, requested, clip_id)


@dataclass(slots=True)
class _Transfer:
    name: str
    size: int | None
    keep: bool                                  # content still within the bound
    sha: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    content: bytearray = field(default_factory=bytearray)
    next: int = 0                               # bytes hashed so far, from offset 0
    ahead: dict[int, bytes] = field(default_factory=dict)
    broken: bool = False                        # a piece could not be placed: hash is not the file's


class ClipboardFiles:
    """One session's clipboard file transfers, both directions."""

    def __init__(self, max_file: int) -> None:
        self.max_file = max_file
        self.gen = {"c2s": 0, "s2c": 0}                                      # owner -> clipboard generation
        self.lists: dict[tuple[str, int], list[Descriptor]] = {}            # (owner, generation) -> files
        self.locks: dict[tuple[str, int], int] = {}                         # (owner, clipDataId) -> generation
        self.pending: dict[tuple[str, int], list[tuple[ContentsRequest, int]]] = {}   # (owner, streamId)
        self.transfers: dict[tuple[str, int, int], _Transfer] = {}          # (owner, generation, lindex)
        self.held = 0                                                        # content bytes held
        self.ahead_pieces = 0
        self.ahead_bytes = 0                                                 # bytes in those pieces

    # ---------------------------------------------------------------- what the decoder feeds ----
    def format_list(self, owner: str, ts: float) -> list[Event]:
        """The owner's clipboard changed: unless the other side locked it, what was read of the
        old clipboard's files is all there will be."""
        old = self.gen[owner]
        self.gen[owner] = old + 1
        return self._retire(owner, old, ts)

    def file_list(self, owner: str, data: bytes, ts: float) -> list[Event]:
        """The Format Data Response of the owner for FileGroupDescriptorW."""
        files = parse_file_list(data)
        key = (owner, self.gen[owner])
        if self.lists.get(key) == files:
            return []                       # the same list asked for again: nothing new on offer
        self.lists[key] = files
        src, dst, _ = OWNER_WORDS[owner]
        shown = ", ".join(f"{d.name}{'/' if d.directory else ''}"
                          + (f" ({d.size} bytes)" if d.size is not None and not d.directory else "")
                          for d in files[:20])
        more = f" and {len(files) - 20} more" if len(files) > 20 else ""
        return [Notice(ts, "clipboard-files", f"the {src}'s clipboard offers {len(files)} "
                       f"file{'s' if len(files) != 1 else ''} to the {dst}: {shown}{more}")]

    def lock(self, direction: str, payload: bytes) -> None:
        """Lock Clipboard Data from the pasting side: the owner's current clipboard stays readable."""
        if len(payload) < 4:
            raise ClipboardFileError("a Lock Clipboard Data PDU is shorter than its clipDataId")
        owner = "c2s" if direction == "s2c" else "s2c"
        if len(self.locks) >= MAX_LOCKS:
            raise ClipboardFileError(f"more than {MAX_LOCKS} clipboard locks held at once")
        self.locks[(owner, struct.unpack_from("<I", payload, 0)[0])] = self.gen[owner]

    def unlock(self, direction: str, payload: bytes, ts: float) -> list[Event]:
        if len(payload) < 4:
            raise ClipboardFileError("an Unlock Clipboard Data PDU is shorter than its clipDataId")
        owner = "c2s" if direction == "s2c" else "s2c"
        gen = self.locks.pop((owner, struct.unpack_from("<I", payload, 0)[0]), None)
        if gen is None or gen == self.gen[owner]:
            return []
        return self._retire(owner, gen, ts)

    def request(self, direction: str, payload: bytes) -> None:
        """A File Contents Request, sent by the side that pastes to the owner."""
        req = parse_contents_request(payload)
        owner = "c2s" if direction == "s2c" else "s2c"
        if sum(len(q) for q in self.pending.values()) >= MAX_PENDING:
            raise ClipboardFileError(f"more than {MAX_PENDING} File Contents Requests unanswered")
        gen = self.gen[owner]
        if req.clip_id is not None:
            gen = self.locks.get((owner, req.clip_id), gen)
        self.pending.setdefault((owner, req.stream_id), []).append((req, gen))

    def response(self, direction: str, msg_flags: int, payload: bytes, ts: float) -> list[Event]:
        """A File Contents Response from the owner: the answer to its oldest request of that stream."""
        if len(payload) < 4:
            raise ClipboardFileError("a File Contents Response is shorter than its stream id")
        stream_id = struct.unpack_from("<I", payload, 0)[0]
        queue = self.pending.get((direction, stream_id))
        if not queue:
            return []                       # its request is not in the capture: nothing to place it by
        req, gen = queue.pop(0)
        if not queue:
            del self.pending[(direction, stream_id)]
        if not msg_flags & CB_RESPONSE_OK:
            return []
        data = payload[4:]
        files = self.lists.get((direction, gen), [])
        if not 0 <= req.lindex < len(files) or files[req.lindex].directory:
            return []
        key = (direction, gen, req.lindex)
        t = self.transfers.get(key)
        if t is None:
            d = files[req.lindex]
            t = self.transfers[key] = _Transfer(d.name, d.size, keep=True)
        if req.flags & FILECONTENTS_SIZE:
            if len(data) >= 8:
                t.size = struct.unpack_from("<Q", data, 0)[0]
            return self._maybe_done(key, ts)
        if not req.flags & FILECONTENTS_RANGE:
            return []
        # (a file read to its end was reported and forgotten: reading it again is another copy)
        if t.size is None and len(data) < req.requested:
            t.size = req.position + len(data)            # a short answer is the end of the file
        self._place(t, req.position, data)
        return self._maybe_done(key, ts)

    def gap(self) -> None:
        """Bytes of the session were lost: a request or answer may be among them, and an answer
        matched to the wrong request would put bytes at the wrong place. Files being read are
        marked incomplete and requests not yet answered are forgotten."""
        for t in self.transfers.values():
            t.broken = True
        self.pending.clear()

    def close(self, ts: float) -> list[Event]:
        out: list[Event] = []
        for key in list(self.transfers):
            out += self._finish(key, ts)
        return out

    # ---------------------------------------------------------------------------- inside ----
    def _place(self, t: _Transfer, pos: int, data: bytes) -> None:
        if pos < t.next:                                 # a range read again (page cache, retry)
            data = data[t.next - pos:]
            pos = t.next
            if not data:
                return
        if pos > t.next:
            if self.ahead_pieces >= MAX_AHEAD_PIECES or self.ahead_bytes + len(data) > self.max_file:
                t.broken = True                          # cannot hold it: the hash will not be the file's
                return
            t.ahead[pos] = data
            self.ahead_pieces += 1
            self.ahead_bytes += len(data)
            return
        self._append(t, data)
        while t.ahead:                                   # pieces held back that now follow on
            off = min(t.ahead)
            if off > t.next:
                break
            piece = t.ahead.pop(off)
            self.ahead_pieces -= 1
            self.ahead_bytes -= len(piece)
            if off + len(piece) > t.next:                # (a piece may overlap what came before)
                self._append(t, piece[t.next - off:])

    def _append(self, t: _Transfer, data: bytes) -> None:
        t.sha.update(data)
        t.next += len(data)
        if t.keep:
            if len(t.content) + len(data) > self.max_file or self.held + len(data) > 4 * self.max_file:
                self.held -= len(t.content)
                t.content = bytearray()
                t.keep = False
            else:
                t.content += data
                self.held += len(data)

    def _maybe_done(self, key: tuple[str, int, int], ts: float) -> list[Event]:
        t = self.transfers.get(key)
        if t is None or t.size is None or t.next < t.size:
            return []
        return self._finish(key, ts)

    def _finish(self, key: tuple[str, int, int], ts: float) -> list[Event]:
        owner = key[0]
        t = self.transfers.pop(key)
        self.held -= len(t.content)
        self.ahead_pieces -= len(t.ahead)
        self.ahead_bytes -= sum(len(p) for p in t.ahead.values())
        if t.next == 0 and not t.ahead:
            return []                                   # asked for its size only: nothing moved
        src, dst, direction = OWNER_WORDS[owner]
        complete = t.size is not None and t.next >= t.size and not t.broken
        got = t.next + sum(len(p) for p in t.ahead.values())     # (the hash covers t.next of them)
        out: list[Event] = [FileTransfer(ts, direction, t.name, t.next if complete else got,
                                         t.sha.hexdigest(), "clipboard",
                                         bytes(t.content) if complete and t.keep else None, complete)]
        how = "" if complete else f" (incomplete: {got} of {t.size if t.size is not None else '?'} bytes seen)"
        out.append(Notice(ts, "clipboard-file-copy", f"{t.name} ({t.next if complete else got} bytes) copied "
                          f"from the {src}'s clipboard to the {dst}{how}", ("file-copy",), "medium"))
        return out

    def _retire(self, owner: str, gen: int, ts: float) -> list[Event]:
        """A clipboard generation nobody can read any more (not current, not locked): report what
        was read of its files and forget it."""
        if gen == self.gen[owner] or any(g == gen for (o, _), g in self.locks.items() if o == owner):
            return []
        out: list[Event] = []
        for key in [k for k in self.transfers if k[0] == owner and k[1] == gen]:
            out += self._finish(key, ts)
        self.lists.pop((owner, gen), None)
        return out
