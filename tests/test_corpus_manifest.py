"""The corpus manifests tell the truth about their captures, as an independent tool sees them.

The end-to-end tests trust ``pcaps/<proto>/manifest.json`` as the expected result of importing each
capture. Those expectations were written from the scenario scripts, so here tshark (never our own
code) checks that each capture really holds what its manifest promises: the sessions, the typed
commands and passwords, the screen output, the gaps, the conflicting retransmissions and, for the
broken files, that something really is wrong with them.

Manifests checked: pcaps/telnet and pcaps/adversarial (the Telnet and bad-input corpus). tshark must
be on PATH (Debian: ``apt-get install tshark``).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pyte
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = ["telnet", "adversarial"]
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".txt")
TAGS = {"config-change", "file-copy", "firmware-upgrade", "privilege-change", "destructive"}
STATUSES = {"complete", "partial", "decode_error"}


def manifest(corpus: str) -> dict:
    with open(os.path.join(ROOT, "pcaps", corpus, "manifest.json")) as f:
        return json.load(f)


def cases() -> list:
    return [pytest.param(corpus, name, id=f"{corpus}/{name}")
            for corpus in CORPORA for name in manifest(corpus)]


@pytest.fixture(scope="session", autouse=True)
def need_tshark() -> None:
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not on PATH: these checks need it as the independent reference "
                    "(Debian: apt-get install tshark)")


def tshark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tshark", *args], capture_output=True, text=True)


# ------------------------------------------------------------------ what tshark sees
@dataclass
class Stream:
    """One TCP connection as tshark reassembles it, oriented by the manifest's server port."""
    index: int
    server_port: int
    c2s: bytes = b""
    s2c: bytes = b""
    # (seq, payload) of every data segment, file order, relative sequence numbers
    segments: dict[str, list[tuple[int, bytes]]] = field(default_factory=lambda: {"c2s": [], "s2c": []})
    syn_seen: bool = False


@functools.lru_cache(maxsize=None)
def read(path: str, server_ports: tuple[int, ...]) -> tuple[int, list[Stream], list[str]]:
    """(tshark exit code, streams in order of first appearance, frame.protocols of every frame)"""
    fields = tshark("-r", path, "-o", "tcp.relative_sequence_numbers:TRUE", "-T", "fields",
                    "-E", "occurrence=f", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
                    "-e", "tcp.seq", "-e", "tcp.flags.syn", "-e", "tcp.payload", "-e", "frame.protocols")
    streams: dict[int, Stream] = {}
    protocols = []
    for line in fields.stdout.splitlines():
        idx, sport, dport, seq, syn, payload, protos = line.split("\t")
        protocols.append(protos)
        if not idx:
            continue
        i = int(idx)
        if i not in streams:
            server = int(dport) if int(dport) in server_ports else int(sport)
            streams[i] = Stream(i, server)
        st = streams[i]
        st.syn_seen |= syn == "1"
        if payload:
            d = "s2c" if int(sport) == st.server_port else "c2s"
            st.segments[d].append((int(seq), bytes.fromhex(payload)))
    if streams:
        zs = []
        for i in sorted(streams):
            zs += ["-z", f"follow,tcp,raw,{i}"]
        follow = tshark("-r", path, "-q", *zs).stdout
        for block in follow.split("===================================================================\n"):
            m = re.search(r"^Filter: tcp\.stream eq (\d+)\nNode 0: .*:(\d+)\nNode 1: .*:(\d+)\n(.*)", block,
                          re.S | re.M)
            if not m:
                continue
            st = streams[int(m.group(1))]
            node0_is_server = int(m.group(2)) == st.server_port and int(m.group(3)) != st.server_port
            node0, node1 = bytearray(), bytearray()
            for row in m.group(4).splitlines():
                if row.startswith("\t"):
                    node1 += bytes.fromhex(row.strip())
                elif row.strip():
                    node0 += bytes.fromhex(row.strip())
            st.c2s, st.s2c = (bytes(node1), bytes(node0)) if node0_is_server else (bytes(node0), bytes(node1))
    return fields.returncode, [streams[i] for i in sorted(streams)], protocols


def entry_and_streams(corpus: str, name: str):
    entry = manifest(corpus)[name]
    path = os.path.join(ROOT, "pcaps", corpus, name)
    ports = tuple(sorted({s["server_port"] for s in entry["sessions"]}))
    return entry, path, read(path, ports)


# ------------------------------------------------------------------ Telnet, read independently
def strip_iac(data: bytes) -> bytes:
    """Telnet data without its commands (RFC 854): IAC IAC is a literal 0xff, IAC SB .. IAC SE and
    IAC WILL/WONT/DO/DONT x are dropped, as is any other two-byte IAC command."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b != 0xFF:
            out.append(b)
            i += 1
            continue
        cmd = data[i + 1] if i + 1 < n else None
        if cmd == 0xFF:
            out.append(0xFF)
            i += 2
        elif cmd == 0xFA:
            end = data.find(b"\xff\xf0", i + 2)
            i = n if end < 0 else end + 2
        elif cmd in (0xFB, 0xFC, 0xFD, 0xFE):
            i += 3
        else:
            i += 2
    return bytes(out)


def typed_lines(c2s: bytes) -> list[str]:
    """What a plain line discipline makes of the keys: DEL/BS erase a character, Ctrl-C and Ctrl-U
    drop the line, CR or LF ends it (the NUL or LF after a CR belongs to the Enter)."""
    lines, cur = [], []
    data = strip_iac(c2s)
    i = 0
    while i < len(data):
        b = data[i]
        if b in (0x0D, 0x0A):
            lines.append(bytes(cur).decode("latin-1"))
            cur = []
            if b == 0x0D and i + 1 < len(data) and data[i + 1] in (0x00, 0x0A):
                i += 1
        elif b in (0x7F, 0x08):
            if cur:
                cur.pop()
        elif b in (0x03, 0x15):
            cur = []
        elif b != 0x00:
            cur.append(b)
        i += 1
    return lines


def screen(s2c: bytes) -> str:
    return strip_iac(s2c).replace(b"\x00", b"").decode("latin-1")


class _Screen(pyte.Screen):
    # pyte 0.8 passes private=True for xterm's "CSI > Ps m" (vim sends it) and then fails on it
    def select_graphic_rendition(self, *attrs, private=False, **kw):
        if not private:
            super().select_graphic_rendition(*attrs)


def ever_on_screen(s2c: bytes, needle: str, cols: int, rows: int) -> bool:
    """whether ``needle`` was ever visible on an emulated terminal fed the output (pyte, a
    terminal emulator we do not own), looking after every 256 bytes"""
    term = _Screen(cols, rows)
    stream = pyte.ByteStream(term)
    data = strip_iac(s2c)
    for i in range(0, len(data), 256):
        stream.feed(data[i:i + 256])
        if any(needle in line for line in term.display):
            return True
    return False


def holes(segments: list[tuple[int, bytes]], from_start: bool) -> list[int]:
    """sizes of the sequence ranges never carried by any segment, between the first and the last
    byte seen (from byte 1, the first after the SYN, when the handshake is in the capture)"""
    spans = sorted((seq, seq + len(p)) for seq, p in segments)
    out = []
    end = 1 if from_start else (spans[0][0] if spans else 0)
    for a, b in spans:
        if a > end:
            out.append(a - end)
        end = max(end, b)
    return out


def conflicts(segments: list[tuple[int, bytes]]) -> int:
    """segments that re-send already seen sequence numbers with different bytes"""
    seen: dict[int, int] = {}
    count = 0
    for seq, p in segments:
        differ = False
        for k, byte in enumerate(p):
            old = seen.setdefault(seq + k, byte)
            differ |= old != byte
        count += differ
    return count


# ------------------------------------------------------------------ the checks
def test_every_capture_in_the_folders_is_described() -> None:
    for corpus in CORPORA:
        folder = os.path.join(ROOT, "pcaps", corpus)
        files = {f for f in os.listdir(folder) if f.endswith(CAPTURE_SUFFIXES)}
        assert files == set(manifest(corpus)), f"pcaps/{corpus}: captures and manifest differ"


def test_corpus_stays_small() -> None:
    total = sum(os.path.getsize(os.path.join(ROOT, "pcaps", c, f))
                for c in CORPORA for f in os.listdir(os.path.join(ROOT, "pcaps", c)))
    assert total < 2_000_000, f"the Telnet + adversarial corpus is {total} bytes; keep it under 2 MB"


@pytest.mark.parametrize("corpus,name", cases())
def test_manifest_entry_is_well_formed(corpus: str, name: str) -> None:
    entry = manifest(corpus)[name]
    for key in ("description", "made_by", "oracle", "keys", "expect_error", "sessions"):
        assert key in entry, f"{name}: missing {key}"
    assert os.path.exists(os.path.join(ROOT, entry["made_by"].split()[0])), entry["made_by"]
    for s in entry["sessions"]:
        assert s["protocol"] == "telnet" and s["decrypted"] is None
        assert s["status"] in STATUSES
        assert s["auth"] in ("success", "failure", "unknown")
        assert set(s["tags"]) <= TAGS
        # the per-command tags add up to the session's tags, and name commands that really ran
        assert {t for ct in s.get("command_tags", []) for t in ct["tags"]} == set(s["tags"])
        assert all(ct["command"] in s["commands"] for ct in s.get("command_tags", []))
        assert not set(s["commands"]) & set(s["not_commands"])
        if s["gaps"] or s["picked_up"]:
            assert s["status"] == "partial", "a session with missing bytes cannot be complete"
        if s["auth_attempts"]:
            assert s["auth_attempts"][-1]["result"] == s["auth"]
            assert s["auth_attempts"][-1]["user"] == s["user"]


@pytest.mark.parametrize("corpus,name", cases())
def test_tshark_agrees_with_the_manifest(corpus: str, name: str) -> None:
    entry, path, (rc, streams, protocols) = entry_and_streams(corpus, name)

    if entry["expect_error"]:
        # broken on purpose: tshark must stumble too (an empty file just has no frames)
        assert rc != 0 or not protocols, f"{name}: tshark reads it without complaint"
    else:
        assert rc == 0, f"{name}: tshark cannot read it"
    if "frame_protocols" in entry:
        # up to TCP: what follows depends on tshark's guess of the payload (data, telnet)
        below_tcp = {p[:p.index(":tcp") + 4] for p in protocols}
        assert below_tcp == {entry["frame_protocols"]}, f"{name}: encapsulation {below_tcp}"

    sessions = entry["sessions"]
    assert len(streams) == len(sessions), f"{name}: tshark sees {len(streams)} TCP connections"
    for n, (st, exp) in enumerate(zip(streams, sessions)):
        where = f"{name} session {n}"
        assert st.server_port == exp["server_port"], where
        assert st.syn_seen == (not exp["picked_up"]), f"{where}: SYN seen={st.syn_seen}"

        lines = typed_lines(st.c2s)
        # every command was typed and entered, in this order (login lines and vi text in between)
        it = iter(lines)
        for cmd in exp["commands"]:
            assert any(line == cmd for line in it), f"{where}: command {cmd!r} not typed (in order)"
        # user names: typed at the login prompt (or sent in NEW-ENVIRON USER)
        for attempt in exp["auth_attempts"]:
            assert attempt["user"] in lines, f"{where}: user {attempt['user']!r} never typed"
        if exp.get("env_user"):
            assert b"USER\x01" + exp["env_user"].encode() in st.c2s, f"{where}: no NEW-ENVIRON USER"
        # passwords really crossed the wire, so "no secret after import" is a real test
        for secret in exp["secrets"]:
            assert secret in lines, f"{where}: secret not in the capture"

        text = screen(st.s2c)
        for s in exp["output_contains"]:
            assert s in text, f"{where}: output lacks {s!r}"
        for s in exp.get("output_not_contains", []):
            assert s not in text, f"{where}: output shows {s!r}"
        for s in exp.get("screen_contains", []):
            win = exp.get("window", {"cols": 80, "rows": 24})
            assert ever_on_screen(st.s2c, s, win["cols"], win["rows"]), f"{where}: never on screen: {s!r}"
        # a line of output (what is left after the line's last CR) shown exactly once
        visible = [line.rstrip("\r").split("\r")[-1] for line in text.split("\n")]
        for s in exp.get("output_once", []):
            assert visible.count(s) == 1, f"{where}: line {s!r} shown {visible.count(s)} times"
        for secret in exp["secrets"]:
            assert secret not in text, f"{where}: the server echoed a password"

        expected_gaps = {"c2s": [], "s2c": []}
        for g in exp["gaps"]:
            expected_gaps[g["direction"]].append(g["nbytes"])
        for d in ("c2s", "s2c"):
            assert holes(st.segments[d], st.syn_seen) == expected_gaps[d], f"{where}: {d} gaps"
        assert sum(conflicts(st.segments[d]) for d in ("c2s", "s2c")) == exp["conflicts"], f"{where}: conflicts"

    if entry["oracle"]:
        # no gaps and no conflicting copies: tshark's follow stream is the reference reassembly
        for st in streams:
            for d in ("c2s", "s2c"):
                assert holes(st.segments[d], st.syn_seen) == []
                assert conflicts(st.segments[d]) == 0


def test_reordered_capture_really_arrives_out_of_order() -> None:
    """t5b and a13 must carry keystrokes whose file order differs from their sequence order."""
    for corpus, name in (("telnet", "t5b_reordered_keystrokes.pcap"), ("adversarial", "a13_reordered.pcap")):
        _, _, (_, streams, _) = entry_and_streams(corpus, name)
        seqs = [seq for seq, _ in streams[0].segments["c2s"]]
        assert seqs != sorted(seqs), f"{name}: client segments are in order"
        arrival = b"".join(p for _, p in streams[0].segments["c2s"])
        assert arrival != streams[0].c2s, f"{name}: arrival order equals sequence order"


def test_duplicates_are_really_there() -> None:
    for corpus, name, expect in (("telnet", "t5c_duplicate_retransmission.pcap", 1),
                                 ("adversarial", "a14_duplicated.pcap",
                                  manifest("adversarial")["a14_duplicated.pcap"]["duplicated_segments"])):
        _, _, (_, streams, _) = entry_and_streams(corpus, name)
        dups = 0
        for d in ("c2s", "s2c"):
            segs = streams[0].segments[d]
            dups += len(segs) - len(set(segs))
        assert dups == expect, f"{name}: {dups} duplicated segments"


def test_adversarial_corpus_is_what_its_generator_makes(tmp_path) -> None:
    """Rebuilding pcaps/adversarial from the committed t2 gives the committed files: the generator,
    the captures and the manifest have not drifted apart. (The pcapng copy is written by editcap,
    whose section header names its own version, so only its frames are compared.)"""
    pytest.importorskip("scapy", reason="scapy (test extra) builds the adversarial captures")
    import sys
    subprocess.run([sys.executable, os.path.join(ROOT, "pcaps", "make", "adversarial.py"),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    committed = os.path.join(ROOT, "pcaps", "adversarial")
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(committed))
    for name in os.listdir(committed):
        with open(os.path.join(committed, name), "rb") as a, open(os.path.join(tmp_path, name), "rb") as b:
            if name.endswith(".pcapng"):
                frames = [tshark("-r", p, "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.payload").stdout
                          for p in (os.path.join(committed, name), os.path.join(tmp_path, name))]
                assert frames[0] == frames[1], name
            else:
                assert a.read() == b.read(), f"{name} differs from what adversarial.py makes now"
