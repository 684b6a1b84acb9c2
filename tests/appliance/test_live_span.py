"""The operator's story: the sensor listens on the mirror port; admin sessions cross the
switch (here: the bundled captures replayed by tcpreplay onto a virtual SPAN port); the
catalog ends up with exactly what importing the same captures gives, the SIEM heard every
start, end and tagged command, Zeek-style logs are on disk, and the metrics and
``sessiontap health`` say the capture was complete."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from live_harness import ROOT, Sensor, SyslogReceiver, free_port, json_doc, json_lines, run, wait_for

PCAPS = ROOT / "pcaps"
TELNET = [PCAPS / "telnet" / n for n in ("t1_inetutils_full_session.pcap", "t2_failed_then_success.pcap",
                                          "t4_two_concurrent_sessions.pcap")]
# Telnet on port 40023: only content detection finds it
A12 = PCAPS / "adversarial" / "a12_port_40023.pcap"
SSH = PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.pcap"
SSH_KEYS = PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.keylog"
MANIFEST = {**json.loads((PCAPS / "telnet" / "manifest.json").read_text()),
            **json.loads((PCAPS / "adversarial" / "manifest.json").read_text()),
            **json.loads((PCAPS / "ssh" / "manifest.json").read_text())}
REPLAYED = [*TELNET, A12, SSH]
EXPECTED_SESSIONS = sum(len(MANIFEST[p.name]["sessions"]) for p in REPLAYED)


def key(s: dict) -> tuple:
    return (s["protocol"], s["client_ip"], s["client_port"], s["server_port"])


def summary(home: Path) -> dict[tuple, dict]:
    out = {}
    for s in json_lines(home, "sessions", "--json"):
        d = json_doc(home, "show", s["id"], "--json")
        out[key(s)] = {"user": s["user"], "auth": s["auth"], "status": s["status"], "decrypted": s["decrypted"],
                       "tags": sorted(s["tags"]), "commands": [c["text"] for c in d["commands"]],
                       "auth_attempts": [(a["user"], a["result"]) for a in d["auth_attempts"]], "id": s["id"]}
    return out


@pytest.fixture(scope="module", params=["ring", "socket", "ring-2-processes"])
def scenario(request, span, tmp_path_factory):
    """The same story over each capture path: the TPACKET_V3 ring (the default), the plain
    packet socket (its fallback), and two sensor processes sharing the port by flow hash."""
    method, _, workers = request.param.partition("-")
    workers = workers.split("-")[0] or "1"
    base = tmp_path_factory.mktemp(f"live-{request.param}")
    live_home, import_home = base / "live", base / "import"
    # the jump host's keys for the SSH session were deposited before it happened
    run(live_home, "keys", "add", str(SSH_KEYS))
    tcp, udp = SyslogReceiver("tcp"), SyslogReceiver("udp")
    metrics_port = free_port()
    conf = base / "sensor.toml"
    conf.write_text(f"""
[capture]
interface = "{span.mirror}"
subnets = ["127.0.0.0/8", "10.20.0.0/16"]
ports = [22, 23, 2222, 2323, 3389]
content_detection = true
method = "{method}"
workers = {workers}

[capture.ring]
file_mb = 1
files = 100

[sessions]
checkpoint_seconds = 1

[siem]
zeek_logs = "zeek"
queue = 1000

[[siem.syslog]]
target = "tcp://127.0.0.1:{tcp.port}"
format = "cef"

[[siem.syslog]]
target = "udp://127.0.0.1:{udp.port}"
format = "json"

[metrics]
listen = "127.0.0.1:{metrics_port}"
""")
    sensor = Sensor(live_home, "--config", str(conf))
    sensor.wait_started()
    assert sensor.status()["capture_method"] == method, sensor.log()
    try:
        replayed = span.replay(*REPLAYED)
        wait_for("every replayed session to end", lambda: (
            (st := sensor.status()) and sum(st["counters"]["sessions_total"].values()) == EXPECTED_SESSIONS
            and st["counters"]["sessions_active"] == 0 and not st["sessions"]), timeout=60)
        wait_for("the last checkpoint", lambda: len(json_lines(live_home, "sessions", "--json")) == EXPECTED_SESSIONS
                 and all(s["status"] != "live" for s in json_lines(live_home, "sessions", "--json")))
        # the sensor processes report their counters with their status, every second or so: wait
        # until every frame sent is counted (a lost one fails the wait, and the metrics test below)
        sent = int(replayed.split("Actual: ")[1].split()[0])
        wait_for("every frame sent to be counted", lambda: sensor.status()["counters"]["packets"] >= sent, timeout=30)
        final_status = sensor.status()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        health = run(live_home, "health", check=False)
        wait_for("the SIEM messages", lambda: sum("session-end" in m for m in tcp.messages) == EXPECTED_SESSIONS)
    finally:
        rc = sensor.stop()
    assert rc == 0, sensor.log()
    for p in REPLAYED:
        run(import_home, "import", "-q", str(p), *(["--keys", str(SSH_KEYS)] if p == SSH else []))
    return {"live": summary(live_home), "import": summary(import_home), "tcp": tcp.messages, "udp": udp.messages,
            "metrics": metrics, "health": health, "status": final_status, "workers": int(workers), "home": live_home, "replayed": replayed, "log": sensor.log()}


def test_live_equals_import(scenario):
    live, imported = scenario["live"], scenario["import"]
    assert len(imported) == EXPECTED_SESSIONS
    assert set(live) == set(imported), scenario["log"]
    for k, want in imported.items():
        got = live[k]
        for field in ("user", "auth", "status", "decrypted", "tags", "commands", "auth_attempts"):
            assert got[field] == want[field], (k, field)


def test_live_matches_the_manifests(scenario):
    """Independently of the importer: users and commands the scenario scripts typed."""
    live = scenario["live"]
    for p in REPLAYED:
        for w in MANIFEST[p.name]["sessions"]:
            found = [s for k, s in live.items() if k[0] == w["protocol"] and k[3] == w["server_port"]
                     and s["commands"] == w["commands"]]
            assert len(found) >= 1, (p.name, w["commands"])
            assert found[0]["user"] == w["user"]
            assert found[0]["decrypted"] == w.get("decrypted")


def test_siem_heard_starts_ends_and_tags_as_cef(scenario):
    msgs = scenario["tcp"]
    starts = [m for m in msgs if " session-start - CEF:0|sessiontap|" in m]
    ends = [m for m in msgs if " session-end - CEF:0|sessiontap|" in m]
    assert len(starts) == len(ends) == EXPECTED_SESSIONS
    # RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
    assert all(re.match(r"<\d{1,3}>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ sessiontap \d+ [a-z-]+ - ", m) for m in msgs)
    t2 = MANIFEST["t2_failed_then_success.pcap"]["sessions"][0]
    tags = [m for m in msgs if " tag - CEF:0|" in m]
    for tag in t2["tags"]:
        assert any(f"cs2={tag}" in m and "suser=tndemo" in m and "dpt=2323" in m for m in tags), tag
    assert any("suser=demo" in m and "app=ssh" in m and "cs4=complete" in m for m in ends)


def test_siem_json_over_udp(scenario):
    objs = [json.loads(m.split(" - ", 1)[1]) for m in scenario["udp"]]
    ends = [o for o in objs if o["kind"] == "session-end"]
    assert len(ends) == EXPECTED_SESSIONS
    assert sorted(o["session"]["user"] for o in ends) == sorted(s["user"] for s in scenario["import"].values())
    assert {o["tag"] for o in objs if o["kind"] == "tag"} >= set(MANIFEST["t2_failed_then_success.pcap"]["sessions"][0]["tags"])


def test_zeek_logs_on_disk(scenario):
    zeek = scenario["home"] / "zeek"
    telnet = [json.loads(l) for l in (zeek / "telnet.log").read_text().splitlines()]
    ssh = [json.loads(l) for l in (zeek / "ssh.log").read_text().splitlines()]
    assert len(telnet) + len(ssh) == EXPECTED_SESSIONS
    s = ssh[0]
    assert s["auth_success"] is True and s["user"] == "demo" and s["id.resp_p"] == 2222
    assert s["commands"] == MANIFEST[SSH.name]["sessions"][0]["commands"]


def test_metrics_and_health_report_a_complete_capture(scenario):
    m = scenario["metrics"]
    sent = int(scenario["replayed"].split("Actual: ")[1].split()[0])
    packets = float(next(l for l in m.splitlines() if l.startswith("sessiontap_packets_total ")).split()[1])
    why = (m, scenario["log"][-3000:])
    assert packets == sent, why                 # every frame tcpreplay sent was captured (all on admin ports)
    assert 'sessiontap_drops_total{stage="kernel"} 0' in m, why
    assert 'sessiontap_drops_total{stage="sensor"} 0' in m, why
    assert 'sessiontap_sessions_total{protocol="telnet"} 5' in m, why
    assert "sessiontap_disk_free_bytes" in m
    assert scenario["health"].returncode == 0, scenario["health"].stdout.decode()
    assert "drops: kernel 0, sensor 0" in scenario["health"].stdout.decode()


def test_raw_ring_kept_every_packet(scenario, tshark):
    """The packets themselves, as evidence: the ring's pcap files hold every frame sent, and
    tshark (not our reader) reads them."""
    files = sorted((scenario["home"] / "raw").rglob("raw-*.pcap"))     # one ring per sensor process
    assert files
    total = 0
    for f in files:
        p = subprocess.run([tshark, "-r", str(f), "-T", "fields", "-e", "frame.number"], capture_output=True,
                           text=True, check=True)
        total += len(p.stdout.split())
    assert total == int(scenario["replayed"].split("Actual: ")[1].split()[0])


def test_every_sensor_process_took_part(scenario):
    """With several processes, each one ran on the port and reported its share (which flows go
    where is the kernel's hash: the shares are not asserted, only that they add up)."""
    st = scenario["status"]
    if scenario["workers"] == 1:
        assert "workers" not in st
        return
    others = st["workers"]
    assert len(others) == scenario["workers"] - 1
    assert all(w["pid"] and w["pid"] != st["pid"] for w in others.values())
    assert sum(w["packets"] for w in others.values()) <= st["counters"]["packets"]
