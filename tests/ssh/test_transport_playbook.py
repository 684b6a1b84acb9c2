"""Playbooks for the SSH transport state machine and for bad input.

Hand-made bytes where the point is one field (a length of 2^32-1), real streams from the
corpus where the point is real traffic (cut, tampered, decrypted late, with the wrong key).
Every bad input must end in one clear DecodeError (or a "decrypted: false" reason) for that
session, with memory bounded.
"""
from __future__ import annotations

import os
import struct

from reconstruct.events import CommandEntered, DecodeError, Metadata, Output
from reconstruct.ssh import KeyStore, SSHDecoder, parse_ssh_keys
from reconstruct.ssh.transport import MAX_STALL_BYTES
from tests.ssh.replay import PCAPS, keystore, run, streams

A09 = "a09_exec_curve25519_aes128ctr_nostrict"


def packet(payload: bytes, block: int = 8) -> bytes:
    """A cleartext SSH binary packet (RFC 4253 section 6) around ``payload``."""
    pad = block - (len(payload) + 5) % block
    pad += block if pad < 4 else 0
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + b"\0" * pad


def namelist(*names: str) -> bytes:
    s = ",".join(names).encode()
    return struct.pack(">I", len(s)) + s


def kexinit(cookie: bytes, kex: str, cipher: str = "aes128-ctr", mac: str = "hmac-sha2-256") -> bytes:
    return (b"\x14" + cookie + namelist(kex) + namelist("ssh-ed25519") + namelist(cipher) * 2
            + namelist(mac) * 2 + namelist("none") * 2 + namelist() * 2 + b"\0" + b"\0" * 4)


def meta(events) -> dict[str, str]:
    return {e.key: e.value for e in events if isinstance(e, Metadata)}


def errors(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, DecodeError)]


# ------------------------------------------------------------------ the handshake, by hand

def test_version_lines_and_kexinits_give_the_zeek_fields():
    dec = SSHDecoder()
    ev = list(dec.feed("c2s", b"SSH-2.0-OpenSSH_9.2\r\n", 1.0))
    ev += dec.feed("s2c", b"SSH-2.0-dropbear_2022.83\r\n", 1.1)
    ev += dec.feed("c2s", packet(kexinit(b"C" * 16, "curve25519-sha256,ext-info-c")), 1.2)
    ev += dec.feed("s2c", packet(kexinit(b"S" * 16, "curve25519-sha256", "aes256-ctr,aes128-ctr")), 1.3)
    m = meta(ev)
    assert m["client_version"] == "SSH-2.0-OpenSSH_9.2"
    assert m["server_version"] == "SSH-2.0-dropbear_2022.83"
    assert m["kex_alg"] == "curve25519-sha256"          # ext-info-c is not a real kex
    assert m["cipher_alg"] == "aes128-ctr"              # the client's preference wins
    assert m["hassh_algorithms"] == "curve25519-sha256,ext-info-c;aes128-ctr;hmac-sha2-256;none"
    assert m["strict_kex"] == "false"
    assert errors(ev) == []


def test_banner_lines_before_the_server_version_are_allowed():
    dec = SSHDecoder()
    ev = list(dec.feed("s2c", b"Authorized use only\r\nSSH-2.0-X\r\n", 1.0))
    assert meta(ev)["server_version"] == "SSH-2.0-X" and errors(ev) == []


def test_client_that_is_not_ssh_is_one_clear_error():
    dec = SSHDecoder()
    ev = dec.feed("c2s", b"GET / HTTP/1.1\r\n", 1.0)
    assert errors(ev) == ["the c2s stream does not start with an SSH identification line"]


def test_packet_length_2_pow_32_minus_1_is_rejected_and_the_other_direction_goes_on():
    dec = SSHDecoder()
    dec.feed("c2s", b"SSH-2.0-a\r\n", 1.0)
    dec.feed("s2c", b"SSH-2.0-b\r\n", 1.0)
    ev = dec.feed("c2s", b"\xff\xff\xff\xff" + os.urandom(64), 1.1)
    assert errors(ev) == ["packet length 4294967295 is out of range (wrong key or corrupt stream) "
                          "on packet 1 of c2s"]
    more = dec.feed("c2s", os.urandom(1 << 20), 1.2)       # nothing more is buffered or said
    assert more == [] and len(dec._t.d["c2s"].buf) == 0
    ok = dec.feed("s2c", packet(kexinit(b"S" * 16, "curve25519-sha256")), 1.3)
    assert "hassh_server" in meta(ok)


def test_no_identification_line_within_8_kib_is_bounded():
    dec = SSHDecoder()
    ev = []
    for _ in range(64):
        ev += dec.feed("s2c", b"x" * 1024, 1.0)
    assert errors(ev) == ["no SSH identification line in the first 8192 bytes of s2c"]
    assert len(dec._t.d["s2c"].buf) == 0


# ------------------------------------------------------------------ real streams

def test_decrypting_later_is_the_same_pure_function_of_streams_and_keys():
    """Imported without keys, then `keys add`: the same streams now decode."""
    chunks = streams(A09 + ".pcap")
    _, before = run(chunks)
    assert meta(before)["decrypted"] == "false" and meta(before)["decrypted_reason"] == "no key"
    assert not [e for e in before if isinstance(e, (Output, CommandEntered))]
    _, after = run(chunks, keystore(A09 + ".keylog"))
    assert meta(after)["decrypted"] == "true"
    assert [e.text for e in after if isinstance(e, CommandEntered)] == ["uname -a; echo demo-exec"]


def test_keys_of_another_session_mean_no_key_not_an_error():
    _, ev = run(streams(A09 + ".pcap"), keystore("a01_shell_curve25519_aes128ctr.keylog"))
    m = meta(ev)
    assert m["decrypted"] == "false" and m["decrypted_reason"] == "no key"
    assert errors(ev) == []


def test_wrong_private_key_under_the_right_cookie():
    cookie = (PCAPS / (A09 + ".keylog")).read_text().split()[0]
    ks = KeyStore()
    ks.add_text(f"{cookie} {'11' * 32}\n")
    _, ev = run(streams(A09 + ".pcap"), ks)
    assert meta(ev)["decrypted_reason"] == "wrong key"
    assert errors(ev) == ["wrong key: the escrowed X25519 key belongs to neither endpoint of this "
                          "key exchange"]


def test_wrong_shared_secret_fails_the_mac_of_the_first_packet():
    cookie = (PCAPS / (A09 + ".keylog")).read_text().split()[0]
    ks = KeyStore()
    ks.add_text(f"{cookie} SHARED_SECRET {'22' * 32}\n")
    _, ev = run(streams(A09 + ".pcap"), ks)
    assert meta(ev)["decrypted"] == "false" and meta(ev)["decrypted_reason"] == "wrong key"
    errs = errors(ev)
    assert len(errs) == 1 and errs[0].startswith("wrong key: the first encrypted")
    assert not [e for e in ev if isinstance(e, Output)]             # never garbage


def test_truncated_key_log_is_reported_per_line_and_never_decrypts_garbage():
    text = (PCAPS / (A09 + ".keylog")).read_text().strip()
    res = parse_ssh_keys(text[:-7], "escrow.keylog")                  # cut mid-key (odd digits)
    assert res.secrets == []
    assert res.problems == ["escrow.keylog:1: private key is not an even-length hex string"]
    res = parse_ssh_keys(text[:-6], "escrow.keylog")                  # cut at a byte boundary
    _, ev = run(streams(A09 + ".pcap"), KeyStore(res.secrets))
    assert meta(ev)["decrypted_reason"] == "wrong key"


def test_stream_cut_mid_packet():
    chunks = streams(A09 + ".pcap")
    last_c2s = max(i for i, c in enumerate(chunks) if c[0] == "c2s" and len(c[1]) > 40)
    d, data, ts = chunks[last_c2s]
    cut = chunks[:last_c2s] + [(d, data[:len(data) - 10], ts)]
    _, ev = run(cut, keystore(A09 + ".keylog"))
    assert meta(ev)["decrypted"] == "true"
    errs = errors(ev)
    assert len(errs) == 1 and errs[0].startswith("the c2s stream ends inside a packet")


def test_tampered_ciphertext_is_caught_by_the_mac():
    chunks = streams(A09 + ".pcap")
    i = max(i for i, c in enumerate(chunks) if c[0] == "s2c")
    d, data, ts = chunks[i]
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 1
    _, ev = run(chunks[:i] + [(d, bytes(bad), ts)] + chunks[i + 1:], keystore(A09 + ".keylog"))
    errs = errors(ev)
    assert len(errs) == 1 and "MAC check failed on packet" in errs[0] and "of s2c" in errs[0]


def test_gap_stops_one_direction_only():
    chunks = streams(A09 + ".pcap")
    dec = SSHDecoder(keys=keystore(A09 + ".keylog"))
    ev = []
    last_s2c = max(i for i, c in enumerate(chunks) if c[0] == "s2c")
    for n, (d, data, ts) in enumerate(chunks):
        if n == last_s2c:
            ev += dec.gap("s2c", len(data), ts)
            continue
        ev += dec.feed(d, data, ts)
    gaps = [e for e in ev if isinstance(e, DecodeError)]
    assert gaps and not gaps[0].fatal and "missing from the capture" in gaps[0].reason
    assert [e.text for e in ev if isinstance(e, CommandEntered)] == ["uname -a; echo demo-exec"]
    assert dec.feed("s2c", b"more bytes after the gap", 9.0) == []   # that direction stays quiet


def test_bytes_held_at_newkeys_are_bounded():
    """The client's NEWKEYS arrives but the server's reply never does (stream order broken):
    the client's encrypted bytes wait, but never more than MAX_STALL_BYTES."""
    chunks = [c for c in streams(A09 + ".pcap")]
    dec = SSHDecoder(keys=keystore(A09 + ".keylog"))
    for d, data, ts in chunks[:4]:
        dec.feed(d, data, ts)
    for _ in range(MAX_STALL_BYTES // 65536 + 2):
        dec.feed("c2s", os.urandom(65536), 2.0)
        assert len(dec._t.d["c2s"].buf) <= MAX_STALL_BYTES + 65536


def test_every_key_format_for_one_session_reads_alike():
    """Wireshark two-field, PRIVATE_KEY, SHARED_SECRET, our JSON (K+H, derived keys): same
    decryption of the same capture."""
    import json
    cap = "b03_sftp_tour_curve25519_aes256gcm"
    full = [json.loads(l) for l in (PCAPS / (cap + ".escrow.jsonl")).read_text().splitlines()]
    r = full[0]
    own = r["client_cookie"]                         # setup b: the client escrowed
    forms = {
        "two-field": f"{own} {r['ephemeral_private']['x25519_private']}\n",
        "PRIVATE_KEY": f"{own} PRIVATE_KEY {r['ephemeral_private']['x25519_private']}\n",
        "SHARED_SECRET (server cookie)": f"{r['server_cookie']} SHARED_SECRET {r['K']}\n",
        "json K only": json.dumps({"client_cookie": own, "K": r["K"]}) + "\n",
        "json derived": json.dumps({"server_cookie": r["server_cookie"], "c2s": r["c2s"],
                                    "s2c": r["s2c"]}) + "\n",
    }
    chunks = streams(cap + ".pcap")
    for label, text in forms.items():
        ks = KeyStore()
        assert ks.add_text(text).problems == [], label
        _, ev = run(chunks, ks)
        assert meta(ev)["decrypted"] == "true", label
        assert errors(ev) == [], label
