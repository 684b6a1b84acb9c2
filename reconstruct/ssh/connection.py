"""SSH user authentication (RFC 4252) and connection protocol (RFC 4254) in clear:
who logged in how, which channels were opened and what ran in them.

Fed the service messages (type >= 50) the transport decrypted, in capture order. Passwords
and keyboard-interactive answers are read past, never kept. Interactive shells go through the
shared terminal emulation to get the commands that really ran.
"""
from __future__ import annotations

import re
from collections import deque

from reconstruct.events import (AuthAttempt, CommandEntered, CommandOutput, DecodeError, Event,
                                Input, Metadata, Notice, Output, Resize)
from reconstruct.ssh.scp import ScpDecoder, ScpError, scp_mode
from reconstruct.ssh.sftp import SftpDecoder, SftpError
from reconstruct.ssh.wire import Reader
from reconstruct.terminal import Terminal

USERAUTH_REQUEST, USERAUTH_FAILURE, USERAUTH_SUCCESS, USERAUTH_BANNER = 50, 51, 52, 53
USERAUTH_60, USERAUTH_61 = 60, 61
GLOBAL_REQUEST, REQUEST_SUCCESS, REQUEST_FAILURE = 80, 81, 82
CHANNEL_OPEN, OPEN_CONFIRMATION, OPEN_FAILURE = 90, 91, 92
WINDOW_ADJUST, CHANNEL_DATA, CHANNEL_EXTENDED_DATA, CHANNEL_EOF, CHANNEL_CLOSE = 93, 94, 95, 96, 97
CHANNEL_REQUEST, CHANNEL_SUCCESS, CHANNEL_FAILURE = 98, 99, 100

MAX_CHANNELS = 1024
MAX_PENDING_AUTH = 64
PASSWORD_PROMPT_RE = re.compile(r"(?i)(?:pass(?:word|phrase|code)|\bpin\b)[^:\n]{0,64}:\s*$")
_OTHER = {"c2s": "s2c", "s2c": "c2s"}


class _Channel:
    __slots__ = ("kind", "ids", "purpose", "term", "sub", "pty", "detail")

    def __init__(self, kind: str) -> None:
        self.kind = kind                    # "session", "direct-tcpip", "x11", ...
        self.ids: dict[str, int] = {}       # direction of the side -> that side's channel id
        self.purpose = ""                   # "shell" | "exec" | "sftp" | "scp" | subsystem name
        self.term: Terminal | None = None
        self.sub: SftpDecoder | ScpDecoder | None = None
        self.pty: tuple[str, int, int] | None = None
        self.detail = ""


class Connection:
    def __init__(self) -> None:
        self._pending_auth: deque[tuple[str, str, str]] = deque()
        self.user: str | None = None
        self.auth_result = "unknown"
        self._owned: dict[str, dict[int, _Channel]] = {"c2s": {}, "s2c": {}}
        self._opening: dict[str, dict[int, _Channel]] = {"c2s": {}, "s2c": {}}
        self._cmd_index = 0
        self._secret_input = False          # the terminal is asking for a password
        self._failed_channels: set[int] = set()

    # ---------------------------------------------------------------- dispatch
    def message(self, direction: str, payload: bytes, ts: float) -> list[Event]:
        t = payload[0]
        r = Reader(payload, 1)
        if 50 <= t <= 79:
            return self._auth(direction, t, r, ts)
        if t == GLOBAL_REQUEST:
            return self._global(direction, r, ts)
        if t == CHANNEL_OPEN:
            return self._open(direction, r, ts)
        if t in (OPEN_CONFIRMATION, OPEN_FAILURE):
            return self._open_reply(direction, t, r, ts)
        if CHANNEL_DATA <= t <= CHANNEL_FAILURE:
            ch = self._owned[_OTHER[direction]].get(r.u32())
            if ch is None:
                return []
            if t == CHANNEL_DATA:
                return self._data(ch, direction, r.string(), ts)
            if t == CHANNEL_EXTENDED_DATA:
                r.u32()
                return self._data(ch, direction, r.string(), ts, stderr=True)
            if t == CHANNEL_REQUEST:
                return self._request(ch, direction, r, ts)
            if t == CHANNEL_CLOSE:
                return self._close_channel(ch, ts)
        return []

    # ---------------------------------------------------------------- authentication
    def _auth(self, direction: str, t: int, r: Reader, ts: float) -> list[Event]:
        out: list[Event] = []
        if direction == "c2s" and t == USERAUTH_REQUEST:
            user = r.text()
            r.text()                                    # service ("ssh-connection")
            method = r.text()
            detail = ""
            if method == "publickey":
                has_sig = r.boolean()
                alg = r.text()
                if not has_sig:
                    method = "publickey-query"          # "would you accept this key?" (PK_OK)
                detail = alg
            # password / keyboard-interactive responses are read past, never stored
            if len(self._pending_auth) < MAX_PENDING_AUTH:
                self._pending_auth.append((user, method, detail))
            if self.user is None or method != "none":
                self.user = user
        elif direction == "s2c" and t in (USERAUTH_FAILURE, USERAUTH_SUCCESS):
            if not self._pending_auth:
                return out
            user, method, detail = self._pending_auth.popleft()
            result = "success" if t == USERAUTH_SUCCESS else "failure"
            if t == USERAUTH_FAILURE:
                can = r.namelist()
                partial = r.boolean()
                if partial:
                    result = "success"
                    detail = (detail + " partial success; continue with " + ",".join(can)).strip()
            if method not in ("none", "publickey-query") or result == "success":
                out.append(AuthAttempt(ts, user, method, result, detail))
            if t == USERAUTH_SUCCESS:
                self.user, self.auth_result = user, "success"
                out.append(Metadata(ts, "user", user))
                out.append(Metadata(ts, "auth_method", method))
            elif method not in ("none", "publickey-query"):
                self.auth_result = "failure" if self.auth_result != "success" else "success"
        elif direction == "s2c" and t == USERAUTH_60:
            # PK_OK answers a publickey query; INFO_REQUEST / PASSWD_CHANGEREQ keep the
            # request pending until SUCCESS/FAILURE
            if self._pending_auth and self._pending_auth[0][1] == "publickey-query":
                self._pending_auth.popleft()
        elif direction == "s2c" and t == USERAUTH_BANNER:
            out.append(Metadata(ts, "banner", r.text()[:1024]))
        return out

    # ---------------------------------------------------------------- global requests
    def _global(self, direction: str, r: Reader, ts: float) -> list[Event]:
        name = r.text()
        r.boolean()
        if name in ("tcpip-forward", "cancel-tcpip-forward"):
            addr, port = r.text(), r.u32()
            verb = "requests" if name == "tcpip-forward" else "cancels"
            return [Notice(ts, name, f"client {verb} remote port forwarding from {addr}:{port}",
                           tags=("tunnel",), severity="medium")]
        if name == "streamlocal-forward@openssh.com":
            return [Notice(ts, name, f"client requests forwarding of socket {r.text()}",
                           tags=("tunnel",), severity="medium")]
        return []

    # ---------------------------------------------------------------- channels
    def _open(self, direction: str, r: Reader, ts: float) -> list[Event]:
        kind = r.text()
        sender = r.u32()
        r.u32()
        r.u32()
        if sum(len(x) for x in self._owned.values()) > MAX_CHANNELS:
            return [Notice(ts, "channel-limit", f"more than {MAX_CHANNELS} open channels: "
                                                "later channels are not followed", severity="low")]
        ch = _Channel(kind)
        ch.ids[direction] = sender
        self._owned[direction][sender] = ch
        out: list[Event] = []
        if kind == "direct-tcpip":
            host, port, oh, op = r.text(), r.u32(), r.text(), r.u32()
            ch.detail = f"{host}:{port}"
            out.append(Notice(ts, "direct-tcpip", f"client opens a tunnel to {host}:{port} "
                                                  f"(from {oh}:{op})",
                              tags=("tunnel",), severity="medium"))
        elif kind == "forwarded-tcpip":
            host, port, oh, op = r.text(), r.u32(), r.text(), r.u32()
            out.append(Notice(ts, "forwarded-tcpip", f"server forwards a connection to "
                                                     f"{host}:{port} from {oh}:{op}",
                              tags=("tunnel",), severity="medium"))
        elif kind == "x11":
            out.append(Notice(ts, "x11", "server opens an X11 channel to the client",
                              tags=("tunnel",), severity="medium"))
        elif kind.startswith("auth-agent"):
            out.append(Notice(ts, "agent", "server opens an agent-forwarding channel",
                              tags=("tunnel",), severity="medium"))
        elif kind == "direct-streamlocal@openssh.com":
            out.append(Notice(ts, "direct-streamlocal", f"client opens a tunnel to socket "
                                                        f"{r.text()}",
                              tags=("tunnel",), severity="medium"))
        return out

    def _open_reply(self, direction: str, t: int, r: Reader, ts: float) -> list[Event]:
        recipient = r.u32()
        opener = _OTHER[direction]
        ch = self._owned[opener].get(recipient)
        if ch is None:
            return []
        if t == OPEN_CONFIRMATION:
            sender = r.u32()
            ch.ids[direction] = sender
            self._owned[direction][sender] = ch
            return []
        del self._owned[opener][recipient]
        code = r.u32()
        desc = r.text()[:200]
        if ch.kind == "session":
            return []
        return [Notice(ts, f"{ch.kind}-refused", f"{ch.kind} {ch.detail} refused: {desc} "
                                                 f"(code {code})".replace("  ", " "),
                       tags=("tunnel",), severity="low")]

    def _request(self, ch: _Channel, direction: str, r: Reader, ts: float) -> list[Event]:
        name = r.text()
        r.boolean()
        out: list[Event] = []
        if name == "pty-req":
            term, cols, rows = r.text(), r.u32(), r.u32()
            ch.pty = (term, cols, rows)
            out += [Metadata(ts, "term", term), Resize(ts, cols, rows)]
        elif name == "shell":
            ch.purpose = "shell"
            out.append(Metadata(ts, "channel", "shell" + (" (pty)" if ch.pty else "")))
            self._start_terminal(ch)
        elif name == "exec":
            cmd = r.text()
            mode = scp_mode(cmd)
            out.append(CommandEntered(ts, self._cmd_index, cmd, source="exec"))
            self._cmd_index += 1
            if mode:
                ch.purpose = "scp"
                ch.sub = ScpDecoder(mode)
            else:
                ch.purpose = "exec"
                if ch.pty:
                    self._start_terminal(ch)
        elif name == "subsystem":
            sub = r.text()
            ch.purpose = sub
            out.append(Metadata(ts, "subsystem", sub))
            if sub == "sftp":
                ch.sub = SftpDecoder()
        elif name == "env":
            k, v = r.text(), r.text()
            out.append(Metadata(ts, f"env.{k[:64]}", v[:256]))
        elif name == "window-change":
            cols, rows = r.u32(), r.u32()
            out.append(Resize(ts, cols, rows))
            if ch.term is not None:
                ch.term.resize(cols, rows)
        elif name == "signal":
            out.append(Notice(ts, "signal", f"client sends SIG{r.text()}"))
        elif name == "break":
            out.append(Notice(ts, "break", "client sends a BREAK"))
        elif name == "exit-status":
            out.append(Notice(ts, "exit-status", f"exit status {r.u32()}"))
        elif name == "exit-signal":
            sig, core = r.text(), r.boolean()
            out.append(Notice(ts, "exit-signal", f"killed by SIG{sig}" +
                              (" (core dumped)" if core else ""), severity="low"))
        elif name == "x11-req":
            r.boolean()
            proto = r.text()
            out.append(Notice(ts, "x11-req", f"client requests X11 forwarding ({proto})",
                              tags=("tunnel",), severity="medium"))
        elif name == "auth-agent-req@openssh.com":
            out.append(Notice(ts, "agent-forwarding", "client requests agent forwarding",
                              tags=("tunnel",), severity="medium"))
        return out

    def _start_terminal(self, ch: _Channel) -> None:
        if ch.pty and ch.term is None:
            ch.term = Terminal(max(ch.pty[1], 1) or 80, max(ch.pty[2], 1) or 24)

    def _data(self, ch: _Channel, direction: str, data: bytes, ts: float,
              stderr: bool = False) -> list[Event]:
        if ch.kind != "session":
            return []
        if ch.sub is not None:
            try:
                return ch.sub.feed(direction, data, ts)
            except (SftpError, ScpError) as exc:
                ch.sub = None
                return [DecodeError(ts, f"{ch.purpose} channel: {exc}", fatal=False)]
        if direction == "s2c":
            out: list[Event] = [Output(ts, data)]
            if ch.term is not None:
                out += self._renumber(ch.term.output(data, ts))
                self._secret_input = bool(PASSWORD_PROMPT_RE.search(ch.term.cursor_line()))
            return out
        # client -> server: keystrokes; what is typed at a password prompt is never kept
        if ch.term is not None and self._secret_input:
            shown = bytes(b if b in (0x0D, 0x0A, 0x03) else 0x2A for b in data)
            if 0x0D in data or 0x0A in data or 0x03 in data:
                self._secret_input = False
                ch.term.cancel_line()
            return [Input(ts, shown, redacted=True)]
        out = [Input(ts, data)]
        if ch.term is not None:
            out += self._renumber(ch.term.keys(data, ts))
        return out

    def _renumber(self, events: list[Event]) -> list[Event]:
        """Terminal command numbers are per terminal; the session numbers them across channels
        (exec commands included)."""
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, CommandEntered):
                out.append(CommandEntered(ev.ts, self._cmd_index, ev.text, ev.source))
                self._cmd_index += 1
            elif isinstance(ev, CommandOutput):
                out.append(CommandOutput(ev.ts, max(self._cmd_index - 1, 0), ev.text))
            else:
                out.append(ev)
        return out

    def _close_channel(self, ch: _Channel, ts: float) -> list[Event]:
        out: list[Event] = []
        if ch.sub is not None:
            out += ch.sub.close(ts)
            ch.sub = None
        if ch.term is not None:
            out += self._renumber(ch.term.close(ts))
            ch.term = None
        for d, cid in ch.ids.items():
            self._owned[d].pop(cid, None)
        return out

    def close(self, ts: float) -> list[Event]:
        out: list[Event] = []
        seen = set()
        for owned in self._owned.values():
            for ch in list(owned.values()):
                if id(ch) not in seen:
                    seen.add(id(ch))
                    out += self._close_channel(ch, ts)
        return out
