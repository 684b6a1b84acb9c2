"""An investigator has real RDP captures (xfreerdp -> xrdp) and the secret of each: a TLS key
log, the server's RSA key, or the xrdp Standard RDP Security key. From each one they learn who
connected from which client, at what resolution and keyboard, every line typed (as the server's
keyboard layout read it), what crossed the clipboard both ways and where the mouse clicked,
and the password appears nowhere."""
from __future__ import annotations

import hashlib

import pytest

from rdp_corpus import MANIFEST, decoded

GOOD = [n for n, e in MANIFEST.items() if not e["expect_error"]]


@pytest.mark.parametrize("name", GOOD)
def test_who_connected_from_where(name):
    want = MANIFEST[name]["sessions"][0]
    d = decoded(name)
    auth = d.of("AuthAttempt")
    assert [(a.user, a.result) for a in auth] == [(w["user"], w["result"]) for w in want["auth_attempts"]]
    assert d.meta("cookie") == [f"mstshash={want['user']}"]
    assert d.meta("client_name") == [want["client_name"]]
    assert d.meta("resolution")[-1] == want["resolution"]
    assert d.meta("keyboard_layout")[0].startswith(f"0x{int(want['keyboard_layout'], 16):04x}")
    assert d.meta("decrypted") == ["true"]
    assert not d.of("DecodeError")


@pytest.mark.parametrize("name", GOOD)
def test_every_typed_line_as_it_ran(name):
    want = MANIFEST[name]["sessions"][0]
    d = decoded(name)
    commands = d.of("CommandEntered")
    assert [c.text for c in commands] == want["commands"]
    assert [c.index for c in commands] == list(range(len(commands)))
    assert all(c.source == "typed" for c in commands)


@pytest.mark.parametrize("name", [n for n in GOOD if MANIFEST[n]["sessions"][0]["clipboard"]])
def test_clipboard_both_ways(name):
    want = MANIFEST[name]["sessions"][0]["clipboard"]
    got = [(c.direction, c.text) for c in decoded(name).of("ClipboardCopy")]
    assert got == [(w["direction"], w["text"]) for w in want]


@pytest.mark.parametrize("name", GOOD)
def test_clicks_are_on_the_timeline(name):
    clicks = [n.text for n in decoded(name).of("Notice") if n.kind == "click"]
    assert clicks == MANIFEST[name]["sessions"][0]["clicks"]


@pytest.mark.parametrize("name", GOOD)
def test_password_is_nowhere(name):
    secrets = MANIFEST[name]["sessions"][0]["secrets"]
    d = decoded(name)
    text = repr(d.events)
    replay = b"".join(x.replay() or b"" for x in d.decoders)
    assert replay, "a PyRDP replay is recorded"
    for s in secrets:
        assert s not in text
        assert s.encode() not in replay
        assert s.encode("utf-16-le") not in replay
    want = MANIFEST[name]["sessions"][0]
    if want["autologon"]:                                   # it was there, and was dropped
        assert d.meta("autologon")[0].startswith("yes")
    else:                                                   # NLA: the password stayed in CredSSP
        assert d.meta("autologon") == ["no"]


@pytest.mark.parametrize("name", [n for n in GOOD if "TLS" in MANIFEST[n]["sessions"][0]["security"]])
def test_tls_version_and_suite_are_named(name):
    security = MANIFEST[name]["sessions"][0]["security"]           # e.g. "TLS 1.2 TLS_RSA_WITH_..."
    d = decoded(name)
    assert d.meta("tls_version")[0] + " " + d.meta("tls_cipher")[0] in security


def test_security_is_named():
    assert decoded("rdp-stdsec.pcap").meta("security") == ["Standard RDP Security (128BIT)"]
    assert decoded("rdp-tls12-rsa.pcap").meta("tls_cipher") == ["TLS_RSA_WITH_AES_128_GCM_SHA256"]
    assert decoded("rdp-tls12-ecdhe.pcap").meta("tls_cipher") == ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]
    assert decoded("rdp-tls13.pcap").meta("tls_version") == ["TLS 1.3"]


@pytest.mark.parametrize("name", GOOD)
def test_graphics_are_kept_for_replay(name):
    # xrdp runs with bulk_compression=true (gen.sh mk_xrdp_ini) except for rdp-video.pcap; the
    # MPPC-compressed updates are decompressed so that PyRDP can render them
    want = MANIFEST[name]["sessions"][0]
    verdict = decoded(name).meta("video")
    if want["video"] == "none":                       # the session ended before any graphics
        assert verdict == []
        return
    assert len(verdict) == 1 and verdict[0].startswith(want["video"])
    if want["video"] == "replay":
        assert ("bulk-decompressed" in verdict[0]) == want["bulk_compression"]
    assert "left out" not in verdict[0]


def test_metadata_is_readable_without_keys():
    from rdp_corpus import decode_file
    d = decode_file("rdp-tls13.pcap", keylog="rdp-kbd-de.keylog")       # a key log, but not this session's
    assert d.meta("cookie") == ["mstshash=rdpdemo"]
    assert d.meta("requested_protocols") == ["SSL"]
    assert d.meta("tls_version") == ["TLS 1.3"]
    assert d.meta("decrypted") == ["false"]
    assert not d.of("CommandEntered")


def test_salted_macs_are_checked(tshark):
    """FreeRDP's default salted MACs (the server rejected them; the Client Info PDU still went out)."""
    import subprocess
    from rdp_corpus import RDP
    flags = subprocess.run([tshark, "-r", str(RDP / "rdp-stdsec-salted.pcap"), "-Y", "rdp.flags.securechecksum == 1",
                            "-T", "fields", "-e", "rdp.flags"], capture_output=True, text=True, check=True).stdout.split()
    assert flags, "tshark sees a PDU with SEC_SECURE_CHECKSUM"
    d = decoded("rdp-stdsec-salted.pcap")
    assert [a.user for a in d.of("AuthAttempt")] == ["rdpdemo"]
    macs = d.decoders[0].stdsec.streams["c2s"].macs
    assert macs["salted"] == len(flags) and macs["flag-mismatch"] == 0


def test_rc4_rekey_after_4096_packets():
    d = decoded("rdp-stdsec-rekey.pcap")
    c2s = d.decoders[0].stdsec.streams["c2s"]
    assert c2s.count > 4096 and c2s.rekeys == c2s.count // 4096 - (c2s.count % 4096 == 0)
    assert c2s.macs["plain"] == c2s.count                # every packet, before and after, authenticated
    assert [c.text for c in d.of("CommandEntered")] == MANIFEST["rdp-stdsec-rekey.pcap"]["sessions"][0]["commands"]


def test_nla_login_is_named_and_its_success_seen():
    """NLA: the user and domain come from NTLM AUTHENTICATE; the server's acceptance shows as the
    client going on to RDP after CredSSP; the RDPGFX video cannot be rendered and says so."""
    want = MANIFEST["rdp-nla.pcap"]["sessions"][0]
    d = decoded("rdp-nla.pcap")
    assert [(a.user, a.method, a.result) for a in d.of("AuthAttempt")] == [(want["user"], "ntlm", "success")]
    assert want["domain"] in d.meta("domain")
    assert d.meta("selected_protocol") == ["HYBRID"] and d.meta("nla") == ["CredSSP/NTLM"]
    assert d.meta("video")[0] == "not reconstructed: the server used the RDPGFX graphics pipeline"


@pytest.mark.parametrize("name", [n for n in GOOD if MANIFEST[n]["sessions"][0]["files"]])
def test_files_copied_through_the_clipboard_or_a_redirected_drive(name):
    """The files the scenario moved -- copied on the client and pasted on the server
    (rdp-clipfile), read from and written to the client's shared folder (rdp-drive) -- come out
    with the names, sizes and SHA-256 gen.sh measured on both machines, their content kept, and
    each one is on the timeline tagged file-copy."""
    want = MANIFEST[name]["sessions"][0]
    d = decoded(name)
    got = d.of("FileTransfer")
    assert [(f.direction, f.path, f.method, f.size, f.sha256) for f in got] == \
        [(w["direction"], w["path"], w["method"], w["size"], w["sha256"]) for w in want["files"]]
    for f in got:
        assert f.complete and hashlib.sha256(f.content).hexdigest() == f.sha256
    copies = [n for n in d.of("Notice") if "file-copy" in n.tags]
    assert len(copies) == len(want["files"])
    assert not [n for n in d.of("Notice") if n.kind == "decode-warning"]
    if "redirected_devices" in want:
        assert d.meta("redirected_devices") == [want["redirected_devices"]]
