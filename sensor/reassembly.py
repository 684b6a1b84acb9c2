"""One direction of a TCP connection put back in order.

Rules, chosen for evidence rather than for a live stack:
* bytes are delivered exactly once, in sequence order;
* a retransmission that overlaps delivered bytes is dropped, and if its bytes differ from
  what was delivered the difference is reported (first copy wins, as in Wireshark's default
  and Zeek's);
* a hole is only declared lost when waiting cannot fill it any more: the capture reordered
  segments by a few packets in practice, so a hole waits ``REORDER_WINDOW`` seconds of
  capture time, or until ``MAX_PENDING`` bytes are queued behind it, or the connection ends;
* memory per direction is bounded by ``MAX_PENDING`` plus the ``TAIL`` kept for comparing
  retransmissions.
"""
from __future__ import annotations

REORDER_WINDOW = 1.0
MAX_PENDING = 1 << 20
TAIL = 1 << 16
_MOD = 1 << 32
_HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number."""
    d = (a - b) % _MOD
    return d - _MOD if d >= _HALF else d


class HalfStream:
    """Reassembles one direction. ``out`` receives tuples:
    ("data", bytes, ts) | ("gap", nbytes, ts) | ("conflict", offset, nbytes, ts)."""

    __slots__ = ("next_seq", "pending", "pending_bytes", "pending_since", "tail", "offset",
                 "fin_seq", "done", "out")

    def __init__(self, out: list) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, tuple[bytes, float]] = {}
        self.pending_bytes = 0
        self.pending_since = 0.0
        self.tail = b""
        self.offset = 0          # stream offset of next_seq (bytes delivered + gaps)
        self.fin_seq: int | None = None
        self.done = False
        self.out = out

    def syn(self, seq: int) -> None:
        if self.next_seq is None or self.offset == 0:
            self.next_seq = (seq + 1) % _MOD

    def segment(self, seq: int, data: bytes, ts: float, fin: bool = False) -> None:
        if self.next_seq is None:
            self.next_seq = seq
        if fin:
            self.fin_seq = (seq + len(data)) % _MOD
        if data:
            rel = seq_diff(seq, self.next_seq)
            if rel <= 0:
                self._accept(rel, data, ts)
                if self.pending:
                    self._drain(ts)
            else:
                if not self.pending:
                    self.pending_since = ts
                old = self.pending.get(seq)
                if old is None or len(old[0]) < len(data):
                    if old is not None:
                        self.pending_bytes -= len(old[0])
                        # a longer copy at the same place: keep what came first, add the rest
                        data = old[0] + data[len(old[0]):]
                    self.pending[seq] = (data, ts)
                    self.pending_bytes += len(data)
                if self.pending_bytes > MAX_PENDING:
                    self.force(ts)
        self._check_fin()

    def advance(self, data: bytes) -> None:
        """``data`` starts exactly at next_seq and nothing is queued: take it (the caller emits it)."""
        n = len(data)
        self.next_seq = (self.next_seq + n) % _MOD  # type: ignore[operator]
        self.offset += n
        self.tail = (self.tail + data)[-TAIL:] if n < TAIL else data[-TAIL:]

    def _accept(self, rel: int, data: bytes, ts: float) -> None:
        """``data`` starts ``-rel`` bytes before next_seq."""
        overlap = -rel
        if overlap:
            old = data[:overlap]
            if overlap <= len(self.tail):
                have = self.tail[len(self.tail) - overlap:][:len(old)]
                if have != old:
                    diff = sum(1 for x, y in zip(have, old) if x != y)
                    self.out.append(("conflict", self.offset - overlap, diff, ts))
            if len(data) <= overlap:
                return
            data = data[overlap:]
        n = len(data)
        self.next_seq = (self.next_seq + n) % _MOD  # type: ignore[operator]
        self.offset += n
        self.tail = (self.tail + data)[-TAIL:] if n < TAIL else data[-TAIL:]
        self.out.append(("data", data, ts))

    def _drain(self, ts: float) -> None:
        progressed = True
        while self.pending and progressed:
            progressed = False
            for seq in list(self.pending):
                rel = seq_diff(seq, self.next_seq)  # type: ignore[arg-type]
                if rel <= 0:
                    data, _ = self.pending.pop(seq)
                    self.pending_bytes -= len(data)
                    self._accept(rel, data, ts)
                    progressed = True
        if self.pending:
            self.pending_since = ts

    def tick(self, ts: float) -> None:
        """Time passed (a packet of this connection, or the end of a batch): a hole that waited
        the whole reorder window is declared lost."""
        if self.pending and ts - self.pending_since >= REORDER_WINDOW:
            self.force(ts)

    def force(self, ts: float) -> None:
        """Give up waiting for the hole before the lowest queued segment: report it lost."""
        if not self.pending:
            return
        lowest = min(self.pending, key=lambda s: seq_diff(s, self.next_seq))  # type: ignore[arg-type]
        missing = seq_diff(lowest, self.next_seq)  # type: ignore[arg-type]
        if missing > 0:
            self.out.append(("gap", missing, ts))
            self.next_seq = lowest
            self.offset += missing
            self.tail = b""
        self._drain(ts)
        self._check_fin()

    def flush(self, ts: float) -> None:
        while self.pending:
            self.force(ts)

    def _check_fin(self) -> None:
        if self.fin_seq is not None and self.next_seq is not None and seq_diff(self.fin_seq, self.next_seq) <= 0:
            self.done = True
