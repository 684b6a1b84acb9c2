"""The user's story on real captures: an operator replays a pcap of Telnet sessions and gets,
per session, who logged in (and who failed), every command as it really ran, what the
screen showed, the event tags, and no typed password anywhere.

Captures and expectations come from ``pcaps/telnet/`` (made by ``pcaps/make/telnet/gen.sh``
against real inetutils/busybox servers and clients; the manifest is written from the
scenario parameters, not from this code). The sensor's ``read_streams`` feeds the decoder.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconstruct.events import (AuthAttempt, CommandEntered, DecodeError, Gap, Metadata, Output, Resize,
                                Tagged)
from reconstruct.rules import RuleSet
from reconstruct.telnet import TelnetDecoder
from sensor.pipeline import read_streams
from sensor.streams import StreamClosed, StreamData, StreamGap, StreamOpened

PCAPS = Path(__file__).resolve().parents[2] / "pcaps" / "telnet"
MANIFEST = json.loads((PCAPS / "manifest.json").read_text())
RULES = RuleSet.default()



def decode_capture(name: str) -> list[dict]:
    """Every Telnet connection of the capture, in order of start: its events and tags."""
    sessions: dict[int, dict] = {}
    for ev in read_streams(str(PCAPS / name)):
        if isinstance(ev, StreamOpened):
            if ev.protocol == "telnet":
                sessions[ev.flow_id] = {"opened": ev, "decoder": TelnetDecoder(), "events": []}
            continue
        s = sessions.get(ev.flow_id)
        if s is None:
            continue
        d = s["decoder"]
        if isinstance(ev, StreamData):
            out = d.feed(ev.direction, ev.data, ev.ts)
        elif isinstance(ev, StreamGap):       # recorded as the session layer does
            out = [Gap(ev.ts, ev.direction, ev.nbytes), *d.gap(ev.direction, ev.nbytes, ev.ts)]
        elif isinstance(ev, StreamClosed):
            out = d.close(ev.ts, ev.reason)
        else:
            out = []
        for e in out:
            s["events"].append(e)
            s["events"] += RULES.apply(e)
    return [s for _, s in sorted(sessions.items(), key=lambda kv: kv[1]["opened"].ts)]


CASES = [pytest.param(name, i, id=f"{name.removesuffix('.pcap')}-{i}")
         for name, entry in MANIFEST.items() if entry.get("expect_error") is None
         for i, s in enumerate(entry["sessions"]) if s["protocol"] == "telnet"]


@pytest.fixture(scope="module")
def decoded() -> dict[str, list[dict]]:
    return {}


def session_of(decoded: dict, name: str, i: int) -> tuple[dict, dict]:
    if name not in decoded:
        decoded[name] = decode_capture(name)
    expected = MANIFEST[name]["sessions"][i]
    got = decoded[name]
    assert len(got) == len(MANIFEST[name]["sessions"]), "one decoded session per connection"
    return got[i], expected


def of(events: list, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


@pytest.mark.parametrize("name, i", CASES)
def test_who_logged_in_and_every_attempt(decoded, name, i):
    got, exp = session_of(decoded, name, i)
    attempts = [{"user": a.user, "result": a.result} for a in of(got["events"], AuthAttempt)]
    assert attempts == exp["auth_attempts"]
    results = [a["result"] for a in attempts]
    auth = "success" if "success" in results else ("failure" if "failure" in results else "unknown")
    assert auth == exp["auth"]
    assert got["opened"].picked_up == exp["picked_up"]
    assert got["opened"].server_port == exp["server_port"]


@pytest.mark.parametrize("name, i", CASES)
def test_commands_as_they_really_ran(decoded, name, i):
    got, exp = session_of(decoded, name, i)
    commands = [c.text for c in of(got["events"], CommandEntered)]
    assert commands == exp["commands"]
    assert not set(commands) & set(exp["not_commands"])
    assert [c.index for c in of(got["events"], CommandEntered)] == list(range(len(commands)))


@pytest.mark.parametrize("name, i", CASES)
def test_what_the_screen_showed(decoded, name, i):
    got, exp = session_of(decoded, name, i)
    screen = b"".join(o.data for o in of(got["events"], Output)).decode("utf-8", "replace")
    for text in exp["output_contains"]:
        assert text in screen
    for text in exp.get("output_not_contains", []):
        assert text not in screen
    for text in exp.get("output_once", []):
        assert screen.count(text) == 1
    if exp["picked_up"]:
        return      # the option negotiation (terminal type, window size) is before the capture
    meta = {m.key: m.value for m in of(got["events"], Metadata)}
    assert meta.get("terminal") == exp.get("terminal_type")
    if "env_user" in exp:
        assert meta.get("env-user") == exp["env_user"]
    sizes = [(r.cols, r.rows) for r in of(got["events"], Resize)]
    assert sizes[:1] == [(exp["window"]["cols"], exp["window"]["rows"])]


@pytest.mark.parametrize("name, i", CASES)
def test_event_tags_from_the_default_rules(decoded, name, i):
    got, exp = session_of(decoded, name, i)
    tagged = of(got["events"], Tagged)
    assert set(exp["tags"]) <= {t.tag for t in tagged}
    commands = {c.index: c.text for c in of(got["events"], CommandEntered)}
    for ct in exp["command_tags"]:
        tags = [t.tag for t in tagged if t.ref_kind == "command" and commands.get(t.ref_index) == ct["command"]]
        assert tags == ct["tags"], ct["command"]


@pytest.mark.parametrize("name, i", CASES)
def test_no_password_in_any_event_and_gaps_reported(decoded, name, i):
    got, exp = session_of(decoded, name, i)
    everything = repr(got["events"])
    for secret in exp["secrets"]:
        assert secret not in everything
        assert secret.encode() not in b"".join(getattr(e, "data", b"") for e in got["events"])
    assert [{"direction": g.direction, "nbytes": g.nbytes} for g in of(got["events"], Gap)] == exp["gaps"]
    assert of(got["events"], DecodeError) == []
