"""Bad input costs one session a clear, one-sentence DecodeError, and nothing else: wrong keys,
another session's key log, a capture cut inside the TLS handshake, garbage after X.224.
What was readable before the failure (the X.224 cookie, TLS version) is still reported."""
from __future__ import annotations

import pytest

from rdp_corpus import MANIFEST, RDP, decode_file, decoder_for
from sensor.pipeline import read_streams
from sensor.streams import StreamClosed, StreamData

BAD = [n for n, e in MANIFEST.items() if e["expect_error"]]


def _one_error(d) -> str:
    errors = d.of("DecodeError")
    assert len(errors) == 1, errors
    reason = errors[0].reason
    assert reason and "\n" not in reason and len(reason) < 200
    return reason


@pytest.mark.parametrize("name", BAD)
def test_damaged_capture_gives_its_error(name):
    entry = MANIFEST[name]
    d = decode_file(name)
    assert entry["expect_error"] in _one_error(d)
    assert d.meta("decrypted") == ["false"]
    assert d.meta("cookie") == ["mstshash=rdpdemo"]          # readable without keys, still there
    assert not d.of("CommandEntered")
    for s in entry["sessions"][0]["secrets"]:
        assert s not in repr(d.events)


@pytest.mark.parametrize("name, keylog, server_key, expect", [
    # Standard RDP Security with the TLS server's key: the certificate in SC_SECURITY does not match
    ("rdp-stdsec.pcap", None, "rdp-tls12-rsa.server-key.pem", "none of the given RDP server keys matches"),
    ("rdp-stdsec.pcap", "rdp-tls13.keylog", None, "no server key given"),
    ("rdp-tls12-rsa.pcap", "rdp-tls13.keylog", None, "the server's private key (--rdp-server-key) is needed"),
    ("rdp-tls12-ecdhe.pcap", None, "rdp-tls12-rsa.server-key.pem", "is forward secret"),
    ("rdp-tls12-ecdhe.pcap", "rdp-tls13.keylog", None, "forward secret"),
])
def test_wrong_secret_is_named(name, keylog, server_key, expect):
    d = decode_file(name, keylog=keylog, server_key=server_key)
    assert expect in _one_error(d)
    assert d.meta("decrypted") == ["false"]
    assert d.meta("client_name") in ([], [MANIFEST[name]["sessions"][0]["client_name"]])


def _events_by_flow(names: list[str], interleave: bool) -> list[list]:
    """Decode several captures with one decoder each, feeding them one after the other or
    interleaved chunk by chunk (as an importer does with concurrent connections)."""
    feeds = []
    for n in names:
        dec = decoder_for(MANIFEST[n])
        items = [(dec, ev) for ev in read_streams(str(RDP / n)) if isinstance(ev, (StreamData, StreamClosed))]
        feeds.append(items)
    order = []
    if interleave:
        for i in range(max(map(len, feeds))):
            order += [f[i] for f in feeds if i < len(f)]
    else:
        order = [x for f in feeds for x in f]
    out: dict[int, list] = {id(f[0][0]): [] for f in feeds}
    for dec, ev in order:
        if isinstance(ev, StreamData):
            out[id(dec)] += dec.feed(ev.direction, ev.data, ev.ts)
        else:
            out[id(dec)] += dec.close(ev.ts, ev.reason)
    return [[(type(e).__name__, getattr(e, "text", getattr(e, "reason", ""))) for e in evs] for evs in out.values()]


def test_a_bad_session_does_not_touch_its_neighbours():
    names = ["rdp-bad-garbage-after-x224.pcap", "rdp-tls13.pcap", "rdp-stdsec.pcap", "rdp-tls12-ecdhe.pcap"]
    alone = _events_by_flow(names, interleave=False)
    together = _events_by_flow(names, interleave=True)
    assert together == alone
    assert ("ClipboardCopy", "st-tls13-clipboard-s2c") in together[1]
    assert ("ClipboardCopy", "st-stdsec-clipboard-c2s") in together[2]


def test_without_any_secret_a_session_is_metadata_only_not_an_error():
    """Imported with no key at all: Zeek-like metadata, decrypted=false with the reason, no error
    (the session can be decrypted later). Standard RDP Security keeps its MCS data in clear."""
    from reconstruct.rdp import RDPDecoder
    for name in ("rdp-stdsec.pcap", "rdp-tls12-rsa.pcap", "rdp-tls13.pcap"):
        dec, events = RDPDecoder(), []
        for ev in read_streams(str(RDP / name)):
            if isinstance(ev, StreamData):
                events += dec.feed(ev.direction, ev.data, ev.ts)
            elif isinstance(ev, StreamClosed):
                events += dec.close(ev.ts, ev.reason)
        meta = {e.key: e.value for e in events if type(e).__name__ == "Metadata"}
        assert not [e for e in events if type(e).__name__ == "DecodeError"], name
        assert meta["decrypted"] == "false" and meta["decrypt-reason"], name
        assert meta["cookie"] == "mstshash=rdpdemo"
        if name == "rdp-stdsec.pcap":                      # Zeek rdp.log parity, no key needed
            want = MANIFEST[name]["sessions"][0]
            assert meta["client_name"] == want["client_name"] and meta["resolution"] == want["resolution"]
            assert meta["keyboard_layout"].startswith("0x0409") and meta["client_build"] == "18363"
            assert meta["encryption_method"] == "128BIT" and meta["encryption_level"] == "HIGH"
            assert meta["cert_type"] == "proprietary" and meta["channels"] == "rdpdr,rdpsnd,cliprdr"
            assert meta["cert_count"] == "1" and meta["cert_permanent"] == "true"


def test_decoding_goes_on_after_gaps():
    """Two segments lost mid-session (damage.py): TLS finds its next record at a later sequence
    number, the RDP layer restarts at a PDU boundary, and the analyst is told where."""
    from rdp_corpus import decoded
    want = MANIFEST["rdp-gap-tls13.pcap"]["sessions"][0]
    d = decoded("rdp-gap-tls13.pcap")
    gaps = [(ev.direction, ev.nbytes) for ev in read_streams(str(RDP / "rdp-gap-tls13.pcap"))
            if type(ev).__name__ == "StreamGap"]
    assert sorted(gaps) == sorted((g["direction"], g["nbytes"]) for g in want["gaps"])
    notices = [n.kind for n in d.of("Notice")]
    assert notices.count("resync") == 2 and "typed-gap" in notices
    assert not d.of("DecodeError")
    assert [c.text for c in d.of("CommandEntered")] == want["commands"]
    assert [(c.direction, c.text) for c in d.of("ClipboardCopy")] == \
           [(c["direction"], c["text"]) for c in want["clipboard"]]
    assert "lost after a capture gap" in d.meta("video")[0]     # MPPC history cannot be rebuilt


def test_mangled_rdp_pdus_cost_one_clear_error_and_nothing_more():
    """The real decrypted PDUs of rdp-tls13.pcap behind a plain X.224 negotiation (RDP with
    encryption NONE), with random bytes overwritten: every failure is one DecodeError sentence,
    never an exception, and the decoder stays quiet afterwards."""
    import random

    from rdp_corpus import plaintext_chunks
    from reconstruct.rdp import RDPDecoder
    from test_rdp_playbooks import x224_cc, x224_cr
    stream = plaintext_chunks("rdp-tls13.pcap")
    failures = 0
    for seed in range(120):
        rng = random.Random(seed)
        dec = RDPDecoder()
        events = dec.feed("c2s", x224_cr(b"Cookie: mstshash=rdpdemo\r\n", 0), 0.0)
        events += dec.feed("s2c", x224_cc(0), 0.0)
        for i, (direction, chunk, ts) in enumerate(stream):
            if (i < 40 and rng.random() < 0.08) or rng.random() < 0.01:
                b = bytearray(chunk)
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                chunk = bytes(b)
            events += dec.feed(direction, chunk, ts)
        events += dec.close(ts, "fin")
        errors = [e for e in events if type(e).__name__ == "DecodeError"]
        assert len(errors) <= 1 and all("\n" not in e.reason for e in errors)
        failures += len(errors)
    assert failures > 20                           # the mangling did hit the framing


def test_a_connection_picked_up_mid_stream_is_named_as_such():
    """The capture starts after the TLS handshake (first 30 frames cut from rdp-tls13.pcap): with
    the right key log given, the one error says why nothing can be decrypted."""
    from reconstruct.rdp import KeyLogLookup, RDPDecoder
    dec = RDPDecoder(KeyLogLookup((RDP / "rdp-tls13.keylog").read_text()))
    events, skipped = [], 0
    for ev in read_streams(str(RDP / "rdp-tls13.pcap")):
        if isinstance(ev, StreamData):
            skipped += 1
            if skipped > 30:
                events += dec.feed(ev.direction, ev.data, ev.ts)
    errors = [e.reason for e in events if type(e).__name__ == "DecodeError"]
    assert len(errors) == 1 and "began after the X.224 negotiation" in errors[0]
