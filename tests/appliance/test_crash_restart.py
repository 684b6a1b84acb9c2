"""The sensor dies mid-session (``kill -9``): what was recorded up to the last checkpoint is
kept. While it ran, the session was visible as ``live`` and could be followed as it happened;
after the restart it is ``partial``, says why, replays, and the vault verifies.

The packets come as a pcap stream on the sensor's stdin, cut by tshark at the frames where
the server's answers appear, so the test decides when each part of the session "happens"."""
from __future__ import annotations

import json
import subprocess
import time

from live_harness import ROOT, SESSIONTAP, Sensor, env_for, json_doc, json_lines, run, wait_for

T1 = ROOT / "pcaps" / "telnet" / "t1_inetutils_full_session.pcap"
WANT = json.loads((ROOT / "pcaps" / "telnet" / "manifest.json").read_text())[T1.name]["sessions"][0]


def first_frame_with(text: str, after: int = 0) -> int:
    """Independent of our parser: tshark finds the first frame after ``after`` whose TCP
    payload holds ``text``."""
    flt = f'frame.number > {after} && tcp.payload contains "{text}"'
    p = subprocess.run(["tshark", "-r", str(T1), "-Y", flt, "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True, check=True)
    return int(p.stdout.split()[0])


def frames(first: int, last: int, tmp) -> bytes:  # type: ignore[no-untyped-def]
    out = tmp / f"part-{first}-{last}.pcap"
    subprocess.run(["editcap", "-F", "pcap", "-r", str(T1), str(out), f"{first}-{last}"], check=True,
                   capture_output=True)
    return out.read_bytes()


def test_kill_9_mid_session_keeps_it_partial_and_intact(tmp_path, tshark):
    home = tmp_path / "home"
    uid = first_frame_with("uid=")
    gnu = first_frame_with("GNU/Linux", after=uid)
    part1 = frames(1, uid, tmp_path)                 # login, `echo st-t1-first`, `id` answered
    part2 = frames(uid + 1, gnu, tmp_path)[24:]      # `uname -a` answered (records only)
    sensor = Sensor(home, "--pcap", "-", "--checkpoint-seconds", "1", stdin=subprocess.PIPE)
    assert sensor.p.stdin is not None
    sensor.p.stdin.write(part1)
    sensor.p.stdin.flush()
    sensor.wait_started()
    live = wait_for("the session in progress", lambda: (st := sensor.status()) and st["sessions"]
                    and st["sessions"][0]["commands"] >= 2 and st["sessions"])
    sid = live[0]["id"]
    assert live[0]["user"] == WANT["user"]
    # `sessiontap live` lists it; `sessiontap live ID` follows its screen
    listed = json_lines(home, "live", "--json")
    assert [s["id"] for s in listed] == [sid]
    follower = subprocess.Popen([*SESSIONTAP, "live", sid[:8], "--json"], env=env_for(home), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.6)
    sensor.p.stdin.write(part2)
    sensor.p.stdin.flush()
    # the catalog shows it as live, with what has happened so far, within a checkpoint or two
    row = wait_for("a checkpoint with `uname -a`", lambda: [
        s for s in json_lines(home, "sessions", "--json") if s["id"] == sid and s["status"] == "live"
        and s["commands"] >= 3])
    assert row[0]["end"] is None
    time.sleep(1.5)                                   # one more checkpoint after the last packet
    sensor.kill9()
    out, _ = follower.communicate(timeout=20)
    screen = "".join(json.loads(l).get("o", "") for l in out.decode().splitlines())
    assert "GNU/Linux" in screen                      # typed after the follower attached
    assert json.loads(out.decode().splitlines()[0])["session"]["id"] == sid

    # restart (no more packets): the interrupted session is closed as partial, nothing lost
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(part1[:24])
    restarted = Sensor(home, "--pcap", str(empty))
    assert restarted.wait() == 0, restarted.log()
    assert "kept as partial" in restarted.log()
    s = json_doc(home, "show", sid, "--json")
    assert s["status"] == "partial"
    assert "sensor stopped" in s["status_reason"]
    assert s["end_reason"] == "sensor-stopped" and s["end"] is not None
    got = [c["text"] for c in s["commands"]]
    assert got == WANT["commands"][:len(got)] and "uname -a" in got and len(got) < len(WANT["commands"])
    assert s["user"] == WANT["user"] and s["auth"] == "success"
    assert "terminal.cast" in s["recordings"]
    cast = run(home, "export", sid, "--format", "asciicast", "-o", "-").stdout.decode().splitlines()
    assert json.loads(cast[0])["version"] == 2
    text = "".join(json.loads(l)[2] for l in cast[1:] if json.loads(l)[1] == "o")
    for marker in ("st-t1-first", "uid=", "GNU/Linux"):
        assert marker in text
    times = [json.loads(l)[0] for l in cast[1:]]
    assert times == sorted(times)
    assert run(home, "verify", "--all", check=False).returncode == 0
    # no typed password anywhere in the data directory
    for f in home.rglob("*"):
        if f.is_file():
            assert WANT["secrets"][0].encode() not in f.read_bytes(), f
