"""Shared by the RDP tests: the manifest, and each capture decoded once (sensor + RDPDecoder)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from reconstruct.rdp import KeyLogLookup, RDPDecoder
from sensor.pipeline import read_streams
from sensor.streams import StreamClosed, StreamData, StreamGap, StreamOpened

RDP = Path(__file__).resolve().parent.parent.parent / "pcaps" / "rdp"
MANIFEST = json.loads((RDP / "manifest.json").read_text())


@dataclass
class Decoded:
    events: list = field(default_factory=list)
    decoders: list = field(default_factory=list)

    def of(self, kind: str) -> list:
        return [e for e in self.events if type(e).__name__ == kind]

    def meta(self, key: str) -> list[str]:
        return [e.value for e in self.of("Metadata") if e.key == key]


def decoder_for(entry: dict, keylog: str | None = None, server_key: str | None = None) -> RDPDecoder:
    """Build the decoder the way the importer does from --keys / --rdp-server-key."""
    if keylog is None and server_key is None:
        keylog = entry.get("keys")
        server_key = entry.get("rdp_server_key")
    keys = KeyLogLookup((RDP / keylog).read_text()) if keylog else None
    return RDPDecoder(keys, server_keys=[str(RDP / server_key)] if server_key else [])


def decode_file(name: str, keylog: str | None = None, server_key: str | None = None) -> Decoded:
    entry = MANIFEST[name]
    out = Decoded()
    dec: dict[int, RDPDecoder] = {}
    for ev in read_streams(str(RDP / name)):
        if isinstance(ev, StreamOpened):
            assert ev.protocol == "rdp"
            dec[ev.flow_id] = decoder_for(entry, keylog, server_key)
            out.decoders.append(dec[ev.flow_id])
        elif isinstance(ev, StreamData):
            out.events += dec[ev.flow_id].feed(ev.direction, ev.data, ev.ts)
        elif isinstance(ev, StreamGap):
            out.events += dec[ev.flow_id].gap(ev.direction, ev.nbytes, ev.ts)
        elif isinstance(ev, StreamClosed):
            out.events += dec.pop(ev.flow_id).close(ev.ts, ev.reason)
    for d in dec.values():                       # capture ended with the connection open
        out.events += d.close(0.0, "capture-end")
    return out


@functools.lru_cache(maxsize=None)
def decoded(name: str) -> Decoded:
    return decode_file(name)


def plaintext_chunks(name: str) -> list[tuple[str, bytes, float]]:
    """The decrypted RDP bytes of a TLS capture, as (direction, chunk, ts) in capture order."""
    from reconstruct.rdp.tls import TLSDecryptor
    from reconstruct.rdp.x224 import pdu_length
    entry = MANIFEST[name]
    tls = TLSDecryptor(KeyLogLookup((RDP / entry["keys"]).read_text()))
    left = {"c2s": 1, "s2c": 1}                  # the X.224 request/confirm precede TLS
    raw = {"c2s": bytearray(), "s2c": bytearray()}
    out = []
    for ev in read_streams(str(RDP / name)):
        if not isinstance(ev, StreamData):
            continue
        buf = raw[ev.direction]
        buf += ev.data
        while left[ev.direction]:
            n = pdu_length(buf)
            if n is None or len(buf) < n:
                break
            del buf[:n]
            left[ev.direction] -= 1
        if left[ev.direction] or not buf:
            continue
        data = bytes(buf)
        buf.clear()
        out += [(ev.direction, chunk, ev.ts) for chunk in tls.feed(ev.direction, data)]
    return out
