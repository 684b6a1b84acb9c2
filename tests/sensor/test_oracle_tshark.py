"""Every bundled capture without gaps: each reassembled direction of each connection is
byte-identical to what tshark's `follow,tcp,raw` gives (tshark is the oracle)."""
from __future__ import annotations

import subprocess
from collections import defaultdict

import pytest

from corpus import entries
from sensor.pipeline import SensorRun
from sensor.streams import StreamData, StreamOpened

CASES = [(c, e) for _p, c, e in entries("telnet", "ssh", "rdp") if e.get("oracle") and not e.get("expect_error")]


def tshark_streams(tshark: str, path) -> dict[tuple[str, int, str, int], tuple[bytes, bytes]]:
    """tshark's view: for each TCP stream, (client->server bytes, server->client bytes)."""
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-E", "separator=,", "-e", "tcp.stream",
                          "-Y", "tcp.len > 0 || tcp.flags.syn == 1"], capture_output=True, text=True, check=True).stdout
    streams = sorted({int(line.split(",")[0]) for line in out.splitlines() if line})
    result = {}
    for st in streams:
        text = subprocess.run([tshark, "-r", str(path), "-q", "-z", f"follow,tcp,raw,{st}"],
                              capture_output=True, text=True, check=True).stdout
        node = {}
        c2s, s2c = bytearray(), bytearray()
        for line in text.splitlines():
            if line.startswith("Node 0:") or line.startswith("Node 1:"):
                node[line[:6]] = line.split(": ", 1)[1]
                continue
            if not node or line.startswith("=") or not line.strip() or ":" in line:
                continue
            (s2c if line.startswith("\t") else c2s).extend(bytes.fromhex(line.strip()))
        if not c2s and not s2c:
            continue
        host, port = node["Node 0"].rsplit(":", 1)
        host1, port1 = node["Node 1"].rsplit(":", 1)
        result[(host.strip("[]"), int(port), host1.strip("[]"), int(port1))] = (bytes(c2s), bytes(s2c))
    return result


@pytest.mark.parametrize("cap,entry", CASES, ids=[c.name for c, _ in CASES])
def test_reassembly_equals_tshark_follow(tshark, cap, entry):
    ours: dict[int, dict[str, bytearray]] = defaultdict(lambda: {"c2s": bytearray(), "s2c": bytearray()})
    opened: dict[int, StreamOpened] = {}
    run = SensorRun(str(cap))
    for ev in run:
        if isinstance(ev, StreamOpened):
            opened[ev.flow_id] = ev
        elif isinstance(ev, StreamData):
            ours[ev.flow_id][ev.direction].extend(ev.data)
    assert run.problems == []
    theirs = tshark_streams(tshark, cap)
    assert len(opened) == len(entry["sessions"]) and opened, "one session per expected connection"
    for fid, o in opened.items():
        # tshark's Node 0 is the side that sent first, which for a connection with a SYN is the client
        want = theirs.get((o.client_ip, o.client_port, o.server_ip, o.server_port))
        assert want is not None, f"tshark has no stream {o.client_ip}:{o.client_port} -> {o.server_ip}:{o.server_port}"
        assert bytes(ours[fid]["c2s"]) == want[0], "client->server bytes differ from tshark"
        assert bytes(ours[fid]["s2c"]) == want[1], "server->client bytes differ from tshark"
