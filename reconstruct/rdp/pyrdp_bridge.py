"""The one place that speaks PyRDP: its parsers turn decrypted RDP PDUs into objects, and its
player format turns them into a replay that ``pyrdp-player`` opens.

We use PyRDP's *parsers* (Client Info, fast-path input, slow-path PDUs, clipboard, device
redirection) and its replay *writer*, never its MITM layer stack: the stack is built for a live
man-in-the-middle (it downgrades, it answers, it writes files) and keeps parser state in shared
default arguments. Here every session owns fresh parser instances, nothing is written anywhere,
and PyRDP's known bugs are corrected in ``pyrdp_fixes`` (applied on import).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from reconstruct.rdp import pyrdp_fixes
from reconstruct.rdp.cliprdr_files import FILE_LIST_FORMAT

pyrdp_fixes.apply()

from pyrdp.enum import PlayerPDUType  # noqa: E402
from pyrdp.parser import ClientInfoParser, ClipboardParser, SlowPathParser  # noqa: E402
from pyrdp.pdu.rdp.input import KeyboardEvent, MouseEvent, SynchronizeEvent, UnicodeKeyboardEvent  # noqa: E402
from pyrdp.pdu.rdp.virtual_channel.clipboard import (  # noqa: E402
    FormatDataRequestPDU, FormatDataResponsePDU, FormatListPDU)

CF_TEXT, CF_OEMTEXT, CF_UNICODETEXT = 1, 7, 13
CB_FORMAT_DATA_RESPONSE = 5
TEXT_FORMAT_NAMES = {"UTF8_STRING", "text/plain", "TEXT", "STRING", "text/plain;charset=utf-8"}
PTRFLAGS_DOWN, PTRFLAGS_BUTTON1, PTRFLAGS_BUTTON2, PTRFLAGS_BUTTON3 = 0x8000, 0x1000, 0x2000, 0x4000
KBDFLAGS_EXTENDED, KBDFLAGS_RELEASE = 0x0100, 0x8000
FASTPATH_KBD_RELEASE, FASTPATH_KBD_EXTENDED = 0x01, 0x02


# ---------------------------------------------------------------- input events ----
@dataclass(frozen=True, slots=True)
class Key:
    scancode: int
    extended: bool
    released: bool


@dataclass(frozen=True, slots=True)
class Unicode:
    char: str
    released: bool


@dataclass(frozen=True, slots=True)
class Click:
    button: str                # "left" | "right" | "middle"
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Sync:
    caps: bool
    numlock: bool


def _button(flags: int) -> str | None:
    if not flags & PTRFLAGS_DOWN:
        return None
    if flags & PTRFLAGS_BUTTON1:
        return "left"
    if flags & PTRFLAGS_BUTTON2:
        return "right"
    if flags & PTRFLAGS_BUTTON3:
        return "middle"
    return None


class InputReader:
    """Fast-path input PDUs and slow-path input events -> Key / Unicode / Click / Sync.

    Fast-path input is read here with a flat parser (MS-RDPBCGR 2.2.8.1.2): it is most of what a
    client sends (every mouse move is one PDU), and PyRDP's object-per-field parser was a tenth
    of the whole import's time. Event sizes and semantics are PyRDP's, an unknown event code or a
    short event fails the PDU as PyRDP's parser did."""

    EVENT_LENGTHS = {0: 2, 1: 7, 2: 7, 3: 1, 4: 3, 6: 5}   # scancode, mouse, mouseX, sync, unicode, QoE

    def fastpath(self, plain_pdu: bytes) -> list[object]:
        pdu = plain_pdu
        count = (pdu[0] >> 2) & 0xF
        n = pdu[1]
        i = 2
        if n & 0x80:
            n = ((n & 0x7F) << 8) | pdu[2]
            i = 3
        if count == 0:
            i += 1                                        # the event count byte (events are read to the end)
        out: list[object] = []
        lengths = self.EVENT_LENGTHS
        while i < n and i < len(pdu):
            h = pdu[i]
            code, flags = h >> 5, h & 0x1F
            size = lengths.get(code)
            if size is None or i + size > min(n, len(pdu)):
                raise ValueError(f"fast-path input event code {code} unknown or cut short")
            if code == 0:
                out.append(Key(pdu[i + 1], bool(flags & FASTPATH_KBD_EXTENDED), bool(flags & FASTPATH_KBD_RELEASE)))
            elif code == 1:
                b = _button(pdu[i + 1] | pdu[i + 2] << 8)
                if b:
                    out.append(Click(b, pdu[i + 3] | pdu[i + 4] << 8, pdu[i + 5] | pdu[i + 6] << 8))
            elif code == 4:
                try:
                    out.append(Unicode(pdu[i + 1:i + 3].decode("utf-16-le"), bool(flags & 0x01)))
                except UnicodeDecodeError:                # half of a surrogate pair: not a character
                    pass
            elif code == 3:
                out.append(Sync(bool(flags & 0x04), bool(flags & 0x02)))
            i += size
        return out

    @staticmethod
    def slowpath_events(input_pdu) -> list[object]:
        out: list[object] = []
        for ev in input_pdu.events:
            if isinstance(ev, KeyboardEvent):
                out.append(Key(ev.keyCode, bool(ev.flags & KBDFLAGS_EXTENDED), bool(ev.flags & KBDFLAGS_RELEASE)))
            elif isinstance(ev, UnicodeKeyboardEvent):
                out.append(Unicode(chr(ev.keyCode), bool(ev.flags & KBDFLAGS_RELEASE)))
            elif isinstance(ev, MouseEvent):
                b = _button(ev.flags)
                if b:
                    out.append(Click(b, ev.x, ev.y))
            elif isinstance(ev, SynchronizeEvent):
                out.append(Sync(bool(ev.flags & 0x04), bool(ev.flags & 0x02)))
        return out


# ------------------------------------------------------------------ client info ----
@dataclass(frozen=True, slots=True)
class ClientInfo:
    user: str
    domain: str
    password: str              # kept only in memory, to redact it; never put in an event
    flags: int
    client_address: str
    alternate_shell: str
    working_dir: str
    redacted_pdu: bytes        # the PDU re-serialised with an empty password (for the replay)


def _z(s: object) -> str:
    if isinstance(s, bytes):
        s = s.decode("utf-16-le", "replace")
    return str(s or "").split("\x00", 1)[0]


def client_info(data: bytes) -> ClientInfo:
    parser = ClientInfoParser()
    pdu = parser.parse(data)
    password = _z(pdu.password)
    addr = ""
    if pdu.extraInfo is not None:
        addr = _z(getattr(pdu.extraInfo, "clientAddress", ""))
    # PyRDP keeps the terminating NULs in the strings and adds them again when writing
    pdu.domain, pdu.username = _z(pdu.domain), _z(pdu.username)
    pdu.alternateShell, pdu.workingDir = _z(pdu.alternateShell), _z(pdu.workingDir)
    pdu.password = ""                   # what the replay keeps: never the password
    try:
        redacted = parser.write(pdu)
    except Exception:                   # the replay then has no Client Info; events are unaffected
        redacted = b""
    return ClientInfo(pdu.username, pdu.domain, password, pdu.flags, addr,
                      pdu.alternateShell, pdu.workingDir, redacted)


# ---------------------------------------------------------------------- slow path ----
def slowpath(data: bytes):
    """A share control PDU (Demand/Confirm Active, Data PDU) parsed by PyRDP."""
    return SlowPathParser().parse(data)


def confirm_active_resolution(pdu) -> tuple[int, int] | None:
    from pyrdp.enum import CapabilityType
    caps = getattr(pdu, "parsedCapabilitySets", None) or {}
    bmp = caps.get(CapabilityType.CAPSTYPE_BITMAP)
    if bmp is None or not hasattr(bmp, "desktopWidth"):
        return None
    return bmp.desktopWidth, bmp.desktopHeight


# ---------------------------------------------------------------------- clipboard ----
class Clipboard:
    """One session's cliprdr: both directions share one parser (the format list one side sends
    names the formats of the data the other side asks for), and that parser is this session's."""

    def __init__(self) -> None:
        self.parser = ClipboardParser()
        self.formats: dict[str, dict[int, str]] = {"c2s": {}, "s2c": {}}
        self.requested: dict[str, int] = {}          # direction of the *response* -> format id

    def message(self, direction: str, data: bytes) -> tuple[str, object] | None:
        """("text", str) for a text Format Data Response, ("formats", names) for a Format List,
        ("files", CLIPRDR_FILELIST bytes) for a FileGroupDescriptorW response (read by
        ``cliprdr_files``, not by PyRDP, whose parser assumes one format list for both sides)."""
        if len(data) >= 8 and data[0] == CB_FORMAT_DATA_RESPONSE and data[1] == 0:
            fid = self.requested.get(direction)
            if fid is not None and self.formats.get(direction, {}).get(fid) == FILE_LIST_FORMAT:
                del self.requested[direction]
                flags, n = struct.unpack_from("<HI", data, 2)
                return ("files", data[8:8 + n]) if flags & 0x1 else None
        pdu = self.parser.parse(data)
        if isinstance(pdu, FormatListPDU):
            self.formats[direction] = {fid: _z(getattr(f, "formatName", b"")) for fid, f in pdu.formatList.items()}
            return ("formats", sorted(set(self.formats[direction].values()) | {str(i) for i in self.formats[direction]}))
        if isinstance(pdu, FormatDataRequestPDU):
            other = "s2c" if direction == "c2s" else "c2s"
            self.requested[other] = int(pdu.requestedFormatId)
            return None
        if isinstance(pdu, FormatDataResponsePDU):
            fid = self.requested.pop(direction, None)
            if not (pdu.msgFlags & 0x1) or fid is None:                     # CB_RESPONSE_OK
                return None
            name = self.formats.get(direction, {}).get(fid, "")
            raw = pdu.requestedFormatData
            if fid == CF_UNICODETEXT:
                text = raw.decode("utf-16-le", "replace")
            elif fid in (CF_TEXT, CF_OEMTEXT) or name in TEXT_FORMAT_NAMES:
                text = raw.decode("utf-8", "replace")
            else:
                return ("binary", (name or str(fid), raw))
            return ("text", text.split("\x00", 1)[0])
        return None


# ------------------------------------------------------------------------- replay ----
class ReplayWriter:
    """Builds a PyRDP replay (.pyrdp) in memory, bounded; ``pyrdp-player`` opens the result."""

    # one record: u64 length (of all of it), u16 type, u64 timestamp (ms), payload -- what PyRDP's
    # PlayerParser.write produces for the record types written here (none has extra fields);
    # packed directly because it is done for every PDU of every session
    _RECORD = struct.Struct("<QHQ")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.truncated = False
        self.content = 0                  # records other than the closing one

    def _add(self, kind: PlayerPDUType, ts_ms: int, payload: bytes) -> None:
        if self.truncated:
            return
        rec = self._RECORD.pack(18 + len(payload), kind, ts_ms) + payload
        if self.size + len(rec) > self.limit:
            self.truncated = True
            return
        self.chunks.append(rec)
        self.size += len(rec)
        if kind != PlayerPDUType.CONNECTION_CLOSE:
            self.content += 1

    def client_data(self, ts_ms: int, gcc_blocks: bytes) -> None:
        self._add(PlayerPDUType.CLIENT_DATA, ts_ms, gcc_blocks)

    def client_info(self, ts_ms: int, redacted_pdu: bytes) -> None:
        if redacted_pdu:
            self._add(PlayerPDUType.CLIENT_INFO, ts_ms, redacted_pdu)

    def slow_path(self, ts_ms: int, pdu: bytes) -> None:
        self._add(PlayerPDUType.SLOW_PATH_PDU, ts_ms, pdu)

    def fast_path_input(self, ts_ms: int, pdu: bytes) -> None:
        self._add(PlayerPDUType.FAST_PATH_INPUT, ts_ms, pdu)

    def fast_path_output(self, ts_ms: int, pdu: bytes) -> None:
        self._add(PlayerPDUType.FAST_PATH_OUTPUT, ts_ms, pdu)

    def clipboard(self, ts_ms: int, pdu: bytes) -> None:
        self._add(PlayerPDUType.CLIPBOARD_DATA, ts_ms, pdu)

    def close(self, ts_ms: int) -> None:
        self._add(PlayerPDUType.CONNECTION_CLOSE, ts_ms, b"")

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


# ------------------------------------------------------------ drive redirection ----
@dataclass(frozen=True, slots=True)
class DriveFile:
    """A redirected-drive file the server read from or wrote to the client, once closed."""
    path: str
    direction: str             # "upload": client -> server (server read it); "download": written to client
    data: bytes
    complete: bool             # every byte from 0 to the end was seen


class DriveRedirection:
    """One session's rdpdr: IRP create/read/write/close, matched by completion and file ids.

    PyRDP parses create, read and close; it leaves IRP_MJ_WRITE raw, which we read here
    (MS-RDPEFS 2.2.1.4.4: Length, Offset, 20 bytes padding, data)."""

    IRP_MJ_CREATE, IRP_MJ_CLOSE, IRP_MJ_READ, IRP_MJ_WRITE = 0x0, 0x2, 0x3, 0x4
    IO_COMPLETION = struct.pack("<HH", 0x4472, 0x4943)          # RDPDR_CTYP_CORE, PAKID_CORE_DEVICE_IOCOMPLETION

    def __init__(self, max_file: int) -> None:
        from pyrdp.parser.rdp.virtual_channel.device_redirection import DeviceRedirectionParser
        self.parser = DeviceRedirectionParser()
        self.max_file = max_file
        self._create: dict[int, tuple[int, str]] = {}            # completion id -> (device, path)
        self._read: dict[int, tuple[int, int]] = {}              # completion id -> (file id, offset)
        self.files: dict[int, dict] = {}                         # file id -> state
        self.devices: dict[int, str] = {}
        self.held = 0                                            # bytes buffered over all open files

    def message(self, direction: str, data: bytes) -> list[object]:
        from pyrdp.pdu.rdp.virtual_channel.device_redirection import (
            DeviceCloseRequestPDU, DeviceCreateRequestPDU, DeviceCreateResponsePDU, DeviceIORequestPDU,
            DeviceListAnnounceRequest, DeviceReadRequestPDU, DeviceReadResponsePDU)
        if direction == "c2s" and len(data) >= 16 and data[:4] == self.IO_COMPLETION:
            cid = struct.unpack_from("<I", data, 8)[0]
            if cid not in self._create and cid not in self._read:
                # a completion we do not read (directory listing, query info, ...): PyRDP parses
                # some of them regardless of their status and fails on the empty answer of an
                # ended directory listing (STATUS_NO_MORE_FILES), so it is not asked to; what it
                # remembered about the request is dropped so that nothing grows per request
                for table in ("majorFunctionsForParsingResponse", "minorFunctionsForParsingResponse",
                              "informationClassForParsingResponse"):
                    getattr(self.parser, table, {}).pop(cid, None)
                return []
        pdu = self.parser.parse(data)
        out: list[object] = []
        if isinstance(pdu, DeviceListAnnounceRequest):
            for dev in pdu.deviceList:
                self.devices[dev.deviceID] = _z(dev.preferredDOSName)
            out.append(("devices", sorted(self.devices.values())))
        elif isinstance(pdu, DeviceCreateRequestPDU):
            self._create[pdu.completionID] = (pdu.deviceID, pdu.path)
        elif isinstance(pdu, DeviceCreateResponsePDU):
            dev_path = self._create.pop(pdu.completionID, None)
            if dev_path is not None and int(pdu.ioStatus) == 0 and len(self.files) < self.MAX_OPEN:
                dev, path = dev_path
                drive = self.devices.get(dev, f"device{dev}")
                self.files[pdu.fileID] = {"path": f"{drive}:{path}", "read": {}, "write": {}, "size": 0}
        elif isinstance(pdu, DeviceReadRequestPDU):
            self._read[pdu.completionID] = (pdu.fileID, pdu.offset)
        elif isinstance(pdu, DeviceReadResponsePDU):
            fid_off = self._read.pop(pdu.completionID, None)
            if fid_off is not None and fid_off[0] in self.files:
                self._put(self.files[fid_off[0]], "read", fid_off[1], pdu.payload)
        elif isinstance(pdu, DeviceCloseRequestPDU):
            f = self.files.pop(pdu.fileID, None)
            if f is not None:
                self.held -= f["size"]
                out += self._finish(f)
        elif isinstance(pdu, DeviceIORequestPDU) and int(pdu.majorFunction) == self.IRP_MJ_WRITE:
            p = pdu.payload
            if len(p) >= 32 and pdu.fileID in self.files:
                length, offset = struct.unpack_from("<IQ", p, 0)
                self._put(self.files[pdu.fileID], "write", offset, p[32:32 + length])
        return out

    MAX_OPEN = 256                     # files open at once; more is hostile or broken

    def _put(self, f: dict, kind: str, offset: int, data: bytes) -> None:
        # per file and over all open files: a stream cannot make us hold more than 4 files' worth
        if f["size"] + len(data) > self.max_file or self.held + len(data) > 4 * self.max_file:
            f["truncated"] = True
            return
        f[kind][offset] = data
        f["size"] += len(data)
        self.held += len(data)

    @staticmethod
    def _assemble(parts: dict[int, bytes]) -> tuple[bytes, bool]:
        out, pos, complete = bytearray(), 0, True
        for off in sorted(parts):
            if off > pos:
                complete = False
                break
            chunk = parts[off][pos - off:]
            out += chunk
            pos += len(chunk)
        return bytes(out), complete

    def _finish(self, f: dict) -> list[object]:
        done = []
        for kind, direction in (("read", "upload"), ("write", "download")):
            if f[kind]:
                data, complete = self._assemble(f[kind])
                done.append(("file", DriveFile(f["path"], direction, data, complete and not f.get("truncated"))))
        return done
