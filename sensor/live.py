"""Live capture: frames from a network interface (or a pcap byte stream) as ``Batch``es, fed to
the same ``Sensor`` core that imports files.

Three sources, one shape:

* ``RingSocket`` (the default) - an ``AF_PACKET`` socket with a TPACKET_V3 receive ring mapped
  into our memory: the kernel fills 1 MiB blocks with frames and hands over a block at a time,
  which becomes one ``Batch`` with one copy and no system call per packet (the per-packet
  ``recvmsg`` of the plain socket cost most of a core at 100 k packets/s). Same kernel filter,
  same counters; optionally one member of a ``PACKET_FANOUT`` hash group (several sensor
  processes, each with whole flows: ``appliance/sensor_workers.py``).
* ``PacketSocket`` - a Linux ``AF_PACKET`` socket on the mirror interface. The kernel filters
  (classic BPF compiled by ``tcpdump -ddd`` from the configured subnets and ports and attached
  with ``SO_ATTACH_FILTER``), timestamps (``SO_TIMESTAMPNS``) and counts what it had to drop
  (``PACKET_STATISTICS``): the drop counter is the kernel's own, readable at any time. A
  capture child process (tcpdump/dumpcap writing pcap to stdout) only reports its drops when
  it exits, which is too late for an alert; see benchmarks/live_capture.py for the rates.
* ``PcapStream`` - a classic pcap byte stream (stdin, a pipe from any capture tool).

Each way a reader thread turns packets into batches and hands them over through a bounded
queue. When the queue is full (reconstruction fell behind) the batch is dropped and counted
as ours (``own_drops``): evidence lost is reported, never silent, and the kernel buffer keeps
draining so one slow moment does not turn into a long blind spot.

Stopping (``request_stop``): capture ends at once; what is queued is still handed out until a
deadline; ``abandon`` then counts what is left (queued, or still in the kernel's buffer) as
``stop_drops``, so a stop under load is prompt and its loss is a number, not a silence.

``RawRing`` optionally keeps every captured packet in a ring of pcap files bounded by size,
count and age: the packets themselves, as evidence beside the reconstruction.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from sensor.capture import LINKTYPE_ETHERNET, Batch, CaptureError, _pcap_header
from sensor.flows import Limits
from sensor.pipeline import Sensor
from sensor.streams import StreamEvent

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SNAPLEN = 262144
SLAB = 4 * 1024 * 1024               # bytes per batch buffer
FLUSH_SECONDS = 0.05                 # under load, a batch leaves the reader at least this often
QUEUE_BYTES = 64 * 1024 * 1024       # captured bytes waiting for reconstruction, at most

ADMIN_PORTS = (22, 23, 2222, 2323, 3389)


# -- which packets the kernel lets through --------------------------------------------------
def build_filter(subnets: list[str], ports: list[int], content_detection: bool) -> str:
    """A pcap filter expression: TCP to/from the OT subnets, on the admin ports (or on any port
    when content detection is asked for, so Telnet on port 40023 is still found)."""
    parts = ["tcp"]
    if subnets:
        parts.append("(" + " or ".join(f"net {n}" for n in subnets) + ")")
    if ports and not content_detection:
        parts.append("(" + " or ".join(f"port {p}" for p in ports) + ")")
    expr = " and ".join(parts)
    # tagged frames a switch left tagged (no offload): same test behind the 802.1Q header
    return f"({expr}) or (vlan and {expr})"


def compile_filter(expr: str, interface: str | None = None) -> bytes:
    """Classic BPF for ``expr``, compiled by libpcap (through ``tcpdump -ddd``), packed as the
    ``struct sock_fprog`` program the kernel takes."""
    cmd = ["tcpdump", "-ddd"] + (["-i", interface] if interface else ["-y", "EN10MB"]) + [expr]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise CaptureError("tcpdump is needed to compile the capture filter (Debian package tcpdump)") from None
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise CaptureError(f"capture filter {expr!r} does not compile: {msg}")
    nums = [list(map(int, line.split())) for line in p.stdout.strip().splitlines()[1:]]
    return b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in nums)


@dataclass
class CaptureCounters:
    packets: int = 0            # seen by the reader
    bytes: int = 0
    kernel_drops: int = 0       # PACKET_STATISTICS tp_drops (cumulative)
    own_drops: int = 0          # packets dropped because reconstruction fell behind
    interface_drops: int = 0    # the NIC's rx_dropped (what never reached the socket)
    queue_bytes: int = 0        # bytes waiting for reconstruction now
    stop_drops: int = 0         # captured (or in the kernel's buffer) but not processed before the stop deadline


class _Batcher:
    """Packs frames back to back into a slab and cuts it into ``Batch``es."""

    def __init__(self, linktype: int) -> None:
        self.linktype = linktype
        self.slab = bytearray(SLAB)
        self.view = memoryview(self.slab)
        self.off = 0
        self.starts: list[int] = []
        self.caps: list[int] = []
        self.tss: list[float] = []

    def cut(self) -> Batch | None:
        if not self.starts:
            return None
        n = len(self.starts)
        b = Batch(bytes(self.view[:self.off]), np.array(self.starts, dtype=np.int64),
                  np.array(self.caps, dtype=np.int64), np.array(self.tss, dtype=np.float64),
                  np.full(n, self.linktype, dtype=np.int32), 0)
        self.off = 0
        self.starts, self.caps, self.tss = [], [], []
        return b


class BatchSource:
    """A reader thread and a bounded queue of batches; subclasses say where packets come from."""

    linktype = LINKTYPE_ETHERNET
    wall_clock = True      # packet times are now: a quiet link may be ticked with the clock

    def __init__(self, queue_bytes: int = QUEUE_BYTES) -> None:
        self.counters = CaptureCounters()
        self._q: queue.Queue[Batch | None] = queue.Queue()
        self._queue_limit = queue_bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline: float | None = None      # monotonic time after which queued batches are abandoned
        self._left_at_stop = 0                   # captured before the stop, no room in the queue
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.ended = False
        self.on_raw: Callable[[bytes], None] | None = None     # pcap records, for the raw ring

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def request_stop(self, drain_seconds: float) -> None:
        """Stop capturing now; what is already queued is still handed out for ``drain_seconds``
        (safe to call from a signal handler: it only sets two values)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + max(0.0, drain_seconds)
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def abandon(self) -> int:
        """After the stop: count what was captured but will not be processed (the batches still
        queued, and what the kernel still holds for us) as ``stop_drops``; returns that count."""
        n = 0
        while True:
            try:
                b = self._q.get_nowait()
            except queue.Empty:
                break
            if b is not None:
                n += len(b)
                with self._lock:
                    self.counters.queue_bytes -= len(b.buf)
        n += self._abandon_kernel()
        with self._lock:
            n += self._left_at_stop
            self._left_at_stop = 0
        self.counters.stop_drops += n
        return n

    def _abandon_kernel(self) -> int:
        return 0

    def _run(self) -> None:
        try:
            self.read_loop()
        except Exception as e:   # the capture is gone: say why, once
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._q.put(None)

    def read_loop(self) -> None:
        raise NotImplementedError

    def _hand_over(self, batch: Batch) -> None:
        size = len(batch.buf)
        with self._lock:
            if self.counters.queue_bytes + size > self._queue_limit:
                if self._stop.is_set():
                    self._left_at_stop += len(batch)     # reported with the rest the stop left
                else:
                    self.counters.own_drops += len(batch)
                return
            self.counters.queue_bytes += size
        self._q.put(batch)

    def batches(self, timeout: float) -> Iterator[Batch | None]:
        """Batches as they come; ``None`` each time ``timeout`` passes without one (so the
        caller can tick its clocks). Ends when the source ends."""
        while True:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.ended = True             # stopping, and out of time: the rest is abandon()'s
                return
            try:
                b = self._q.get(timeout=timeout)
            except queue.Empty:
                if self._stop.is_set():       # a reader blocked in read() cannot be woken: leave it
                    self.ended = True
                    return
                yield None
                continue
            if b is None:
                self.ended = True
                return
            with self._lock:
                self.counters.queue_bytes -= len(b.buf)
            yield b

    def refresh_counters(self) -> CaptureCounters:
        return self.counters


class PacketSocket(BatchSource):
    """An ``AF_PACKET`` socket on one interface, with a kernel BPF filter."""

    def __init__(self, interface: str, bpf: bytes | None, rcvbuf: int = 64 * 1024 * 1024,
                 queue_bytes: int = QUEUE_BYTES) -> None:
        super().__init__(queue_bytes)
        self.interface = interface
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureError(f"capturing on {interface} needs root or CAP_NET_RAW") from None
        try:
            if bpf is not None:
                # attach before bind, so not one unfiltered packet is queued
                prog = ctypes.create_string_buffer(bpf)
                fprog = struct.pack("HL", len(bpf) // 8, ctypes.addressof(prog))
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
                self._prog = prog
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((interface, ETH_P_ALL))
        except OSError as e:
            s.close()
            raise CaptureError(f"cannot capture on {interface}: {e.strerror or e}") from None
        self.sock = s
        self._kernel_left = 0
        self._if_drops0 = self._interface_drops()
        self.refresh_counters()

    def set_filter(self, bpf: bytes) -> None:
        """Swap the kernel filter in place (SIGHUP with new subnets or ports): no packet gap."""
        prog = ctypes.create_string_buffer(bpf)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             struct.pack("HL", len(bpf) // 8, ctypes.addressof(prog)))
        self._prog = prog

    def _interface_drops(self) -> int:
        try:
            return int(Path(f"/sys/class/net/{self.interface}/statistics/rx_dropped").read_text())
        except (OSError, ValueError):
            return 0

    # struct tpacket_stats (TPACKET_V3: tpacket_stats_v3, one more field); tp_drops is second
    _STATS = struct.Struct("II")

    def refresh_counters(self) -> CaptureCounters:
        # tp_packets/tp_drops are reset by each read: accumulate
        try:
            drops = self._STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, self._STATS.size))[1]
        except OSError:
            drops = 0
        with self._lock:
            self.counters.kernel_drops += drops
        self.counters.interface_drops = max(0, self._interface_drops() - self._if_drops0)
        return self.counters

    def read_loop(self) -> None:
        b = _Batcher(self.linktype)
        recv = self.sock.recvmsg_into
        anc = socket.CMSG_SPACE(16)
        counters = self.counters
        pcap_hdr = struct.Struct("<IIII").pack
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poll = poller.poll
        last_cut = time.monotonic()
        while not self._stop.is_set():
            if SLAB - b.off < SNAPLEN:
                self._emit(b.cut(), b)
                last_cut = time.monotonic()
            try:
                # frames already waiting are taken without blocking; the moment none is, the
                # batch leaves (a lone keystroke is not held back); an empty batch waits in poll
                # (the socket itself is blocking: with a Python timeout every recv costs a poll)
                if b.starts:
                    n, ancdata, flags, addr = recv([b.view[b.off + 16:]], anc,
                                                   socket.MSG_TRUNC | socket.MSG_DONTWAIT)
                else:
                    if not poll(int(FLUSH_SECONDS * 1000)):
                        continue
                    n, ancdata, flags, addr = recv([b.view[b.off + 16:]], anc, socket.MSG_TRUNC)
            except BlockingIOError:
                self._emit(b.cut(), b)
                last_cut = time.monotonic()
                continue
            except OSError as e:
                if e.errno == 100:   # ENETDOWN: the link went down; wait for it
                    time.sleep(0.2)
                    continue
                raise
            if addr[2] == socket.PACKET_OUTGOING:
                continue    # our own transmissions (there should be none on a mirror port)
            ts = None
            for level, typ, data in ancdata:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", data[:16])
                    ts = sec + nsec / 1e9
            if ts is None:
                ts = time.time()
            cap = min(n, SLAB - b.off - 16)
            # a pcap record header in front of each frame: the slab doubles as raw ring input
            sec = int(ts)
            b.view[b.off:b.off + 16] = pcap_hdr(sec, int((ts - sec) * 1e6), cap, n)
            b.starts.append(b.off + 16)
            b.caps.append(cap)
            b.tss.append(ts)
            b.off += 16 + cap
            counters.packets += 1
            counters.bytes += cap
            if time.monotonic() - last_cut > FLUSH_SECONDS:
                self._emit(b.cut(), b)
                last_cut = time.monotonic()
        self._emit(b.cut(), b)
        self.refresh_counters()
        self._kernel_left = self._count_waiting()
        self.sock.close()

    def _count_waiting(self, limit: float = 2.0) -> int:
        """Frames the kernel still holds for us at the stop: counted (not copied), so the
        drop report covers them; bounded in time."""
        n = 0
        scratch = bytearray(1)
        end = time.monotonic() + limit
        while time.monotonic() < end:
            try:
                self.sock.recv_into(scratch, 1, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            n += 1
        return n

    def _abandon_kernel(self) -> int:
        left, self._kernel_left = self._kernel_left, 0
        return left

    def _emit(self, batch: Batch | None, b: _Batcher) -> None:
        if batch is None:
            return
        if self.on_raw is not None:
            self.on_raw(batch.buf)
        self._hand_over(batch)


# TPACKET_V3 (linux/if_packet.h): the kernel writes frames into blocks of a ring we mmap
PACKET_RX_RING = 5
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
BLOCK_SIZE = 1 << 20                 # one ring block: one Batch (frames up to 64 KiB fit many times)
BLOCK_TIMEOUT_MS = 20                # a block that is not full is handed over after this long anyway (latency)
_BLOCK_HDR = struct.Struct("<IIIII")   # version, offset_to_priv, block_status, num_pkts, offset_to_first_pkt
_BLK_LEN = struct.Struct("<I")         # blk_len, at offset 20


class RingSocket(BatchSource):
    """An ``AF_PACKET`` socket with a TPACKET_V3 receive ring: the kernel fills 1 MiB blocks of
    a shared memory ring with frames and hands a block over when it is full or
    ``BLOCK_TIMEOUT_MS`` old. A block becomes one ``Batch`` with one copy and no system call
    per packet: the only per-frame Python step is following ``tp_next_offset`` from one frame
    header to the next; timestamps, lengths and frame offsets are gathered with numpy.

    ``fanout``: (group id, member count) to join a ``PACKET_FANOUT`` hash group, so that several
    sensor processes each get whole flows (both directions hash alike)."""

    def __init__(self, interface: str, bpf: bytes | None, ring_bytes: int = 64 * 1024 * 1024,
                 queue_bytes: int = QUEUE_BYTES, fanout: int | None = None) -> None:
        super().__init__(queue_bytes)
        self.interface = interface
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureError(f"capturing on {interface} needs root or CAP_NET_RAW") from None
        self.blocks = max(2, ring_bytes // BLOCK_SIZE)
        try:
            if bpf is not None:
                prog = ctypes.create_string_buffer(bpf)
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             struct.pack("HL", len(bpf) // 8, ctypes.addressof(prog)))
                self._prog = prog
            s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frame = 2048          # only used by the kernel to size its frame index
            req = struct.pack("7I", BLOCK_SIZE, self.blocks, frame, BLOCK_SIZE // frame * self.blocks,
                              BLOCK_TIMEOUT_MS, 0, 0)
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.mm = mmap.mmap(s.fileno(), BLOCK_SIZE * self.blocks, mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE)
            s.bind((interface, ETH_P_ALL))
            if fanout is not None:
                s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack(
                    "I", (fanout & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)))
        except OSError as e:
            s.close()
            raise CaptureError(f"cannot set up a TPACKET_V3 ring on {interface}: {e.strerror or e}") from None
        self.sock = s
        self._next = 0                 # the ring block we wait for
        self._kernel_left = 0
        self._if_drops0 = self._interface_drops()
        self.refresh_counters()

    set_filter = PacketSocket.set_filter
    _interface_drops = PacketSocket._interface_drops

    _STATS = struct.Struct("III")
    refresh_counters = PacketSocket.refresh_counters

    def read_loop(self) -> None:
        mm = self.mm
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR)
        poll = poller.poll
        unpack_hdr = _BLOCK_HDR.unpack_from
        while not self._stop.is_set():
            base = self._next * BLOCK_SIZE
            _v, _p, status, _n, _f = unpack_hdr(mm, base)
            if not status & TP_STATUS_USER:
                poll(int(FLUSH_SECONDS * 1000))
                continue
            self._take_block(base)
            self._next = (self._next + 1) % self.blocks
        # stopped: the blocks the kernel had already handed over were captured before the stop;
        # they join the queue (one lap of the ring at most) and are processed up to the deadline
        for _ in range(self.blocks):
            base = self._next * BLOCK_SIZE
            if not unpack_hdr(mm, base)[2] & TP_STATUS_USER:
                break
            self._take_block(base)
            self._next = (self._next + 1) % self.blocks
        self.refresh_counters()
        self._kernel_left = self._count_waiting()
        self.mm.close()
        self.sock.close()

    def _take_block(self, base: int) -> None:
        mm = self.mm
        _v, _p, _status, n, first = _BLOCK_HDR.unpack_from(mm, base)
        blk_len = min(_BLK_LEN.unpack_from(mm, base + 20)[0], BLOCK_SIZE)
        buf = mm[base:base + blk_len]            # the one copy; then the block goes back to the kernel
        mm[base + 8:base + 12] = b"\0\0\0\0"
        if n == 0:
            return
        words = memoryview(buf).cast("I")
        hdrs = [0] * n
        off = first
        for i in range(n):                       # tp_next_offset: a linked list through the block
            hdrs[i] = off
            off += words[off >> 2]
        h = np.array(hdrs, dtype=np.int64)
        w = np.frombuffer(buf, dtype="<u4", count=blk_len // 4)
        a = np.frombuffer(buf, dtype=np.uint8)
        q = h >> 2
        sec, nsec, caps, lens = w[q + 1], w[q + 2], w[q + 3].astype(np.int64), w[q + 4]
        mac = np.frombuffer(buf, dtype="<u2", count=blk_len // 2)[(h >> 1) + 12].astype(np.int64)
        keep = a[h + 58] != socket.PACKET_OUTGOING    # sockaddr_ll.sll_pkttype, after the 48-byte header
        starts = h + mac
        ts = sec.astype(np.float64) + nsec.astype(np.float64) * 1e-9
        if not keep.all():
            starts, caps, ts, lens = starts[keep], caps[keep], ts[keep], lens[keep]
        m = len(starts)
        if m == 0:
            return
        self.counters.packets += m
        self.counters.bytes += int(caps.sum())
        if self.on_raw is not None:
            self.on_raw(pcap_records(a, starts, caps, ts, lens))
        self._hand_over(Batch(buf, starts, caps, ts, np.full(m, self.linktype, dtype=np.int32), 0))

    def _count_waiting(self) -> int:
        """Frames in blocks the kernel has handed over but we did not take (at the stop)."""
        n = 0
        for k in range(self.blocks):
            base = ((self._next + k) % self.blocks) * BLOCK_SIZE
            _v, _p, status, num, _f = _BLOCK_HDR.unpack_from(self.mm, base)
            if status & TP_STATUS_USER:
                n += num
        return n

    def _abandon_kernel(self) -> int:
        left, self._kernel_left = self._kernel_left, 0
        return left


def pcap_records(a: np.ndarray, starts: np.ndarray, caps: np.ndarray, ts: np.ndarray,
                 lens: np.ndarray) -> bytes:
    """Frames of a slab as classic pcap records (16-byte header + frame, little-endian, µs),
    gathered with numpy: for the raw packet ring."""
    n = len(starts)
    rec = 16 + caps
    at = np.zeros(n, dtype=np.int64)
    np.cumsum(rec[:-1], out=at[1:])
    out = np.empty(int(rec.sum()), dtype=np.uint8)
    hdr = np.empty((n, 4), dtype="<u4")
    sec = np.floor(ts)
    hdr[:, 0] = sec
    hdr[:, 1] = np.minimum((ts - sec) * 1e6, 999_999)
    hdr[:, 2] = caps
    hdr[:, 3] = lens
    out[(at[:, None] + np.arange(16)).ravel()] = hdr.view(np.uint8).ravel()
    total = int(caps.sum())
    within = np.arange(total) - np.repeat(np.cumsum(caps) - caps, caps)
    out[np.repeat(at + 16, caps) + within] = a[np.repeat(starts, caps) + within]
    return out.tobytes()


def open_capture_socket(interface: str, bpf: bytes | None, buffer_bytes: int, method: str = "ring",
                        fanout: int | None = None) -> tuple[BatchSource, str | None]:
    """The capture for ``interface``: the TPACKET_V3 ring when asked for and possible, else the
    plain packet socket. Returns it and, if the ring was asked for but not had, why."""
    if method == "ring":
        try:
            return RingSocket(interface, bpf, buffer_bytes, fanout=fanout), None
        except CaptureError as e:
            if "needs root" in str(e):
                raise
            why = str(e)
        return PacketSocket(interface, bpf, rcvbuf=buffer_bytes), why
    return PacketSocket(interface, bpf, rcvbuf=buffer_bytes), None


class PcapStream(BatchSource):
    """A classic pcap byte stream (a pipe from tcpdump/dumpcap ``-w -``, or stdin)."""

    wall_clock = False     # could be an old capture replayed: only its own times count

    def __init__(self, f: BinaryIO, name: str = "-", queue_bytes: int = QUEUE_BYTES) -> None:
        super().__init__(queue_bytes)
        self.f = f
        self.name = name
        self.header = b""

    def read_loop(self) -> None:
        fd = self.f.fileno()
        head = b""
        while len(head) < 24:
            more = os.read(fd, 24 - len(head))
            if not more:
                if head:
                    raise CaptureError(f"{self.name}: pcap stream ended inside its header")
                return
            head += more
        if head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            raise CaptureError(f"{self.name}: not a classic pcap stream (starts with {head[:8].hex()}); "
                               f"use -F pcap / -P with the capture tool")
        endian, div, linktype, limit = _pcap_header(self.name, head)
        self.header = head
        self.linktype = linktype
        rec = struct.Struct(endian + "IIII").unpack_from
        carry = b""
        while not self._stop.is_set():
            more = os.read(fd, 1 << 20)
            buf = carry + more if carry else more
            if not more:
                if buf:
                    raise CaptureError(f"{self.name}: pcap stream ended inside a record")
                return
            offs, caps, tss = [], [], []
            off, n = 0, len(buf)
            while off + 16 <= n:
                s, frac, caplen, _orig = rec(buf, off)
                if caplen > limit:
                    raise CaptureError(f"{self.name}: record length {caplen} is absurd; the stream is damaged")
                if off + 16 + caplen > n:
                    break
                offs.append(off + 16)
                caps.append(caplen)
                tss.append(s + frac / div)
                off += 16 + caplen
            carry = buf[off:]
            if offs:
                whole = buf[:off]
                self.counters.packets += len(offs)
                self.counters.bytes += sum(caps)
                if self.on_raw is not None and endian == "<" and div == 1e6:
                    self.on_raw(whole)
                self._hand_over(Batch(whole, np.array(offs, dtype=np.int64), np.array(caps, dtype=np.int64),
                                      np.array(tss, dtype=np.float64),
                                      np.full(len(offs), linktype, dtype=np.int32), 0))


class RawRing:
    """Captured packets kept as pcap files: ``raw-<start>.pcap``, a new file after
    ``file_bytes`` or ``file_seconds``, the oldest removed beyond ``files``."""

    def __init__(self, directory: Path, file_bytes: int, files: int, file_seconds: float,
                 linktype: int = LINKTYPE_ETHERNET) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.file_bytes, self.files, self.file_seconds = file_bytes, files, file_seconds
        self.header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype)
        self.f: BinaryIO | None = None
        self.size = 0
        self.opened = 0.0
        self.errors = 0

    def write(self, records: bytes) -> None:
        """Whole pcap records (16-byte header + frame), little-endian microseconds."""
        try:
            now = time.time()
            if self.f is None or self.size >= self.file_bytes or now - self.opened >= self.file_seconds:
                self._rotate(now)
            assert self.f is not None
            self.f.write(records)
            self.size += len(records)
        except OSError:
            self.errors += 1   # counted and alerted on; the reconstruction goes on

    def _rotate(self, now: float) -> None:
        if self.f is not None:
            self.f.close()
        name = self.dir / time.strftime("raw-%Y%m%dT%H%M%S", time.gmtime(now))
        path = name.with_name(f"{name.name}-{int(now * 1e6) % 1_000_000:06d}.pcap")
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(self.header)
        self.size = len(self.header)
        self.opened = now
        old = sorted(self.dir.glob("raw-*.pcap"))
        for p in old[: max(0, len(old) - self.files)]:
            try:
                p.unlink()
            except OSError:
                pass

    def flush(self) -> None:
        if self.f is not None:
            try:
                self.f.flush()
            except OSError:
                self.errors += 1

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class LiveSensor(Sensor):
    """The ``Sensor`` core fed from a ``BatchSource``: stream events as packets arrive, and
    time moving on when they do not."""

    def __init__(self, source: BatchSource, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.source = source

    def events(self, tick_every: float = 0.5) -> Iterator[StreamEvent | None]:
        """Stream events; ``None`` at least every ``tick_every`` seconds (time for the caller's
        checkpoints). Ends when the source ends (after closing what is open)."""
        last_tick = time.monotonic()
        for batch in self.source.batches(tick_every):
            if batch is not None:
                yield from self.feed(batch)
            now = time.monotonic()
            if batch is None or now - last_tick >= tick_every:
                # on a quiet live link the clock drives timeouts; otherwise capture time does
                if batch is None and self.source.wall_clock:
                    ts = max(self.last_ts or 0.0, time.time())
                else:
                    ts = self.last_ts
                if ts is not None:
                    yield from self.tick(ts)
                last_tick = now
                yield None
        yield from self.finish(self.last_ts or time.time())


__all__ = ["build_filter", "compile_filter", "PacketSocket", "RingSocket", "open_capture_socket", "pcap_records",
           "PcapStream", "RawRing", "LiveSensor",
           "BatchSource", "CaptureCounters", "ADMIN_PORTS"]
