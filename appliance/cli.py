"""``sessiontap`` command line: argument parsing and presentation only.

Each command is a thin function over the importer, the catalog and the recording store;
extra command groups (the vault's, the sensor's) live in their own ``appliance/cli_*.py``
modules and register themselves here.
"""
from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import sys
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from appliance.home import Home
from storage.catalog import Catalog, SessionFilter, iso, parse_time

AUTO_JOBS_SIZE = 256 * 1024 * 1024
EXTRA_COMMAND_MODULES = ("appliance.cli_vault", "appliance.cli_keys", "appliance.cli_rdp", "appliance.cli_sensor",
                         "appliance.cli_console")

# pipes and files get tables at their natural width, not cut to the 80 columns rich assumes
# without a terminal
out = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 1000)


def emit(line: str) -> None:
    """Machine-readable output goes out as is: rich would wrap and restyle it."""
    sys.stdout.write(line + "\n")


def warn(message: str) -> None:
    """One plain line on stderr (never wrapped: scripts and people grep these)."""
    sys.stderr.write(f"sessiontap: {message}\n")


def fail(message: str, code: int = 2) -> int:
    warn(message)
    return code


def actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return f"uid-{os.getuid()}"


# -- import -----------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    from appliance.importer import Importer
    from appliance.keys import load_keys

    home = Home(actor=actor())
    try:
        keys = load_keys(args.keys or [], home=home, actor=actor())
    except (OSError, ValueError) as e:
        return fail(str(e))
    options: dict[str, dict[str, Any]] = {}
    if getattr(args, "rdp_server_key", None):
        options["rdp"] = {"server_keys": args.rdp_server_key}
    importer = Importer(home, keys=keys, decoder_options=options, actor=actor())

    def jobs_for(path: str) -> int:
        if args.jobs > 0:
            return args.jobs
        cores = os.cpu_count() or 1
        # by default only big files use every core: workers' start-up is not worth it for small ones
        return cores if args.jobs == 0 or os.path.getsize(path) >= AUTO_JOBS_SIZE else 1
    results = []
    missing = [p for p in args.files if not os.path.isfile(p)]
    for p in missing:
        warn(f"{p}: no such file")
    files = [p for p in args.files if p not in missing]
    with home.catalog() as catalog:
        store = home.store()
        show_bar = sys.stderr.isatty() and not args.quiet
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=err, disable=not show_bar, transient=True) as bar:
            for path in files:
                task = bar.add_task(os.path.basename(path), total=os.path.getsize(path) or 1)
                res = importer.import_file(path, catalog, store, jobs=jobs_for(path),
                                           progress=lambda done, total, t=task: bar.update(t, completed=done))
                results.append(res)
                if res.error:
                    warn(res.error)
                for p in res.problems:
                    warn(f"warning: {p}; sessions from the readable part were kept")
                for s in res.sessions:
                    if s["status"] == "decode_error":
                        warn(f"{path}: session {s['id'][:12]} ({s['protocol']} {s['client']} -> {s['server']}) "
                             f"could not be decoded: {s['status_reason']}; its metadata and raw streams are kept")
    if args.json:
        for res in results:
            for s in res.sessions:
                emit(json.dumps({**s, "start": iso(s["start"]), "end": iso(s["end"]), "file": res.path}))
    elif not args.quiet:
        _print_import_summary(results)
    read_any = any(not r.error for r in results)
    return 0 if read_any else 1


def _print_import_summary(results: list) -> None:  # type: ignore[type-arg]
    t = Table(title="sessions imported", show_lines=False)
    for col in ("id", "protocol", "client", "server", "user", "auth", "decrypted", "cmds", "status", "start (UTC)"):
        t.add_column(col, no_wrap=col in ("id", "client", "server"))
    total = 0
    for res in results:
        for s in res.sessions:
            total += 1
            status = s["status"] + (f" ({s['status_reason']})" if s["status"] != "complete" and s["status_reason"] else "")
            dec = {None: "-", True: "yes", False: "no"}[s["decrypted"]]
            t.add_row(s["id"][:12], s["protocol"], s["client"], s["server"], s["user"] or "-", s["auth"], dec,
                      str(s["commands"]), status, (iso(s["start"]) or "")[:19])
    out.print(t)
    for res in results:
        mb = res.bytes / 1e6
        speed = mb / res.seconds if res.seconds > 0 else 0.0
        line = (f"{res.path}: {res.packets} packets, {mb:.1f} MB in {res.seconds:.2f} s ({speed:.0f} MB/s), "
                f"{len(res.sessions)} new session(s)")
        if res.already:
            line += f", {res.already} already imported"
        out.print(line, markup=False)
    if total == 0:
        out.print("no Telnet, SSH or RDP sessions found")


# -- listing and viewing ----------------------------------------------------------------------
def _open_catalog(home: Home) -> Catalog:
    return home.catalog(read_only=True)


def _resolve(catalog: Catalog, ident: str) -> str:
    sid = catalog.find_session(ident)
    if sid is None:
        raise LookupError(f"no session {ident!r} in the catalog (see `sessiontap sessions`)")
    return sid


def cmd_sessions(args: argparse.Namespace) -> int:
    flt = SessionFilter(protocol=args.protocol, user=args.user, client=args.client, server=args.server,
                        status=args.status, tag=args.tag,
                        since=parse_time(args.since) if args.since else None,
                        until=parse_time(args.until) if args.until else None,
                        decrypted=None if args.decrypted is None else args.decrypted == "yes",
                        limit=args.limit)
    with _open_catalog(Home(actor=actor())) as catalog:
        rows = catalog.sessions(flt)
    if args.json:
        for r in rows:
            emit(json.dumps(r))
        return 0
    t = Table(title=f"{len(rows)} session(s)")
    for col in ("id", "protocol", "start (UTC)", "dur", "client", "server", "user", "auth", "decrypted", "cmds",
                "tags", "status"):
        t.add_column(col, no_wrap=col in ("id", "client", "server", "start (UTC)"))
    for r in rows:
        dec = {None: "-", True: "yes", False: "no" + (f" ({r['decrypt_reason']})" if r["decrypt_reason"] else "")}
        t.add_row(r["id"][:12], r["protocol"], (r["start"] or "")[:19].replace("T", " "),
                  f"{r['duration']:.0f}s" if r["duration"] is not None else "-",
                  f"{r['client_ip']}:{r['client_port']}", f"{r['server_ip']}:{r['server_port']}",
                  r["user"] or "-", r["auth"], dec[r["decrypted"]], str(r["commands"]), ",".join(r["tags"]),
                  r["status"])
    out.print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open_catalog(Home(actor=actor())) as catalog:
        s = catalog.session(_resolve(catalog, args.id))
    assert s is not None
    if args.json:
        emit(json.dumps(s, indent=2))
        return 0
    out.print(f"[bold]session {s['id']}[/bold]  {s['protocol']}  {s['client_ip']}:{s['client_port']} -> "
              f"{s['server_ip']}:{s['server_port']}")
    fields = [("user", s["user"] or "-"), ("auth", s["auth"]), ("start", s["start"]), ("end", s["end"] or "-"),
              ("duration", f"{s['duration']} s" if s["duration"] is not None else "-"),
              ("status", s["status"] + (f" — {s['status_reason']}" if s["status_reason"] else "")),
              ("decrypted", {None: "n/a (plaintext protocol)", True: "yes", False: "no"}[s["decrypted"]]
               + (f" — {s['decrypt_reason']}" if s["decrypt_reason"] else "")),
              ("bytes", f"{s['bytes_c2s']} client->server, {s['bytes_s2c']} server->client"),
              ("tags", ", ".join(s["tags"]) or "-"), ("recordings", ", ".join(s["recordings"]) or "-"),
              ("source", s["source"] or "-")]
    for k, v in sorted(s["metadata"].items()):
        fields.append((k, v))
    for k, v in fields:
        out.print(f"  {k:>12}: {v}", markup=False)
    if s["auth_attempts"]:
        t = Table(title="login attempts")
        for col in ("time (UTC)", "user", "method", "result", "detail"):
            t.add_column(col)
        for a in s["auth_attempts"]:
            t.add_row(a["ts"][11:23], a["user"] or "?", a["method"], a["result"], a["detail"] or "")
        out.print(t)
    if s["commands"]:
        t = Table(title="commands")
        for col in ("#", "+s", "command", "tags"):
            t.add_column(col)
        for c in s["commands"]:
            t.add_row(str(c["index"]), f"{c['offset']:.1f}", c["text"], ",".join(c["tags"]))
        out.print(t)
    t = Table(title="timeline")
    for col in ("+s", "kind", "text", "severity"):
        t.add_column(col)
    for e in s["events"]:
        if e["kind"] == "command":
            continue
        t.add_row(f"{e['offset']:.1f}", e["kind"], e["text"], e["severity"] if e["severity"] != "info" else "")
    out.print(t)
    if s["gaps"]:
        out.print("gaps: " + ", ".join(f"{g['nbytes']} bytes {g['direction']} at {g['ts'][11:23]}" for g in s["gaps"]),
                  markup=False)
    if s["files"]:
        t = Table(title="files")
        for col in ("direction", "path", "size", "sha256", "method"):
            t.add_column(col)
        for f in s["files"]:
            t.add_row(f["direction"], f["path"], str(f["size"]), f["sha256"], f["method"])
        out.print(t)
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    from appliance.transcript import render_transcript

    home = Home(actor=actor())
    with _open_catalog(home) as catalog:
        sid = _resolve(catalog, args.id)
        s = catalog.session(sid)
    assert s is not None
    screen = None
    if args.screen:
        cast = _read_cast(home, sid, "transcript")
        if cast is not None:
            from appliance.player import final_screen
            screen = final_screen(cast)
    sys.stdout.write(render_transcript(s, screen))
    return 0


def _read_cast(home: Home, sid: str, purpose: str) -> bytes | None:
    from storage.recordings import latest_version
    store = home.store()
    name = latest_version(store.names(sid), "terminal.cast")
    if name is None:
        return None
    return store.get(sid, name, actor=actor(), purpose=purpose)


def cmd_replay(args: argparse.Namespace) -> int:
    from appliance.player import play

    home = Home(actor=actor())
    with _open_catalog(home) as catalog:
        sid = _resolve(catalog, args.id)
    cast = _read_cast(home, sid, "replay")
    if cast is None:
        return fail(f"session {sid} has no terminal recording (its protocol or status has none; "
                    f"see `sessiontap show {sid[:12]}`)")
    try:
        play(cast, sys.stdout.buffer, speed=args.speed, idle_limit=args.idle_limit, start=args.start)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    home = Home(actor=actor())
    with _open_catalog(home) as catalog:
        sid = _resolve(catalog, args.id)
        s = catalog.session(sid)
    assert s is not None
    if args.format == "asciicast":
        cast = _read_cast(home, sid, f"export asciicast to {args.output}")
        if cast is None:
            return fail(f"session {sid} has no terminal recording to export as asciicast")
        data = cast
    elif args.format == "json":
        data = (json.dumps(s, indent=2) + "\n").encode()
    else:
        mod = importlib.import_module("appliance.cli_rdp")
        return mod.export(args, home, s, actor())
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as f:
            f.write(data)
        err.print(f"wrote {args.output} ({len(data)} bytes)", markup=False)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with _open_catalog(Home(actor=actor())) as catalog:
        hits = catalog.search(args.text, regex=args.regex, limit=args.limit)
    if args.json:
        for h in hits:
            emit(json.dumps(h))
        return 0 if hits else 1
    t = Table(title=f"{len(hits)} hit(s) for {args.text!r}")
    for col in ("id", "+s", "time (UTC)", "protocol", "user", "server", "kind", "text", "tags"):
        t.add_column(col, no_wrap=col in ("id", "time (UTC)"))
    for h in hits:
        t.add_row(h["id"][:12], f"{h['offset']:.1f}", h["ts"][:19].replace("T", " "), h["protocol"], h["user"] or "-",
                  h["server_ip"], h["kind"], h["text"], ",".join(h["tags"]))
    out.print(t)
    return 0 if hits else 1


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sessiontap",
                                description="Passive session recorder: Telnet, SSH and RDP sessions from captures, "
                                            "indexed in DuckDB. Data directory: $SESSIONTAP_HOME.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("import", help="import capture files (pcap, pcapng, .gz)")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--keys", action="append", metavar="FILE",
                   help="key material: SSH key log (Wireshark formats or escrow JSON lines), TLS key log (NSS)")
    s.add_argument("--rdp-server-key", action="append", metavar="FILE",
                   help="RDP server private key (PEM or xrdp rsakeys.ini)")
    s.add_argument("--jobs", type=int, default=-1, metavar="N",
                   help="worker processes for a plain pcap file (flows sharded by hash; 0: one per core; "
                        "default: one per core for files over 256 MB, else 1)")
    s.add_argument("--json", action="store_true", help="one JSON object per imported session")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("sessions", help="list sessions (filterable)")
    s.add_argument("--protocol", choices=["telnet", "ssh", "rdp"])
    s.add_argument("--user", help="user name (* wildcard)")
    s.add_argument("--client", help="client IP")
    s.add_argument("--server", help="server IP")
    s.add_argument("--status", choices=["complete", "partial", "decode_error", "live"])
    s.add_argument("--tag", help="only sessions with this tag (e.g. config-change)")
    s.add_argument("--since", help="ISO 8601 time (UTC if no zone) or epoch seconds")
    s.add_argument("--until")
    s.add_argument("--decrypted", choices=["yes", "no"])
    s.add_argument("--limit", type=int)
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_sessions)

    s = sub.add_parser("show", help="metadata, logins, commands, events and gaps of one session")
    s.add_argument("id", help="session id (a unique prefix is enough)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("transcript", help="commands and what the screen showed, passwords redacted")
    s.add_argument("id")
    s.add_argument("--screen", action="store_true", help="also print the final screen (audited recording read)")
    s.set_defaults(func=cmd_transcript)

    s = sub.add_parser("replay", help="play a terminal session in this terminal")
    s.add_argument("id")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--idle-limit", type=float, default=None, metavar="SECONDS",
                   help="cap pauses at this many seconds")
    s.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="start this far into the session")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("export", help="export a session (asciicast, json; mp4/pyrdp for RDP)")
    s.add_argument("id")
    s.add_argument("--format", choices=["asciicast", "json", "mp4", "pyrdp"], default="asciicast")
    s.add_argument("-o", "--output", required=True, help="file to write, - for stdout")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("search", help="find commands, output, events and file names across sessions")
    s.add_argument("text")
    s.add_argument("--regex", action="store_true", help="TEXT is a regular expression")
    s.add_argument("--limit", type=int, default=200)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)

    for name in EXTRA_COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            if e.name != name:
                raise
            continue
        mod.register(sub)
    return p


def _expected_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    from storage.vault import VaultError
    return (VaultError, duckdb.Error, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    from appliance.gc_tuning import tune_for_reconstruction
    tune_for_reconstruction()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (`sessiontap show ID | head`): end quietly with status 1, as rich
        # does when it meets this inside a print; stdout goes to /dev/null so the interpreter's
        # final flush cannot complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except LookupError as e:
        return fail(str(e.args[0] if e.args else e))
    except FileNotFoundError as e:
        return fail(str(e))
    except _expected_errors() as e:  # the vault's and the catalog's own one-line reasons
        text = str(e)
        return fail(text if "nothing" in text else f"{text}; nothing already stored was changed")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
