"""``sessiontap keys``: deposit escrowed key material; sessions waiting for it are decoded."""
from __future__ import annotations

import argparse

from rich.table import Table


def cmd_keys_add(args: argparse.Namespace) -> int:
    from appliance.cli import Home, actor, err, fail, out
    from appliance.importer import Importer
    from appliance.keys import deposit, deposited_keys, parse_key_text, read_key_file

    who = actor()
    home = Home(actor=who)
    vault = home.vault()
    added = 0
    for path in args.files:
        try:
            text = read_key_file(path)
            parse_key_text(text, path)
        except (OSError, ValueError) as e:
            return fail(str(e))
        _, new = deposit(vault, text, path, who)
        added += new
    err.print(f"{added} key file(s) deposited ({len(args.files) - added} already known)", markup=False)
    keys = deposited_keys(vault, who)
    importer = Importer(home, keys=keys, actor=who)
    rows = []
    with home.catalog() as catalog:
        waiting = [s for s in catalog.sessions() if s["decrypted"] is False]
        for s in waiting:
            res = importer.redecode(s["id"], catalog, vault)
            if res is not None:
                rows.append(res)
    t = Table(title=f"{len(waiting)} session(s) were waiting for keys")
    for col in ("id", "protocol", "user", "decrypted", "commands", "status"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"][:12], r["protocol"], r["user"] or "-", str(r["decrypted"]).lower(), str(r["commands"]),
                  r["status"])
    out.print(t)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="escrowed key material (SSH key logs, TLS key logs)")
    ks = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    a = ks.add_parser("add", help="deposit key files; already-imported sessions waiting for them are decoded")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.set_defaults(func=cmd_keys_add)
