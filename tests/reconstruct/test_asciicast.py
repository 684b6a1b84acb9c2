"""asciicast v2 out of terminal events: parses back as JSON, plays in asciinema, keeps secrets out."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from reconstruct.asciicast import render, to_asciicast
from reconstruct.events import CommandEntered, Input, Metadata, Output, Resize, Tagged
from reconstruct.rules import RuleSet
from reconstruct.session import SessionReconstructor
from reconstruct.telnet import TelnetDecoder

IAC, SB, SE = b"\xff", b"\xfa", b"\xf0"
SECRET = b"Pw-k7Qm2xR9vL"


def parse(cast: bytes) -> tuple[dict, list[list]]:
    lines = cast.decode("utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(x) for x in lines[1:]]


def telnet_session() -> SessionReconstructor:
    """A short real-shaped Telnet session through the decoder, the default rules and the record."""
    rec = SessionReconstructor(100.0, "telnet", "10.0.0.2", 40000, "10.0.0.1", 23, False,
                               TelnetDecoder(), RuleSet.default().apply)
    t = 100.0
    steps = [("s2c", b"\xff\xfd\x18\xff\xfd\x1f"),
             ("c2s", IAC + SB + b"\x18\x00XTERM" + IAC + SE + IAC + SB + b"\x1f\x00\x64\x00\x1e" + IAC + SE),
             ("s2c", b"vm login: ")] + [("c2s", bytes((c,))) for c in b"tndemo"] + [
             ("s2c", b"tndemo"), ("c2s", b"\r"), ("s2c", b"\r\nPassword: ")] + [
             ("c2s", bytes((c,))) for c in SECRET] + [
             ("c2s", b"\r"), ("s2c", b"\r\ntndemo@vm:~$ ")] + [
             x for c in b"sudo reboot" for x in (("c2s", bytes((c,))), ("s2c", bytes((c,))))] + [
             ("c2s", b"\r"), ("s2c", b"\r\n\xe2\x9c"), ("s2c", b"\x93 bye\r\ntndemo@vm:~$ ")]
    for direction, data in steps:
        t += 0.25
        rec.data(direction, data, t)
    rec.close(t + 1, "fin")
    return rec


def test_session_recording_header_events_and_markers():
    r = telnet_session().record
    header, events = parse(render(r))
    assert header == {"version": 2, "width": 100, "height": 30, "timestamp": 100,
                      "env": {"TERM": "xterm"}, "title": "tndemo@10.0.0.1:23 (telnet)"}
    codes = {e[1] for e in events}
    assert codes == {"o", "i", "r", "m"}
    assert [e[2] for e in events if e[1] == "m"] == ["privilege-change: sudo reboot", "destructive: sudo reboot"]
    assert [e[2] for e in events if e[1] == "r"] == ["100x30"]
    times = [e[0] for e in events]
    assert times == sorted(times) and times[0] >= 0
    out = "".join(e[2] for e in events if e[1] == "o")
    assert "\u2713 bye" in out                       # a UTF-8 character split over two segments
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert "*" * len(SECRET) in typed and SECRET.decode() not in render(r).decode()


def test_plain_events_default_size_and_no_title():
    cast = to_asciicast([Output(10.0, b"hi"), Metadata(10.5, "terminal", "x"), Input(11.0, b"**", True),
                         Tagged(12.0, "destructive", "high", "r", "reload", "command", 0),
                         CommandEntered(12.0, 0, "reload")], start=9.0)
    header, events = parse(cast)
    assert (header["width"], header["height"], "title" in header) == (80, 24, False)
    assert events == [[1.0, "o", "hi"], [2.0, "i", "**"], [3.0, "m", "destructive: reload"]]


def test_times_never_go_backwards():
    _, events = parse(to_asciicast([Output(5.0, b"a"), Input(4.999, b"b"), Resize(6.0, 90, 20)], start=5.0))
    assert [e[0] for e in events] == [0.0, 0.0, 1.0]


@pytest.mark.skipif(shutil.which("asciinema") is None or shutil.which("script") is None,
                    reason="asciinema and script (Debian asciinema, bsdutils) not installed")
@pytest.mark.parametrize("how", [["cat"], ["play", "-i", "0.05", "-s", "20"]])
def test_asciinema_plays_the_recording(tmp_path, how):
    path = tmp_path / "session.cast"
    path.write_bytes(render(telnet_session().record))
    # asciinema insists on a terminal: give it one with script(1)
    cmd = " ".join(["asciinema", *how, str(path)])
    res = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert b"tndemo@vm:~$ sudo reboot" in res.stdout
