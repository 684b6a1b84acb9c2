"""Link, IP and TCP headers of a whole batch at once (numpy gathers over the slab).

Most bytes on a mirror port belong to flows that are not administrative sessions. Decoding
their headers one packet at a time in Python would dominate the import, so every field the
flow table needs is computed here for all frames of a batch in a handful of vector
operations; only the frames of flows still of interest go on to per-packet Python.

Handles Ethernet (with up to two 802.1Q/802.1ad tags), Linux SLL and SLL2, raw IP, BSD
loopback (DLT_NULL / DLT_LOOP); IPv4 (non-fragmented) and IPv6 (TCP directly after the fixed
header; other next-headers are marked for the per-packet path).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensor.capture import Batch

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: flow keys must not collide in practice (a collision could hide a
    packet of an admin session behind a skipped flow)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


@dataclass(slots=True)
class Headers:
    """Stage one, for every frame: enough to decide whether the frame matters."""
    ok: np.ndarray          # bool: a TCP segment we can use
    bare_ack: np.ndarray    # bool: no payload and no SYN/FIN/RST
    key: np.ndarray         # uint64: direction-independent flow key
    flags: np.ndarray
    l3: np.ndarray          # int64 offset of the IP header
    l4: np.ndarray
    v6: np.ndarray          # bool
    ip_end: np.ndarray      # where the IP packet ends, per its header
    end: np.ndarray         # where the captured frame ends
    sport: np.ndarray
    dport: np.ndarray
    a: np.ndarray           # the slab as uint8


@dataclass(slots=True)
class Segments:
    """Stage two, only for the frames that go on to the flow table."""
    l3: np.ndarray
    ver: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    pstart: np.ndarray      # payload offset in the slab
    plen: np.ndarray        # payload bytes present in the frame
    missing: np.ndarray     # payload bytes the IP header claims but the snaplen cut off
    key: np.ndarray


class _Gather:
    """Big-endian fields at many offsets at once. Offsets past the end are clamped so that a
    field of width w never reads beyond the slab (the frames they belong to are masked out by
    the length checks); each width clamps to its own limit, so a field in the slab's last
    bytes is still read right."""
    __slots__ = ("a", "n")

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.n = a, len(a)

    def u8(self, i: np.ndarray) -> np.ndarray:
        return self.a[np.minimum(i, self.n - 1)].astype(np.int64)

    def be16(self, i: np.ndarray) -> np.ndarray:
        i = np.minimum(i, self.n - 2)
        a = self.a
        return (a[i].astype(np.int64) << 8) | a[i + 1]

    def be32(self, i: np.ndarray) -> np.ndarray:
        i = np.minimum(i, self.n - 4)
        a = self.a
        return ((a[i].astype(np.int64) << 24) | (a[i + 1].astype(np.int64) << 16)
                | (a[i + 2].astype(np.int64) << 8) | a[i + 3])


def decode(batch: Batch) -> Headers:
    with np.errstate(over="ignore"):
        return _decode(batch)


def _decode(batch: Batch) -> Headers:
    a = np.frombuffer(batch.buf, dtype=np.uint8)
    g = _Gather(a)
    u8, be16, be32 = g.u8, g.be16, g.be32
    s = batch.start
    lt = batch.linktype
    end = s + batch.caplen

    n = len(s)
    et = np.zeros(n, dtype=np.int64)
    l3 = s.copy()

    eth = lt == 1
    if eth.any():
        et_e = be16(s + 12)
        l3_e = s + 14
        for _ in range(2):  # QinQ: at most two tags
            tagged = (et_e == 0x8100) | (et_e == 0x88A8) | (et_e == 0x9100)
            if not tagged.any():
                break
            et_e = np.where(tagged, be16(l3_e + 2), et_e)
            l3_e = np.where(tagged, l3_e + 4, l3_e)
        if eth.all():
            et, l3 = et_e, l3_e
        else:
            et = np.where(eth, et_e, et)
            l3 = np.where(eth, l3_e, l3)
    if not eth.all():
        sll = lt == 113
        if sll.any():
            et = np.where(sll, be16(s + 14), et)
            l3 = np.where(sll, s + 16, l3)
        sll2 = lt == 276
        if sll2.any():
            et = np.where(sll2, be16(s), et)
            l3 = np.where(sll2, s + 20, l3)
        raw = (lt == 101) | (lt == 12) | (lt == 14) | (lt == 228) | (lt == 229)
        if raw.any():
            v = u8(s) >> 4
            et = np.where(raw, np.where(v == 4, 0x0800, np.where(v == 6, 0x86DD, 0)), et)
        null = (lt == 0) | (lt == 108)
        if null.any():
            fam = np.where(u8(s) != 0, u8(s), u8(s + 3))
            et = np.where(null, np.where(fam == 2, 0x0800,
                                         np.where((fam == 10) | (fam == 24) | (fam == 28) | (fam == 30), 0x86DD, 0)), et)
            l3 = np.where(null, s + 4, l3)

    v4 = et == 0x0800
    v6 = et == 0x86DD
    b0 = u8(l3)
    ihl = (b0 & 0x0F) * 4
    tcp4 = v4 & (u8(l3 + 9) == 6) & ((be16(l3 + 6) & 0x3FFF) == 0) & (ihl >= 20) & (b0 >> 4 == 4)
    any6 = bool(v6.any())
    if any6:
        tcp6 = v6 & (u8(l3 + 6) == 6)
        l4 = np.where(v4, l3 + ihl, l3 + 40)
        ip_end = np.where(v4, l3 + be16(l3 + 2), l3 + 40 + be16(l3 + 4))
        tcp = tcp4 | tcp6
    else:
        l4 = l3 + ihl
        ip_end = l3 + be16(l3 + 2)
        tcp = tcp4
    ok = tcp & (l4 + 20 <= end)
    sport = be16(l4)
    dport = be16(l4 + 2)
    flags = u8(l4 + 13)
    # a bare acknowledgement (no payload, no SYN/FIN/RST) changes no stream: most packets of an
    # interactive session are these, so they never reach per-packet Python
    bare_ack = ((flags & 0x07) == 0) & (ip_end - l4 - (u8(l4 + 12) >> 4) * 4 <= 0)

    # endpoint identities: IPv4 exactly, IPv6 folded into 64 bits by the mixer
    src = be32(l3 + 12).astype(np.uint64)
    dst = be32(l3 + 16).astype(np.uint64)
    if any6:
        def be64(i: np.ndarray) -> np.ndarray:
            return (be32(i).astype(np.uint64) << np.uint64(32)) | be32(i + 4).astype(np.uint64)
        src = np.where(v6, _mix(be64(l3 + 8) ^ _mix(be64(l3 + 16))), src)
        dst = np.where(v6, _mix(be64(l3 + 24) ^ _mix(be64(l3 + 32))), dst)
    e1 = _mix((src << np.uint64(16)) ^ sport.astype(np.uint64))
    e2 = _mix((dst << np.uint64(16)) ^ dport.astype(np.uint64))
    key = _mix(np.minimum(e1, e2) * _GOLD + np.maximum(e1, e2))
    return Headers(ok=ok, bare_ack=bare_ack, key=key, flags=flags, l3=l3, l4=l4, v6=v6, ip_end=ip_end, end=end,
                   sport=sport, dport=dport, a=a)


def segments(h: Headers, idx: np.ndarray) -> Segments:
    """The rest of the TCP header, for the selected frames only."""
    with np.errstate(over="ignore"):
        g = _Gather(h.a)
        l4 = h.l4[idx]
        end = h.end[idx]
        ip_end = h.ip_end[idx]
        doff = (g.u8(l4 + 12) >> 4) * 4
        pstart = l4 + doff
        claimed = ip_end - pstart
        present = np.minimum(ip_end, end) - pstart
        good = (doff >= 20) & (claimed >= 0) & (pstart <= end)
        plen = np.where(good, np.maximum(present, 0), 0)
        missing = np.where(good, np.maximum(claimed - plen, 0), 0)
        return Segments(l3=h.l3[idx], ver=np.where(h.v6[idx], 6, 4), sport=h.sport[idx], dport=h.dport[idx],
                        seq=g.be32(l4 + 4), ack=g.be32(l4 + 8), flags=np.where(good, h.flags[idx], -1),
                        pstart=pstart, plen=plen, missing=missing, key=h.key[idx])
