"""The activity strip of a recording: an auditor sees where in a session the user typed, where the
screen moved and where the tagged actions are, before playing any of it."""
from __future__ import annotations

import json

import pytest

from reconstruct.activity import activity
from reconstruct.seek import CastError
from sessiontap_cli import ROOT

T2 = ROOT / "pcaps" / "telnet" / "t2_failed_then_success.pcap"


def by_definition(cast: bytes, bins: int) -> tuple[list[int], list[int], list[int]]:
    """What the strip must say, from every event parsed as JSON."""
    events = [json.loads(l) for l in cast.decode().splitlines()[1:]]
    duration = max(t for t, _c, _d in events)
    width = duration / bins
    inp, out, marks = [0] * bins, [0] * bins, [0] * bins
    for t, code, data in events:
        i = min(int(t / width), bins - 1)
        if code == "i":
            inp[i] += 1
        elif code == "o":
            out[i] += len(json.dumps(data, ensure_ascii=False)) - 2
        elif code == "m":
            marks[i] += 1
    return inp, out, marks


@pytest.mark.parametrize("bins", [1, 7, 200])
def test_a_real_session_strip_counts_every_key_output_and_tag(cli, bins):
    cli("import", "-q", str(T2))
    rows = cli.json_lines("sessions", "--json")
    tagged = next(r for r in rows if r["tags"])
    cast = cli("export", tagged["id"], "--format", "asciicast", "-o", "-").stdout
    a = activity(cast, bins)
    assert (a.input, a.output, a.markers) == by_definition(cast, bins)
    assert len(a.input) == bins and sum(a.markers) >= len(tagged["tags"]) and sum(a.input) > 0
    assert a.duration == pytest.approx(max(json.loads(l)[0] for l in cast.decode().splitlines()[1:]))


def test_lines_that_are_not_events_are_passed_over():
    cast = (b'{"version": 2, "width": 80, "height": 24}\n'
            b'[0.5, "o", "login: "]\n'
            b'not an event\n'
            b'[1.0, "i", "r"]\n'
            b'[1.5, "r", "100x30"]\n'
            b'[2.0, "m", "destructive: rm -rf /x"]\n'
            b'[4.0, "o", "\\u001b[0m$ "]\n')
    a = activity(cast, 4)
    assert a.duration == 4.0 and a.bin_seconds == 1.0
    assert a.input == [0, 1, 0, 0] and a.markers == [0, 0, 1, 0]
    assert a.output == [7, 0, 0, len('\\u001b[0m$ ')]


def test_not_a_recording_is_refused():
    with pytest.raises(CastError):
        activity(b"\x00\x01 garbage\n[1.0, \"o\", \"x\"]\n")
    with pytest.raises(ValueError):
        activity(b'{"version": 2}\n', bins=0)
