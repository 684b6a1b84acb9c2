"""A capture file in, stream events out: the sensor's whole job for one file.

    run = SensorRun("incident.pcapng")
    for event in run:            # StreamOpened / StreamData / StreamGap / StreamConflict / StreamClosed
        ...
    run.problems, run.stats      # damage found (file + offset), counters

Batches of frames are header-decoded with numpy; frames of flows already known to be
something else are dropped by one vectorised membership test; the rest go through the flow
table packet by packet.
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Iterator

import numpy as np

from sensor.capture import Batch, CaptureProblem, capture_size, read_batches
from sensor.flows import FlowTable, Limits, Stats
from sensor.headers import decode, segments
from sensor.streams import StreamEvent

SYN, ACK = 0x02, 0x10


class Sensor:
    """Batches in, stream events out: the part shared by a file import and a live capture.

    ``feed`` takes one batch (from a file or a live capture) and yields what it completed;
    ``tick`` advances time when no packet came (a live link can be quiet for minutes: lost
    segments and idle sessions must still time out); ``finish`` closes what is still open."""

    def __init__(self, limits: Limits | None = None, stats: Stats | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        self.stats = stats or Stats()
        # (i, n): only flows whose key % n == i -- one worker's share of a parallel import
        self.shard = shard
        self.table = FlowTable(limits, self.stats)
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._skip_arr = np.empty(0, dtype=np.uint64)
        self._ip_cache: dict[bytes, str] = {}

    def feed(self, batch: Batch) -> Iterator[StreamEvent]:
        n = len(batch)
        if n == 0:
            return
        table = self.table
        out = table.out
        ip_cache = self._ip_cache
        self.stats.packets += n
        self.stats.bytes += int(batch.caplen.sum())
        h = decode(batch)
        if table.skip_dirty:
            skip_arr = np.fromiter(table.skipped.keys(), dtype=np.uint64, count=len(table.skipped))
            skip_arr.sort()
            self._skip_arr = skip_arr
            table.skip_dirty = False
        skip_arr = self._skip_arr
        ok = h.ok
        self.stats.tcp_packets += int(ok.sum())
        if len(skip_arr):
            pos = np.searchsorted(skip_arr, h.key)
            pos[pos >= len(skip_arr)] = 0
            hit = skip_arr[pos] == h.key
            # a SYN may start a new connection on a tuple we skipped before: look at it
            new_conn = ((h.flags & SYN) != 0) & ((h.flags & ACK) == 0)
            keep = ok & (~hit | new_conn)
            self.stats.skipped_packets += int((ok & ~keep).sum())
        else:
            keep = ok
        keep = keep & ~h.bare_ack
        if self.shard is not None:
            keep = keep & (h.key % np.uint64(self.shard[1]) == np.uint64(self.shard[0]))
        idx = np.flatnonzero(keep)
        if len(idx):
            buf = batch.buf
            sg = segments(h, idx)
            cols = [c.tolist() for c in (sg.key, sg.l3, sg.ver, sg.sport, sg.dport, sg.seq, sg.ack,
                                         sg.flags, sg.pstart, sg.plen, sg.missing)]
            cols.append(batch.ts[idx].tolist())
            packet, in_order = table.packet, table.in_order
            flows, skipped = table.flows, table.skipped
            for key, l3, ver, sp, dp, seq, ack, flags, ps, pl, miss, ts in zip(*cols):
                if flags < 0:
                    self.stats.bad_tcp += 1
                    continue
                if key in skipped and key not in flows and (flags & (SYN | ACK)) != SYN:
                    # a flow found to be no session earlier in this batch (the vectorised
                    # filter only knows those of earlier batches): as the flow table would
                    continue
                payload = buf[ps:ps + pl] if pl else b""
                if pl and not miss and in_order(key, sp, dp, seq, flags, payload, ts):
                    yield from out
                    out.clear()
                    continue
                if ver == 4:
                    sraw, draw = buf[l3 + 12:l3 + 16], buf[l3 + 16:l3 + 20]
                else:
                    sraw, draw = buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]
                src = ip_cache.get(sraw)
                if src is None:
                    src = ip_cache[sraw] = str(ipaddress.ip_address(sraw))
                dst = ip_cache.get(draw)
                if dst is None:
                    dst = ip_cache[draw] = str(ipaddress.ip_address(draw))
                packet(key, src, sp, dst, dp, seq, ack, flags, payload, ts, miss)
                if out:
                    yield from out
                    out.clear()
            if len(ip_cache) > 100_000:
                ip_cache.clear()
        last_ts = float(batch.ts[-1])
        if self.first_ts is None:
            self.first_ts = float(batch.ts[0])
        self.last_ts = last_ts
        yield from self.tick(last_ts)

    def tick(self, ts: float) -> Iterator[StreamEvent]:
        out = self.table.out
        self.table.tick(ts)
        if out:
            yield from out
            out.clear()

    def finish(self, ts: float | None = None) -> Iterator[StreamEvent]:
        out = self.table.out
        self.table.finish(ts if ts is not None else (self.last_ts or 0.0))
        if out:
            yield from out
            out.clear()


class SensorRun(Sensor):
    def __init__(self, path: str, limits: Limits | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        super().__init__(limits, shard=shard)
        self.path = path
        self.problems: list[CaptureProblem] = []
        self.progress = progress
        self.size = capture_size(path)

    def __iter__(self) -> Iterator[StreamEvent]:
        for batch in read_batches(self.path, self.problems):
            if len(batch) == 0:
                continue
            yield from self.feed(batch)
            if self.progress:
                self.progress(batch.done if batch.done >= 0 else batch.file_offset + len(batch.buf), self.size)
        yield from self.finish(self.last_ts or 0.0)


def read_streams(path: str, limits: Limits | None = None) -> Iterator[StreamEvent]:
    """The stream events of one capture (damage is ignored here; use ``SensorRun`` to see it)."""
    return iter(SensorRun(path, limits))


__all__ = ["Sensor", "SensorRun", "read_streams"]
