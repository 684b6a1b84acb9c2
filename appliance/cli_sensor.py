"""``sessiontap sensor`` (the daemon on the mirror port), ``sessiontap live`` (what is in
progress, or one session followed as it happens) and ``sessiontap health``."""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from appliance.home import Home

STALE_AFTER = 15.0     # seconds without a status update: the sensor is not running


def _config_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from appliance.config import Config, ConfigError, load, parse
    if args.config:
        cfg = load(args.config)
    else:
        cfg = parse("", "command line")
    # command-line options win over the file, checked by the same rules
    lines = []
    if args.interface:
        cfg.interface, cfg.pcap = args.interface, None
    if args.pcap:
        cfg.pcap, cfg.interface = args.pcap, None
    if args.subnet:
        lines.append("subnets = " + json.dumps(args.subnet))
    if args.port:
        lines.append("ports = " + json.dumps(args.port))
    if lines:
        extra = parse("[capture]\n" + "\n".join(lines), "command line")
        if args.subnet:
            cfg.subnets = extra.subnets
        if args.port:
            cfg.ports = extra.ports
    if args.content_detection:
        cfg.content_detection = True
    if args.checkpoint_seconds is not None:
        cfg.checkpoint_seconds = parse(f"[sessions]\ncheckpoint_seconds = {args.checkpoint_seconds}",
                                       "command line").checkpoint_seconds
    if args.stop_seconds is not None:
        cfg.stop_seconds = parse(f"[sessions]\nstop_seconds = {args.stop_seconds}", "command line").stop_seconds
    if args.capture_method:
        cfg.method = args.capture_method
    if args.workers is not None:
        method = cfg.method
        cfg.workers = parse(f"[capture]\nmethod = {json.dumps(method)}\nworkers = {args.workers}",
                            "command line").workers
    for target in args.syslog or []:
        fmt = args.syslog_format
        cfg.syslog += parse(f'[[siem.syslog]]\ntarget = {json.dumps(target)}\nformat = {json.dumps(fmt)}',
                            "command line").syslog
    if args.zeek_logs:
        cfg.zeek_logs = args.zeek_logs
    if args.metrics:
        cfg.metrics_listen = parse(f"[metrics]\nlisten = {json.dumps(args.metrics)}", "command line").metrics_listen
    if not cfg.interface and not cfg.pcap:
        raise ConfigError("command line: give --interface (the mirror port), --pcap or --config")
    assert isinstance(cfg, Config)
    return cfg


def cmd_sensor(args: argparse.Namespace) -> int:
    from appliance.config import ConfigError
    from appliance.sensor_daemon import SensorDaemon
    try:
        cfg = _config_from_args(args)
    except ConfigError as e:
        print(f"sessiontap: {e}", file=sys.stderr)
        return 2
    if args.check:
        # what the start would do first: the file is valid and the kernel filter compiles
        from sensor.capture import CaptureError
        from sensor.live import build_filter, compile_filter
        expr = build_filter(cfg.subnets, cfg.ports, cfg.content_detection)
        try:
            compile_filter(expr, None)
        except CaptureError as e:
            print(f"sessiontap: {e}", file=sys.stderr)
            return 2
        print(f"{args.config or 'command line'}: ok; capture filter: {expr}")
        return 0
    home = Home(actor="sensor")
    return SensorDaemon(cfg, home, args.config).run()


def read_status(home: Home) -> dict[str, Any] | None:
    p = home.path / "run" / "status.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _running(st: dict[str, Any] | None) -> bool:
    if not st or not st.get("running"):
        return False
    try:
        os.kill(int(st["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return False
    return time.time() - float(st.get("updated", 0)) < STALE_AFTER


def cmd_live(args: argparse.Namespace) -> int:
    home = Home()
    st = read_status(home)
    if not _running(st):
        print("sessiontap: the sensor is not running (start it with `sessiontap sensor`)", file=sys.stderr)
        return 2
    assert st is not None
    if args.id:
        return _follow(home, args.id, args.json)
    sessions = st["sessions"]
    if args.json:
        for s in sessions:
            sys.stdout.write(json.dumps(s) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"{len(sessions)} session(s) in progress on {st['capture']}")
    for col in ("id", "protocol", "client", "server", "user", "since (UTC)", "cmds", "last command"):
        t.add_column(col, no_wrap=col in ("id", "client", "server"))
    for s in sessions:
        t.add_row(s["id"][:12], s["protocol"], s["client"], s["server"], s["user"] or "-",
                  (s["start"] or "")[11:19], str(s["commands"]), s["last_command"] or "")
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return 0


def _follow(home: Home, sid: str, as_json: bool) -> int:
    path = home.path / "run" / "sensor.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError as e:
        print(f"sessiontap: cannot reach the sensor ({e.strerror})", file=sys.stderr)
        return 2
    s.sendall(json.dumps({"op": "follow", "id": sid}).encode() + b"\n")
    f = s.makefile("rb")
    out = sys.stdout
    try:
        for line in f:
            msg = json.loads(line)
            if as_json:
                out.write(line.decode())
                out.flush()
                if "error" in msg:
                    return 1
                continue
            if "error" in msg:
                print(f"sessiontap: {msg['error']}", file=sys.stderr)
                return 1
            if "session" in msg:
                m = msg["session"]
                print(f"following {m['protocol']} {m['client_ip']}:{m['client_port']} -> "
                      f"{m['server_ip']}:{m['server_port']} (user {m['user'] or '?'}); Ctrl-C to stop",
                      file=sys.stderr)
            elif "o" in msg:
                out.write(msg["o"])
                out.flush()
            elif "end" in msg:
                print(f"\r\n[session ended: {msg['end']}, {msg['status']}]", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        s.close()
    return 0


def health_report(st: dict[str, Any] | None) -> tuple[int, list[str]]:
    """Exit code (0 healthy, 1 alerts, 2 not running) and the lines to print."""
    if st is None:
        return 2, ["sensor: never started in this data directory"]
    if not _running(st):
        return 2, [f"sensor: not running (last status {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(st.get('updated', 0)))} UTC)"]
    c = st["counters"]
    lines = [f"sensor: running on {st['capture']} since {st['started']} (pid {st['pid']})",
             f"capture: {c['packets']} packets, {c['bytes']} bytes; drops: kernel {c['kernel_drops']}, "
             f"sensor {c['own_drops']}, interface {c['interface_drops']}",
             f"sessions: {c['sessions_active']} in progress, {sum(c['sessions_total'].values())} since start; "
             f"decrypt failures {c['decrypt_failures']}, waiting for keys {c['keys_missing']}",
             f"siem: {c['siem_sent']} sent, {c['siem_queue']} queued, {c['siem_dropped']} dropped",
             f"recording: last checkpoint {st['last_checkpoint']}, failures {c['recording_failures']}",
             f"disk: {st['disk']['free_bytes'] // (1 << 20)} MiB free ({st['disk']['free_ratio']:.1%})"]
    for a in st["alerts"]:
        lines.append(f"ALERT {a['name']} (since {a['since']}): {a['message']}")
    return (1 if st["alerts"] else 0), lines


def cmd_health(args: argparse.Namespace) -> int:
    st = read_status(Home())
    code, lines = health_report(st)
    if args.json:
        sys.stdout.write(json.dumps({"status": ["ok", "alert", "down"][code], "detail": st}) + "\n")
    else:
        for line in lines:
            print(line)
    return code


def register(sub: Any) -> None:
    s = sub.add_parser("sensor", help="record sessions live from a mirror port (daemon)")
    s.add_argument("--config", metavar="FILE", help="sensor.toml (see appliance/config.py)")
    s.add_argument("--interface", "-i", metavar="IFACE", help="the mirror (SPAN/TAP) interface")
    s.add_argument("--pcap", metavar="FILE", help="read a classic pcap stream instead (- for stdin)")
    s.add_argument("--subnet", action="append", metavar="NET", help="OT subnet to record (repeatable)")
    s.add_argument("--port", action="append", type=int, metavar="PORT", help="admin port (repeatable)")
    s.add_argument("--content-detection", action="store_true",
                   help="capture every TCP port of the subnets, find the protocol by content")
    s.add_argument("--checkpoint-seconds", type=float, metavar="S")
    s.add_argument("--stop-seconds", type=float, metavar="S",
                   help="on SIGTERM, process the backlog at most this long (default 15)")
    s.add_argument("--capture-method", choices=["ring", "socket"],
                   help="ring: TPACKET_V3 mmap'd ring (default); socket: one recv per packet")
    s.add_argument("--workers", type=int, metavar="N",
                   help="sensor processes sharing the port by flow hash (ring only; default 1)")
    s.add_argument("--syslog", action="append", metavar="URL", help="udp://, tcp:// or tls://HOST:PORT")
    s.add_argument("--syslog-format", choices=["cef", "json"], default="cef")
    s.add_argument("--zeek-logs", metavar="DIR", help="write ssh.log / rdp.log / telnet.log here")
    s.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics")
    s.add_argument("--check", action="store_true", help="check the configuration and the capture filter, then exit")
    s.set_defaults(func=cmd_sensor)

    s = sub.add_parser("live", help="sessions in progress; `live ID` follows one as it happens")
    s.add_argument("id", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_live)

    s = sub.add_parser("health", help="is the sensor running, capturing without drops, recording?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_health)
