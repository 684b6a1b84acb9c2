"""What the SIEM hears: session starts and ends, every tagged event, and the sensor's alerts.

Each message goes to every configured syslog target (RFC 5424; UDP, TCP or TLS with RFC 6587
octet-counting framing) as CEF or as one JSON object, and each ended session is appended to
a Zeek-style log on disk (``ssh.log``, ``rdp.log``, ``telnet.log``: JSON lines, Zeek's field
names where Zeek has one).

Delivery never blocks the sensor: each target has a bounded queue and its own sender thread
that reconnects with backoff. A full queue drops its oldest message and counts it
(``dropped``), and a target that drops is an alert itself.
"""
from __future__ import annotations

import collections
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance.config import SyslogTarget

APP = "sessiontap"
VERSION = "0.1"
FACILITY = 13                   # "log audit" (RFC 5424 table 1)
SEVERITY = {"info": 6, "low": 5, "medium": 4, "high": 3, "critical": 2}
CEF_SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}


@dataclass
class SiemEvent:
    """One thing to tell the SIEM; ``kind`` is the syslog MSGID and the CEF signature id."""
    kind: str                    # session-start | session-end | tag | alert
    ts: float
    name: str                    # one line for a human
    severity: str = "info"
    session: dict[str, Any] | None = None   # id, protocol, client/server ip:port, user, ...
    fields: dict[str, Any] | None = None    # kind-specific: tag, command, reason, ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _cef_header(v: str) -> str:
    return v.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_ext(v: Any) -> str:
    return (str(v).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n"))


def to_cef(ev: SiemEvent) -> str:
    """ArcSight CEF: fixed header, then key=value extensions (standard keys where they exist)."""
    s = ev.session or {}
    f = ev.fields or {}
    ext: list[tuple[str, Any]] = [("rt", int(ev.ts * 1000))]
    for key, col in (("src", "client_ip"), ("spt", "client_port"), ("dst", "server_ip"), ("dpt", "server_port"),
                     ("suser", "user"), ("app", "protocol")):
        if s.get(col) not in (None, ""):
            ext.append((key, s[col]))
    if s:
        ext.append(("proto", "TCP"))
        ext.append(("cs1Label", "sessionId"))
        ext.append(("cs1", s.get("id", "")))
    if "tag" in f:
        ext += [("cs2Label", "tag"), ("cs2", f["tag"])]
    if "command" in f:
        ext += [("cs3Label", "command"), ("cs3", f["command"])]
    if "status" in f:
        ext += [("cs4Label", "status"), ("cs4", f["status"])]
    if "reason" in f:
        ext.append(("reason", f["reason"]))
    if "commands" in f:
        ext += [("cn1Label", "commands"), ("cn1", f["commands"])]
    ext.append(("msg", ev.name))
    head = "|".join(_cef_header(x) for x in ("CEF:0", "sessiontap", APP, VERSION, ev.kind, ev.name[:128]))
    return f"{head}|{CEF_SEVERITY.get(ev.severity, 1)}|" + " ".join(f"{k}={_cef_ext(v)}" for k, v in ext)


def to_json(ev: SiemEvent) -> str:
    obj: dict[str, Any] = {"ts": _iso(ev.ts), "kind": ev.kind, "name": ev.name, "severity": ev.severity}
    if ev.session:
        obj["session"] = ev.session
    if ev.fields:
        obj.update(ev.fields)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def syslog_line(ev: SiemEvent, fmt: str, hostname: str | None = None) -> bytes:
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG."""
    pri = FACILITY * 8 + SEVERITY.get(ev.severity, 6)
    host = (hostname or socket.gethostname() or "-")[:255]
    body = to_cef(ev) if fmt == "cef" else to_json(ev)
    return f"<{pri}>1 {_iso(ev.ts)} {host} {APP} {os.getpid()} {ev.kind} - {body}".encode("utf-8")


class SyslogSender:
    """One target: a bounded queue and a thread that delivers it, reconnecting with backoff."""

    def __init__(self, target: SyslogTarget, limit: int = 10000) -> None:
        self.target = target
        self.q: collections.deque[bytes] = collections.deque()
        self.limit = limit
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._sock: socket.socket | None = None
        self._t = threading.Thread(target=self._run, name=f"syslog {target.target}", daemon=True)
        self._t.start()

    def put(self, msg: bytes) -> None:
        with self._cv:
            if len(self.q) >= self.limit:
                self.q.popleft()
                self.dropped += 1
            self.q.append(msg)
            self._cv.notify()

    def depth(self) -> int:
        return len(self.q)

    def close(self, drain_seconds: float = 2.0) -> None:
        deadline = time.monotonic() + drain_seconds
        while self.q and time.monotonic() < deadline and self.last_error is None:
            time.sleep(0.02)
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._t.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    def _connect(self) -> socket.socket:
        t = self.target
        if t.scheme == "udp":
            s = socket.socket(socket.AF_INET6 if ":" in t.host else socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((t.host, t.port))
            return s
        s = socket.create_connection((t.host, t.port), timeout=5)
        if t.scheme == "tls":
            ctx = ssl.create_default_context(cafile=t.ca)
            s = ctx.wrap_socket(s, server_hostname=t.host)
        s.settimeout(10)
        return s

    def _run(self) -> None:
        backoff = 0.2
        while True:
            with self._cv:
                while not self.q and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                msg = self.q[0]
            try:
                if self._sock is None:
                    self._sock = self._connect()
                if self.target.scheme == "udp":
                    self._sock.send(msg[:65000])
                else:
                    self._sock.sendall(b"%d " % len(msg) + msg)    # RFC 6587 octet counting
                with self._cv:
                    if self.q and self.q[0] is msg:
                        self.q.popleft()
                self.sent += 1
                self.last_error = None
                backoff = 0.2
            except (OSError, ssl.SSLError) as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if self._sock is not None:
                    try:
                        self._sock.close()
                    except OSError:
                        pass
                    self._sock = None
                with self._cv:
                    self._cv.wait(timeout=backoff)
                    if self._stop:
                        return
                backoff = min(backoff * 2, 10.0)


# -- Zeek-style logs ---------------------------------------------------------------------------
def zeek_record(s: dict[str, Any]) -> dict[str, Any]:
    """A session as a Zeek log line: conn 4-tuple as id.*, uid = session id, plus what we know."""
    meta = s.get("metadata") or {}
    rec: dict[str, Any] = {
        "ts": s["start_ts"], "uid": s["id"],
        "id.orig_h": s["client_ip"], "id.orig_p": s["client_port"],
        "id.resp_h": s["server_ip"], "id.resp_p": s["server_port"],
        "duration": round(s["end_ts"] - s["start_ts"], 6) if s.get("end_ts") is not None else None,
        "user": s.get("user"), "auth": s.get("auth"),
        "auth_attempts": s.get("auth_attempts", 0),
        "commands": s.get("commands", []), "tags": s.get("tags", []),
        "status": s.get("status"), "end_reason": s.get("end_reason"),
    }
    proto = s["protocol"]
    if proto == "ssh":
        rec["auth_success"] = {"success": True, "failure": False}.get(s.get("auth") or "")
        rec["client"] = meta.get("client-version")
        rec["server"] = meta.get("server-version")
        rec["decrypted"] = s.get("decrypted")
    elif proto == "rdp":
        rec["cookie"] = s.get("user")
        rec["result"] = {"success": "Success", "failure": "Failure"}.get(s.get("auth") or "", "")
        rec["decrypted"] = s.get("decrypted")
    elif proto == "telnet":
        rec["terminal"] = meta.get("terminal")
    return rec


class ZeekLogs:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.errors = 0

    def write(self, s: dict[str, Any]) -> None:
        try:
            with open(self.dir / f"{s['protocol']}.log", "a", encoding="utf-8") as f:
                f.write(json.dumps(zeek_record(s), ensure_ascii=False) + "\n")
        except OSError:
            self.errors += 1


class Siem:
    """All targets together: ``send`` fans a message out without waiting for any of them."""

    def __init__(self, targets: list[SyslogTarget], zeek_dir: Path | None, queue: int = 10000,
                 hostname: str | None = None) -> None:
        self.senders = [SyslogSender(t, queue) for t in targets]
        self.zeek = ZeekLogs(zeek_dir) if zeek_dir else None
        self.hostname = hostname
        self.messages = 0

    def send(self, ev: SiemEvent) -> None:
        self.messages += 1
        for s in self.senders:
            s.put(syslog_line(ev, s.target.format, self.hostname))

    def session_log(self, s: dict[str, Any]) -> None:
        if self.zeek is not None:
            self.zeek.write(s)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.senders)

    def depth(self) -> int:
        return sum(s.depth() for s in self.senders)

    def close(self) -> None:
        for s in self.senders:
            s.close()


__all__ = ["Siem", "SiemEvent", "SyslogSender", "ZeekLogs", "syslog_line", "to_cef", "to_json", "zeek_record"]
