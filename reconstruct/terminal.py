"""Shared terminal emulation: turn a shell session's bytes into the commands that really ran.

Protocol-free on purpose: the Telnet decoder and the SSH shell decoder both feed it
(server output with ``output()``, client keystrokes with ``keys()``, whole client-edited
lines with ``line()``) and get back ``CommandEntered`` / ``CommandOutput`` events.

Why read commands off an emulated screen instead of replaying keystrokes: the shell's
line editor (readline, busybox ash, a router CLI) decides what backspace, Ctrl-U, history
recall, tab completion and cursor movement do, and it shows the result by echoing it. At
each Enter the line at the cursor, minus the prompt, *is* the command as executed.

Why pyte: it is pure Python (no C extension to build on an appliance), already a project
dependency, and implements the VT100/xterm subset shells and line editors use (cursor
motion, insert/delete character, erase in line/display, scroll regions, UTF-8, wide
characters). It lacks three things we need and add here: the alternate screen buffer
(``?1049h``/``?47h``, used by vi, top, less), a record of the lines that scroll off the
top (for command output) and hard bounds on escape-sequence lengths (a hostile stream of
``ESC [`` followed by megabytes of digits would otherwise grow without limit or crash
``int()``). libvterm would be faster but needs a compiled binding we do not ship.

pyte runs at roughly 1 MB/s, so output beyond ``BULK_LIMIT`` bytes for one command is
only partly emulated (the tail of each chunk); a ``[... N bytes not emulated ...]`` line
marks the place in the command output.
"""
from __future__ import annotations

import codecs
import copy
import re
from collections import deque
from dataclasses import dataclass

import pyte
from pyte.screens import Margins

from reconstruct.events import CommandEntered, CommandOutput, Event

MAX_COLS = 512
MAX_ROWS = 256
HISTORY_LINES = 2000          # lines kept after they scroll off the top
MAX_COMMAND_CHARS = 8192
MAX_OUTPUT_CHARS = 64 * 1024
MAX_COMMAND_ROWS = 32         # a command wrapped over more rows than this is read from its last row
BULK_LIMIT = 256 * 1024       # output bytes per command emulated in full
BULK_TAIL = 4 * 1024          # beyond that, bytes emulated from the end of each chunk
MAX_CSI_PARAMS = 64           # characters kept inside one CSI sequence
MAX_OSC = 2048                # characters kept inside one OSC string

# A shell or CLI prompt ends with one of these (bash/ash "$ "/"# ", csh "% ", IOS "Router>",
# "Router(config)#"). Used to tell a command line from an answer typed to a program.
PROMPT_RE = re.compile(r"[$#>%]\s*$")

_ALT_MODES = {47, 1047, 1049}
_ALT_TOGGLE_RE = re.compile(rb"\x1b\[\?(?:1049|1047|47)([hl])")

_IDLE, _TYPING = 0, 1
_LAT1 = pyte.charsets.LAT1_MAP
_IRM = pyte.modes.IRM

# attrs -> {character: Char} for _Screen.draw. Chars are immutable namedtuples, so one table
# serves every screen of the process: a bulk import runs thousands of short sessions and a
# per-screen table would be rebuilt (one namedtuple per character) for each of them.
_CHARS: dict = {}


def looks_like_prompt(text: str) -> bool:
    """True if ``text`` (the screen left of the cursor) ends like a shell/CLI prompt."""
    return len(text) <= 256 and bool(PROMPT_RE.search(text))


class _Screen(pyte.Screen):
    """pyte screen + alternate buffer + a bounded record of lines scrolled off the top."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__(cols, rows)
        self.scrolled = 0                       # lines scrolled off the top so far
        self.history: deque[str] = deque(maxlen=HISTORY_LINES)
        self.alt_saved: tuple[dict[int, dict], pyte.screens.Cursor] | None = None

    def row_text(self, y: int) -> str:
        line = self.buffer[y]
        if not line:
            return ""
        cols = self.columns
        cells = [" "] * cols
        for x, ch in line.items():
            if x < cols:
                cells[x] = ch.data
        return "".join(cells).rstrip()

    def draw(self, data: str) -> None:
        # Fast path for the common case (plain ASCII text that fits on the current line, no
        # insert mode): pyte's draw makes a new Char per character, which dominated imports.
        # Chars are immutable, so one per (attributes, character) is shared.
        if self.charset:
            text = data.translate(self.g1_charset)
        elif self.g0_charset is _LAT1 and data.isascii():
            text = data                  # Latin-1 leaves ASCII as it is: no table to run through
        else:
            text = data.translate(self.g0_charset)
        cursor = self.cursor
        x = cursor.x
        if x + len(text) > self.columns or not text.isascii() or not text.isprintable() or _IRM in self.mode:
            super().draw(data)
            return
        attrs = cursor.attrs
        per = _CHARS.get(attrs)
        if per is None:
            if len(_CHARS) > 1024:
                _CHARS.clear()
            per = _CHARS[attrs] = {}
        line = self.buffer[cursor.y]
        for ch in text:
            c = per.get(ch)
            if c is None:
                c = per[ch] = attrs._replace(data=ch)
            line[x] = c
            x += 1
        cursor.x = x
        self.dirty.add(cursor.y)

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        # Only a full-screen scroll of the main buffer moves a line into history;
        # scroll regions and the alternate screen belong to full-screen programs.
        if (self.cursor.y == bottom and top == 0 and bottom == self.lines - 1
                and self.alt_saved is None):
            self.history.append(self.row_text(0))
            self.scrolled += 1
        super().index()

    def set_mode(self, *modes: int, **kwargs) -> None:
        super().set_mode(*modes, **kwargs)
        if kwargs.get("private") and _ALT_MODES.intersection(modes) and self.alt_saved is None:
            saved = {y: dict(self.buffer[y]) for y in range(self.lines)}
            self.alt_saved = (saved, copy.copy(self.cursor))
            self.erase_in_display(2)

    def reset_mode(self, *modes: int, **kwargs) -> None:
        super().reset_mode(*modes, **kwargs)
        if kwargs.get("private") and _ALT_MODES.intersection(modes) and self.alt_saved is not None:
            saved, cursor = self.alt_saved
            self.alt_saved = None
            self.buffer.clear()
            for y, line in saved.items():
                if y < self.lines:
                    self.buffer[y].update(line)
            cursor.x = min(cursor.x, self.columns - 1)
            cursor.y = min(cursor.y, self.lines - 1)
            self.cursor = cursor

    @property
    def full_screen(self) -> bool:
        return self.alt_saved is not None

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        # vim sends private "ESC [ ? ... m" queries; pyte would crash on them.
        if not private:
            super().select_graphic_rendition(*attrs)


class _EscapeGuard:
    """Caps the length of CSI parameter runs and OSC strings before pyte sees them.

    pyte accumulates CSI digits and OSC text without limit; we track just enough state,
    across chunks, to cut those runs. Normal terminal traffic passes unchanged."""

    _TEXT, _ESC, _CSI, _OSC, _OSC_ESC = range(5)
    _SPECIAL = re.compile("[\x1b\x9b\x9d]")
    _CSI_RUN = re.compile("[0-9;:?<=> \x07-\x0d]*")
    _OSC_END = re.compile("\x07|\x9c|\x1b")

    def __init__(self) -> None:
        self.state = self._TEXT
        self.count = 0

    def filter(self, s: str) -> str:
        out: list[str] = []
        pos, n = 0, len(s)
        while pos < n:
            st = self.state
            if st == self._TEXT:
                m = self._SPECIAL.search(s, pos)
                if m is None:
                    out.append(s[pos:])
                    break
                out.append(s[pos:m.end()])
                pos = m.end()
                c = m.group()
                self.state = self._ESC if c == "\x1b" else (self._CSI if c == "\x9b" else self._OSC)
                self.count = 0
            elif st == self._ESC:
                c = s[pos]
                out.append(c)
                pos += 1
                self.state = {"[": self._CSI, "]": self._OSC}.get(c, self._TEXT)
                self.count = 0
            elif st == self._CSI:
                m = self._CSI_RUN.match(s, pos)
                run = m.group()
                room = MAX_CSI_PARAMS - self.count
                out.append(run[:max(room, 0)])
                self.count += len(run)
                pos = m.end()
                if pos < n:              # the final byte ends the sequence
                    out.append(s[pos])
                    pos += 1
                    self.state = self._TEXT
            elif st == self._OSC:
                m = self._OSC_END.search(s, pos)
                end = n if m is None else m.start()
                room = MAX_OSC - self.count
                out.append(s[pos:pos + max(min(room, end - pos), 0)])
                self.count += end - pos
                if self.count > MAX_OSC and m is None:
                    out.append("\x07")   # close the over-long string; the rest is text
                    self.state = self._TEXT
                    pos = end
                    continue
                pos = end
                if m is not None:
                    out.append(m.group())
                    pos = m.end()
                    self.state = self._OSC_ESC if m.group() == "\x1b" else self._TEXT
            else:  # _OSC_ESC: pyte ends OSC only on ESC "\"; any other pair stays inside
                c = s[pos]
                out.append(c)
                pos += 1
                self.state = self._TEXT if c == "\\" else self._OSC
        return "".join(out)


@dataclass(slots=True)
class _Pending:
    """An Enter whose command is read once the server has echoed the line break."""
    ts: float
    prompt_abs: int
    prompt_x: int
    prompt_text: str
    commandlike: bool
    ahead: bool = False
    tries: int = 0


class Terminal:
    """One emulated terminal for one interactive session.

    Call ``output()`` with what the server sent, ``keys()`` with what the user typed in
    character mode (remote echo), or ``line()`` with a whole line the client edited and
    echoed itself (Telnet LINEMODE). Every call returns the ``CommandEntered`` and
    ``CommandOutput`` events it completed; ``close()`` flushes what is left.
    Secrets must not be passed in: the caller redacts, then calls ``cancel_line()``."""

    def __init__(self, cols: int = 80, rows: int = 24) -> None:
        cols, rows = _clamp(cols, rows)
        self.screen = _Screen(cols, rows)
        self._stream: pyte.Stream | None = None     # pyte's parser, made when first needed
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._guard = _EscapeGuard()
        self._state = _IDLE
        self._prompt: tuple[int, int, str] = (0, 0, "")
        self._pending: deque[_Pending] = deque(maxlen=64)   # Enters whose line break is not echoed yet
        self._line_ahead = False                # the line being typed began before the last echo
        self._last_key_cr = False
        self._index = 0
        self._out_index: int | None = None      # command whose output is being collected
        self._out_start = 0                     # absolute row where that output starts
        self._out_ts = 0.0
        self._shell_prompt_seen = False
        self._bulk = 0                          # output bytes since the last command
        self._lost_lines = 0
        self._line_echo: bytes | None = None    # a client-edited line not yet seen echoed
        self._after_gap = False                 # server output went missing since the last line
        self.emulation_errors = 0               # sequences pyte could not handle

    # ----------------------------------------------------------------- public API
    @property
    def full_screen(self) -> bool:
        """A full-screen program (alternate screen: vi, top, less...) is active."""
        return self.screen.full_screen

    @property
    def commands_seen(self) -> int:
        return self._index

    def cursor_line(self) -> str:
        """Screen text left of the cursor on its row (prompts are read from here)."""
        s = self.screen
        line = s.buffer[s.cursor.y]
        return "".join(line[x].data for x in range(min(s.cursor.x, s.columns)))

    def mark(self) -> int:
        """An absolute row number for ``text_since``."""
        return self.screen.scrolled + self.screen.cursor.y

    def text_since(self, mark: int) -> str:
        """Screen text from row ``mark`` down to the cursor row, one line per row."""
        return "\n".join(self._rows(mark, self.mark() + 1))

    def resize(self, cols: int, rows: int) -> None:
        cols, rows = _clamp(cols, rows)
        s = self.screen
        if (cols, rows) != (s.columns, s.lines):
            old_lines = s.lines
            s.resize(rows, cols)
            if rows < old_lines:   # pyte drops rows from the top when shrinking
                s.scrolled += old_lines - rows

    def output(self, data: bytes, ts: float) -> list[Event]:
        """Bytes the server sent to the terminal."""
        self._out_ts = ts
        events: list[Event] = []
        if self._line_echo is not None:
            echo, self._line_echo = self._line_echo, None
            n = min(len(echo), len(data))
            if not data.startswith(echo[:n]) or (n == 0 and echo):
                # the server did not echo the line: the client did, locally
                self._feed(echo + b"\r\n")
                if self._out_index is not None:
                    self._out_start = self.mark()
        while self._pending and data:
            nl = data.find(b"\n")
            if nl < 0:
                break
            self._feed(data[:nl])
            events += self._resolve()
            self._feed(data[nl:nl + 1])
            data = data[nl + 1:]
        if data:
            self._feed(data)
        return events

    def keys(self, data: bytes, ts: float) -> list[Event]:
        """Keystrokes sent by the client in character mode (the server echoes them)."""
        events: list[Event] = []
        for b in data:
            if b == 0x0A and self._last_key_cr:
                self._last_key_cr = False      # CR LF is one Enter
                continue
            self._last_key_cr = b == 0x0D
            if self.screen.alt_saved is not None:     # full screen
                self._state = _IDLE            # keys go to vi/top, not to a command line
                continue
            if b in (0x0D, 0x0A):
                if self._state == _TYPING:
                    px_abs, px, ptext = self._prompt
                    self._pending.append(_Pending(ts, px_abs, px, ptext,
                                                  self._commandlike(ptext) or self._after_gap,
                                                  self._line_ahead))
                self._state = _IDLE
            elif b == 0x03:
                self._state = _IDLE            # Ctrl-C: the line is abandoned, never runs
            elif self._state == _IDLE:
                events += self._start_line()
                self._state = _TYPING
        return events

    def line(self, text: str, ts: float) -> list[Event]:
        """A whole line edited by the client itself (Telnet LINEMODE, local echo).

        Whether the user's screen showed it through a server echo (a pty left in echo
        mode) or through the client's local echo is decided when the next output comes."""
        events = self._resolve_all()
        if self.full_screen:
            return events
        events += self._start_line()
        ptext = self._prompt[2]
        cmd = _apply_line_edits(text)
        if cmd.strip() and self._commandlike(ptext):
            events += self._emit_command(ts, cmd.strip())
            self._out_start = self.mark() + 1
        self._line_echo = cmd.encode("utf-8", "replace")
        self._state = _IDLE
        return events

    def interrupt(self, ts: float) -> list[Event]:
        """An interrupt outside the byte stream (Telnet IAC IP): like Ctrl-C."""
        self._state = _IDLE
        return []

    def cancel_line(self) -> None:
        """The line being typed was a secret (password) or is otherwise not a command."""
        self._state = _IDLE

    def gap(self) -> None:
        """Server output is missing: the prompt of the next line may be among the lost bytes,
        so that line counts as a command even if no prompt is seen before it."""
        self._after_gap = True

    def forget_commands(self) -> None:
        """What was typed so far was not at a shell (a login we picked up mid-way): start over."""
        self._state = _IDLE
        self._pending.clear()
        self._line_echo = None
        self._index = 0
        self._out_index = None
        self._shell_prompt_seen = False

    def close(self, ts: float) -> list[Event]:
        events = self._resolve_all()
        if self._out_index is not None:
            end = self.mark()
            rows = self._output_rows(end)
            last = self.cursor_line()
            if last.strip() and not looks_like_prompt(last):
                rows.append(self.screen.row_text(self.screen.cursor.y))
            events.append(self._make_output(rows))
        return events

    # ----------------------------------------------------------------- internals
    def _commandlike(self, prompt_text: str) -> bool:
        # Before any shell prompt is known (session picked up mid-stream) every line counts;
        # afterwards only lines typed at a prompt do (not "y" answered to "rm -i").
        return looks_like_prompt(prompt_text) or not self._shell_prompt_seen

    def _start_line(self) -> list[Event]:
        """First key of a new line: remember the prompt; the previous output ends here."""
        ptext = self.cursor_line()
        self._prompt = (self.mark(), self.screen.cursor.x, ptext)
        self._line_ahead = bool(self._pending)
        if self._line_ahead:
            return []
        events: list[Event] = []
        prompt_like = looks_like_prompt(ptext)
        if prompt_like:
            self._shell_prompt_seen = True
            self._after_gap = False
        if self._out_index is not None and prompt_like:
            events.append(self._make_output(self._output_rows(self.mark())))
        return events

    def _resolve_all(self) -> list[Event]:
        events: list[Event] = []
        while self._pending:
            events += self._resolve(force=True)
        return events

    def _resolve(self, force: bool = False) -> list[Event]:
        """At a line break from the server: read the oldest pending command off the screen."""
        p = self._pending[0]
        s = self.screen
        if p.ahead:
            # Typed before the previous command's echo: its prompt is unknown, so it is the
            # first row that starts with a prompt and has text after it.
            row = s.row_text(s.cursor.y)
            m = _PROMPT_PREFIX_RE.match(row)
            if m is None or not row[m.end():].strip():
                p.tries += 1
                if force or p.tries > 256:
                    self._pending.popleft()
                return []
            self._pending.popleft()
            self._after_gap = False
            events = self._emit_command(p.ts, row[m.end():].strip()[:MAX_COMMAND_CHARS], self.mark())
            self._out_start = self.mark() + 1
            return events
        self._pending.popleft()
        cur_abs = self.mark()
        first_kept = s.scrolled - len(s.history)
        start_abs = cur_abs
        text: str | None = None
        commandlike = p.commandlike or self._after_gap
        self._after_gap = False
        if p.prompt_text and first_kept <= p.prompt_abs <= cur_abs <= p.prompt_abs + MAX_COMMAND_ROWS:
            rows = self._rows(p.prompt_abs, cur_abs + 1, strip=False)
            if rows and rows[0].startswith(p.prompt_text):
                text = rows[0][p.prompt_x:] + "".join(rows[1:])
                start_abs = p.prompt_abs
        if text is None:
            # The prompt seen at the first key is not where the line ended up: keys typed
            # ahead of the echo, a screen redraw (Ctrl-L), a gap. Read the cursor row and
            # take the prompt off by its shape.
            row = s.row_text(s.cursor.y)
            m = _PROMPT_PREFIX_RE.match(row)
            if m is not None:
                text, commandlike = row[m.end():], True
            else:
                text = row[p.prompt_x:] if row.startswith(p.prompt_text) else row
        if not commandlike:
            return []
        text = text.strip()[:MAX_COMMAND_CHARS]
        if not text:
            return []
        events = self._emit_command(p.ts, text, start_abs)
        self._out_start = cur_abs + 1
        return events

    def _emit_command(self, ts: float, text: str, row_abs: int | None = None) -> list[Event]:
        events: list[Event] = []
        if self._out_index is not None:      # the previous output ends above this command
            end = self.mark() if row_abs is None else row_abs
            events.append(self._make_output(self._output_rows(end)))
        events.append(CommandEntered(ts=ts, index=self._index, text=text))
        self._out_index = self._index
        self._index += 1
        self._bulk = 0
        self._lost_lines = 0
        return events

    def _output_rows(self, end: int) -> list[str]:
        s = self.screen
        self._lost_lines += max(0, (s.scrolled - len(s.history)) - self._out_start)
        return self._rows(self._out_start, end)

    def _make_output(self, rows: list[str]) -> CommandOutput:
        while rows and not rows[-1].strip():
            rows.pop()
        text = "\n".join(rows)
        if self._lost_lines:
            text = f"[... {self._lost_lines} lines not kept ...]\n" + text
        if len(text) > MAX_OUTPUT_CHARS:
            text = text[:MAX_OUTPUT_CHARS] + "\n[... output truncated ...]"
        ev = CommandOutput(ts=self._out_ts, index=self._out_index if self._out_index is not None else -1,
                           text=text)
        self._out_index = None
        self._lost_lines = 0
        return ev

    def _rows(self, start: int, end: int, strip: bool = True) -> list[str]:
        """Text of absolute rows [start, end): from history if scrolled off, else the screen."""
        s = self.screen
        first_kept = s.scrolled - len(s.history)
        rows: list[str] = []
        for a in range(max(start, end - HISTORY_LINES - s.lines), end):
            if a < first_kept:
                continue
            if a < s.scrolled:
                rows.append(s.history[a - first_kept])
            elif a - s.scrolled < s.lines:
                y = a - s.scrolled
                if strip:
                    rows.append(s.row_text(y))
                else:
                    line = s.buffer[y]
                    rows.append("".join(line[x].data for x in range(s.columns)))
        return rows

    def _feed(self, data: bytes) -> None:
        self._bulk += len(data)
        if self._bulk > BULK_LIMIT and len(data) > BULK_TAIL:
            skipped = data[:-BULK_TAIL]
            # Keep full-screen state right even for the part we do not emulate.
            toggles = _ALT_TOGGLE_RE.findall(skipped)
            if toggles:
                self._stream = emulate(self.screen, self._stream, "\x1b[?1049" + toggles[-1].decode())
            self.screen.history.append(f"[... {len(skipped)} bytes not emulated ...]")
            self.screen.scrolled += 1
            data = data[-BULK_TAIL:]
        try:
            if (data.isascii() and self._guard.state == _EscapeGuard._TEXT
                    and (self._stream is None or self._stream._taking_plain_text is True)
                    and not self._utf8.buffer and (text := data.decode("ascii")).isprintable()):
                # printable ASCII at the parser's ground state (most packets: an echoed key):
                # straight to the screen, as pyte's stream would after its checks
                self.screen.draw(text)
                return
            text = self._utf8.decode(data)
            if text:
                self._stream = emulate(self.screen, self._stream, self._guard.filter(text))
        except Exception:
            # pyte handlers reject some private/odd sequences by raising, which kills
            # its parser coroutine: count it and go on with a fresh parser.
            self.emulation_errors += 1
            self._stream = None


# The control characters and complete CSI sequences shells and line editors send most (CR LF,
# colours, erase, cursor moves, bracketed paste), matched by one regex and handed to the same
# screen methods, with the same parameters, as pyte's parser would: that parser reads escape
# sequences one character at a time through a generator, which was a fifth of the import time
# on a mirror-port mix. Anything else (OSC, charsets, C1, partial sequences) stops the fast
# path and goes to pyte's stream, which is then at its ground state.
_CSI_NAMES = dict(pyte.Stream.csi)
_BASIC_NAMES = {"\x07": "bell", "\x08": "backspace", "\x09": "tab", "\x0a": "linefeed", "\x0b": "linefeed",
                "\x0c": "linefeed", "\x0d": "carriage_return", "\x00": "", "\x7f": ""}
# The third alternative is the window title a shell prompt sets (OSC 0/1/2), on every prompt.
_FAST_TOKEN = re.compile("\x1b\\[(\\?)?([0-9;]{0,%d})([%s])|([\x00\x07-\x0d\x7f])"
                         "|\x1b\\]([012]);([^\x07\x1b\x9c]*)(?:\x07|\x1b\\\\)"
                         % (MAX_CSI_PARAMS, re.escape("".join(_CSI_NAMES))))
_PLAIN_TEXT = pyte.Stream._text_pattern.fullmatch


def _fast_prefix(screen: _Screen, text: str) -> int:
    """Emulate the longest prefix of ``text`` made of plain text, basic controls and simple CSI
    sequences; returns its length (pyte's stream must be at its ground state)."""
    pos = 0
    for m in _FAST_TOKEN.finditer(text):
        start = m.start()
        if start > pos:
            if _PLAIN_TEXT(text, pos, start) is None:
                return pos
            screen.draw(text[pos:start])
        pos = m.end()
        c = m.group(4)
        if c is not None:
            name = _BASIC_NAMES[c]
            if name:
                getattr(screen, name)()
            continue
        final = m.group(3)
        if final is None:            # OSC: what pyte does with it, to the same screen methods
            code = m.group(5)
            if code != "2":
                screen.set_icon_name(m.group(6))
            if code != "1":
                screen.set_title(m.group(6))
            continue
        params = [min(int(p or 0), 9999) for p in m.group(2).split(";")]
        handler = getattr(screen, _CSI_NAMES[final])
        if m.group(1):
            handler(*params, private=True)
        else:
            handler(*params)
    if pos < len(text):
        if _PLAIN_TEXT(text, pos) is None:
            return pos
        screen.draw(text[pos:])
    return len(text)


def emulate(screen: _Screen, stream: pyte.Stream | None, text: str) -> pyte.Stream | None:
    """Text (already through ``_EscapeGuard``) onto ``screen``: the fast path while pyte's
    parser is at its ground state (``None``: not made yet), pyte's stream for the rest.
    Returns the parser to go on with: made here only when the fast path could not take all
    of it, since making one costs more than a whole short session's typing. pyte may raise
    on odd sequences; the caller then goes on with ``None``."""
    if stream is None or stream._taking_plain_text is True:
        text = text[_fast_prefix(screen, text):]
    if text:
        if stream is None:
            stream = new_stream(screen)
        stream.feed(text)
    return stream


def new_stream(screen: _Screen) -> pyte.Stream:
    """pyte's parser on ``screen``, set up as the project emulates terminals."""
    stream = pyte.Stream(screen)
    # Honour charset designations (ESC ( 0, SO/SI) as a real terminal and the browser player do:
    # pyte's default ignores them in UTF-8 mode, so boxes drawn by menus and dialogs (whiptail,
    # router CLIs) would read "lqqqk" in command output instead of what the user saw.
    stream.use_utf8 = False
    return stream


def _clamp(cols: int, rows: int) -> tuple[int, int]:
    cols = cols if 0 < cols <= MAX_COLS else (80 if cols <= 0 else MAX_COLS)
    rows = rows if 0 < rows <= MAX_ROWS else (24 if rows <= 0 else MAX_ROWS)
    return cols, rows


_PROMPT_PREFIX_RE = re.compile(r"^.{0,256}?[$#>%] ")


def _strip_prompt(row: str) -> str:
    m = _PROMPT_PREFIX_RE.match(row)
    return row[m.end():] if m else row


def _apply_line_edits(text: str) -> str:
    """Erase/kill characters left in a client-edited line (most clients apply them already)."""
    if not any(c in text for c in "\x08\x7f\x15\r\n"):
        return text
    out: list[str] = []
    for c in text:
        if c in "\x08\x7f":
            if out:
                out.pop()
        elif c == "\x15":
            out.clear()
        elif c not in "\r\n":
            out.append(c)
    return "".join(out)
