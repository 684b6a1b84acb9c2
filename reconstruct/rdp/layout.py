"""Keyboard layouts: RDP scancodes (set 1, what the client's physical keys send) to text, with
the layout the client announced in its core data, plus a small line editor for typed lines.

The server reads scancodes with the client's layout, so the same key is "z" for a US client
and "y" for a German one. Layouts: US (0x409, also the fallback), UK (0x809), German (0x407;
0x807 Swiss German is read as German: letters and digits right, some symbols not), French
(0x40c; 0x80c Belgian is read as French, same caveat). Dead keys compose
with the next letter (^ then e -> ê).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

# scancode ranges of the printable rows
_ROWS = ((0x02, 12), (0x10, 12), (0x1E, 12), (0x2B, 1), (0x2C, 10), (0x39, 1), (0x56, 1))


def _table(*rows: str) -> dict[int, str]:
    """Rows given in _ROWS order; a space in a row string means "no character" except 0x39."""
    out: dict[int, str] = {}
    for (start, n), text in zip(_ROWS, rows):
        assert len(text) == n, (hex(start), text)
        for k, ch in enumerate(text):
            if ch != "\0":
                out[start + k] = ch
    return out


@dataclass(frozen=True)
class Layout:
    lcid: int
    name: str
    normal: dict[int, str]
    shift: dict[int, str]
    altgr: dict[int, str] = field(default_factory=dict)
    dead: frozenset[str] = frozenset()


US = Layout(0x409, "US", _table("1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "\\", "zxcvbnm,./", " ", "\\"),
            _table("!@#$%^&*()_+", "QWERTYUIOP{}", 'ASDFGHJKL:"~', "|", "ZXCVBNM<>?", " ", "|"))

UK = Layout(0x809, "UK", _table("1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "#", "zxcvbnm,./", " ", "\\"),
            _table('!"£$%^&*()_+', "QWERTYUIOP{}", "ASDFGHJKL:@¬", "~", "ZXCVBNM<>?", " ", "|"),
            {0x05: "€"})

DE = Layout(0x407, "German",
            _table("1234567890ß´", "qwertzuiopü+", "asdfghjklöä^", "#", "yxcvbnm,.-", " ", "<"),
            _table('!"§$%&/()=?`', "QWERTZUIOPÜ*", "ASDFGHJKLÖÄ°", "'", "YXCVBNM;:_", " ", ">"),
            {0x03: "²", 0x04: "³", 0x08: "{", 0x09: "[", 0x0A: "]", 0x0B: "}", 0x0C: "\\", 0x10: "@",
             0x12: "€", 0x1B: "~", 0x56: "|", 0x32: "µ"},
            frozenset("´`^"))

FR = Layout(0x40C, "French",
            _table("&é\"'(-è_çà)=", "azertyuiop^$", "qsdfghjklmù²", "*", "wxcvbn,;:!", " ", "<"),
            _table("1234567890°+", "AZERTYUIOP¨£", "QSDFGHJKLM%\0", "µ", "WXCVBN?./§", " ", ">"),
            {0x03: "~", 0x04: "#", 0x05: "{", 0x06: "[", 0x07: "|", 0x08: "`", 0x09: "\\", 0x0A: "^",
             0x0B: "@", 0x0C: "]", 0x0D: "}", 0x12: "€", 0x1B: "¤"},
            frozenset("^¨~`"))

LAYOUTS = {0x409: US, 0x809: UK, 0x407: DE, 0x807: DE, 0x40C: FR, 0x80C: FR}
_COMBINING = {"´": "\u0301", "`": "\u0300", "^": "\u0302", "¨": "\u0308", "~": "\u0303"}

# scancodes of keys that are not characters (extended flag noted where it matters)
SC_ESC, SC_BACKSPACE, SC_TAB, SC_ENTER, SC_CTRL, SC_LSHIFT, SC_RSHIFT, SC_ALT, SC_CAPS = \
    0x01, 0x0E, 0x0F, 0x1C, 0x1D, 0x2A, 0x36, 0x38, 0x3A
_EXTENDED_ACTIONS = {0x52: "insert", 0x53: "delete", 0x4B: "left", 0x4D: "right", 0x48: "up", 0x50: "down",
                     0x47: "home", 0x4F: "end", 0x1C: "enter"}
_KEYPAD = {0x47: "7", 0x48: "8", 0x49: "9", 0x4A: "-", 0x4B: "4", 0x4C: "5", 0x4D: "6", 0x4E: "+",
           0x4F: "1", 0x50: "2", 0x51: "3", 0x52: "0", 0x53: ".", 0x37: "*"}


def layout_for(lcid: int) -> Layout:
    """The layout for a keyboard layout id (low 16 bits are the language); US if unknown."""
    return LAYOUTS.get(lcid) or LAYOUTS.get(lcid & 0xFFFF) or US


class Keyboard:
    """Modifier state + layout: turns key events into characters or named actions."""

    def __init__(self, layout: Layout = US) -> None:
        self.layout = layout
        self.shift = self.ctrl = self.alt = self.altgr = False
        self.caps = False
        self.numlock = True
        self._dead: str | None = None

    def sync(self, caps: bool, numlock: bool) -> None:
        self.caps, self.numlock = caps, numlock

    def key(self, scancode: int, extended: bool, released: bool) -> str | tuple[str] | None:
        """A character (str), an action (1-tuple: ("enter",), ("paste",), ...) or None."""
        sc = scancode
        if sc in (SC_LSHIFT, SC_RSHIFT):
            self.shift = not released
            return None
        if sc == SC_CTRL:
            self.ctrl = not released
            return None
        if sc == SC_ALT:
            if extended:
                self.altgr = not released
            else:
                self.alt = not released
            return None
        if released:
            return None
        if sc == SC_CAPS:
            self.caps = not self.caps
            return None
        if extended and sc in _EXTENDED_ACTIONS:
            action = _EXTENDED_ACTIONS[sc]
            if action == "insert" and self.shift:
                return ("paste",)
            return (action,)
        if extended and sc == 0x35:
            return "/"
        if not extended and sc in _KEYPAD:
            if self.numlock or sc in (0x37, 0x4A, 0x4E):
                return _KEYPAD[sc]
            return (_EXTENDED_ACTIONS.get(sc, "keypad"),)
        if sc == SC_ENTER:
            return ("enter",)
        if sc == SC_BACKSPACE:
            return ("backspace",)
        if sc == SC_TAB:
            return "\t"
        if sc == SC_ESC:
            return ("escape",)
        lay = self.layout
        altgr = self.altgr or (self.ctrl and self.alt)
        if altgr:
            ch = lay.altgr.get(sc)
        elif self.ctrl or self.alt:
            base = lay.normal.get(sc, "")
            if self.ctrl and base.lower() == "v":
                return ("paste",)
            if self.ctrl and base.lower() == "c":
                return ("interrupt",)
            if self.ctrl and base.lower() == "u":
                return ("kill-line",)
            return (f"{'ctrl' if self.ctrl else 'alt'}+{base or hex(sc)}",)
        else:
            ch = (lay.shift if self.shift else lay.normal).get(sc)
            if ch and self.caps and lay.normal.get(sc, "").isalpha():
                ch = ch.lower() if self.shift else ch.upper()
        if ch is None:
            return None
        return self._compose(ch, sc)

    def _compose(self, ch: str, sc: int) -> str | None:
        if self._dead is not None:
            dead, self._dead = self._dead, None
            if ch == " ":
                return dead
            combined = unicodedata.normalize("NFC", ch + _COMBINING.get(dead, ""))
            return combined if len(combined) == 1 else dead + ch
        if ch in self.layout.dead and not (self.altgr and ch in "`^~"):
            self._dead = ch
            return None
        return ch


class LineEditor:
    """What the user's line looks like as keys arrive: insert, erase, cursor moves, Enter.

    ``paste_marks`` remember where a paste key was pressed, so clipboard text that arrives just
    after (the server asks the client for it) can be put where it was pasted."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.cursor = 0
        self.paste_marks: list[int] = []

    def insert(self, text: str) -> None:
        for ch in text:
            pos = self.cursor
            self.buf.insert(pos, ch)
            self.cursor += 1
            # a paste still waiting for its text keeps its place before what was typed after it
            self.paste_marks = [m + 1 if m > pos else m for m in self.paste_marks]

    def paste_key(self) -> None:
        self.paste_marks.append(self.cursor)

    def fill_paste(self, text: str) -> bool:
        if not self.paste_marks:
            return False
        pos = self.paste_marks.pop(0)
        text = text.replace("\r\n", "\n").split("\n", 1)[0]   # a terminal runs up to the first newline
        self.buf[pos:pos] = list(text)
        if self.cursor >= pos:
            self.cursor += len(text)
        self.paste_marks = [m + len(text) if m >= pos else m for m in self.paste_marks]
        return True

    def action(self, name: str) -> str | None:
        """Apply an editing action; returns "enter"/"interrupt" when the line ends."""
        if name == "backspace" and self.cursor > 0:
            self.cursor -= 1
            del self.buf[self.cursor]
        elif name == "delete" and self.cursor < len(self.buf):
            del self.buf[self.cursor]
        elif name == "left":
            self.cursor = max(0, self.cursor - 1)
        elif name == "right":
            self.cursor = min(len(self.buf), self.cursor + 1)
        elif name == "home":
            self.cursor = 0
        elif name == "end":
            self.cursor = len(self.buf)
        elif name == "kill-line":
            del self.buf[:self.cursor]
            self.cursor = 0
        elif name == "paste":
            self.paste_key()
        elif name in ("enter", "interrupt"):
            return name
        return None

    def take(self) -> str:
        text = "".join(self.buf)
        self.buf, self.cursor, self.paste_marks = [], 0, []
        return text

    @property
    def text(self) -> str:
        return "".join(self.buf)
