"""Escrow deposits: the three formats, one store, lookups by either KEXINIT cookie."""
from __future__ import annotations

import json

from reconstruct.ssh import KeyStore, parse_ssh_keys

C1, C2 = "ab" * 16, "cd" * 16


def test_feed_wireshark_40_line_expect_private_key_under_that_cookie():
    res = parse_ssh_keys(f"{C1} {'01' * 32}\n")
    assert res.problems == []
    (s,) = res.secrets
    assert (s.kind, s.cookies, s.value) == ("private_key", (C1,), b"\x01" * 32)


def test_feed_newer_three_field_lines():
    res = parse_ssh_keys(f"{C1} PRIVATE_KEY {'02' * 32}\n{C2.upper()} SHARED_SECRET 00ff\n")
    assert [(s.kind, s.cookies, s.value) for s in res.secrets] == [
        ("private_key", (C1,), b"\x02" * 32), ("shared_secret", (C2,), b"\x00\xff")]


def test_feed_our_json_lines_expect_both_cookies():
    k_line = json.dumps({"client_cookie": C1, "server_cookie": C2, "K": "0a0b", "H": "cc" * 32})
    keys_line = json.dumps({"client_cookie": C1, "c2s": {"iv": "00" * 16, "enc_key": "11" * 16,
                                                         "mac_key": "22" * 32},
                            "s2c": {"iv": "33" * 16, "enc_key": "44" * 16, "mac_key": "55" * 32}})
    res = parse_ssh_keys(k_line + "\n" + keys_line + "\n")
    assert res.problems == []
    a, b = res.secrets
    assert a.kind == "shared_secret" and a.cookies == (C1, C2) and a.exchange_hash == b"\xcc" * 32
    assert b.kind == "derived" and b.c2s.enc_key == b"\x11" * 16 and b.s2c.iv == b"\x33" * 16


def test_comments_blank_lines_and_garbage():
    text = f"# escrow of jump-host\n\n{C1} zz\nnot a key line\n{C1[:-2]} {'01' * 32}\n{{\"K\": \n"
    res = parse_ssh_keys(text, "k.log")
    assert res.secrets == []
    assert res.problems == [
        "k.log:3: private key is not an even-length hex string",
        "k.log:4: not '<cookie> <key>' nor '<cookie> PRIVATE_KEY|SHARED_SECRET <hex>'",
        "k.log:5: cookie must be 32 hex digits",
        "k.log:6: not a complete JSON object (truncated?)"]


def test_store_answers_by_either_cookie_and_only_for_ssh():
    ks = KeyStore()
    ks.add_text(json.dumps({"client_cookie": C1, "server_cookie": C2, "K": "01"}) + "\n")
    ks.add_text(f"{C2} SHARED_SECRET 02\n")
    assert len(ks.lookup("ssh-cookie", C1)) == 1
    assert [s.value for s in ks.lookup("ssh-cookie", C2.upper())] == [b"\x01", b"\x02"]
    assert ks.lookup("tls-client-random", C1) == []
    assert len(ks) == 2


def test_secrets_never_show_in_repr():
    (s,) = parse_ssh_keys(f"{C1} {'5a' * 32}\n").secrets
    assert "5a5a" not in repr(s) and "5a5a" not in str(s)
