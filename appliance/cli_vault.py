"""CLI commands of the evidence vault: init, verify, retention, hold, release, audit-log, status,
evidence, rotate-key. ``appliance.cli`` calls ``register(subparsers)``; each command sets
``func`` to a handler that takes the parsed ``args`` and returns the exit code
(0 fine, 1 verification found problems, 2 the command could not run)."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from storage.vault import Vault, VaultError, build_evidence
from storage.vault.keyring import Keyring

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2


def default_home() -> Path:
    try:
        from appliance.home import default_home as home_of_the_appliance
        return home_of_the_appliance()
    except ImportError:
        return Path(os.environ.get("SESSIONTAP_HOME") or Path.home() / ".local" / "share" / "sessiontap")


def _home(args: argparse.Namespace) -> Path:
    return Path(args.vault_home or getattr(args, "home", None) or default_home())


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return args.actor
    if os.environ.get("SESSIONTAP_ACTOR"):
        return os.environ["SESSIONTAP_ACTOR"]
    try:
        return getpass.getuser()
    except Exception:  # no login name (container without passwd entry)
        return f"uid:{os.getuid()}"


def _open(args: argparse.Namespace) -> Vault:
    home = _home(args)
    passphrase = None
    keyring = Keyring(home / "keys" / "keyring.json")
    if keyring.exists() and keyring.source() == "passphrase" and not os.environ.get("SESSIONTAP_PASSPHRASE"):
        if not sys.stdin.isatty():
            raise VaultError("this vault is protected by a passphrase: set SESSIONTAP_PASSPHRASE")
        passphrase = getpass.getpass("vault passphrase: ")
    return Vault.open(home, passphrase=passphrase, key_file=args.key_file)


def _console():
    from rich.console import Console
    # pipes and files get wide tables, as in appliance.cli
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _fail(err: Exception) -> int:
    print(f"sessiontap: error: {err}", file=sys.stderr)
    return EXIT_ERROR


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--home", dest="vault_home", metavar="DIR", default=None,
                   help="data directory (default: $SESSIONTAP_HOME or ~/.local/share/sessiontap)")
    p.add_argument("--key-file", metavar="PATH", default=None,
                   help="master key file (default: $SESSIONTAP_KEY_FILE or DIR/keys/master.key)")
    p.add_argument("--actor", default=None,
                   help="who is acting, for the audit log (default: $SESSIONTAP_ACTOR or login name)")
    return p


# ---------------------------------------------------------------------------------- handlers
def cmd_init(args: argparse.Namespace) -> int:
    home = _home(args)
    passphrase = None
    if args.passphrase:
        passphrase = os.environ.get("SESSIONTAP_PASSPHRASE")
        if passphrase is None:
            if not sys.stdin.isatty():
                return _fail(VaultError("--passphrase needs a terminal or SESSIONTAP_PASSPHRASE"))
            passphrase = getpass.getpass("new vault passphrase: ")
            if getpass.getpass("repeat it: ") != passphrase:
                return _fail(VaultError("the two passphrases differ; nothing was created"))
    try:
        vault = Vault.init(home, passphrase=passphrase, key_file=args.key_file,
                           chunk_size=args.chunk_size, zstd_level=args.zstd_level, actor=_actor(args))
    except VaultError as err:
        return _fail(err)
    out = _console()
    out.print(f"vault created in {home}")
    if passphrase is not None:
        out.print("master key: wrapped with your passphrase (Argon2id); set SESSIONTAP_PASSPHRASE "
                  "for unattended start")
    else:
        kf = Path(args.key_file) if args.key_file else home / "keys" / "master.key"
        out.print(f"master key: wrapped with the key file {kf} (mode 0600) - back it up apart from the "
                  "data: without it the recordings cannot be read")
    out.print(f"signing key fingerprint (SHA-256): {vault.fingerprint()}")
    out.print(f"retention: {vault.retention_days} days (change with `sessiontap retention --days N`)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        vault = _open(args)
        target = None if args.all or not args.id else args.id
        if target is not None and target not in vault._recs:    # a recording id is taken as is
            target = vault.find_session(target)
        report = vault.verify(target, actor=_actor(args))
    except VaultError as err:
        return _fail(err)
    if args.json:
        print(json.dumps({"scope": report.scope, "ok": report.ok,
                          "recordings_checked": report.recordings_checked,
                          "bytes_checked": report.bytes_checked,
                          "ledger_entries": report.ledger_entries, "audit_entries": report.audit_entries,
                          "problems": [{"where": p.where, "message": p.message} for p in report.problems]},
                         indent=1))
        return EXIT_OK if report.ok else EXIT_PROBLEMS
    out = _console()
    summary = (f"{report.recordings_checked} recording(s), {report.bytes_checked / 1e6:.1f} MB, "
               f"{report.ledger_entries} ledger entries"
               + (f", {report.audit_entries} audit entries" if report.scope == "all" else "") + " checked")
    if report.ok:
        out.print(f"[green]OK[/green]: {summary}; signatures, chunks and hash chains verify")
        return EXIT_OK
    from rich.table import Table
    table = Table(title=f"verify: {len(report.problems)} problem(s)", show_lines=False)
    table.add_column("where", style="bold")
    table.add_column("what is wrong")
    for p in report.problems:
        table.add_row(p.where, p.message)
    out.print(table)
    out.print(f"[red]FAILED[/red]: {summary}")
    return EXIT_PROBLEMS


def cmd_retention(args: argparse.Namespace) -> int:
    actor = _actor(args)
    try:
        vault = _open(args)
        out = _console()
        if args.days is not None:
            vault.set_retention(args.days, actor=actor, force=args.force)
            out.print(f"retention set to {args.days} days")
        if args.apply:
            done = vault.apply_retention(actor=actor)
            for s in done:
                out.print(f"shredded {s.session_id}/{s.name} (stored {s.created})")
            out.print(f"{len(done)} recording(s) crypto-shredded")
        elif args.days is None:
            exp = vault.expired()
            out.print(f"retention: {vault.retention_days} days; {len(exp)} recording(s) expired "
                      f"(run with --apply to shred them); legal holds: {', '.join(vault.holds()) or 'none'}")
    except VaultError as err:
        return _fail(err)
    return EXIT_OK


def cmd_hold(args: argparse.Namespace) -> int:
    try:
        vault = _open(args)
        args.id = vault.find_session(args.id) if args.command_name == "hold" else \
            next((h for h in vault.holds() if h.startswith(args.id)), args.id)
        (vault.hold if args.command_name == "hold" else vault.release)(
            args.id, actor=_actor(args), reason=args.reason or "")
    except VaultError as err:
        return _fail(err)
    _console().print(f"{args.id}: legal hold {'set' if args.command_name == 'hold' else 'released'}")
    return EXIT_OK


def cmd_audit_log(args: argparse.Namespace) -> int:
    try:
        entries = _open(args).audit_entries()
    except VaultError as err:
        return _fail(err)
    if args.limit:
        entries = entries[-args.limit:]
    if args.json:
        for e in entries:
            print(json.dumps({k: v for k, v in e.items() if k != "sig"}, sort_keys=True))
        return EXIT_OK
    from rich.table import Table
    table = Table(title="vault access audit log (hash-chained, signed; `sessiontap verify` checks it)")
    for col in ("#", "when (UTC)", "who", "what", "which", "why"):
        table.add_column(col)
    for e in entries:
        table.add_row(str(e["seq"]), e["ts"][:19].replace("T", " "), e["actor"], e["action"],
                      e["target"], e.get("purpose", ""))
    _console().print(table)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    try:
        vault = _open(args)
        st = vault.status()
    except VaultError as err:
        return _fail(err)
    if args.json:
        print(json.dumps({"recordings": st.recordings, "sessions": st.sessions,
                          "stored_bytes": st.stored_bytes, "home_bytes": st.home_bytes,
                          "fs_total": st.fs_total, "fs_free": st.fs_free, "used_pct": round(st.used_pct, 2),
                          "rate_bytes_per_day": round(st.rate_bytes_per_day),
                          "headroom_days": None if st.headroom_days is None else round(st.headroom_days, 1),
                          "retention_days": st.retention_days, "holds": st.holds,
                          "thresholds": list(st.thresholds), "fingerprint": vault.fingerprint(),
                          "events": [{"kind": e.kind, "severity": e.severity, "text": e.text}
                                     for e in st.events]}, indent=1))
        return EXIT_OK
    from rich.table import Table
    t = Table(title=f"vault {vault.home}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("recordings", f"{st.recordings} in {st.sessions} session(s), {st.stored_bytes / 1e6:.1f} MB sealed")
    t.add_row("data directory", f"{st.home_bytes / 1e6:.1f} MB")
    t.add_row("disk", f"{st.used_pct:.1f} % used, {st.fs_free / 1e9:.1f} GB free of {st.fs_total / 1e9:.1f} GB")
    t.add_row("growth", f"{st.rate_bytes_per_day / 1e6:.2f} MB/day (last 7 days)")
    t.add_row("headroom", "no recent writes" if st.headroom_days is None else f"{st.headroom_days:,.0f} days")
    t.add_row("thresholds", " / ".join(f"{x} %" for x in sorted(st.thresholds)))
    t.add_row("retention", f"{st.retention_days} days; legal holds: {', '.join(st.holds) or 'none'}")
    t.add_row("signing key", vault.fingerprint())
    out = _console()
    out.print(t)
    for e in st.events:
        out.print(f"[bold]{e.severity.upper()}[/bold] {e.kind}: {e.text}")
    return EXIT_OK


def _catalog_metadata(vault: Vault, session_id: str) -> tuple[str, dict | None, str]:
    """(full session id, the catalog's record of it, why not) - the catalog is optional here:
    a vault without it still exports recordings and proofs."""
    try:
        import duckdb

        from appliance.home import Home
        with Home(path=vault.home, _vault=vault).catalog(read_only=True) as cat:
            full = cat.find_session(session_id) or session_id
            return full, cat.session(full), "the catalog has no record of this session"
    except (ImportError, FileNotFoundError, LookupError, duckdb.Error) as err:
        return session_id, None, f"the catalog is not available ({err})"


def cmd_evidence(args: argparse.Namespace) -> int:
    try:
        vault = _open(args)
        sid, record, why = _catalog_metadata(vault, vault.find_session(args.id))
        if record is None:
            print(f"sessiontap: warning: {why}; the bundle holds the recordings and their proofs "
                  "but no session metadata or events", file=sys.stderr)
            record = {"id": sid, "note": why}
        out = build_evidence(vault, sid, {"session": record}, args.output, actor=_actor(args),
                             purpose=args.purpose)
    except VaultError as err:
        return _fail(err)
    _console().print(f"evidence bundle written to {out} (check it with `python3 verify.py` inside it)")
    return EXIT_OK


def cmd_rotate_key(args: argparse.Namespace) -> int:
    try:
        n = _open(args).rotate_master_key(actor=_actor(args))
    except VaultError as err:
        return _fail(err)
    _console().print(f"master key rotated; {n} data key(s) rewrapped, recordings untouched")
    return EXIT_OK


# ---------------------------------------------------------------------------------- wiring
def register(subparsers: argparse._SubParsersAction) -> None:
    p = _common(subparsers.add_parser("init", help="create the data directory, master key and signing key"))
    p.add_argument("--passphrase", action="store_true",
                   help="wrap the master key with a passphrase (prompted, or $SESSIONTAP_PASSPHRASE) "
                        "instead of a key file")
    p.add_argument("--chunk-size", type=int, default=1 << 20, help="sealed chunk size in bytes (default 1 MiB)")
    p.add_argument("--zstd-level", type=int, default=1, help="zstd level (default 1: see benchmarks/vault.py)")
    p.set_defaults(func=cmd_init)

    p = _common(subparsers.add_parser("verify", help="check chunks, manifest signatures and hash chains"))
    p.add_argument("id", nargs="?", help="a session id (a unique prefix is enough) or recording id "
                                         "(default: everything)")
    p.add_argument("--all", action="store_true", help="check everything (the default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = _common(subparsers.add_parser("retention", help="show or set the retention policy; shred expired recordings"))
    p.add_argument("--days", type=int, help="keep recordings this many days (minimum 90 without --force)")
    p.add_argument("--force", action="store_true", help="allow a retention shorter than 90 days")
    p.add_argument("--apply", action="store_true", help="crypto-shred the recordings past retention now")
    p.set_defaults(func=cmd_retention)

    for name, text in (("hold", "put a session on legal hold (kept past retention)"),
                       ("release", "release a session's legal hold")):
        p = _common(subparsers.add_parser(name, help=text))
        p.add_argument("id", help="session id")
        p.add_argument("--reason", default="", help="case reference, for the audit log")
        p.set_defaults(func=cmd_hold, command_name=name)

    p = _common(subparsers.add_parser("audit-log", help="who opened, exported or deleted which recording, when"))
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=int, default=0, help="only the last N entries")
    p.set_defaults(func=cmd_audit_log)

    p = _common(subparsers.add_parser("status", help="capacity, growth, headroom, thresholds"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = _common(subparsers.add_parser("evidence", help="export a session as a self-verifying zip"))
    p.add_argument("id", help="session id")
    p.add_argument("-o", "--output", required=True, help="bundle to write, e.g. case-42.zip")
    p.add_argument("--purpose", default=None, help="why it is exported, for the audit log")
    p.set_defaults(func=cmd_evidence)

    p = _common(subparsers.add_parser("rotate-key", help="new master key; data keys rewrapped, recordings untouched"))
    p.set_defaults(func=cmd_rotate_key)
