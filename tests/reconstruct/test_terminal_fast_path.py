"""The terminal's fast paths (echoed keys straight to the screen, common controls and CSI
sequences without pyte's character-at-a-time parser) must leave exactly the screen pyte itself
would: same characters, attributes, cursor, modes, scrolled-off lines and alternate screen.

Oracle: the same ``_Screen`` fed through plain ``pyte.Stream`` (behind the same escape guard),
on random shell-like output cut at random places (so sequences are split across chunks)."""
from __future__ import annotations

import codecs
import random

import pyte
import pytest

from reconstruct.terminal import Terminal, _EscapeGuard, _Screen

PIECES = [
    "ls -l", "a", " ", "x", "/etc/passwd", "ü", "日本", "\r\n", "\r", "\n", "\b", "\t", "\x07", "\x00", "\x7f",
    "\x1b[m", "\x1b[0m", "\x1b[01;32m", "\x1b[1;34;41m", "\x1b[38;5;208m", "\x1b[K", "\x1b[2K", "\x1b[J",
    "\x1b[2J", "\x1b[H", "\x1b[5;10H", "\x1b[;7H", "\x1b[3A", "\x1b[2B", "\x1b[4C", "\x1b[D", "\x1b[P",
    "\x1b[3@", "\x1b[2X", "\x1b[L", "\x1b[M", "\x1b[2;20r", "\x1b[r", "\x1b[?2004h", "\x1b[?2004l",
    "\x1b[?1049h", "\x1b[?1049l", "\x1b[?25l", "\x1b[?25h", "\x1b[4h", "\x1b[4l", "\x1b[20G", "\x1b[3d",
    "\x1b]0;user@host: ~\x07", "\x1b]2;only the title\x1b\\", "\x1b]1;icon\x07", "\x1b]0;\x07",
    "\x1b]10;?\x07", "\x1b]0;half", "\x1b(B", "\x1b7", "\x1b8", "\x1bM", "\x1b[6n", "\x1b[>c", "\x1b[1;2;3",
    "\x0e", "\x0f", "\x9b1m", "root@plc-gw:~# ", "Password: ", "x" * 90, "\x1b(0lqqk\x1b(B", "\x1b)0\x0eqqq\x0f",
]


def reference(cols: int, rows: int):  # type: ignore[no-untyped-def]
    screen = _Screen(cols, rows)
    stream = pyte.Stream(screen)
    stream.use_utf8 = False            # as the terminal sets it (charset designations honoured)
    guard = _EscapeGuard()
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(data: bytes) -> None:
        nonlocal stream
        text = utf8.decode(data)
        if text:
            try:
                stream.feed(guard.filter(text))
            except Exception:
                stream = pyte.Stream(screen)
                stream.use_utf8 = False
    return screen, feed


def state(screen: _Screen) -> tuple:
    cells = tuple(tuple(sorted(screen.buffer[y].items())) for y in range(screen.lines))
    c = screen.cursor
    return (cells, (c.x, c.y, c.attrs, c.hidden), tuple(sorted(screen.mode)), screen.margins,
            tuple(screen.history), screen.scrolled, screen.alt_saved is None, screen.title, screen.icon_name)


@pytest.mark.parametrize("seed", range(40))
def test_fast_paths_leave_the_screen_pyte_leaves(seed: int) -> None:
    rnd = random.Random(seed)
    cols, rows = rnd.choice([(80, 24), (40, 10), (132, 43)])
    text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(50, 400)))
    data = text.encode("utf-8")
    term = Terminal(cols, rows)
    ref_screen, ref_feed = reference(cols, rows)
    pos = 0
    while pos < len(data):
        # mostly single keystrokes and short runs, as on the wire
        n = rnd.choice([1, 1, 1, 2, 3, 5, 8, 30, 200])
        chunk = data[pos:pos + n]
        pos += n
        term.output(chunk, float(pos))
        ref_feed(chunk)
        assert state(term.screen) == state(ref_screen), f"after byte {pos}: {chunk!r}"


def test_line_drawing_reads_as_the_user_saw_it() -> None:
    # a dialog box as whiptail or a router menu draws it: DEC special graphics between ESC ( 0 / ESC ( B
    term = Terminal(40, 5)
    term.output(b"\x1b(0lqqqqk\x1b(B\r\nx Menu x\r\n\x1b(0mqqqqj\x1b(B", 0.0)
    assert [term.screen.row_text(y) for y in range(3)] == ["┌────┐", "x Menu x", "└────┘"]
