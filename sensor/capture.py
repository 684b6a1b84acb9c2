"""Capture files in, batches of raw frames out: classic pcap (µs/ns, either byte order),
pcapng, and either one gzip'd.

A batch is one slab of file bytes plus numpy arrays saying where each frame starts, how long
it is, when it was seen and its link type. Nothing here looks inside a frame: the header
decoding is vectorised over whole batches (``sensor/headers.py``), so a 1 GB file costs a
few hundred thousand cheap loop steps here and no per-packet Python objects.

Damage is reported, never swallowed: a ``CaptureProblem`` names the file, the byte offset
and what was wrong; everything before it has been yielded already.
"""
from __future__ import annotations

import gzip
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

# link types we decode (LINKTYPE_* numbers from tcpdump.org)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
SUPPORTED_LINKTYPES = {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP,
                       LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14}

MAX_FRAME = 256 * 1024          # larger than any snaplen in use (tcpdump's is 262144)
CHUNK = 8 * 1024 * 1024          # bytes read per step: bounds memory whatever the file size


class CaptureError(Exception):
    """The file cannot be read at all (not a capture, unsupported format)."""


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """Damage found part-way: the frames before ``offset`` were read."""
    path: str
    offset: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} at byte {self.offset}"


@dataclass(slots=True)
class Batch:
    buf: bytes                   # the slab; frames are slices of it
    start: np.ndarray            # int64 offset of each frame's first byte in ``buf``
    caplen: np.ndarray           # int64 captured length
    ts: np.ndarray               # float64 seconds since the epoch
    linktype: np.ndarray         # int32 per frame (pcapng may mix interfaces)
    file_offset: int             # file offset of buf[0] (of the uncompressed stream for gzip)
    done: int = -1               # bytes of the file consumed so far (progress)

    def __len__(self) -> int:
        return len(self.start)


def open_capture(path: str) -> tuple[BinaryIO, bool]:
    """Open a capture, transparently un-gzipping it. Returns the stream and whether it was gzip."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb"), True  # type: ignore[return-value]
    return raw, False


def read_batches(path: str, problems: list[CaptureProblem]) -> Iterator[Batch]:
    """Yield batches of frames from ``path``. Damage goes to ``problems``; a file that is not
    a capture at all raises ``CaptureError``."""
    f, gz = open_capture(path)
    with f:
        try:
            head = f.read(24)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise CaptureError(f"{path}: cannot read ({e})") from None
        if len(head) == 0:
            raise CaptureError(f"{path}: the file is empty, not a capture")
        if len(head) < 4:
            raise CaptureError(f"{path}: only {len(head)} bytes, not a capture")
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            if not gz and len(head) == 24:
                yield from _pcap_mapped(path, f, head, problems)
            else:
                yield from _pcap_batches(path, f, head, problems)
        elif magic == b"\x0a\x0d\x0d\x0a":
            yield from _pcapng_batches(path, f, head, problems)
        else:
            kind = "a gzip'd file that is not a capture" if gz else "not a pcap or pcapng file"
            raise CaptureError(f"{path}: {kind} (starts with {head[:8].hex()})")


def _read_more(path: str, f: BinaryIO, problems: list[CaptureProblem], at: int) -> bytes:
    try:
        return f.read(CHUNK)
    except (EOFError, gzip.BadGzipFile, OSError, zlib.error) as e:
        problems.append(CaptureProblem(path, at, f"compressed stream is damaged ({e}); the rest is unreadable"))
        return b""


def _raw_position(f: BinaryIO) -> int:
    """How far into the file on disk we are (for a gzip'd capture, the compressed offset)."""
    try:
        return getattr(f, "fileobj", f).tell()  # type: ignore[union-attr]
    except (OSError, ValueError):
        return -1


def _pcap_batches(path: str, f: BinaryIO, head: bytes, problems: list[CaptureProblem]) -> Iterator[Batch]:
    """Classic pcap from a stream (gzip): fixed-size reads, records carried across reads."""
    endian, div, linktype, limit = _pcap_header(path, head)
    hdr = struct.Struct(endian + "IIII")
    unpack = hdr.unpack_from
    dtype = np.dtype(endian + "u4")
    file_off = 24
    carry = b""
    while True:
        more = _read_more(path, f, problems, file_off + len(carry))
        buf = carry + more if carry else more
        n = len(buf)
        if n == 0:
            return
        offs: list[int] = []
        append = offs.append
        off = 0
        bad = None
        while off + 16 <= n:
            caplen = unpack(buf, off)[2]
            if caplen > limit:
                bad = f"record length {caplen} is absurd; the rest of the file is unreadable"
                break
            if off + 16 + caplen > n:
                break
            append(off)
            off += 16 + caplen
        if offs:
            o = np.array(offs, dtype=np.int64)
            a = np.frombuffer(buf, dtype=np.uint8)
            idx = o[:, None] + np.arange(16, dtype=np.int64)[None, :]
            hdrs = a[idx].copy().view(dtype).reshape(-1, 4).astype(np.int64)
            ts = hdrs[:, 0] + hdrs[:, 1] / div
            yield Batch(buf, o + 16, hdrs[:, 2], ts.astype(np.float64),
                        np.full(len(o), linktype, dtype=np.int32), file_off, _raw_position(f))
        if bad:
            problems.append(CaptureProblem(path, file_off + off, bad))
            return
        if not more:
            if off < n:
                what = "record header" if n - off < 16 else "last record"
                problems.append(CaptureProblem(path, file_off + off,
                                               f"capture is truncated: {what} cut short ({n - off} bytes left)"))
            return
        carry = buf[off:]
        file_off += off


MAPPED_BATCH = 4 * 1024 * 1024


def _pcap_header(path: str, head: bytes) -> tuple[str, float, int, int]:
    if len(head) < 24:
        raise CaptureError(f"{path}: pcap file header cut short ({len(head)} of 24 bytes)")
    magic = head[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    snaplen, network = struct.unpack(endian + "II", head[16:24])
    linktype = network & 0x0FFFFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise CaptureError(f"{path}: link type {linktype} is not supported "
                           f"(Ethernet, Linux SLL/SLL2, raw IP and loopback are)")
    limit = max(MAX_FRAME, snaplen if snaplen < (1 << 26) else MAX_FRAME)
    return endian, (1e9 if nano else 1e6), linktype, limit


def _pcap_mapped(path: str, f: BinaryIO, head: bytes, problems: list[CaptureProblem]) -> Iterator[Batch]:
    """Classic pcap from a plain file: map it and walk the record headers with nothing but
    one struct call per record; every other field is gathered by numpy afterwards. The walk
    trusts lengths and the batch is validated after (vectorised), so the loop stays tight."""
    endian, div, linktype, limit = _pcap_header(path, head)
    n = os.fstat(f.fileno()).st_size
    if n <= 24:
        return
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    a = np.frombuffer(mm, dtype=np.uint8)
    u = struct.Struct(endian + "I").unpack_from
    dtype = np.dtype(endian + "u4")
    off = 24
    released = 0
    page = mmap.PAGESIZE
    while off < n:
        # the consumer is done with the previous batch: drop its pages from our mapping, so
        # resident memory stays at a few batches whatever the file size (the page cache keeps them)
        upto = (off // page) * page
        if upto > released and hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED, released, upto - released)
            released = upto
        offs: list[int] = []
        ap = offs.append
        stop = min(n, off + MAPPED_BATCH)
        try:
            while off < stop:
                ap(off)
                (c,) = u(mm, off + 8)
                off += 16 + c
        except struct.error:
            pass       # the last record header is cut short; found again below
        o = np.array(offs, dtype=np.int64)
        hdr_ok = o + 16 <= n
        o16 = o[hdr_ok]
        idx = o16[:, None] + np.arange(16, dtype=np.int64)[None, :]
        hdrs = a[idx].view(dtype).reshape(-1, 4).astype(np.int64)
        caplen = hdrs[:, 2]
        good = (caplen <= limit) & (o16 + 16 + caplen <= n)
        cut = None
        if not good.all():
            first = int(np.argmin(good))
            at = int(o16[first])
            if caplen[first] > limit:
                cut = (at, f"record length {int(caplen[first])} is absurd; the rest of the file is unreadable")
            else:
                cut = (at, f"capture is truncated: last record cut short ({n - at} bytes left)")
            o16, hdrs, caplen = o16[:first], hdrs[:first], caplen[:first]
        elif not hdr_ok.all():
            at = int(o[~hdr_ok][0])
            cut = (at, f"capture is truncated: record header cut short ({n - at} bytes left)")
        if len(o16):
            ts = hdrs[:, 0] + hdrs[:, 1] / div
            yield Batch(mm, o16 + 16, caplen, ts.astype(np.float64),
                        np.full(len(o16), linktype, dtype=np.int32), 0, int(o16[-1] + 16 + caplen[-1]))
        if cut:
            problems.append(CaptureProblem(path, cut[0], cut[1]))
            return


_BT_IDB, _BT_EPB, _BT_SPB, _BT_OPB, _BT_SHB = 1, 6, 3, 2, 0x0A0D0D0A


def _pcapng_batches(path: str, f: BinaryIO, head: bytes, problems: list[CaptureProblem]) -> Iterator[Batch]:
    """pcapng: blocks are self-describing, so the walk is per block; frames still come out
    as numpy batches over the slab."""
    endian = "<"
    # interfaces are numbered per section
    ifaces: list[tuple[int, float]] = []   # (linktype, seconds per tick)
    file_off = 0
    carry = head
    first = True
    while True:
        more = _read_more(path, f, problems, file_off + len(carry))
        buf = carry + more if carry else more
        n = len(buf)
        if n == 0:
            return
        starts: list[int] = []
        caps: list[int] = []
        tss: list[float] = []
        lts: list[int] = []
        off = 0
        bad = None
        while off + 12 <= n:
            if first or buf[off:off + 4] == b"\x0a\x0d\x0d\x0a":
                if off + 12 > n:
                    break
                bom = buf[off + 8:off + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    bad = "pcapng section header has a bad byte-order magic"
                    break
                first = False
            btype, blen = struct.unpack_from(endian + "II", buf, off)
            if blen < 12 or blen % 4 or blen > MAX_FRAME + 4096 + 65536:
                bad = f"pcapng block length {blen} is impossible; the rest of the file is unreadable"
                break
            if off + blen > n:
                break
            if btype == _BT_SHB:
                ifaces = []
            elif btype == _BT_IDB:
                lt = struct.unpack_from(endian + "H", buf, off + 8)[0]
                ifaces.append((lt, _if_tsresol(buf, off, blen, endian)))
            elif btype == _BT_EPB:
                iid, th, tl, cap, _orig = struct.unpack_from(endian + "IIIII", buf, off + 8)
                if iid >= len(ifaces):
                    bad = f"packet names interface {iid}, which was never described"
                    break
                lt, tick = ifaces[iid]
                starts.append(off + 28)
                caps.append(min(cap, blen - 32))
                tss.append(((th << 32) | tl) * tick)
                lts.append(lt)
            elif btype == _BT_SPB:
                if ifaces:
                    orig = struct.unpack_from(endian + "I", buf, off + 8)[0]
                    starts.append(off + 12)
                    caps.append(min(orig, blen - 16))
                    tss.append(0.0)
                    lts.append(ifaces[0][0])
            off += blen
        if starts:
            lt_arr = np.array(lts, dtype=np.int32)
            unsupported = set(np.unique(lt_arr).tolist()) - SUPPORTED_LINKTYPES
            if unsupported:
                problems.append(CaptureProblem(path, file_off, f"link type(s) {sorted(unsupported)} not supported; those frames are skipped"))
            yield Batch(buf, np.array(starts, dtype=np.int64), np.array(caps, dtype=np.int64),
                        np.array(tss, dtype=np.float64), lt_arr, file_off, _raw_position(f))
        if bad:
            problems.append(CaptureProblem(path, file_off + off, bad))
            return
        if not more:
            if off < n:
                problems.append(CaptureProblem(path, file_off + off,
                                               f"capture is truncated: last block cut short ({n - off} bytes left)"))
            return
        carry = buf[off:]
        file_off += off


def _if_tsresol(buf: bytes, off: int, blen: int, endian: str) -> float:
    p = off + 16
    end = off + blen - 4
    while p + 4 <= end:
        code, olen = struct.unpack_from(endian + "HH", buf, p)
        if code == 0:
            break
        if code == 9 and olen >= 1:
            v = buf[p + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        p += 4 + ((olen + 3) & ~3)
    return 1e-6


def capture_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


__all__ = ["Batch", "CaptureError", "CaptureProblem", "read_batches", "open_capture", "capture_size"]
