"""The one event vocabulary every protocol decoder speaks.

Events are plain frozen dataclasses. ``ts`` is always seconds since the epoch (float, UTC),
taken from the capture, never from a clock. Directions are ``"c2s"`` (client to server:
keystrokes, requests) and ``"s2c"`` (server to client: what the screen showed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Direction = Literal["c2s", "s2c"]
AuthResult = Literal["success", "failure", "unknown"]


@dataclass(frozen=True, slots=True)
class SessionStarted:
    ts: float
    protocol: str                      # "telnet" | "ssh" | "rdp"
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    picked_up: bool = False            # the capture began after the TCP handshake


@dataclass(frozen=True, slots=True)
class Metadata:
    """A fact about the session that is not an action: terminal type, client version, algorithms."""
    ts: float
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """One login attempt. Never carries a password."""
    ts: float
    user: str | None
    method: str                        # "password", "publickey", "login-prompt", "ntlm", ...
    result: AuthResult
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Input:
    """Bytes the user sent, with typed secrets already replaced (see ``redacted``)."""
    ts: float
    data: bytes
    redacted: bool = False


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes the user's terminal received (ready for a terminal emulator / asciicast "o")."""
    ts: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Resize:
    ts: float
    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class CommandEntered:
    """A command as it really ran (after line editing), numbered from 0 within the session."""
    ts: float
    index: int
    text: str
    source: str = "terminal"           # "terminal" | "exec" | "typed" (RDP)


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """What the screen showed between command ``index`` and the next prompt."""
    ts: float
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class FileTransfer:
    ts: float
    direction: Literal["upload", "download"]
    path: str
    size: int
    sha256: str
    method: str                        # "sftp", "scp", "rdpdr", "clipboard", ...
    content: bytes | None = None       # kept when complete and within the per-file bound
    complete: bool = True


@dataclass(frozen=True, slots=True)
class ClipboardCopy:
    ts: float
    direction: Direction
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an analyst should see that is neither input nor output: a tunnel opened,
    a conflicting retransmission, a signal, an exit status."""
    ts: float
    kind: str
    text: str
    tags: tuple[str, ...] = ()
    severity: str = "info"             # "info" | "low" | "medium" | "high" | "critical"


@dataclass(frozen=True, slots=True)
class Tagged:
    """A rule matched: ``ref_kind``/``ref_index`` point at what matched (a command index, ...)."""
    ts: float
    tag: str
    severity: str
    rule: str
    text: str
    ref_kind: str = "command"
    ref_index: int | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes missing from the capture in one direction; decoding goes on after them."""
    ts: float
    direction: Direction
    nbytes: int


@dataclass(frozen=True, slots=True)
class DecodeError:
    """The decoder gave up on (part of) this session; the reason is for a human."""
    ts: float
    reason: str
    fatal: bool = True


@dataclass(frozen=True, slots=True)
class SessionEnded:
    ts: float
    reason: str                        # "fin" | "rst" | "idle" | "capture-end" | "logout"


Event = Union[
    SessionStarted, Metadata, AuthAttempt, Input, Output, Resize, CommandEntered,
    CommandOutput, FileTransfer, ClipboardCopy, Notice, Tagged, Gap, DecodeError, SessionEnded,
]

__all__ = [
    "Direction", "AuthResult", "SessionStarted", "Metadata", "AuthAttempt", "Input", "Output",
    "Resize", "CommandEntered", "CommandOutput", "FileTransfer", "ClipboardCopy", "Notice",
    "Tagged", "Gap", "DecodeError", "SessionEnded", "Event", "field",
]
