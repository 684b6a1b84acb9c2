"""Our passive TLS decryption gives, byte for byte, the plaintext Wireshark gives: tshark
decrypts the same captures with the same secrets (key log, or the server's RSA key) and its
``follow,tls,raw`` output must equal what our TLSDecryptor hands to the RDP layer."""
from __future__ import annotations

import subprocess

import pytest

from rdp_corpus import MANIFEST, RDP
from reconstruct.rdp import KeyLogLookup, load_rsa_private_key
from reconstruct.rdp.tls import TLSDecryptor
from reconstruct.rdp.x224 import pdu_length
from sensor.pipeline import read_streams
from sensor.streams import StreamData

TLS = [n for n, e in MANIFEST.items() if e["oracle"] and "TLS" in e["sessions"][0]["security"]]


def tshark_plaintext(tshark: str, name: str) -> dict[str, bytes]:
    entry = MANIFEST[name]
    if entry["keys"]:
        opts = ["-o", f"tls.keylog_file:{RDP / entry['keys']}"]
    else:
        opts = ["-o", f'uat:rsa_keys:"{RDP / entry["rdp_server_key"]}",""']
    out = subprocess.run([tshark, "-r", str(RDP / name), "-d", "tcp.port==3389,tls", *opts,
                          "-q", "-z", "follow,tls,raw,0"], capture_output=True, text=True, check=True).stdout
    # follow,raw: one hex line per decrypted record run; lines of the second node start with a tab
    body = out.split("=" * 67)[1].splitlines()
    start = next(i for i, ln in enumerate(body) if ln.startswith("Node 1:")) + 1
    lines = [ln for ln in body[start:] if ln.strip()]
    first = b"".join(bytes.fromhex(ln.strip()) for ln in lines if not ln.startswith("\t"))
    second = b"".join(bytes.fromhex(ln.strip()) for ln in lines if ln.startswith("\t"))
    return {"a": first, "b": second}


def our_plaintext(name: str) -> dict[str, bytes]:
    entry = MANIFEST[name]
    keys = KeyLogLookup((RDP / entry["keys"]).read_text()) if entry["keys"] else KeyLogLookup()
    server = [load_rsa_private_key((RDP / entry["rdp_server_key"]).read_bytes())] if entry["rdp_server_key"] else []
    tls = TLSDecryptor(keys, server)
    x224_left = {"c2s": 1, "s2c": 1}              # the X.224 request/confirm precede TLS
    raw = {"c2s": bytearray(), "s2c": bytearray()}
    out = {"c2s": bytearray(), "s2c": bytearray()}
    for ev in read_streams(str(RDP / name)):
        if not isinstance(ev, StreamData):
            continue
        buf = raw[ev.direction]
        buf += ev.data
        while x224_left[ev.direction]:
            n = pdu_length(buf)
            if n is None or len(buf) < n:
                break
            del buf[:n]
            x224_left[ev.direction] -= 1
        if x224_left[ev.direction] or not buf:
            continue
        data = bytes(buf)
        buf.clear()
        for chunk in tls.feed(ev.direction, data):
            out[ev.direction] += chunk
    assert tls.decrypting
    return {d: bytes(b) for d, b in out.items()}


@pytest.mark.parametrize("name", TLS)
def test_decrypted_tls_equals_tshark(tshark, name):
    theirs = tshark_plaintext(tshark, name)
    ours = our_plaintext(name)
    assert len(ours["c2s"]) > 1000 and len(ours["s2c"]) > 1000
    assert sorted([ours["c2s"], ours["s2c"]]) == sorted([theirs["a"], theirs["b"]])
    if MANIFEST[name]["sessions"][0].get("nla"):
        assert ours["c2s"][:1] == b"\x30"           # CredSSP TSRequest (DER SEQUENCE) first
    else:   # the client's first plaintext is the MCS Connect-Initial (TPKT, X.224 DT, BER 0x7f65)
        assert ours["c2s"][:2] == b"\x03\x00" and ours["c2s"][7:9] == b"\x7f\x65"
