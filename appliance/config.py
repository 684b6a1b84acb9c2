"""The sensor's one configuration file (TOML), checked whole at start and on SIGHUP.

Every mistake is reported as one line naming the key and what is wrong with it
(``sensor.toml: capture.subnets[1]: '10.0.0.0/33' is not an IP network``), before anything
starts. Unknown keys are errors too: a typo must not silently fall back to a default.

    [capture]
    interface = "eth1"                  # the mirror port (or: pcap = "-" for a pcap stream on stdin)
    subnets = ["10.20.0.0/16"]          # OT subnets (empty: all)
    ports = [22, 23, 2323, 3389]        # admin ports the kernel filter lets through
    content_detection = false           # true: every TCP port of the subnets, protocol found by content
    buffer_mb = 64                      # kernel buffer (the mmap'd ring, or the socket buffer)
    method = "ring"                     # "ring" (TPACKET_V3 mmap, falls back to "socket") or "socket"
    workers = 1                         # ring only: sensor processes sharing the port by flow hash (PACKET_FANOUT)
    [capture.ring]                      # optional: raw packets kept as pcap files
    file_mb = 64
    files = 16
    file_seconds = 3600

    [sessions]
    checkpoint_seconds = 2              # a crash loses at most this much of a live session
    idle_timeout = 7200
    stop_seconds = 15                   # SIGTERM: at most this long processing what was captured, then
                                        # in-progress sessions are written as partial (the rest: counted drops)

    [[siem.syslog]]
    target = "tls://siem.example:6514"  # udp://, tcp:// or tls://
    format = "cef"                      # or "json"
    ca = "/etc/sessiontap/siem-ca.pem"  # tls only; default: the system's CAs
    [siem]
    zeek_logs = "zeek"                  # ssh.log / rdp.log / telnet.log (JSON lines); relative to the data dir
    queue = 10000                       # messages held per target while it is unreachable

    [metrics]
    listen = "127.0.0.1:9108"           # Prometheus /metrics

    [escrow]
    listen = "0.0.0.0:8443"             # HTTPS key intake for jump hosts
    tokens = { "jump-1" = "sha256:<hex of the token>" }
"""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.live import ADMIN_PORTS


# SIGTERM: processing the backlog may take this long at most; writing the sessions in progress
# comes after it, and the whole must fit in the unit's TimeoutStopSec (60 s)
STOP_SECONDS_MAX = 40
MAX_WORKERS = 16


class ConfigError(ValueError):
    """One line: where in the file, and what is wrong."""


@dataclass
class RingConfig:
    file_mb: int = 64
    files: int = 16
    file_seconds: int = 3600


@dataclass
class SyslogTarget:
    target: str
    scheme: str
    host: str
    port: int
    format: str = "cef"
    ca: str | None = None


@dataclass
class Config:
    source: str = "<defaults>"
    interface: str | None = None
    pcap: str | None = None
    subnets: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=lambda: list(ADMIN_PORTS))
    content_detection: bool = False
    buffer_mb: int = 64
    method: str = "ring"
    workers: int = 1
    ring: RingConfig | None = None
    checkpoint_seconds: float = 2.0
    idle_timeout: float = 7200.0
    stop_seconds: float = 15.0
    syslog: list[SyslogTarget] = field(default_factory=list)
    zeek_logs: str | None = None
    siem_queue: int = 10000
    metrics_listen: tuple[str, int] | None = None
    escrow_listen: tuple[str, int] | None = None
    escrow_tokens: dict[str, str] = field(default_factory=dict)
    escrow_cert: str | None = None
    escrow_key: str | None = None


_KEYS = {
    "capture": {"interface", "pcap", "subnets", "ports", "content_detection", "buffer_mb", "method", "workers", "ring"},
    "capture.ring": {"file_mb", "files", "file_seconds"},
    "sessions": {"checkpoint_seconds", "idle_timeout", "stop_seconds"},
    "siem": {"syslog", "zeek_logs", "queue"},
    "siem.syslog": {"target", "format", "ca"},
    "metrics": {"listen"},
    "escrow": {"listen", "tokens", "cert", "key"},
}


def _check_keys(where: str, table: Any, src: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: {where} must be a table")
    allowed = _KEYS.get(where.split("[")[0], set())
    for k in table:
        if k not in allowed:
            raise ConfigError(f"{src}: {where}.{k}: unknown key (known: {', '.join(sorted(allowed))})")
    return table


def _typed(src: str, where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{src}: {where}: expected {what}, got {value!r}")
    return value


def _positive(src: str, where: str, value: Any) -> Any:
    _typed(src, where, value, (int, float), "a number")
    if value <= 0 or isinstance(value, bool):
        raise ConfigError(f"{src}: {where}: must be greater than 0, got {value!r}")
    return value


def _listen(src: str, where: str, value: Any) -> tuple[str, int]:
    _typed(src, where, value, str, 'an address like "127.0.0.1:9108"')
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{src}: {where}: {value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse(text: str, src: str = "sensor.toml") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{src}: not valid TOML ({e})") from None
    for k in raw:
        if k not in ("capture", "sessions", "siem", "metrics", "escrow"):
            raise ConfigError(f"{src}: [{k}]: unknown section (known: capture, sessions, siem, metrics, escrow)")
    cfg = Config(source=src)
    cap = _check_keys("capture", raw.get("capture", {}), src)
    if "interface" in cap:
        cfg.interface = _typed(src, "capture.interface", cap["interface"], str, "an interface name")
    if "pcap" in cap:
        cfg.pcap = _typed(src, "capture.pcap", cap["pcap"], str, 'a path or "-"')
    if cfg.interface and cfg.pcap:
        raise ConfigError(f"{src}: capture: give interface or pcap, not both")
    subnets = _typed(src, "capture.subnets", cap.get("subnets", []), list, "a list of networks")
    for i, n in enumerate(subnets):
        try:
            cfg.subnets.append(str(ipaddress.ip_network(_typed(src, f"capture.subnets[{i}]", n, str, "a network"),
                                                        strict=False)))
        except ValueError:
            raise ConfigError(f"{src}: capture.subnets[{i}]: {n!r} is not an IP network") from None
    if "ports" in cap:
        ports = _typed(src, "capture.ports", cap["ports"], list, "a list of ports")
        for i, p in enumerate(ports):
            _typed(src, f"capture.ports[{i}]", p, int, "a port number")
            if not 0 < p < 65536:
                raise ConfigError(f"{src}: capture.ports[{i}]: {p} is not a TCP port")
        cfg.ports = list(ports)
    cfg.content_detection = _typed(src, "capture.content_detection", cap.get("content_detection", False),
                                   bool, "true or false")
    if not cfg.ports and not cfg.content_detection:
        raise ConfigError(f"{src}: capture.ports: empty, and content_detection is off: nothing would be captured")
    cfg.buffer_mb = int(_positive(src, "capture.buffer_mb", cap.get("buffer_mb", 64)))
    cfg.method = cap.get("method", "ring")
    if cfg.method not in ("ring", "socket"):
        raise ConfigError(f"{src}: capture.method: {cfg.method!r} is not \"ring\" or \"socket\"")
    cfg.workers = int(_positive(src, "capture.workers", cap.get("workers", 1)))
    if cfg.workers > MAX_WORKERS:
        raise ConfigError(f"{src}: capture.workers: at most {MAX_WORKERS}")
    if cfg.workers > 1 and cfg.method != "ring":
        raise ConfigError(f"{src}: capture.workers: more than one needs method = \"ring\" (PACKET_FANOUT)")
    if "ring" in cap:
        ring = _check_keys("capture.ring", cap["ring"], src)
        cfg.ring = RingConfig(int(_positive(src, "capture.ring.file_mb", ring.get("file_mb", 64))),
                              int(_positive(src, "capture.ring.files", ring.get("files", 16))),
                              int(_positive(src, "capture.ring.file_seconds", ring.get("file_seconds", 3600))))
    ses = _check_keys("sessions", raw.get("sessions", {}), src)
    cfg.checkpoint_seconds = float(_positive(src, "sessions.checkpoint_seconds", ses.get("checkpoint_seconds", 2)))
    if cfg.checkpoint_seconds > 60:
        raise ConfigError(f"{src}: sessions.checkpoint_seconds: at most 60 (a crash would lose more than a minute)")
    cfg.idle_timeout = float(_positive(src, "sessions.idle_timeout", ses.get("idle_timeout", 7200)))
    stop = _typed(src, "sessions.stop_seconds", ses.get("stop_seconds", 15), (int, float), "a number of seconds")
    if isinstance(stop, bool) or not 0 <= stop <= STOP_SECONDS_MAX:
        raise ConfigError(f"{src}: sessions.stop_seconds: {stop!r} is not between 0 and {STOP_SECONDS_MAX} "
                          f"(the service manager kills the sensor after TimeoutStopSec=60)")
    cfg.stop_seconds = float(stop)
    siem = _check_keys("siem", raw.get("siem", {}), src)
    for i, t in enumerate(_typed(src, "siem.syslog", siem.get("syslog", []), list, "a list of [[siem.syslog]] tables")):
        where = f"siem.syslog[{i}]"
        _check_keys(where, t, src)
        target = _typed(src, f"{where}.target", t.get("target"), str, 'a target like "tcp://host:514"')
        scheme, sep, rest = target.partition("://")
        host, _, port = rest.rpartition(":")
        if not sep or scheme not in ("udp", "tcp", "tls") or not host or not port.isdigit():
            raise ConfigError(f"{src}: {where}.target: {target!r} is not udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
        fmt = t.get("format", "cef")
        if fmt not in ("cef", "json"):
            raise ConfigError(f"{src}: {where}.format: {fmt!r} is not \"cef\" or \"json\"")
        ca = t.get("ca")
        if ca is not None and not Path(ca).is_file():
            raise ConfigError(f"{src}: {where}.ca: {ca}: no such file")
        cfg.syslog.append(SyslogTarget(target, scheme, host.strip("[]"), int(port), fmt, ca))
    if "zeek_logs" in siem:
        cfg.zeek_logs = _typed(src, "siem.zeek_logs", siem["zeek_logs"], str, "a directory")
    cfg.siem_queue = int(_positive(src, "siem.queue", siem.get("queue", 10000)))
    met = _check_keys("metrics", raw.get("metrics", {}), src)
    if "listen" in met:
        cfg.metrics_listen = _listen(src, "metrics.listen", met["listen"])
    esc = _check_keys("escrow", raw.get("escrow", {}), src)
    if "listen" in esc:
        cfg.escrow_listen = _listen(src, "escrow.listen", esc["listen"])
        tokens = _typed(src, "escrow.tokens", esc.get("tokens", {}), dict, "a table host = \"sha256:<hex>\"")
        if not tokens:
            raise ConfigError(f"{src}: escrow.tokens: the intake needs at least one host token")
        for host, digest in tokens.items():
            d = _typed(src, f"escrow.tokens.{host}", digest, str, '"sha256:<64 hex digits>"')
            hexpart = d.removeprefix("sha256:")
            if not d.startswith("sha256:") or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                raise ConfigError(f"{src}: escrow.tokens.{host}: expected \"sha256:<64 hex digits>\" "
                                  f"(the token's digest, never the token itself)")
            cfg.escrow_tokens[host] = hexpart
        for k in ("cert", "key"):
            if k in esc:
                v = _typed(src, f"escrow.{k}", esc[k], str, "a PEM file")
                if not Path(v).is_file():
                    raise ConfigError(f"{src}: escrow.{k}: {v}: no such file")
                setattr(cfg, f"escrow_{k}", v)
    elif "tokens" in esc:
        raise ConfigError(f"{src}: escrow.listen: tokens are given but no address to listen on")
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the configuration ({e.strerror})") from None
    cfg = parse(text, str(p))
    if not cfg.interface and not cfg.pcap:
        raise ConfigError(f"{p}: capture.interface: missing (the mirror port to listen on)")
    return cfg


__all__ = ["Config", "ConfigError", "RingConfig", "SyslogTarget", "load", "parse"]
