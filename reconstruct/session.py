"""One connection's reconstruction: a decoder, the tag rules, and what they add up to.

``SessionReconstructor`` is fed the sensor's stream events for one flow and keeps the
session's record: metadata, login attempts, commands with their output, the timeline of
events, gaps, files, and the terminal recording. It is still sans-I/O: the importer decides
where the record goes. A decoder that raises is caught here, once: the session is marked
``decode_error`` with the reason and nothing else is disturbed (one error per flow).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

from reconstruct.decoder import Decoder
from reconstruct.events import (AuthAttempt, ClipboardCopy, CommandEntered, CommandOutput,
                                DecodeError, Event, FileTransfer, Gap, Input, Metadata, Notice,
                                Output, Resize, SessionEnded, SessionStarted, Tagged)

MAX_TIMELINE_EVENTS = 200_000     # per session; beyond, the timeline is marked truncated
MAX_TERMINAL_EVENTS = 2_000_000   # asciicast frames kept per session


def session_id(protocol: str, client_ip: str, client_port: int, server_ip: str, server_port: int,
               start: float) -> str:
    """Stable across re-imports of the same capture, so a second import adds nothing twice."""
    ident = f"{protocol}|{client_ip}|{client_port}|{server_ip}|{server_port}|{start:.6f}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


@dataclass
class CommandRecord:
    index: int
    ts: float
    text: str
    source: str
    output: str = ""
    output_ts: float | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class TimelineEntry:
    ts: float
    kind: str
    text: str
    tags: tuple[str, ...] = ()
    severity: str = "info"
    ref: int | None = None


@dataclass
class SessionRecord:
    id: str
    protocol: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start: float
    end: float | None = None
    end_reason: str | None = None
    picked_up: bool = False
    user: str | None = None
    auth: str = "unknown"
    status: str = "complete"
    status_reason: str = ""
    decrypted: bool | None = None
    decrypt_reason: str = ""
    c2s_bytes: int = 0
    s2c_bytes: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    auth_attempts: list[AuthAttempt] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    files: list[FileTransfer] = field(default_factory=list)
    terminal: list[Event] = field(default_factory=list)   # Output/Input/Resize/Tagged for the cast
    artefacts: dict[str, bytes] = field(default_factory=dict)  # decoder-made recordings ("rdp.pyrdp")
    truncated: bool = False


class SessionReconstructor:
    def __init__(self, opened_ts: float, protocol: str, client_ip: str, client_port: int,
                 server_ip: str, server_port: int, picked_up: bool, decoder: Decoder | None,
                 tagger: Callable[[Event], list[Tagged]] | None = None) -> None:
        self.decoder = decoder
        self.tagger = tagger
        self.failed = decoder is None
        self.record = SessionRecord(
            id=session_id(protocol, client_ip, client_port, server_ip, server_port, opened_ts),
            protocol=protocol, client_ip=client_ip, client_port=client_port, server_ip=server_ip,
            server_port=server_port, start=opened_ts, picked_up=picked_up)
        if picked_up:
            self.record.status = "partial"
            self.record.status_reason = "capture began after the connection opened"
        self._take([SessionStarted(opened_ts, protocol, client_ip, client_port, server_ip,
                                   server_port, picked_up)])
        if decoder is None:
            self._take([DecodeError(opened_ts, f"no decoder for {protocol}")])

    # -- input from the sensor ----------------------------------------------------------------
    def data(self, direction: str, data: bytes, ts: float) -> None:
        if direction == "c2s":
            self.record.c2s_bytes += len(data)
        else:
            self.record.s2c_bytes += len(data)
        if self.failed:
            return
        events = self._events(self.decoder.feed, ts, direction, data, ts)  # type: ignore[union-attr]
        # most events of a shell session are terminal bytes, one pair per keystroke: kept
        # here without the rule and timeline dispatch of ``_take``
        terminal = self.record.terminal
        for ev in events:
            if (type(ev) is Output or type(ev) is Input) and len(terminal) < MAX_TERMINAL_EVENTS:
                terminal.append(ev)
            else:
                self._take((ev,))

    def gap(self, direction: str, nbytes: int, ts: float) -> None:
        self._take([Gap(ts, direction, nbytes)])  # type: ignore[arg-type]
        if not self.failed:
            self._take(self._events(self.decoder.gap, ts, direction, nbytes, ts))  # type: ignore[union-attr]

    def conflict(self, direction: str, offset: int, nbytes: int, ts: float) -> None:
        self._take([Notice(ts, "retransmission-conflict",
                           f"{direction} retransmission at stream offset {offset} differs in {nbytes} "
                           f"byte(s) from the copy already seen; the first copy was kept",
                           ("capture-anomaly",), "medium")])

    def close(self, ts: float, reason: str) -> SessionRecord:
        if not self.failed:
            self._take(self._events(self.decoder.close, ts, ts, reason))  # type: ignore[union-attr]
        replay = getattr(self.decoder, "replay", None)
        if replay is not None:
            # a decoder that rebuilds a native recording (RDP: a PyRDP replay) hands it over here
            try:
                data = replay()
            except Exception as e:
                self._take([DecodeError(ts, f"replay could not be built: {type(e).__name__}: {e}", fatal=False)])
                data = None
            if data:
                name = getattr(self.decoder, "replay_name", "rdp.pyrdp" if self.record.protocol == "rdp"
                               else f"{self.record.protocol}.replay")
                self.record.artefacts[name] = data
        if self.record.end is None:
            self._take([SessionEnded(ts, reason)])
        if self.record.user is None and self.record.metadata.get("user-hint"):
            self.record.user = self.record.metadata["user-hint"]
        if reason in ("idle", "capture-end", "evicted") and self.record.status == "complete":
            self.record.status = "partial"
            self.record.status_reason = {
                "idle": "no traffic for the idle timeout; closed without FIN/RST",
                "capture-end": "the capture ended before the connection closed",
                "evicted": "flow table full; the oldest flows were closed"}[reason]
        return self.record

    def _events(self, fn: Callable[..., Iterable[Event]], ts: float, *args: object) -> Iterable[Event]:
        """``fn(*args)``'s events, or the one error that ends this decoder (the session is kept)."""
        try:
            return fn(*args)
        except Exception as e:  # one error per flow: the decoder is done, the session is kept
            self.failed = True
            return [DecodeError(ts, f"decoder failed: {type(e).__name__}: {e}")]

    # -- what events add up to --------------------------------------------------------------
    def _take(self, events: Iterable[Event]) -> None:
        rec = self.record
        for ev in events:
            if self.tagger is not None and isinstance(ev, (CommandEntered, CommandOutput, Notice, FileTransfer)):
                tags = self.tagger(ev)
            else:
                tags = []
            self._one(rec, ev)
            for t in tags:
                self._one(rec, t)

    def _one(self, rec: SessionRecord, ev: Event) -> None:
        if isinstance(ev, (Output, Input, Resize)):
            if len(rec.terminal) < MAX_TERMINAL_EVENTS:
                rec.terminal.append(ev)
            else:
                rec.truncated = True
            if isinstance(ev, Resize):
                rec.metadata.setdefault("size", f"{ev.cols}x{ev.rows}")
            return
        entry: TimelineEntry | None = None
        if isinstance(ev, SessionStarted):
            entry = TimelineEntry(ev.ts, "session-start",
                                  f"{ev.protocol} {ev.client_ip}:{ev.client_port} -> {ev.server_ip}:{ev.server_port}"
                                  + (" (picked up mid-connection)" if ev.picked_up else ""))
        elif isinstance(ev, Metadata):
            if ev.key == "decrypted":
                rec.decrypted = ev.value.lower() == "true"
            elif ev.key in ("decrypt-reason", "decrypted_reason", "decrypt_reason"):
                rec.decrypt_reason = ev.value
            elif ev.key in ("user", "env-user") and not rec.user:
                rec.user = ev.value
            elif ev.key == "cookie" and ev.value:
                # the RDP X.224 cookie (mstshash=) names the user in clear: a hint, used only when
                # nothing better (Client Info, NTLM) was seen -- as in Zeek's rdp.log
                rec.metadata.setdefault("user-hint", ev.value.split("=", 1)[-1])
            rec.metadata[ev.key] = ev.value
            return
        elif isinstance(ev, AuthAttempt):
            rec.auth_attempts.append(ev)
            if ev.result == "success":
                rec.auth = "success"
                if ev.user:
                    rec.user = ev.user
            elif ev.result == "failure" and rec.auth != "success":
                rec.auth = "failure"
                if ev.user and not rec.user:
                    rec.user = ev.user
            elif ev.user and not rec.user:
                rec.user = ev.user
            entry = TimelineEntry(ev.ts, "auth", f"{ev.method} login as {ev.user or '?'}: {ev.result}"
                                  + (f" ({ev.detail})" if ev.detail else ""))
        elif isinstance(ev, CommandEntered):
            rec.commands.append(CommandRecord(ev.index, ev.ts, ev.text, ev.source))
            entry = TimelineEntry(ev.ts, "command", ev.text, ref=ev.index)
        elif isinstance(ev, CommandOutput):
            for c in reversed(rec.commands):
                if c.index == ev.index:
                    c.output = ev.text
                    c.output_ts = ev.ts
                    break
            return
        elif isinstance(ev, FileTransfer):
            rec.files.append(ev)
            entry = TimelineEntry(ev.ts, "file", f"{ev.method} {ev.direction} {ev.path} ({ev.size} bytes, sha256 {ev.sha256[:16]}…)"
                                  + ("" if ev.complete else " incomplete"))
        elif isinstance(ev, ClipboardCopy):
            entry = TimelineEntry(ev.ts, "clipboard", f"{ev.direction}: {ev.text}")
        elif isinstance(ev, Notice):
            entry = TimelineEntry(ev.ts, ev.kind, ev.text, ev.tags, ev.severity)
        elif isinstance(ev, Tagged):
            rec.terminal.append(ev)
            if ev.ref_kind == "command" and ev.ref_index is not None:
                for c in reversed(rec.commands):
                    if c.index == ev.ref_index:
                        if ev.tag not in c.tags:
                            c.tags.append(ev.tag)
                        break
            entry = TimelineEntry(ev.ts, "tag", f"{ev.tag}: {ev.text}", (ev.tag,), ev.severity, ev.ref_index)
        elif isinstance(ev, Gap):
            rec.gaps.append(ev)
            if rec.status == "complete":
                rec.status = "partial"
                rec.status_reason = "bytes missing from the capture (see gaps)"
            entry = TimelineEntry(ev.ts, "gap", f"{ev.nbytes} bytes missing ({ev.direction})",
                                  ("capture-gap",), "low")
        elif isinstance(ev, DecodeError):
            if ev.fatal or rec.status != "decode_error":
                rec.status = "decode_error"
                rec.status_reason = ev.reason
            entry = TimelineEntry(ev.ts, "decode-error", ev.reason, ("decode-error",), "medium")
        elif isinstance(ev, SessionEnded):
            rec.end = ev.ts
            rec.end_reason = ev.reason
            entry = TimelineEntry(ev.ts, "session-end", ev.reason)
        if entry is not None:
            if len(rec.timeline) < MAX_TIMELINE_EVENTS:
                rec.timeline.append(entry)
            else:
                rec.truncated = True
