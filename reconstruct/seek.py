"""Open a long terminal recording anywhere in constant time: keyframes and windows.

A browser player (asciinema-player) that is asked for second 28,000 of an 8-hour asciicast
must download the whole file, parse every event and replay all the output before it, which
takes seconds and grows with the length. Video codecs solve the same problem with keyframes,
and so does this module:

* ``build_index(cast)`` replays the recording once through the project's terminal emulator
  (``reconstruct.terminal``'s pyte screen) and, every ``KEYFRAME_SECONDS`` of recording time or
  ``KEYFRAME_BYTES`` of cast, records the byte offset of the next event and a *keyframe*: the
  emulated screen at that moment written out as escape sequences that repaint it on an empty
  terminal (text, colours and attributes, cursor, scroll region, modes, character sets, and
  the main screen behind a full-screen program).
* ``window(cast, index, t)`` answers with a small, valid asciicast v2: the original header,
  the keyframe at or before ``t`` as one output event at its own time, then the recording's
  own event lines from there for about ``WINDOW_BYTES``. Event times stay those of the
  recording, so the player's clock is the session's clock.

Replaying a window through the emulator gives the same screen as replaying the whole
recording up to the same second (``tests/console/test_seek.py`` checks exactly that).
Keyframes are cut only where pyte's parser is between escape sequences, so no sequence is
split by a cut. Pure functions over bytes: no vault, no I/O (the importer seals an index beside
each long recording; the console's ``appliance/console/replay.py`` reads them).
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass

import pyte
from pyte import modes as mo

from reconstruct.terminal import _EscapeGuard, _Screen, emulate, new_stream

FORMAT = 1
KEYFRAME_SECONDS = 60.0          # recording time between keyframes
KEYFRAME_BYTES = 128 * 1024      # cast bytes between keyframes (bursts of output)
WINDOW_BYTES = 512 * 1024        # cast bytes a window carries after its keyframe
WHOLE_LIMIT = 1 << 20            # a recording this small is served whole: no index needed
MAX_EVENT_BYTES = 4 << 20        # a longer line is not a recording event (bounded parsing)


def index_name(cast_name: str) -> str:
    """The artefact name of the seek index of ``cast_name`` (its first version)."""
    return cast_name + ".seek"


class CastError(ValueError):
    """The bytes are not an asciicast v2 recording (one sentence why)."""


@dataclass(frozen=True, slots=True)
class Keyframe:
    t: float          # recording second the screen below belongs to
    offset: int       # byte offset in the cast of the first event not in the screen
    index: int        # number of events replayed into the screen
    cols: int
    rows: int
    repaint: str      # escape sequences that draw the screen on a fresh terminal


@dataclass(frozen=True, slots=True)
class SeekIndex:
    source_sha256: str
    duration: float
    events: int
    size: int          # cast bytes
    keyframes: tuple[Keyframe, ...]

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, "source_sha256": self.source_sha256, "duration": self.duration,
                           "events": self.events, "size": self.size,
                           "keyframes": [[k.t, k.offset, k.index, k.cols, k.rows, k.repaint]
                                         for k in self.keyframes]},
                          ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SeekIndex":
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise CastError(f"seek index format {doc.get('format')!r} is not {FORMAT}")
        return cls(doc["source_sha256"], float(doc["duration"]), int(doc["events"]), int(doc["size"]),
                   tuple(Keyframe(float(t), int(o), int(i), int(c), int(r), str(p))
                         for t, o, i, c, r, p in doc["keyframes"]))


@dataclass(frozen=True, slots=True)
class Window:
    cast: bytes       # a valid asciicast v2
    start: float      # time of its keyframe
    end: float        # the next window starts here (== duration for the last one)
    duration: float   # of the whole recording
    whole: bool       # the window is the whole recording


# -- reading a cast ---------------------------------------------------------------------------
def header_of(cast: bytes) -> tuple[dict, int]:
    """The header object and the offset of the first event line."""
    nl = cast.find(b"\n")
    first = cast if nl < 0 else cast[:nl]
    try:
        header = json.loads(first)
    except ValueError:
        raise CastError("the first line is not a JSON asciicast header") from None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise CastError("the header is not an asciicast version 2 header")
    return header, (len(cast) if nl < 0 else nl + 1)


def _events(cast: bytes, pos: int):
    """(offset, time, code, data) of every event line from ``pos``; damaged lines are skipped
    (the player skips them too), so one bad line costs that line, not the recording."""
    n = len(cast)
    while pos < n:
        nl = cast.find(b"\n", pos)
        end = n if nl < 0 else nl
        if 0 < end - pos <= MAX_EVENT_BYTES:
            try:
                t, code, data = json.loads(cast[pos:end])
                yield pos, float(t), code, data
            except (ValueError, TypeError):
                pass
        pos = end + 1


# -- the screen as escape sequences -----------------------------------------------------------
_FG = {v: k for k, v in pyte.graphics.FG_ANSI.items()} | {v: k for k, v in pyte.graphics.FG_AIXTERM.items()}
_BG = {v: k for k, v in pyte.graphics.BG_ANSI.items()} | {v: k for k, v in pyte.graphics.BG_AIXTERM.items()}


def _color(value: str, named: dict[str, int], extended: int) -> str:
    code = named.get(value)
    if code is not None:
        return str(code)
    try:  # pyte keeps 256-colour and true-colour cells as rrggbb
        r, g, b = int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    except (ValueError, IndexError):
        return str(extended + 1)  # unknown: default colour
    return f"{extended};2;{r};{g};{b}"


def _sgr(ch) -> str:  # noqa: ANN001 - a pyte Char
    parts = ["0"]
    if ch.bold:
        parts.append("1")
    if ch.italics:
        parts.append("3")
    if ch.underscore:
        parts.append("4")
    if ch.blink:
        parts.append("5")
    if ch.reverse:
        parts.append("7")
    if ch.strikethrough:
        parts.append("9")
    if ch.fg != "default":
        parts.append(_color(ch.fg, _FG, 38))
    if ch.bg != "default":
        parts.append(_color(ch.bg, _BG, 48))
    return "\x1b[" + ";".join(parts) + "m"


def _attrs(ch):  # noqa: ANN001, ANN202 - the attribute part of a Char, for run grouping
    return ch[1:]


def _paint(buffer, cols: int, rows: int, default) -> list[str]:  # noqa: ANN001
    """Every non-blank cell of a screen buffer, row by row, with as few SGR changes as possible."""
    out: list[str] = []
    blank = _attrs(default)
    pen = blank
    for y in range(rows):
        line = buffer.get(y) if isinstance(buffer, dict) else buffer[y]
        if not line:
            continue
        cells = [(x, c) for x, c in line.items() if x < cols and (c.data != " " or _attrs(c) != blank)]
        if not cells:
            continue
        cells.sort()
        out.append(f"\x1b[{y + 1};1H")
        col = 0
        for x, c in cells:
            if c.data == "":  # right half of a wide character: drawing the left half moved past it
                col = x + 1
                continue
            if x != col:
                out.append(f"\x1b[{x + 1}G")
            a = _attrs(c)
            if a != pen:
                out.append(_sgr(c))
                pen = a
            out.append(c.data)
            col = x + 1
    if pen != blank:
        out.append("\x1b[0m")
    return out


def _place_cursor(screen: _Screen, cursor, buffer) -> list[str]:  # noqa: ANN001
    """Move to ``cursor`` and take its pen. A cursor parked past the last column (the next
    character wraps) is put there by drawing the last cell again, as the program did."""
    out: list[str] = []
    cols = screen.columns
    y, x = cursor.y, cursor.x
    if x >= cols:
        last = (buffer.get(y) or {}).get(cols - 1)
        if last is None:
            last = screen.default_char
        out.append(f"\x1b[{y + 1};{cols}H{_sgr(last)}{last.data or ' '}")
    else:
        out.append(f"\x1b[{y + 1};{x + 1}H")
    out.append(_sgr(cursor.attrs))
    return out


def _charset_code(table) -> str:  # noqa: ANN001
    return "0" if table is pyte.charsets.VT100_MAP else "B"


def repaint(screen: _Screen) -> str:
    """Escape sequences that bring a fresh terminal of the same size to ``screen``'s state."""
    out: list[str] = ["\x1b[0m\x1b[2J\x1b[H"]
    if screen.alt_saved is not None:
        # a full-screen program is running: draw the main screen first, then switch, so that
        # leaving the program later brings back what was behind it
        saved, saved_cursor = screen.alt_saved
        out += _paint(saved, screen.columns, screen.lines, screen.default_char)
        out += _place_cursor(screen, saved_cursor, saved)
        out.append("\x1b[0m\x1b[?1049h\x1b[H")
    out += _paint(screen.buffer, screen.columns, screen.lines, screen.default_char)
    if screen.savepoints:  # ESC 7 / ESC 8 pairs: the last saved cursor
        sp = screen.savepoints[-1]
        out += _place_cursor(screen, sp.cursor, screen.buffer)
        out.append("\x1b7")
    if screen.margins is not None and (screen.margins.top, screen.margins.bottom) != (0, screen.lines - 1):
        out.append(f"\x1b[{screen.margins.top + 1};{screen.margins.bottom + 1}r")  # homes the cursor
    modes = screen.mode
    for mode, code in ((mo.DECAWM, "?7"), (mo.DECTCEM, "?25")):  # on by default
        if mode not in modes:
            out.append(f"\x1b[{code}l")
    for mode, code in ((mo.IRM, "4"), (mo.LNM, "20"), (mo.DECSCNM, "?5")):  # off by default
        if mode in modes:
            out.append(f"\x1b[{code}h")
    origin = mo.DECOM in modes
    if origin:
        out.append("\x1b[?6h")
    c = screen.cursor
    if origin and screen.margins is not None and c.x < screen.columns:
        out.append(f"\x1b[{c.y - screen.margins.top + 1};{c.x + 1}H{_sgr(c.attrs)}")
    else:
        out += _place_cursor(screen, c, screen.buffer)
    # character sets last: the text above was drawn with the default ones
    if screen.g0_charset is not pyte.charsets.LAT1_MAP:
        out.append("\x1b(" + _charset_code(screen.g0_charset))
    if screen.g1_charset is not pyte.charsets.VT100_MAP:
        out.append("\x1b)" + _charset_code(screen.g1_charset))
    if screen.charset:
        out.append("\x0e")
    return "".join(out)


# -- an emulator fed the way a player is fed --------------------------------------------------
class Emulator:
    """The project's terminal screen fed asciicast events: ``o`` output and ``r`` resizes."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = _Screen(cols, rows)
        self.stream: pyte.Stream | None = None
        self.guard = _EscapeGuard()
        self.errors = 0

    def event(self, code: str, data: str) -> None:
        if code == "o":
            try:
                self.stream = emulate(self.screen, self.stream, self.guard.filter(data))
            except Exception:
                # pyte rejects a few odd private sequences by raising; a fresh parser goes on
                self.errors += 1
                self.stream = None
        elif code == "r":
            size = _size(data)
            if size is not None and size != (self.screen.columns, self.screen.lines):
                self.screen.resize(size[1], size[0])

    @property
    def between_sequences(self) -> bool:
        """pyte's parser is not inside an escape sequence, so a cut here splits none."""
        return bool(getattr(self.stream, "_taking_plain_text", True)) and self.guard.state == _EscapeGuard._TEXT


def _size(data: object) -> tuple[int, int] | None:
    try:
        cols, rows = (int(v) for v in str(data).split("x"))
    except ValueError:
        return None
    return (cols, rows) if 0 < cols <= 512 and 0 < rows <= 256 else None


def _header_size(header: dict) -> tuple[int, int]:
    cols, rows = header.get("width"), header.get("height")
    ok = isinstance(cols, int) and isinstance(rows, int) and 0 < cols <= 512 and 0 < rows <= 256
    return (cols, rows) if ok else (80, 24)


# -- the index ----------------------------------------------------------------------------------
def build_index(cast: bytes, source_sha256: str = "", *, keyframe_seconds: float = KEYFRAME_SECONDS,
                keyframe_bytes: int = KEYFRAME_BYTES) -> SeekIndex:
    """Replay ``cast`` once and record a keyframe every ``keyframe_seconds`` / ``keyframe_bytes``."""
    header, first = header_of(cast)
    cols, rows = _header_size(header)
    emu = Emulator(cols, rows)
    frames = [Keyframe(0.0, first, 0, cols, rows, "")]
    last_t, last_off, t, n = 0.0, first, 0.0, 0
    for off, t, code, data in _events(cast, first):
        if n and (t - last_t >= keyframe_seconds or off - last_off >= keyframe_bytes) and emu.between_sequences:
            s = emu.screen
            frames.append(Keyframe(prev_t, off, n, s.columns, s.lines, repaint(s)))
            last_t, last_off = prev_t, off
        emu.event(code, data)
        prev_t = t
        n += 1
    return SeekIndex(source_sha256, t, n, len(cast), tuple(frames))


def window(cast: bytes, index: SeekIndex, t: float, *, window_bytes: int = WINDOW_BYTES) -> Window:
    """An asciicast that shows second ``t`` of ``cast`` after replaying at most one keyframe
    interval, and plays on for about ``window_bytes`` of the recording."""
    if index.size != len(cast):
        raise CastError("the seek index was built for another recording")
    header, _ = header_of(cast)
    frames = index.keyframes
    k = max(0, bisect.bisect_right([f.t for f in frames], t) - 1)
    kf = frames[k]
    j = k + 1
    while j < len(frames) and frames[j].offset - kf.offset < window_bytes:
        j += 1
    end_off, end_t = (frames[j].offset, frames[j].t) if j < len(frames) else (len(cast), index.duration)
    lines = [json.dumps(header, ensure_ascii=False).encode()]
    h_cols, h_rows = _header_size(header)
    if (kf.cols, kf.rows) != (h_cols, h_rows):
        lines.append(json.dumps([kf.t, "r", f"{kf.cols}x{kf.rows}"]).encode())
    if kf.repaint:
        lines.append(json.dumps([kf.t, "o", kf.repaint], ensure_ascii=False).encode())
    body = cast[kf.offset:end_off]
    out = b"\n".join(lines) + b"\n" + body
    if not out.endswith(b"\n"):
        out += b"\n"
    return Window(out, kf.t, end_t, index.duration, k == 0 and j >= len(frames))


def whole(cast: bytes) -> Window:
    """The recording as its own window (small recordings, or before an index exists)."""
    duration = 0.0
    tail = cast.rstrip(b"\n")
    nl = tail.rfind(b"\n")
    if nl >= 0:
        try:
            duration = float(json.loads(tail[nl + 1:])[0])
        except (ValueError, TypeError, IndexError, KeyError):
            duration = 0.0
    return Window(cast, 0.0, duration, duration, True)


__all__ = ["Keyframe", "SeekIndex", "Window", "CastError", "build_index", "window", "whole", "repaint",
           "Emulator", "header_of", "index_name", "WHOLE_LIMIT"]
