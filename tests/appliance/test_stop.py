"""The operator stops the sensor (``systemctl stop``: SIGTERM) - in the middle of a session, or
while it is behind on a flood of traffic. It stops capturing at once, processes what it already
has for at most ``stop_seconds``, writes every session still in progress as ``partial`` (whole
and replayable, as after a crash), counts what it had no time for as dropped - one alert line
with the number - and exits 0.

No timing is asserted: the generous waits are only there so that a hang fails the test instead
of stalling the suite."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from live_harness import ROOT, Sensor, json_doc, json_lines, run, wait_for

TELNET = ROOT / "pcaps" / "telnet"
T1 = TELNET / "t1_inetutils_full_session.pcap"
WANT = json.loads((TELNET / "manifest.json").read_text())[T1.name]["sessions"][0]
FLOOD = [TELNET / n for n in ("t1_inetutils_full_session.pcap", "t2_failed_then_success.pcap",
                              "t4_two_concurrent_sessions.pcap")]
HANG_GUARD = 60


def frames_until(text: str, tmp) -> bytes:  # type: ignore[no-untyped-def]
    """The capture up to the first frame whose payload holds ``text`` (found by tshark, not by us)."""
    p = subprocess.run(["tshark", "-r", str(T1), "-Y", f'tcp.payload contains "{text}"', "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True, check=True)
    last = int(p.stdout.split()[0])
    out = tmp / "head.pcap"
    subprocess.run(["editcap", "-F", "pcap", "-r", str(T1), str(out), f"1-{last}"], check=True, capture_output=True)
    return out.read_bytes()


def flood_pcap(tmp, copies: int = 30):  # type: ignore[no-untyped-def]
    """The Telnet captures many times over, each copy on addresses of its own (tcprewrite) and
    starting one second after the one before (editcap), merged in time order: sessions overlap
    all the way through, so wherever the stop lands some are in progress; more packets than the
    sensor can process at once."""
    parts = []
    for j, p in enumerate(FLOOD):
        first = float(subprocess.run(["capinfos", "-S", "-a", "-T", "-r", str(p)], capture_output=True,
                                     text=True, check=True).stdout.split()[-1])
        for k in range(copies):
            moved = tmp / f"moved-{k}-{p.name}"
            subprocess.run(["editcap", "-F", "pcap", "-t", f"{1_700_000_000 + k - first:.6f}", str(p), str(moved)],
                           check=True, capture_output=True)
            out = tmp / f"flood-{k}-{p.name}"
            subprocess.run(["tcprewrite", f"--pnat=127.0.0.1/32:10.{9 + j}.{k}.1/32", "--fixcsum", "-i", str(moved),
                            "-o", str(out)], check=True, capture_output=True)
            parts.append(str(out))
    flood = tmp / "flood.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(flood), *parts], check=True, capture_output=True)
    return flood


def replayable_text(home, sid: str) -> str:  # type: ignore[no-untyped-def]
    cast = run(home, "export", sid, "--format", "asciicast", "-o", "-").stdout.decode().splitlines()
    assert json.loads(cast[0])["version"] == 2
    times = [json.loads(l)[0] for l in cast[1:]]
    assert times == sorted(times)
    return "".join(json.loads(l)[2] for l in cast[1:] if json.loads(l)[1] == "o")


def test_sigterm_mid_session_keeps_it_partial_and_replayable(tmp_path, tshark):
    home = tmp_path / "home"
    head = frames_until("uid=", tmp_path)          # logged in, `echo st-t1-first` and `id` answered
    sensor = Sensor(home, "--pcap", "-", "--checkpoint-seconds", "1", stdin=subprocess.PIPE)
    assert sensor.p.stdin is not None
    sensor.p.stdin.write(head)
    sensor.p.stdin.flush()
    sensor.wait_started()
    live = wait_for("the session in progress", lambda: (st := sensor.status()) and st["sessions"]
                    and st["sessions"][0]["commands"] >= 2 and st["sessions"])
    sid = live[0]["id"]
    rc = sensor.stop(timeout=HANG_GUARD)            # the pcap stream is still open: only SIGTERM ends it
    assert rc == 0, sensor.log()
    log = sensor.log()
    assert "stopping: capture stopped" in log
    assert "capture-drops-stop" not in log          # nothing was left unprocessed
    s = json_doc(home, "show", sid, "--json")
    assert s["status"] == "partial" and s["end_reason"] == "sensor-stopped"
    assert "sensor was stopped" in s["status_reason"]
    got = [c["text"] for c in s["commands"]]
    assert got == WANT["commands"][:len(got)] and len(got) >= 2
    assert s["user"] == WANT["user"] and s["auth"] == "success"
    text = replayable_text(home, sid)
    assert "st-t1-first" in text and "uid=" in text
    assert run(home, "verify", "--all", check=False).returncode == 0
    for f in home.rglob("*"):                       # the typed password nowhere in the data directory
        if f.is_file():
            assert WANT["secrets"][0].encode() not in f.read_bytes(), f


@pytest.mark.parametrize("method,workers", [("ring", 1), ("socket", 1), ("ring", 2)])
def test_sigterm_under_a_backlog_counts_what_was_left(span, tmp_path, method, workers):
    """A flood the sensor cannot keep up with (the Telnet captures replayed at top speed),
    SIGTERM while it is behind, no time given to catch up."""
    home = tmp_path / "home"
    flood_file = flood_pcap(tmp_path)
    sensor = Sensor(home, "--interface", span.mirror, "--stop-seconds", "0", "--checkpoint-seconds", "1",
                    "--capture-method", method, "--workers", str(workers))
    flood = None
    try:
        sensor.wait_started()
        flood = subprocess.Popen(["ip", "netns", "exec", span.ns, "tcpreplay", "-i", span.inside, "--topspeed",
                                  "--loop=50", str(flood_file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        behind = wait_for("a backlog", lambda: (st := sensor.status()) and st["counters"]["capture_queue_bytes"] > 0
                          and st["counters"]["sessions_active"] > 0 and st, timeout=HANG_GUARD, every=0.05)
        assert behind["counters"]["packets"] > 0
        rc = sensor.stop(timeout=HANG_GUARD)
    finally:
        if flood is not None:
            flood.kill()
            flood.wait()
        if sensor.p.poll() is None:
            sensor.kill9()
    log = sensor.log()
    assert rc == 0, log
    # one line per sensor process that had something left, naming the count
    alerts = re.findall(r"ALERT capture-drops-stop(-worker-\d+)?: (?:\(sensor process \d+\) )?(\d+) packet\(s\) "
                        r"captured but not processed", log)
    assert alerts and len({who for who, _n in alerts}) == len(alerts) <= workers, log
    left = sum(int(n) for _who, n in alerts)
    assert left > 0
    final = json.loads((home / "run" / "status.json").read_text())
    c = final["counters"]
    assert final["running"] is False
    assert c["stop_drops"] == left
    # every packet read from the capture was either processed, dropped while running, or left at the stop
    assert c["processed_packets"] + c["own_drops"] + c["stop_drops"] >= c["packets"]
    # never more processed than read; what was left may all have been still in the kernel's
    # buffer (counted in stop_drops, never in packets), so processed can equal packets
    assert c["processed_packets"] <= c["packets"]
    rows = json_lines(home, "sessions", "--json")
    assert rows and not [r for r in rows if r["status"] == "live"]
    stopped = [r for r in rows if r["end_reason"] == "sensor-stopped"]
    reasons = sorted({(r["end_reason"], r["status"]) for r in rows})
    assert stopped and all(r["status"] == "partial" for r in stopped), (reasons, c, behind["counters"], log)
    with_screen = [r for r in stopped if "terminal.cast" in r["recordings"]]
    assert with_screen
    for r in with_screen[:3]:                       # written whole: each replays
        replayable_text(home, r["id"])
    assert run(home, "verify", "--all", check=False).returncode == 0
