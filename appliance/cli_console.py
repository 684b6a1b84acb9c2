"""``sessiontap serve`` (the auditor console), ``sessiontap users`` (its accounts) and
``sessiontap seek-index`` (seek indexes of long recordings, ahead of the first replay)."""
from __future__ import annotations

import argparse
import json
import sys

from appliance.home import Home


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the auditor console (web): find, replay, review, export sessions")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8443 with TLS, 8080 with --http)")
    p.add_argument("--http", action="store_true",
                   help="plain HTTP (only on a loopback address unless --insecure-http)")
    p.add_argument("--insecure-http", action="store_true", help="allow plain HTTP on a non-loopback address")
    p.add_argument("--cert", help="TLS certificate (PEM); default: a self-signed one kept in the data directory")
    p.add_argument("--key", help="TLS private key (PEM)")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("seek-index", help="build the seek index of long terminal recordings, so the "
                                                 "console opens them at any second at once")
    p.add_argument("sessions", nargs="*", metavar="SESSION", help="session ids or prefixes (default: every session)")
    p.set_defaults(func=cmd_seek_index)

    p = subparsers.add_parser("users", help="console accounts: list, add, reset (new password + 2FA), unlock")
    us = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    s = us.add_parser("list", help="accounts, roles, zones, lock state")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users_list)
    s = us.add_parser("add", help="new account; prints its password and TOTP secret once")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=["admin", "auditor", "analyst"])
    s.add_argument("--zone", action="append", help="zone name (repeatable; default: every server)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users_add)
    s = us.add_parser("reset", help="new password and TOTP secret (printed once); signs the user out")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users_reset)
    s = us.add_parser("unlock", help="clear a lockout after failed sign-ins")
    s.add_argument("name")
    s.set_defaults(func=cmd_users_unlock)
    s = us.add_parser("zone", help="define a zone: a name for a list of server networks")
    s.add_argument("name")
    s.add_argument("cidrs", nargs="+", metavar="CIDR")
    s.set_defaults(func=cmd_users_zone)


def _actor() -> str:
    from appliance.cli import actor
    return actor()


def print_credentials(nu, out=sys.stdout) -> None:  # type: ignore[no-untyped-def]
    out.write(f"  user:        {nu.name} ({nu.role})\n"
              f"  password:    {nu.password}\n"
              f"  TOTP secret: {nu.totp_secret}   (add it to an authenticator app, or: oathtool --totp -b {nu.totp_secret})\n"
              f"  TOTP URI:    {nu.totp_uri}\n"
              f"  shown once: it is not stored in clear anywhere\n")


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.console.app import build, first_admin

    home = Home(actor=_actor())
    tls = not args.http
    port = args.port or (8443 if tls else 8080)
    try:
        console = build(home, args.host, port, tls=tls, cert=args.cert, key=args.key,
                        insecure_http=args.insecure_http)
    except (ValueError, OSError) as e:
        from appliance.cli import fail
        return fail(str(e))
    nu = first_admin(console.accounts)
    if nu is not None:
        print("first admin account created:")
        print_credentials(nu)
    print(f"sessiontap console on {console.url}  (Ctrl-C to stop)", flush=True)
    try:
        console.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_seek_index(args: argparse.Namespace) -> int:
    """Index what needs it; one line per recording indexed. Each recording read is audited."""
    from appliance.console.replay import ensure_index, terminal_recording

    vault = Home(actor=_actor()).vault(create=False)
    sids = [vault.find_session(s) for s in args.sessions] if args.sessions else vault.sessions()
    for sid in sids:
        cast = terminal_recording(vault.names(sid))
        if cast is None:
            continue
        names = vault.names(sid)
        name = ensure_index(vault, sid, cast, actor=_actor())
        if name is not None and name not in names:
            print(f"{sid} {cast}: indexed as {name}")
    return 0


def _accounts():  # type: ignore[no-untyped-def]
    from appliance.console.app import open_accounts
    return open_accounts(Home(actor=_actor()))


def cmd_users_list(args: argparse.Namespace) -> int:
    import time
    users = _accounts().store.users()
    for u in users:
        u.pop("pw_hash", None)
        u["locked"] = u.pop("locked_until") > time.time()
    if args.json:
        for u in users:
            print(json.dumps(u))
        return 0
    for u in users:
        state = "disabled" if u["disabled"] else ("locked" if u["locked"] else "active")
        print(f"{u['name']:<20} {u['role']:<8} zones={','.join(u['zones'])} {state}")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from appliance.cli import fail
    acc = _accounts()
    zones = args.zone or ["*"]
    known = acc.store.zones()
    for z in zones:
        if z != "*" and z not in known:
            return fail(f"no zone {z!r}: define it with `sessiontap users zone {z} CIDR...`")
    try:
        nu = acc.create(args.name, args.role, zones, actor=_actor())
    except ValueError as e:
        return fail(str(e))
    if args.json:
        print(json.dumps({"name": nu.name, "role": nu.role, "zones": nu.zones, "password": nu.password,
                          "totp_secret": nu.totp_secret, "totp_uri": nu.totp_uri}))
    else:
        print_credentials(nu)
    return 0


def cmd_users_reset(args: argparse.Namespace) -> int:
    acc = _accounts()
    nu = acc.reset(args.name, actor=_actor())
    if args.json:
        print(json.dumps({"name": nu.name, "password": nu.password, "totp_secret": nu.totp_secret,
                          "totp_uri": nu.totp_uri}))
    else:
        print_credentials(nu)
    return 0


def cmd_users_unlock(args: argparse.Namespace) -> int:
    acc = _accounts()
    if acc.store.user(args.name) is None:
        raise LookupError(f"no user {args.name!r}")
    acc.store.update_user(args.name, failures=0, locked_until=0)
    acc.store.log(_actor(), "user-unlock", args.name)
    return 0


def cmd_users_zone(args: argparse.Namespace) -> int:
    from appliance.cli import fail
    from appliance.console.access import check_cidrs
    try:
        cidrs = check_cidrs(args.cidrs)
    except ValueError as e:
        return fail(str(e))
    acc = _accounts()
    acc.store.set_zone(args.name, cidrs)
    acc.store.log(_actor(), "zone-set", args.name, ",".join(cidrs))
    return 0
