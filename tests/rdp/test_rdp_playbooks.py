"""Decoder playbooks: feed these bytes -> expect these events. Bytes are either spelled out
from the specification (MS-RDPBCGR) or taken from the real captures in pcaps/rdp/."""
from __future__ import annotations

import struct

import pytest

from rdp_corpus import MANIFEST, RDP, decode_file
from reconstruct.events import DecodeError, Metadata
from reconstruct.rdp import KeyLogLookup, RDPDecoder
from reconstruct.rdp.keylog import parse_keylog
from reconstruct.rdp.layout import DE, FR, UK, US, Keyboard, LineEditor, layout_for
from sensor.pipeline import read_streams
from sensor.streams import StreamClosed, StreamData


def x224_cr(cookie: bytes, protocols: int) -> bytes:
    var = cookie + struct.pack("<BBHI", 1, 0, 8, protocols)
    li = 6 + len(var)
    return struct.pack(">BBH", 3, 0, 5 + li) + bytes([li, 0xE0, 0, 0, 0, 0, 0]) + var


def x224_cc(selected: int) -> bytes:
    var = struct.pack("<BBHI", 2, 0, 8, selected)
    li = 6 + len(var)
    return struct.pack(">BBH", 3, 0, 5 + li) + bytes([li, 0xD0, 0, 0, 0x12, 0x34, 0]) + var


def test_x224_cookie_and_protocols_without_any_key():
    d = RDPDecoder()
    ev = d.feed("c2s", x224_cr(b"Cookie: mstshash=alice\r\n", 0x0B), 1.0)
    assert Metadata(1.0, "cookie", "mstshash=alice") in ev
    assert Metadata(1.0, "requested_protocols", "SSL|HYBRID|HYBRID_EX") in ev
    ev = d.feed("s2c", x224_cc(1), 1.1)
    assert Metadata(1.1, "selected_protocol", "SSL") in ev


def test_x224_split_anywhere_gives_the_same_events():
    whole = x224_cr(b"Cookie: mstshash=bob\r\n", 1)
    d = RDPDecoder()
    got = []
    for i in range(len(whole)):
        got += d.feed("c2s", whole[i:i + 1], 2.0)
    assert [(e.key, e.value) for e in got] == [("cookie", "mstshash=bob"), ("requested_protocols", "SSL")]


def test_garbage_instead_of_x224_is_one_clear_error():
    d = RDPDecoder()
    ev = d.feed("c2s", b"GET / HTTP/1.1\r\n\r\n", 3.0)
    assert [type(e) for e in ev] == [DecodeError]
    assert "neither a TPKT nor a fast-path" in ev[0].reason
    assert d.feed("c2s", b"more", 3.1) == []              # the session is done; no error flood


def test_server_refusal_is_metadata_not_an_error():
    d = RDPDecoder()
    d.feed("c2s", x224_cr(b"", 0), 4.0)
    fail = struct.pack("<BBHI", 3, 0, 8, 2)
    cc = struct.pack(">BBH", 3, 0, 5 + 6 + 8) + bytes([14, 0xD0, 0, 0, 0, 0, 0]) + fail
    ev = d.feed("s2c", cc, 4.1)
    assert Metadata(4.1, "security", "refused: SSL_NOT_ALLOWED_BY_SERVER") in ev
    assert not [e for e in d.close(4.2, "fin") if isinstance(e, DecodeError)]


# ------------------------------------------------------------------ keyboard layouts ----
def typed(layout, keys) -> str:
    """keys: scancodes (press+release each); ("shift", sc) / ("altgr", sc) for chords."""
    kb, line = Keyboard(layout), LineEditor()
    for k in keys:
        mod, sc = k if isinstance(k, tuple) else (None, k)
        mods = {"shift": (0x2A, False), "altgr": (0x38, True)}
        if mod:
            kb.key(mods[mod][0], mods[mod][1], False)
        r = kb.key(sc, False, False)
        kb.key(sc, False, True)
        if mod:
            kb.key(mods[mod][0], mods[mod][1], True)
        if isinstance(r, str):
            line.insert(r)
        elif r:
            line.action(r[0])
    return line.text


@pytest.mark.parametrize("layout, keys, text", [
    (US, [0x15, 0x2C, 0x10, 0x11], "yzqw"),
    (DE, [0x15, 0x2C, 0x10, 0x11], "zyqw"),
    (FR, [0x15, 0x2C, 0x10, 0x11], "ywaz"),
    (US, [("shift", 0x03), ("shift", 0x0C)], "@_"),
    (DE, [("shift", 0x03), ("altgr", 0x10), 0x0C, ("shift", 0x08)], '"@ß/'),
    (FR, [0x03, ("shift", 0x03), ("altgr", 0x0B), 0x27], "é2@m"),
    (DE, [0x29, 0x12, 0x0D, 0x12], "êé"),             # dead keys ^ and ´ compose
    (US, [0x1E, 0x30, 0x0E, 0x2E], "ac"),             # backspace erases
    (UK, [("shift", 0x03), ("shift", 0x04), ("shift", 0x28), 0x2B], '"£@#'),
])
def test_scancodes_read_with_the_clients_layout(layout, keys, text):
    assert typed(layout, keys) == text


def test_layout_ids():
    assert layout_for(0x407) is DE and layout_for(0x40C) is FR and layout_for(0x409) is US
    assert layout_for(0x807) is DE and layout_for(0x12345) is US


def test_paste_lands_where_the_paste_key_was_pressed():
    line = LineEditor()
    line.insert("echo ")
    line.action("paste")
    line.insert(" done")
    assert line.fill_paste("from-clipboard\r\nsecond line")
    assert line.take() == "echo from-clipboard done"


# --------------------------------------------------------------------------- key log ----
def test_keylog_lines_are_matched_by_client_random():
    cr1, cr2 = "11" * 32, "22" * 32
    text = (f"# comment\nCLIENT_RANDOM {cr1} {'aa' * 48}\nRSA 0102030405060708 {'bb' * 48}\n"
            f"CLIENT_TRAFFIC_SECRET_0 {cr2} {'cc' * 48}\nCLIENT_RANDOM zz {'dd' * 48}\n")
    parsed = parse_keylog(text)
    assert set(parsed) == {bytes.fromhex(cr1), bytes.fromhex(cr2)}
    look = KeyLogLookup(text)
    assert look.lookup("tls-client-random", cr1)[0].master_secret == bytes.fromhex("aa" * 48)
    assert look.lookup("tls-client-random", "33" * 32) == []
    assert look.lookup("ssh-cookie", cr1) == []


# ---------------------------------------------------------- Standard RDP Security ----
def test_a_flipped_byte_fails_the_mac_check_and_nothing_after_it_is_trusted():
    """Real stdsec capture; one byte of the 40th encrypted client PDU is flipped."""
    entry = MANIFEST["rdp-stdsec.pcap"]
    dec = RDPDecoder(server_keys=[str(RDP / entry["rdp_server_key"])])
    events, seen = [], 0
    for ev in read_streams(str(RDP / "rdp-stdsec.pcap")):
        if isinstance(ev, StreamData):
            data = ev.data
            if ev.direction == "c2s" and data[0] & 0xC0 == 0x80:     # encrypted fast-path input
                seen += 1
                if seen == 40:
                    data = data[:-1] + bytes([data[-1] ^ 0x01])
            events += dec.feed(ev.direction, data, ev.ts)
        elif isinstance(ev, StreamClosed):
            events += dec.close(ev.ts, ev.reason)
    errors = [e for e in events if isinstance(e, DecodeError)]
    assert len(errors) == 1 and "MAC did not match" in errors[0].reason
    good = decode_file("rdp-stdsec.pcap")
    assert len([e for e in events if type(e).__name__ == "CommandEntered"]) < len(good.of("CommandEntered"))


def test_unicode_input_and_redaction_of_a_typed_password():
    """Unicode key events (what on-screen keyboards and IMEs send) become text; a line that
    contains the Client Info password (typed again, e.g. into sudo) is redacted."""
    from reconstruct.rdp.pyrdp_bridge import ClientInfo, Key, Unicode
    dec = RDPDecoder()
    dec.info = ClientInfo("op", "", "S3cret!x", 0, "", "", "", b"")
    dec._input([Unicode(c, False) for c in "überwachung ✓"] + [Unicode("\r", False)])
    dec._input([Unicode(c, False) for c in "sudo -S <<< S3cret!x"] + [Key(0x1C, False, False)])
    lines = [e.text for e in dec._flush() if type(e).__name__ == "CommandEntered"]
    assert lines == ["überwachung ✓", "sudo -S <<< ********"]


def slow_input_pdu(events: list[tuple[int, int, bytes]]) -> bytes:
    """TS_INPUT_PDU (MS-RDPBCGR 2.2.8.1.1.3): share control + share data headers, then events
    of (messageType, flags, rest)."""
    body = struct.pack("<HH", len(events), 0)
    for mtype, flags, rest in events:
        body += struct.pack("<IHH", 0, mtype, flags) + rest
    total = 18 + len(body)
    return (struct.pack("<HHH", total, 0x17, 1007) + struct.pack("<IBBH", 0x103EA, 0, 1, total - 14)
            + bytes([0x1C, 0]) + b"\0\0" + body)


def test_slow_path_keyboard_and_mouse_as_rdesktop_sends_them():
    KBD, UNICODE, MOUSE = 0x0004, 0x0005, 0x8001
    down, up = 0x0000, 0x8000

    def key(sc, flags):
        return (KBD, flags, struct.pack("<HH", sc, 0))
    dec = RDPDecoder()
    events = [key(0x2A, down), key(0x23, down), key(0x23, up), key(0x2A, up),    # Shift+h -> "H"
              key(0x17, down), key(0x17, up),                                      # i
              (UNICODE, down, struct.pack("<HH", ord("!"), 0)),
              (MOUSE, 0x9000, struct.pack("<HH", 120, 45)),                        # left button down
              (MOUSE, 0x1000, struct.pack("<HH", 120, 45)),                        # ... and up: no 2nd click
              key(0x1C, down), key(0x1C, up)]
    dec._ts = 5.0
    dec._slowpath("c2s", slow_input_pdu(events))
    out = dec._flush()
    assert [e.text for e in out if type(e).__name__ == "CommandEntered"] == ["Hi!"]
    assert [e.text for e in out if type(e).__name__ == "Notice"] == ["left click at (120, 45)"]
