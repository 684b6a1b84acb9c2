#!/usr/bin/env python3
"""RDP decoding speed on the bundled captures: sensor + RDPDecoder (TLS or Standard RDP Security
decryption, PyRDP parsing, replay building), repeated to get stable numbers.

usage: python benchmarks/rdp_import.py [repeats]
Prints, per capture: wire bytes, seconds per decode, MB/s, and the replay size.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconstruct.rdp import KeyLogLookup, RDPDecoder  # noqa: E402
from sensor.pipeline import read_streams  # noqa: E402
from sensor.streams import StreamClosed, StreamData, StreamOpened  # noqa: E402

RDP = ROOT / "pcaps" / "rdp"


def decode(name: str, entry: dict) -> tuple[int, int]:
    keys = KeyLogLookup((RDP / entry["keys"]).read_text()) if entry["keys"] else None
    server = [str(RDP / entry["rdp_server_key"])] if entry["rdp_server_key"] else []
    wire, replay = 0, 0
    dec = None
    for ev in read_streams(str(RDP / name)):
        if isinstance(ev, StreamOpened):
            dec = RDPDecoder(keys, server_keys=server)
        elif isinstance(ev, StreamData):
            wire += len(ev.data)
            dec.feed(ev.direction, ev.data, ev.ts)
        elif isinstance(ev, StreamClosed):
            dec.close(ev.ts, ev.reason)
            replay += len(dec.replay() or b"")
    return wire, replay


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    manifest = json.loads((RDP / "manifest.json").read_text())
    decode("rdp-tls13.pcap", manifest["rdp-tls13.pcap"])          # imports and caches warmed
    total_wire, total_s = 0, 0.0
    print(f"{'capture':32} {'wire bytes':>10} {'ms/decode':>10} {'MB/s':>7} {'replay':>8}")
    for name, entry in manifest.items():
        if entry["expect_error"]:
            continue
        t0 = time.perf_counter()
        for _ in range(repeats):
            wire, replay = decode(name, entry)
        dt = (time.perf_counter() - t0) / repeats
        total_wire += wire
        total_s += dt
        print(f"{name:32} {wire:10d} {dt * 1000:10.1f} {wire / dt / 1e6:7.2f} {replay:8d}")
    print(f"{'all':32} {total_wire:10d} {total_s * 1000:10.1f} {total_wire / total_s / 1e6:7.2f}")


if __name__ == "__main__":
    main()
