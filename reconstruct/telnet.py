"""Telnet session decoder (sans-I/O): IAC protocol, login attempts, redaction, commands.

Fed the two byte streams of one Telnet connection (RFC 854/855 and the option RFCs:
NAWS 1073, TTYPE 1091, LINEMODE 1184, NEW-ENVIRON 1572, ENVIRON 1408), it emits:

* ``Input`` / ``Output`` with IAC sequences stripped and CR NUL turned into CR;
* ``Resize`` (NAWS), ``Metadata`` ("terminal", "env-user", "linemode", ...);
* ``AuthAttempt`` per login attempt, judged from what the server printed next;
* ``CommandEntered`` / ``CommandOutput`` from the shared terminal emulator;
* ``Notice`` for interrupts sent as Telnet commands, and at most one ``DecodeError``.

A gap (``gap()``) costs no more than the missing bytes: the IAC parser drops any
half-read command and decoding goes on with the next byte as data.

Redaction happens here, before any event exists: bytes typed after a password prompt
(until Enter) are replaced by ``*`` in ``Input`` and never reach the terminal emulator,
so they cannot turn up in commands or command output either. Telnet servers (inetutils,
busybox) keep ``WILL ECHO`` during the password and simply do not echo, so the prompt
text is the signal, not the ECHO option.
"""
from __future__ import annotations

import re
from typing import Sequence

from reconstruct.decoder import KeyLookup, NoKeys
from reconstruct.events import (
    AuthAttempt, DecodeError, Direction, Event, Input, Metadata, Notice, Output, Resize,
)
from reconstruct.terminal import Terminal, looks_like_prompt

# Telnet commands (RFC 854)
IAC, DONT, DO, WONT, WILL, SB, GA, EL, EC, AYT, AO, IP, BRK, DM, NOP, SE = (
    255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 242, 241, 240)
# Options we read
OPT_ECHO, OPT_TTYPE, OPT_NAWS, OPT_TSPEED, OPT_LINEMODE, OPT_XDISPLOC = 1, 24, 31, 32, 34, 35
OPT_ENVIRON, OPT_NEW_ENVIRON = 36, 39
LM_MODE, LM_EDIT, LM_TRAPSIG, LM_ACK = 1, 0x01, 0x02, 0x04

SB_LIMIT = 1024            # a subnegotiation longer than this without IAC SE is cut
LOGIN_FIELD_LIMIT = 256    # user names typed at the login prompt
LINE_LIMIT = 8192          # a client line (line mode) longer than this is cut into pieces

_COMMAND_NAMES = {GA: "GA", EL: "EL", EC: "EC", AYT: "AYT", AO: "AO", IP: "IP", BRK: "BRK",
                  DM: "DM", NOP: "NOP", SE: "SE"}

# Prompts are matched against the screen text left of the cursor.
LOGIN_PROMPT_RE = re.compile(r"(?i)(?:\blogin|\busername|\buser name|^user)\s*:\s*$")
PASSWORD_PROMPT_RE = re.compile(r"(?i)(?:pass(?:word|phrase|code)|\bpin\b)[^:\n]{0,64}:\s*$")
LOGIN_FAILED_RE = re.compile(
    r"(?i)login incorrect|login failed|authentication fail|incorrect password|access denied"
    r"|bad password|invalid (?:login|password|user)|% ?login invalid")
LOGIN_OK_RE = re.compile(r"(?i)last login")
# printable ASCII except ':' -- output that cannot complete a password prompt
_PLAIN_NO_COLON = re.compile(rb"[\x20-\x39\x3b-\x7e]+").fullmatch


class IacParser:
    """Splits one direction's bytes into data runs and Telnet commands (resumable).

    ``parse`` returns items, in order: ``("data", bytes)``, ``("cmd", code)``,
    ``("opt", verb, option)``, ``("sb", option, payload)``, ``("error", reason)``.
    Data has IAC IAC undone and CR NUL turned into CR, even when split across calls."""

    _DATA, _IAC, _OPT, _SB_OPT, _SB, _SB_IAC = range(6)

    def __init__(self, sb_limit: int = SB_LIMIT) -> None:
        self.sb_limit = sb_limit
        self.reset()

    def reset(self) -> None:
        """Forget any partial command (after a gap the next byte is taken as data)."""
        self.state = self._DATA
        self.verb = 0
        self.sb_opt = 0
        self.sb = bytearray()
        self.cr = False

    def plain(self, data: bytes) -> bool:
        """True when ``data`` is all data with nothing to undo (the common case: one keystroke
        or one screenful); it is then taken as parsed, and ``parse`` must not be called."""
        if (self.state == self._DATA and b"\xff" not in data and b"\r\x00" not in data
                and not (self.cr and data[:1] == b"\x00")):
            self.cr = data[-1:] == b"\r"
            return True
        return False

    def parse(self, data: bytes) -> list[tuple]:
        if self.plain(data):
            return [("data", data)] if data else []
        items: list[tuple] = []
        out = bytearray()

        def flush() -> None:
            if out:
                items.append(("data", bytes(out)))
                out.clear()

        pos, n = 0, len(data)
        while pos < n:
            st = self.state
            if st == self._DATA:
                j = data.find(b"\xff", pos)
                end = n if j < 0 else j
                if end > pos:
                    self._add_data(out, data[pos:end])
                if j < 0:
                    break
                pos = j + 1
                self.state = self._IAC
                continue
            if st == self._SB:
                j = data.find(b"\xff", pos)
                end = n if j < 0 else j
                self.sb += data[pos:end]
                pos = end
                if len(self.sb) > self.sb_limit:
                    flush()
                    items.append(("error", f"telnet subnegotiation of option {self.sb_opt} ran over "
                                           f"{self.sb_limit} bytes without IAC SE; cut there"))
                    self.sb = bytearray()
                    self.state = self._DATA
                    continue
                if j >= 0:
                    pos = j + 1
                    self.state = self._SB_IAC
                continue
            b = data[pos]
            pos += 1
            if st == self._IAC:
                if b == IAC:
                    self._add_data(out, b"\xff")
                    self.state = self._DATA
                elif WILL <= b <= DONT:
                    self.verb = b
                    self.state = self._OPT
                elif b == SB:
                    self.state = self._SB_OPT
                elif b >= SE:
                    flush()
                    items.append(("cmd", b))
                    self.state = self._DATA
                else:
                    flush()
                    items.append(("error", f"IAC followed by 0x{b:02x}, which is no Telnet command"))
                    self._add_data(out, bytes((b,)))   # keep the byte: it is evidence
                    self.state = self._DATA
            elif st == self._OPT:
                flush()
                items.append(("opt", self.verb, b))
                self.state = self._DATA
            elif st == self._SB_OPT:
                self.sb_opt = b
                self.sb = bytearray()
                self.state = self._SB
            else:  # _SB_IAC
                if b == IAC:
                    self.sb.append(IAC)
                    self.state = self._SB
                elif b == SE:
                    flush()
                    items.append(("sb", self.sb_opt, bytes(self.sb)))
                    self.sb = bytearray()
                    self.state = self._DATA
                else:
                    # IAC <cmd> inside a subnegotiation: close it and handle the command.
                    flush()
                    items.append(("sb", self.sb_opt, bytes(self.sb)))
                    self.sb = bytearray()
                    self.state = self._IAC
                    pos -= 1
        flush()
        return items

    def _add_data(self, out: bytearray, chunk: bytes) -> None:
        if self.cr and chunk[:1] == b"\x00":
            chunk = chunk[1:]
        if not chunk:
            return
        if b"\r\x00" in chunk:
            chunk = chunk.replace(b"\r\x00", b"\r")
        out += chunk
        self.cr = chunk[-1:] == b"\r"


class TelnetDecoder:
    """Decoder for one Telnet connection; see the module docstring for what it emits."""

    protocol = "telnet"

    def __init__(self, keys: KeyLookup | None = None, *, picked_up: bool = False,
                 cols: int = 80, rows: int = 24) -> None:
        self.keys = keys or NoKeys()         # Telnet has no secrets to look up
        self.term = Terminal(cols, rows)
        self._parsers = {"c2s": IacParser(), "s2c": IacParser()}
        # start: nothing seen yet; login: negotiation/login prompt seen; shell: logged in;
        # unknown: picked up mid-stream, login or shell not yet known (commands are held)
        self._phase = "unknown" if picked_up else "start"
        self._held: list[Event] = []
        self._picked_up = picked_up
        self._errored = False
        # option state
        self._server_echo: bool | None = None
        self._client_linemode = False
        self._linemode_edit = False
        # login state
        self._await: str | None = None      # "user" | "password" | "result"
        self._user_buf = bytearray()
        self._user: str | None = None
        self._env_user: str | None = None
        self._result_mark = 0
        self._attempt_open = False
        self._auth_done = False
        # redaction state
        self._secret = False
        self._secret_at: tuple[int, int] | None = None   # prompt position that armed it
        self._last_cr = {"c2s": False}
        self._line_buf = bytearray()        # client bytes of the current line (line mode)
        self._typed_line: str | None = None # last line typed while the phase was unknown

    # ----------------------------------------------------------------- Decoder API
    def feed(self, direction: Direction, data: bytes, ts: float) -> Sequence[Event]:
        events: list[Event] = []
        if not data:
            return events
        if self._phase == "start":
            self._decide_start(direction, data, ts, events)
        if self._parsers[direction].plain(data):
            # no Telnet command in it (nearly every packet): straight to the side's handler
            if direction == "s2c":
                events.append(Output(ts=ts, data=data))
                self._server_data(data, ts, events)
            else:
                self._client_data(data, ts, events)
            return events
        s2c = bytearray()
        for item in self._parsers[direction].parse(data):
            kind = item[0]
            if kind == "data":
                if direction == "s2c":
                    events.append(Output(ts=ts, data=item[1]))
                    s2c += item[1]
                else:
                    self._client_data(item[1], ts, events)
            elif kind == "cmd":
                self._command(direction, item[1], ts, events)
            elif kind == "opt":
                self._option(direction, item[1], item[2], ts, events)
            elif kind == "sb":
                self._subneg(direction, item[1], item[2], ts, events)
            else:
                self._error(item[1], ts, events)
        if s2c:
            self._server_data(bytes(s2c), ts, events)
        return events

    def gap(self, direction: Direction, nbytes: int, ts: float) -> Sequence[Event]:
        # The Gap event itself is recorded by the session layer (reconstruct.session), as for
        # every protocol; here we only resynchronise.
        events: list[Event] = []
        # Resynchronise: a half-parsed IAC sequence cannot be finished across missing bytes.
        self._parsers[direction].reset()
        if direction == "s2c":
            self.term.gap()
        if direction == "c2s":
            self._last_cr["c2s"] = False
            if self._await == "user":
                self._user_buf.clear()
                self._user = None
            if not self._secret:
                self._line_buf.clear()
        return events

    def close(self, ts: float, reason: str) -> Sequence[Event]:
        events: list[Event] = []
        if self._line_buf and self._phase == "shell" and not self._secret:
            events += self.term.line(self._line_buf.decode("utf-8", "replace"), ts)
            self._line_buf.clear()
        if self._phase == "unknown":
            events += self._held
            self._held.clear()
        events += self.term.close(ts)
        if self._attempt_open:
            events.append(AuthAttempt(ts=ts, user=self._user, method="login-prompt", result="unknown",
                                      detail="connection ended before the login result was shown"))
            self._attempt_open = False
        return events

    # ----------------------------------------------------------------- phases
    def _decide_start(self, direction: Direction, data: bytes, ts: float, events: list[Event]) -> None:
        """A Telnet connection seen from its start begins with option negotiation or a
        login prompt; anything else means we picked it up later."""
        self._phase = "login" if data[0] == IAC else "unknown"

    def _decide_unknown(self, line: str, ts: float, events: list[Event]) -> None:
        """Picked up mid-stream: the screen tells whether we are in a login or a shell."""
        if LOGIN_PROMPT_RE.search(line) or PASSWORD_PROMPT_RE.search(line):
            # what was typed so far was a user name (or garbage), not commands
            self._held.clear()
            self._user = self._typed_line if PASSWORD_PROMPT_RE.search(line) else None
            self.term.forget_commands()
            self._phase = "login"
            if LOGIN_PROMPT_RE.search(line):
                self._await = None
        elif looks_like_prompt(line) or len(self._held) > 1000:
            self._phase = "shell"
            self._auth_done = True
            events.append(AuthAttempt(ts=ts, user=self._env_user, method="login-prompt", result="unknown",
                                      detail="login not seen: session picked up mid-stream"))
            events += self._held
            self._held.clear()

    # ----------------------------------------------------------------- server side
    def _server_data(self, data: bytes, ts: float, events: list[Event]) -> None:
        derived = self.term.output(data, ts)
        if self._phase == "unknown":
            self._held += derived
        else:
            events += derived
        if self.term.full_screen:
            return
        if self._phase == "shell" and data.strip() and _PLAIN_NO_COLON(data):
            # plain text without ':' (an echoed keystroke, a line of output): the screen left of
            # the cursor now ends with it, so it cannot end in a password prompt
            return
        line = self.term.cursor_line()
        if self._phase == "unknown":
            self._decide_unknown(line, ts, events)
        if self._phase == "login":
            self._login_progress(line, ts, events)
        pos = (self.term.mark(), self.term.screen.cursor.x)
        if PASSWORD_PROMPT_RE.search(line) and pos != self._secret_at:
            self._secret = True
            self._secret_at = pos
            if self._phase == "login":
                if self._await == "result" and self._attempt_open:
                    # asked again without a "Login incorrect": the previous one failed
                    self._finish_attempt("failure", ts, events)
                if self._await == "user" and self._user is None:
                    self._user = self._typed_user()
                if self._user is None:
                    self._user = self._env_user
                self._await = "password"
                self._attempt_open = True

    def _login_progress(self, line: str, ts: float, events: list[Event]) -> None:
        if self._await == "result" or (self._await == "user_sent"):
            said = self.term.text_since(self._result_mark)
            if LOGIN_FAILED_RE.search(said):
                self._finish_attempt("failure", ts, events)
                self._await = None
            elif LOGIN_OK_RE.search(said) or (looks_like_prompt(line) and not LOGIN_PROMPT_RE.search(line)):
                self._finish_attempt("success", ts, events)
                self._phase = "shell"
                self._await = None
                return
        elif self._await is None and looks_like_prompt(line) and not LOGIN_PROMPT_RE.search(line):
            # a shell prompt without any login prompt before it (auto-login, or the
            # negotiation was seen but the login happened in a part we do not have)
            events.append(AuthAttempt(ts=ts, user=self._env_user, method="login-prompt", result="unknown",
                                      detail="shell prompt without a login prompt"))
            self._auth_done = True
            self._phase = "shell"
            return
        if LOGIN_PROMPT_RE.search(line):
            if self._attempt_open and self._await in ("result", "user_sent"):
                self._finish_attempt("failure", ts, events)
            if self._await != "user":
                self._await = "user"
                self._user_buf.clear()
                self._user = None

    def _finish_attempt(self, result: str, ts: float, events: list[Event]) -> None:
        if not self._attempt_open:
            self._attempt_open = True
        events.append(AuthAttempt(ts=ts, user=self._user, method="login-prompt", result=result))  # type: ignore[arg-type]
        self._attempt_open = False
        if result == "success":
            self._auth_done = True
            self._secret = False

    def _typed_user(self) -> str | None:
        name = self._user_buf.decode("utf-8", "replace").strip()
        return name or None

    # ----------------------------------------------------------------- client side
    def _client_data(self, data: bytes, ts: float, out: list[Event]) -> None:
        if (len(data) == 1 and 0x20 <= data[0] < 0x7F and self._phase == "shell" and not self._secret
                and not self._line_mode()):
            # one printable key at a shell in character mode (half of all packets): what the
            # loop below does for it, without the loop
            self._last_cr["c2s"] = False
            out.append(Input(ts=ts, data=data, redacted=False))
            out += self.term.keys(data, ts)
            return
        events: list[Event] = []            # what these keys caused, after the Input itself
        shown = bytearray()
        redacted = False
        line_mode = self._line_mode()
        for i, b in enumerate(data):
            enter = b in (0x0D, 0x0A)
            if b == 0x0A and self._last_cr["c2s"]:
                self._last_cr["c2s"] = False
                shown.append(b)
                continue
            self._last_cr["c2s"] = b == 0x0D
            if self._secret:
                if enter or b == 0x03:
                    shown.append(b)
                    self._secret_entered(ts, events, line_mode)
                else:
                    shown.append(0x2A)       # "*": one per secret byte, the byte itself is gone
                    redacted = True
                continue
            shown.append(b)
            if self._phase == "login":
                self._login_key(b, enter, ts, events)
            elif self._phase == "shell" and line_mode:
                if enter:
                    events += self.term.line(self._line_buf.decode("utf-8", "replace"), ts)
                    self._line_buf.clear()
                elif b == 0x03:
                    self._line_buf.clear()
                    events += self.term.interrupt(ts)
                else:
                    self._line_buf.append(b)
                    if len(self._line_buf) >= LINE_LIMIT:
                        events += self.term.line(self._line_buf.decode("utf-8", "replace"), ts)
                        self._line_buf.clear()
            elif self._phase == "shell":
                events += self.term.keys(bytes((b,)) if not enter else b"\r", ts)
            else:   # unknown: could be a command or a user name at a login prompt we missed
                self._held += self.term.keys(bytes((b,)) if not enter else b"\r", ts)
                if enter:
                    self._typed_line = self._typed_user()
                    self._user_buf.clear()
                elif b in (0x08, 0x7F):
                    if self._user_buf:
                        self._user_buf.pop()
                elif b == 0x15 or b == 0x03:
                    self._user_buf.clear()
                elif b >= 0x20 and len(self._user_buf) < LOGIN_FIELD_LIMIT:
                    self._user_buf.append(b)
        out.append(Input(ts=ts, data=bytes(shown), redacted=redacted))
        out += events

    def _secret_entered(self, ts: float, events: list[Event], line_mode: bool) -> None:
        self._secret = False
        self._line_buf.clear()
        self.term.cancel_line()
        if self._phase == "login" and self._await == "password":
            self._await = "result"
            self._result_mark = self.term.mark()

    def _login_key(self, b: int, enter: bool, ts: float, events: list[Event]) -> None:
        if self._await == "user":
            if enter:
                self._user = self._typed_user()
                self._await = "user_sent"
                self._attempt_open = True
                self._result_mark = self.term.mark()
            elif b in (0x08, 0x7F):
                if self._user_buf:
                    self._user_buf.pop()
            elif b == 0x15:
                self._user_buf.clear()
            elif b >= 0x20 and len(self._user_buf) < LOGIN_FIELD_LIMIT:
                self._user_buf.append(b)

    def _line_mode(self) -> bool:
        """True when the client edits and echoes lines itself (LINEMODE EDIT, or no remote echo)."""
        if self._client_linemode and self._linemode_edit:
            return True
        return self._server_echo is False

    # ----------------------------------------------------------------- Telnet protocol
    def _command(self, direction: Direction, code: int, ts: float, events: list[Event]) -> None:
        if direction == "c2s" and code in (IP, BRK, AO, AYT):
            name = {IP: "interrupt process (IAC IP)", BRK: "break (IAC BRK)",
                    AO: "abort output (IAC AO)", AYT: "are you there (IAC AYT)"}[code]
            events.append(Notice(ts=ts, kind="signal", text=name))
            if code in (IP, BRK):
                if self._secret:
                    self._secret_entered(ts, events, self._line_mode())
                self._line_buf.clear()
                if self._phase == "shell":
                    events += self.term.interrupt(ts)
        elif direction == "c2s" and code in (EC, EL) and self._line_buf:
            if code == EC:
                self._line_buf.pop()
            else:
                self._line_buf.clear()
        # DM (the synch after an urgent interrupt), GA, NOP: nothing to show.

    def _option(self, direction: Direction, verb: int, opt: int, ts: float, events: list[Event]) -> None:
        if direction == "s2c" and opt == OPT_ECHO and verb in (WILL, WONT):
            self._server_echo = verb == WILL
        elif direction == "c2s" and opt == OPT_LINEMODE and verb in (WILL, WONT):
            self._client_linemode = verb == WILL
        elif direction == "s2c" and opt == OPT_LINEMODE and verb == DONT:
            self._client_linemode = False

    def _subneg(self, direction: Direction, opt: int, payload: bytes, ts: float, events: list[Event]) -> None:
        if opt == OPT_NAWS and direction == "c2s":
            if len(payload) == 4:
                cols = int.from_bytes(payload[0:2], "big")
                rows = int.from_bytes(payload[2:4], "big")
                if cols and rows:
                    self.term.resize(cols, rows)
                    events.append(Resize(ts=ts, cols=cols, rows=rows))
            else:
                self._error(f"NAWS subnegotiation of {len(payload)} bytes, expected 4", ts, events)
        elif opt == OPT_TTYPE and direction == "c2s" and payload[:1] == b"\x00":
            events.append(Metadata(ts=ts, key="terminal", value=_text(payload[1:])))
        elif opt == OPT_TSPEED and direction == "c2s" and payload[:1] == b"\x00":
            events.append(Metadata(ts=ts, key="terminal-speed", value=_text(payload[1:])))
        elif opt == OPT_XDISPLOC and direction == "c2s" and payload[:1] == b"\x00":
            events.append(Metadata(ts=ts, key="x-display", value=_text(payload[1:])))
        elif opt in (OPT_NEW_ENVIRON, OPT_ENVIRON) and direction == "c2s" and payload[:1] in (b"\x00", b"\x02"):
            for name, value in parse_environ(payload[1:], old=opt == OPT_ENVIRON):
                if name == "USER" and value:
                    self._env_user = value
                    events.append(Metadata(ts=ts, key="env-user", value=value))
        elif opt == OPT_LINEMODE and payload[:1] == bytes((LM_MODE,)) and len(payload) >= 2:
            mask = payload[1]
            self._linemode_edit = bool(mask & LM_EDIT)
            flags = [n for bit, n in ((LM_EDIT, "EDIT"), (LM_TRAPSIG, "TRAPSIG"), (LM_ACK, "MODE_ACK"),
                                      (0x08, "SOFT_TAB"), (0x10, "LIT_ECHO")) if mask & bit]
            events.append(Metadata(ts=ts, key="linemode", value="|".join(flags) or "0"))

    def _error(self, reason: str, ts: float, events: list[Event]) -> None:
        if not self._errored:       # one error per flow; decoding goes on
            self._errored = True
            events.append(DecodeError(ts=ts, reason=reason, fatal=False))


def parse_environ(data: bytes, old: bool = False) -> list[tuple[str, str]]:
    """NEW-ENVIRON / ENVIRON variable list -> [(name, value)] (RFC 1572; RFC 1408 codes swapped
    by some BSD clients, detected from the first type byte)."""
    VAR, VALUE, ESC, USERVAR = 0, 1, 2, 3
    if old and data[:1] == b"\x01":
        VAR, VALUE = 1, 0
    pairs: list[tuple[str, str]] = []
    name: bytearray | None = None
    value: bytearray | None = None
    cur: bytearray | None = None
    i = 0
    while i < len(data):
        b = data[i]
        if b in (VAR, USERVAR):
            if name is not None:
                pairs.append((_text(bytes(name)), _text(bytes(value or b""))))
            name, value = bytearray(), None
            cur = name
        elif b == VALUE:
            value = bytearray()
            cur = value
        else:
            if b == ESC and i + 1 < len(data):
                i += 1
                b = data[i]
            if cur is not None:
                cur.append(b)
        i += 1
    if name is not None:
        pairs.append((_text(bytes(name)), _text(bytes(value or b""))))
    return pairs


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace").strip("\x00")
