#!/usr/bin/env python3
"""Make the bad-input RDP captures from the real ones (deterministic; no randomness).

* rdp-bad-wrong-key.pcap: the first 40 frames of rdp-tls12-rsa.pcap (handshake and the start of
  the session); beside it rdp-bad-wrong-key.server-key.pem, an RSA key that is not the server's
  (made once with openssl-equivalent cryptography, then kept).
* rdp-bad-other-keylog.pcap: the first 40 frames of rdp-tls13.pcap, to be imported with the key
  log of another session (rdp-tls12-ecdhe.keylog).
* rdp-bad-truncated-handshake.pcap: rdp-tls13.pcap up to the server's first TLS flight, whose
  segment is cut to half its payload; nothing after it.
* rdp-bad-garbage-after-x224.pcap: rdp-tls13.pcap's X.224 request and confirm (TLS selected),
  then the client's ClientHello segment with its bytes replaced by a fixed non-TLS pattern.
* rdp-gap-tls13.pcap: rdp-tls13.pcap without two data segments, one each way, taken from the
  mouse glide between the two clicks (9.5-9.9 s into the capture, rdp-tls13.timeline.tsv):
  no keystroke is lost, so every typed line must still come out. What was dropped is written to
  rdp-gap-tls13.params.txt (direction, bytes) for the manifest.

usage: damage.py [pcaps/rdp]
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import dpkt

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent.parent / "rdp"
PORT = 3389


def frames(name: str):
    with open(OUT / name, "rb") as f:
        r = dpkt.pcap.Reader(f)
        linktype = r.datalink()
        return linktype, [(ts, bytes(buf)) for ts, buf in r]


def write(name: str, linktype: int, pkts) -> None:
    with open(OUT / name, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=linktype)
        for ts, buf in pkts:
            w.writepkt(buf, ts=ts)
    print(f"{name}: {len(pkts)} frames")


def data_frames(pkts):
    """Indexes of frames with TCP payload, with their direction, in capture order."""
    out = []
    for i, (_, buf) in enumerate(pkts):
        tcp = dpkt.ethernet.Ethernet(buf).data.data
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.data:
            out.append((i, "c2s" if tcp.dport == PORT else "s2c"))
    return out


def with_payload(buf: bytes, payload: bytes) -> bytes:
    eth = dpkt.ethernet.Ethernet(buf)
    ip = eth.data
    tcp = ip.data
    tcp.data = payload
    ip.len = ip.hl * 4 + len(bytes(tcp))
    ip.data = tcp
    eth.data = ip
    return bytes(eth)


def main() -> None:
    lt, rsa12 = frames("rdp-tls12-rsa.pcap")
    write("rdp-bad-wrong-key.pcap", lt, rsa12[:40])
    key = OUT / "rdp-bad-wrong-key.server-key.pem"
    if not key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()))

    lt, t13 = frames("rdp-tls13.pcap")
    write("rdp-bad-other-keylog.pcap", lt, t13[:40])

    d = data_frames(t13)
    s2c = [i for i, dr in d if dr == "s2c"]
    c2s = [i for i, dr in d if dr == "c2s"]
    flight = s2c[1]                                   # [0] is the X.224 Connection Confirm
    ts, buf = t13[flight]
    tcp = dpkt.ethernet.Ethernet(buf).data.data
    write("rdp-bad-truncated-handshake.pcap", lt,
          t13[:flight] + [(ts, with_payload(buf, bytes(tcp.data)[: len(tcp.data) // 2]))])

    hello = c2s[1]                                    # [0] is the X.224 Connection Request
    ts, buf = t13[hello]
    n = len(dpkt.ethernet.Ethernet(buf).data.data.data)
    pattern = b""
    block = b"sessiontap garbage"
    while len(pattern) < n:
        block = hashlib.sha256(block).digest()
        pattern += block
    pattern = b"\x99" + pattern[1:n]                  # first byte is no TLS content type
    write("rdp-bad-garbage-after-x224.pcap", lt, t13[:hello] + [(ts, with_payload(buf, pattern))])

    first = t13[0][0]
    in_glide = [(i, dr) for i, dr in d if 9.5 <= t13[i][0] - first <= 9.9]
    drop = [[i for i, dr in in_glide if dr == "c2s"][2], [i for i, dr in in_glide if dr == "s2c"][1]]
    lines = []
    for i in sorted(drop):
        tcp = dpkt.ethernet.Ethernet(t13[i][1]).data.data
        lines.append(f"dropped={'c2s' if tcp.dport == PORT else 's2c'} {len(tcp.data)}")
    write("rdp-gap-tls13.pcap", lt, [p for i, p in enumerate(t13) if i not in drop])
    (OUT / "rdp-gap-tls13.params.txt").write_text("source=rdp-tls13.pcap\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
