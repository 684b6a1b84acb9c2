"""Two sensor processes share the mirror port (``capture.workers = 2``). One of them dies: the
operator is told (one alert line), the sensor goes on, and the sessions that cross the port
afterwards are all recorded - the kernel gives the dead process's flows to the one left."""
from __future__ import annotations

import json
import os
import signal

from live_harness import ROOT, Sensor, json_lines, run, wait_for

TELNET = ROOT / "pcaps" / "telnet"
REPLAYED = [TELNET / n for n in ("t1_inetutils_full_session.pcap", "t2_failed_then_success.pcap",
                                 "t4_two_concurrent_sessions.pcap")]
MANIFEST = json.loads((TELNET / "manifest.json").read_text())
EXPECTED = sum(len(MANIFEST[p.name]["sessions"]) for p in REPLAYED)


def test_a_worker_dies_the_sensor_goes_on_and_says_so(span, tmp_path):
    home = tmp_path / "home"
    sensor = Sensor(home, "--interface", span.mirror, "--workers", "2", "--checkpoint-seconds", "1")
    try:
        sensor.wait_started()
        worker = wait_for("the second process", lambda: (sensor.status() or {}).get("workers", {}).get("1"))
        assert worker["pid"] != sensor.p.pid
        os.kill(worker["pid"], signal.SIGKILL)
        wait_for("the alert", lambda: any(a["name"] == "capture-worker-1" for a in (sensor.status() or {})
                                          .get("alerts", [])))
        assert sensor.p.poll() is None
        span.replay(*REPLAYED)
        wait_for("every session recorded by the process left", lambda: (
            (st := sensor.status()) and sum(st["counters"]["sessions_total"].values()) >= EXPECTED
            and st["counters"]["sessions_active"] == 0), timeout=60)
        health = run(home, "health", check=False)
        assert health.returncode == 1 and "capture-worker-1" in health.stdout.decode()
    finally:
        rc = sensor.stop(timeout=60)
    log = sensor.log()
    assert rc == 0, log
    assert log.count("ALERT capture-worker-1:") == 1, log
    rows = json_lines(home, "sessions", "--json")
    assert len(rows) == EXPECTED
    want = sorted((s["user"], len(s["commands"])) for p in REPLAYED for s in MANIFEST[p.name]["sessions"])
    assert sorted((r["user"], r["commands"]) for r in rows) == want
    assert all(r["status"] == "complete" for r in rows)
