"""Sessions in progress show up and finish in the console without a reload: the real live
sensor (`sessiontap sensor --pcap -`) is fed the t2 capture in two halves with a pause
between, as a mirror port would deliver it, while an auditor watches the sessions page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dpkt
from console_harness import ROOT, T2, Running
from test_browser import browser, sign_in  # noqa: F401  (the Chromium fixture)


def packets() -> tuple[int, list]:
    with open(T2, "rb") as f:
        r = dpkt.pcap.Reader(f)
        return r.datalink(), list(r)


def test_a_session_in_progress_appears_live_and_completes_without_reload(browser, tmp_path):
    home = tmp_path / "home"
    console = Running(home)  # makes the vault before the sensor starts
    sensor = None
    try:
        auditor = console.user("sam", "auditor")
        page = browser.new_page()
        sign_in(page, console.url, auditor)
        page.wait_for_selector("#summary:has-text('no session')")
        page.evaluate("() => { window.stSamePage = 'yes'; }")

        env = dict(os.environ, SESSIONTAP_HOME=str(home))
        sensor = subprocess.Popen([sys.executable, "-m", "appliance.cli", "sensor", "--pcap", "-", "--port", "2323",
                                   "--subnet", "127.0.0.0/8", "--checkpoint-seconds", "0.5"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=env, cwd=ROOT)
        linktype, pkts = packets()
        mid = len(pkts) // 2
        pcap = dpkt.pcap.Writer(sensor.stdin, linktype=linktype, snaplen=65535)
        for ts, buf in pkts[:mid]:
            pcap.writepkt(buf, ts)
        sensor.stdin.flush()
        row = page.wait_for_selector("#sessions tbody tr.live", timeout=30_000)
        assert "live" in row.inner_text() and "tndemo" in row.inner_text()
        sid = row.get_attribute("data-id")
        # what has been recorded so far already replays (the sensor's checkpoint parts, audited)
        cast = page.evaluate(f"() => fetch('/api/sessions/{sid}/recording').then(r => r.text())")
        assert cast.startswith('{"version": 2') and "tndemo" in cast
        # and its activity strip is made from those parts
        act = page.evaluate(f"() => fetch('/api/sessions/{sid}/activity?bins=20').then(r => r.json())")
        keys = sum(1 for line in cast.splitlines()[1:] if line and json.loads(line)[1] == "i")
        assert len(act["input"]) == 20 and act["duration"] > 0 and act["view"] is None
        assert keys <= sum(act["input"])  # the parts may have grown by a checkpoint since
        watch = browser.new_page()
        watch.goto(f"{console.url}/sessions/{sid}")
        watch.wait_for_function("() => window.stReady === true")
        assert "live" in watch.inner_text("#title") and "in progress" in watch.inner_text("#meta")
        assert "exit" not in watch.inner_text("#commands")
        watch.evaluate("() => { window.stSamePage = 'yes'; }")

        for ts, buf in pkts[mid:]:
            pcap.writepkt(buf, ts)
        sensor.stdin.close()
        assert sensor.wait(timeout=60) == 0, sensor.stdout.read().decode()
        page.wait_for_selector(f"#sessions tbody tr[data-id='{sid}']:not(.live)", timeout=30_000)
        assert "complete" in page.inner_text(f"#sessions tbody tr[data-id='{sid}']")
        assert page.evaluate("() => window.stSamePage") == "yes"  # no reload happened
        # the session page followed it too: finished, every command listed, the end replayable
        watch.wait_for_selector("#meta dd:has-text('complete')", timeout=30_000)
        watch.wait_for_selector("#commands a:has-text('exit')", timeout=30_000)
        assert "live" not in watch.inner_text("#title")
        assert watch.evaluate("() => window.stSamePage") == "yes"
        watch.close()
        page.close()
    finally:
        if sensor is not None and sensor.poll() is None:
            sensor.kill()
            sensor.wait()
        console.close()
