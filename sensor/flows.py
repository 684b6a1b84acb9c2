"""The flow table: TCP connections by key, their roles, detection, close and eviction.

Per-packet work happens only for flows still of interest (being detected, or detected as an
admin protocol). A flow found to be something else is dropped from the table and its key
goes to the skip set, which ``sensor/pipeline.py`` applies to whole batches with numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sensor.detect import SERVICE_PORTS, UNDECIDED, detect
from sensor.reassembly import HalfStream
from sensor.streams import (StreamClosed, StreamConflict, StreamData, StreamEvent, StreamGap,
                            StreamOpened)

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


@dataclass
class Limits:
    max_flows: int = 200_000            # live flows in the table (admin + being detected)
    max_skipped: int = 2_000_000        # keys remembered as "not ours"
    idle_timeout: float = 2 * 3600.0    # an admin session silent this long is closed
    detect_packets: int = 24            # data segments looked at before giving up on a flow
    detect_buffer: int = 4096           # bytes per direction held while detecting


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    tcp_packets: int = 0
    skipped_packets: int = 0
    flows_seen: int = 0
    flows_skipped: int = 0
    sessions: int = 0
    evicted: int = 0
    snaplen_cut_bytes: int = 0
    bad_tcp: int = 0
    by_protocol: dict[str, int] = field(default_factory=dict)


class Flow:
    __slots__ = ("fid", "key", "client", "server", "cport", "sport", "c2s", "s2c", "protocol",
                 "picked_up", "det", "det_segments", "last_ts", "first_ts", "opened", "buf",
                 "rst", "bytes")

    def __init__(self, fid: int, key: int, client: str, cport: int, server: str, sport: int,
                 picked_up: bool, ts: float) -> None:
        self.fid = fid
        self.key = key
        self.client, self.cport, self.server, self.sport = client, cport, server, sport
        self.buf: list = []
        self.c2s = HalfStream(self.buf)
        self.s2c = HalfStream(self.buf)
        self.protocol: str | None = None
        self.picked_up = picked_up
        self.det = [bytearray(), bytearray()]
        self.det_segments = 0
        self.first_ts = self.last_ts = ts
        self.opened = False
        self.rst = False
        self.bytes = [0, 0]


class FlowTable:
    def __init__(self, limits: Limits | None = None, stats: Stats | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = stats or Stats()
        self.flows: dict[int, Flow] = {}
        self.skipped: dict[int, None] = {}     # insertion-ordered: oldest evicted first
        self.skip_dirty = False
        self.closed: dict[int, float] = {}     # recently closed keys: ignore their stragglers
        self.next_fid = 1
        self.out: list[StreamEvent] = []

    # -- per packet -------------------------------------------------------------------------
    def packet(self, key: int, src: str, sport: int, dst: str, dport: int, seq: int, ack: int,
               flags: int, payload: bytes, ts: float, missing: int = 0) -> None:
        flow = self.flows.get(key)
        if flow is None:
            if key in self.skipped and not (flags & SYN and not flags & ACK):
                return
            if not payload and not flags & SYN:
                return
            if flags & RST:
                return
            closed_at = self.closed.get(key)
            if closed_at is not None and not flags & SYN and ts - closed_at < 120:
                return
            flow = self._new_flow(key, src, sport, dst, dport, flags, ts)
            if flow is None:
                return
        flow.last_ts = ts
        from_client = src == flow.client and sport == flow.cport
        half = flow.c2s if from_client else flow.s2c
        other = flow.s2c if from_client else flow.c2s
        if flags & SYN:
            half.syn(seq)
        if flags & ACK and other.pending:
            mark = len(flow.buf)
            other.tick(ts)
            if len(flow.buf) > mark:
                self._route(flow, not from_client, mark)
                if self.flows.get(key) is not flow:
                    return
        if payload or flags & FIN:
            mark = len(flow.buf)
            half.segment(seq, payload, ts, bool(flags & FIN))
            if missing:
                # the snaplen cut this segment short: what was cut is lost for good
                end = (seq + len(payload)) % (1 << 32)
                if half.next_seq == end:
                    half.out.append(("gap", missing, ts))
                    half.next_seq = (end + missing) % (1 << 32)
                    half.offset += missing
                    half.tail = b""
                self.stats.snaplen_cut_bytes += missing
            if len(flow.buf) > mark:
                self._route(flow, from_client, mark)
                if self.flows.get(key) is not flow:
                    return
        if flags & RST:
            flow.rst = True
            self.close(flow, ts, "rst")
        elif flow.c2s.done and flow.s2c.done:
            self.close(flow, ts, "fin")

    def in_order(self, key: int, sport: int, dport: int, seq: int, flags: int, payload: bytes,
                 ts: float) -> bool:
        """The common packet of an established session in one step: the next in-order data
        segment of a detected flow, nothing queued in either direction, no SYN/FIN/RST.
        Returns False, having changed nothing, for anything else (the caller uses ``packet``)."""
        flow = self.flows.get(key)
        if flow is None or flow.protocol is None or flags & (FIN | SYN | RST) or sport == dport:
            return False
        if sport == flow.cport and dport == flow.sport:
            half, i, d = flow.c2s, 0, "c2s"
        elif sport == flow.sport and dport == flow.cport:
            half, i, d = flow.s2c, 1, "s2c"
        else:
            return False
        if half.next_seq != seq or half.fin_seq is not None or flow.c2s.pending or flow.s2c.pending:
            return False
        half.advance(payload)
        flow.last_ts = ts
        flow.bytes[i] += len(payload)
        self.out.append(StreamData(flow.fid, d, payload, ts))  # type: ignore[arg-type]
        return True

    def _new_flow(self, key: int, src: str, sport: int, dst: str, dport: int, flags: int,
                  ts: float) -> Flow | None:
        if len(self.flows) >= self.limits.max_flows:
            self._evict(ts)
        syn_only = bool(flags & SYN) and not flags & ACK
        synack = bool(flags & SYN) and bool(flags & ACK)
        if syn_only:
            client, cport, server, sp = src, sport, dst, dport
        elif synack:
            client, cport, server, sp = dst, dport, src, sport
        else:
            # picked up mid-connection: the service port (or the lower one) is the server's
            if (sport in SERVICE_PORTS and dport not in SERVICE_PORTS) or (
                    dport not in SERVICE_PORTS and sport < dport):
                client, cport, server, sp = dst, dport, src, sport
            else:
                client, cport, server, sp = src, sport, dst, dport
        flow = Flow(self.next_fid, key, client, cport, server, sp, not (syn_only or synack), ts)
        self.next_fid += 1
        self.flows[key] = flow
        self.closed.pop(key, None)
        self.stats.flows_seen += 1
        return flow

    def _route(self, flow: Flow, from_client: bool, mark: int) -> None:
        """Hand new reassembled pieces on: to detection first, then as stream events."""
        pieces = flow.buf[mark:]
        del flow.buf[mark:]
        d = "c2s" if from_client else "s2c"
        if flow.protocol is None:
            det = flow.det[0 if from_client else 1]
            for p in pieces:
                if p[0] == "data":
                    det.extend(p[1][: self.limits.detect_buffer - len(det)])
                    flow.bytes[0 if from_client else 1] += len(p[1])
            flow.det_segments += 1
            flow.buf.extend((d, p) for p in pieces)  # held until the protocol is known
            verdict = detect(bytes(flow.det[0]), bytes(flow.det[1]), flow.cport, flow.sport, flow.picked_up)
            if verdict == UNDECIDED and flow.det_segments < self.limits.detect_packets:
                return
            held = list(flow.buf)
            flow.buf.clear()
            if verdict in (None, UNDECIDED):
                self._skip(flow)
                return
            flow.protocol = verdict
            flow.opened = True
            self.stats.sessions += 1
            self.stats.by_protocol[verdict] = self.stats.by_protocol.get(verdict, 0) + 1
            first_ts = flow.first_ts
            self.out.append(StreamOpened(flow.fid, first_ts, verdict, flow.client, flow.cport,
                                         flow.server, flow.sport, flow.picked_up))
            for dd, p in held:
                self._emit(flow, dd, p)
            return
        for p in pieces:
            if p[0] == "data":
                flow.bytes[0 if from_client else 1] += len(p[1])
            self._emit(flow, d, p)

    def _emit(self, flow: Flow, d: str, p: tuple) -> None:
        kind = p[0]
        if kind == "data":
            self.out.append(StreamData(flow.fid, d, p[1], p[2]))  # type: ignore[arg-type]
        elif kind == "gap":
            self.out.append(StreamGap(flow.fid, d, p[1], p[2]))  # type: ignore[arg-type]
        else:
            self.out.append(StreamConflict(flow.fid, d, p[1], p[2], p[3]))  # type: ignore[arg-type]

    def _skip(self, flow: Flow) -> None:
        del self.flows[flow.key]
        self.stats.flows_skipped += 1
        self.skipped[flow.key] = None
        self.skip_dirty = True
        if len(self.skipped) > self.limits.max_skipped:
            for k in list(self.skipped)[: len(self.skipped) // 4]:
                del self.skipped[k]

    # -- ends -----------------------------------------------------------------------------------
    def close(self, flow: Flow, ts: float, reason: str) -> None:
        if self.flows.get(flow.key) is not flow:
            return
        for half, from_client in ((flow.c2s, True), (flow.s2c, False)):
            mark = len(flow.buf)
            half.flush(ts)
            if len(flow.buf) > mark:
                self._route(flow, from_client, mark)
                if self.flows.get(flow.key) is not flow:
                    return
        if self.flows.get(flow.key) is flow:
            del self.flows[flow.key]
        if flow.opened:
            self.out.append(StreamClosed(flow.fid, ts, reason, flow.bytes[0], flow.bytes[1]))
        self.closed[flow.key] = ts
        if len(self.closed) > 100_000:
            for k in list(self.closed)[:50_000]:
                del self.closed[k]

    def tick(self, ts: float) -> None:
        """Called between batches: lost-segment timeouts and idle sessions."""
        idle = self.limits.idle_timeout
        for flow in list(self.flows.values()):
            for half, from_client in ((flow.c2s, True), (flow.s2c, False)):
                if half.pending:
                    mark = len(flow.buf)
                    half.tick(ts)
                    if len(flow.buf) > mark:
                        self._route(flow, from_client, mark)
            if ts - flow.last_ts > idle:
                self.close(flow, ts, "idle")

    def _evict(self, ts: float) -> None:
        victims = sorted(self.flows.values(), key=lambda f: (f.protocol is not None, f.last_ts))
        for flow in victims[: max(1, len(victims) // 10)]:
            self.stats.evicted += 1
            if flow.protocol is None:
                self._skip(flow)
            else:
                self.close(flow, ts, "evicted")

    def finish(self, ts: float) -> None:
        for flow in list(self.flows.values()):
            self.close(flow, ts, "capture-end")

