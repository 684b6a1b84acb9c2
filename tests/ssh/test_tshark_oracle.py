"""Independent check: where Wireshark 4.0 can decrypt a capture (curve25519 with the two-field
key log, no strict kex, no -etm/zlib, RSA keys), the message types and channel-data lengths it
sees in each direction equal ours, packet for packet."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from reconstruct.ssh import SSHDecoder
from tests.ssh.replay import PCAPS, keystore, streams

MANIFEST = json.loads((PCAPS / "manifest.json").read_text())
ORACLE = sorted(n for n, e in MANIFEST.items() if e.get("tshark_decrypts"))

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def tshark_view(name: str) -> dict[str, list]:
    entry = MANIFEST[name]
    port = entry["sessions"][0]["server_port"]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(PCAPS / name), "-d", f"tcp.port=={port},ssh",
         "-o", f"ssh.keylog_file:{PCAPS / entry['keys']}", "-Y", "ssh",
         "-T", "fields", "-E", "occurrence=a", "-e", "tcp.srcport", "-e", "ssh.message_code",
         "-e", "ssh.channel_data_length"],
        capture_output=True, text=True, check=True).stdout
    view: dict[str, list] = {"c2s": [], "s2c": [], "c2s_data": [], "s2c_data": []}
    for line in out.splitlines():
        src, codes, lens = (line.split("\t") + ["", ""])[:3]
        d = "s2c" if int(src) == port else "c2s"
        view[d] += [int(c) for c in codes.split(",") if c]
        view[d + "_data"] += [int(n) for n in lens.split(",") if n]
    return view


def our_view(name: str) -> dict[str, list]:
    dec = SSHDecoder(keys=keystore(MANIFEST[name]["keys"]))
    dec._t.trace = []
    data_lens: dict[str, list] = {"c2s": [], "s2c": []}
    orig = dec._c.message

    def spy(direction, payload, ts):
        if payload[0] == 94:
            data_lens[direction].append(int.from_bytes(payload[5:9], "big"))
        return orig(direction, payload, ts)
    dec._c.message = spy
    for d, data, ts in streams(name):
        dec.feed(d, data, ts)
    view = {d: [t for dd, t, _ in dec._t.trace if dd == d] for d in ("c2s", "s2c")}
    view.update({d + "_data": v for d, v in data_lens.items()})
    return view


@pytest.mark.parametrize("name", ORACLE)
def test_same_packets_as_wireshark(name):
    theirs, ours = tshark_view(name), our_view(name)
    for key in ("c2s", "s2c", "c2s_data", "s2c_data"):
        assert ours[key] == theirs[key], key
    assert len(ours["c2s"]) > 10 and len(ours["s2c"]) > 10


def test_the_corpus_has_oracle_captures():
    assert len(ORACLE) >= 2
