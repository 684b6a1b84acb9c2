"""Telnet decoder throughput and memory: a real session's bytes replayed, and random garbage.

    python benchmarks/telnet_decoder.py [MB_OF_GARBAGE]

Prints MB/s for (1) the t1 capture's streams fed again and again through fresh decoders,
(2) a garbage stream in 64 KiB chunks both ways, with the peak traced memory.
"""
from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconstruct.telnet import TelnetDecoder  # noqa: E402
from sensor.pipeline import read_streams  # noqa: E402
from sensor.streams import StreamData  # noqa: E402

PCAP = Path(__file__).resolve().parents[1] / "pcaps" / "telnet" / "t1_inetutils_full_session.pcap"


def real_session(rounds: int = 20) -> None:
    chunks = [(e.direction, e.data, e.ts) for e in read_streams(str(PCAP)) if isinstance(e, StreamData)]
    size = sum(len(c[1]) for c in chunks) * rounds
    t0 = time.perf_counter()
    for _ in range(rounds):
        d = TelnetDecoder()
        for direction, data, ts in chunks:
            d.feed(direction, data, ts)
        d.close(0.0, "fin")
    dt = time.perf_counter() - t0
    print(f"real session (t1, {len(chunks)} segments x {rounds}): {size / dt / 1e6:.2f} MB/s, "
          f"{len(chunks) * rounds / dt:.0f} segments/s")


def garbage(mb: int) -> None:
    rnd = os.urandom(64 * 1024)
    d = TelnetDecoder()
    d.feed("s2c", b"\xff\xfb\x01", 0.0)
    tracemalloc.start()
    t0 = time.perf_counter()
    n = mb * 16
    for i in range(n):
        d.feed("s2c", rnd, float(i))
        d.feed("c2s", rnd[::-1], float(i))
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"garbage: {2 * mb} MB in {dt:.1f} s = {2 * mb / dt:.1f} MB/s, peak traced memory {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    real_session()
    garbage(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
