"""Seeking in long recordings: a window (keyframe repaint + the recording's own events from
there) replayed through the terminal emulator must leave the screen exactly as replaying the
whole recording up to the same second does. That is the correctness oracle of the windowed
replay; the playbooks below pin the screen states a repaint must carry across a cut."""
from __future__ import annotations

import json
import random

import pytest

from reconstruct.seek import CastError, Emulator, SeekIndex, build_index, header_of, whole, window
from long_cast import shell_session


def replay(cast: bytes, until: float) -> Emulator:
    """What a player shows at ``until``: every event at or before it, fed in order."""
    header, first = header_of(cast)
    emu = Emulator(header["width"], header["height"])
    for line in cast[first:].splitlines():
        try:
            t, code, data = json.loads(line)
        except ValueError:
            continue
        if t > until:
            break
        emu.event(code, data)
    return emu


def state(emu: Emulator) -> dict:
    s = emu.screen

    def rows(buf) -> list:
        return [[(buf.get(y) or {}).get(x, s.default_char) for x in range(s.columns)] for y in range(s.lines)]

    def cur(c) -> tuple:
        return (c.x, c.y, c.attrs, c.hidden)

    margins = None if s.margins is None or (s.margins.top, s.margins.bottom) == (0, s.lines - 1) else tuple(s.margins)
    return {"size": (s.columns, s.lines), "screen": rows(s.buffer), "cursor": cur(s.cursor), "margins": margins,
            "modes": sorted(s.mode), "charsets": (s.g0_charset, s.g1_charset, s.charset),
            "behind": None if s.alt_saved is None else (rows(s.alt_saved[0]), cur(s.alt_saved[1])),
            "saved": [cur(p.cursor) for p in s.savepoints[-1:]]}


def cast_of(*events: tuple[float, str, str], width: int = 20, height: int = 5) -> bytes:
    lines = [json.dumps({"version": 2, "width": width, "height": height})]
    lines += [json.dumps(list(e)) for e in events]
    return ("\n".join(lines) + "\n").encode()


def assert_window_equals_whole(cast: bytes, index: SeekIndex, t: float) -> None:
    w = window(cast, index, t)
    assert state(replay(w.cast, t)) == state(replay(cast, t)), f"screen differs at {t} s"


# -- the oracle on a long, varied session -----------------------------------------------------------
@pytest.fixture(scope="module")
def half_hour() -> tuple[bytes, SeekIndex]:
    cast = shell_session(1800, seed=11)
    return cast, build_index(cast, keyframe_seconds=20, keyframe_bytes=8 * 1024)


def test_a_window_replays_to_the_same_screen_as_the_whole_recording_at_every_keyframe(half_hour):
    cast, index = half_hour
    assert len(index.keyframes) > 60
    # the cuts fall in the states that are hard to carry over, not only on a plain prompt
    assert any("\x1b[?1049h" in k.repaint for k in index.keyframes), "no cut inside a full-screen program"
    assert any("38;2;" in k.repaint for k in index.keyframes), "no 256-colour cell on any keyframe"
    rng = random.Random(5)
    times = sorted({k.t for k in index.keyframes} | {rng.uniform(0, index.duration) for _ in range(40)})
    # the whole recording replayed once, in step with the times asked
    header, first = header_of(cast)
    full = Emulator(header["width"], header["height"])
    events = [json.loads(line) for line in cast[first:].splitlines()]
    i = 0
    for t in times:
        while i < len(events) and events[i][0] <= t:
            full.event(events[i][1], events[i][2])
            i += 1
        w = window(cast, index, t)
        assert state(replay(w.cast, t)) == state(full), f"screen differs at {t} s"


def test_a_window_is_small_and_carries_the_recordings_own_event_lines(half_hour):
    cast, index = half_hour
    t = index.duration - 5
    w = window(cast, index, t, window_bytes=64 * 1024)
    head, _, rest = w.cast.partition(b"\n")
    assert json.loads(head) == header_of(cast)[0]
    kf = next(k for k in reversed(index.keyframes) if k.t <= t)
    assert w.start == kf.t <= t and w.end == index.duration and not w.whole
    body = rest.split(b"\n", 2 if kf.cols != 120 else 1)[-1]
    assert cast.endswith(body) and len(w.cast) < 64 * 1024 + 8 * 1024 + 40_000
    # and it is an asciicast every line of which parses, times never going back
    times = [json.loads(line)[0] for line in w.cast.splitlines()[1:]]
    assert times == sorted(times) and times[0] == kf.t


def test_the_index_survives_being_sealed_as_bytes(half_hour):
    cast, index = half_hour
    assert SeekIndex.from_bytes(index.to_bytes()) == index


# -- playbooks: state at the cut -> the screen after it ---------------------------------------------
CASES = {
    "cursor parked past the last column: the next character wraps": (
        (1, "o", "A" * 20), (2, "o", "B")),
    "full-screen program at the cut: leaving it brings back the shell screen": (
        (1, "o", "$ ls\r\nfile-1\r\n$ top"), (2, "o", "\x1b[?1049h\x1b[H\x1b[2Jtop - 10:00"),
        (3, "o", "\x1b[2;1Hmodbusd"), (4, "o", "\x1b[?1049l\r\n$ ")),
    "line-drawing character set chosen before the cut": (
        (1, "o", "\x1b(0lqk"), (2, "o", "x x\x1b(B ok")),
    "shift-out to G1 before the cut": (
        (1, "o", "\x0elqq"), (2, "o", "qk\x0f done")),
    "256 colours, true colour, bold reverse pen still on": (
        (1, "o", "\x1b[38;5;208mamber \x1b[48;2;10;20;30mblue\x1b[1;7m"), (2, "o", "still")),
    "wide characters": (
        (1, "o", "\u8b66\u544a: \u6e29\u5ea6"), (2, "o", "!")),
    "resized before the cut": (
        (1, "o", "first"), (2, "r", "30x8"), (3, "o", "\x1b[8;1Hbottom")),
    "scroll region at the cut: the next line feeds scroll only inside it": (
        (1, "o", "title\x1b[2;4r\x1b[4;1Hone"), (2, "o", "\r\ntwo\r\nthree\r\nfour")),
    "hidden cursor, insert mode": (
        (1, "o", "abcdef\x1b[?25l\x1b[4h\x1b[1;3H"), (2, "o", "XY")),
    "saved cursor restored after the cut": (
        (1, "o", "\x1b[2;5H\x1b[31m\x1b7\x1b[0m\x1b[4;1Hlower"), (2, "o", "\x1b8here")),
    "origin mode inside a region": (
        (1, "o", "\x1b[2;4r\x1b[?6h\x1b[2;2Hin"), (2, "o", "side")),
    "after a clear, nothing of the old screen": (
        (1, "o", "old text"), (2, "o", "\x1b[H\x1b[2Jnew")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_keyframe_cut_carries_the_terminal_state(name):
    cast = cast_of(*CASES[name])
    index = build_index(cast, keyframe_seconds=0.5)  # a keyframe before every event
    assert len(index.keyframes) == len(CASES[name])
    for t in [k.t for k in index.keyframes] + [e[0] for e in CASES[name]]:
        assert_window_equals_whole(cast, index, t)


def test_a_cut_never_splits_an_escape_sequence():
    cast = cast_of((1, "o", "plain \x1b["), (2, "o", "31mred"), (3, "o", " more"))
    index = build_index(cast, keyframe_seconds=0.5)
    assert [k.index for k in index.keyframes] == [0, 2]  # not between the two halves of ESC [ 31 m
    assert_window_equals_whole(cast, index, 3)


# -- bad input --------------------------------------------------------------------------------------
def test_not_an_asciicast_is_one_clear_error():
    with pytest.raises(CastError, match="header"):
        build_index(b"\x00\x01garbage\n[1, \"o\", \"x\"]\n")
    with pytest.raises(CastError, match="version 2"):
        build_index(b'{"version": 1}\n')


def test_damaged_event_lines_are_skipped_like_the_player_skips_them():
    cast = cast_of((1, "o", "one "), (2, "o", "two")).replace(b'[2, "o"', b'[2, "o" oops', 1) + b'[3, "o", " three"]\n'
    index = build_index(cast, keyframe_seconds=0.5)
    assert index.events == 2
    assert_window_equals_whole(cast, index, 3)


def test_an_index_of_another_recording_is_refused():
    a, b = cast_of((1, "o", "a")), cast_of((1, "o", "bb"))
    with pytest.raises(CastError, match="another recording"):
        window(b, build_index(a), 1)


def test_a_small_recording_is_its_own_window():
    cast = cast_of((1, "o", "a"), (7.5, "o", "b"))
    w = whole(cast)
    assert w.whole and w.cast == cast and (w.start, w.end, w.duration) == (0.0, 7.5, 7.5)
