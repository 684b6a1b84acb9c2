"""The quick start's main job: import every bundled sample capture (with the key material
that comes with it) into $SESSIONTAP_HOME and show what was found.

Captures marked in their manifest as deliberately broken (``expect_error``) are left out
here; the test suite imports them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance import cli

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"


def bundled() -> list[tuple[Path, list[Path], list[Path]]]:
    """(capture, key files, RDP server key files) for each good bundled capture."""
    found = []
    for manifest in sorted(PCAPS.glob("*/manifest.json")):
        entries = json.loads(manifest.read_text())
        for name, entry in entries.items():
            if not isinstance(entry, dict) or entry.get("expect_error") or entry.get("bad_input"):
                continue
            cap = manifest.parent / name
            if not cap.exists():
                continue
            keys = entry.get("keys") or []
            keys = [keys] if isinstance(keys, str) else keys
            srv = entry.get("rdp_server_key") or []
            srv = [srv] if isinstance(srv, str) else srv
            found.append((cap, [manifest.parent / k for k in keys], [manifest.parent / k for k in srv]))
    return found


def main() -> int:
    caps = bundled()
    if not caps:
        print("no bundled captures found under pcaps/", file=sys.stderr)
        return 1
    if "cli_vault" in sys.modules or _has_vault():
        cli.main(["init", "--if-missing"]) if _init_supports_if_missing() else None
    plain = [str(c) for c, k, s in caps if not k and not s]
    rc = cli.main(["import", "-q", *plain]) if plain else 0
    for cap, keys, srv in caps:
        if keys or srv:
            args = ["import", "-q", str(cap)]
            for k in keys:
                args += ["--keys", str(k)]
            for s in srv:
                args += ["--rdp-server-key", str(s)]
            rc = cli.main(args) or rc
    cli.main(["sessions"])
    print("\nnext: sessiontap show <id> | transcript <id> | replay <id> | search 'echo' "
          f"(data directory: $SESSIONTAP_HOME)")
    serve_console()
    return rc


def serve_console() -> None:
    """Last step of the demo: the auditor console on the imported captures, until Ctrl-C.

    ``DEMO_SERVE=0`` skips it, ``DEMO_SERVE=1`` serves even without a terminal; by default it
    serves only when stdin is a terminal, so ``./quickstart.sh demo`` in a script or CI still
    ends by itself. ``DEMO_PORT`` picks the port (default 8080, or any free one if taken).
    The demo's two accounts (``demo-admin``, ``demo-auditor``) get fresh credentials each run.
    """
    import os

    want = os.environ.get("DEMO_SERVE", "")
    if want == "0" or (want != "1" and not sys.stdin.isatty()):
        print("console: not started (stdin is not a terminal or DEMO_SERVE=0); "
              "start it with: sessiontap serve --http")
        return
    from appliance.cli import actor
    from appliance.console import totp
    from appliance.console.app import build
    from appliance.home import Home

    home = Home(actor=actor())
    port = int(os.environ.get("DEMO_PORT", "8080"))
    try:
        console = build(home, "127.0.0.1", port, tls=False)
    except OSError:
        console = build(home, "127.0.0.1", 0, tls=False)
    accounts = console.accounts
    print(f"\nsessiontap console: {console.url}  (Ctrl-C to stop)")
    for name, role in (("demo-admin", "admin"), ("demo-auditor", "auditor")):
        nu = accounts.reset(name, actor="demo") if accounts.store.user(name) else \
            accounts.create(name, role, ["*"], actor="demo")
        print(f"  {role:<8} user {nu.name}  password {nu.password}  TOTP secret {nu.totp_secret}"
              f"  (code now: {totp.totp(nu.totp_secret)}; next: oathtool --totp -b {nu.totp_secret})")
    sys.stdout.flush()
    try:
        console.serve_forever()
    except KeyboardInterrupt:
        print("\nconsole stopped")


def _has_vault() -> bool:
    try:
        import appliance.cli_vault  # noqa: F401
    except ImportError:
        return False
    return True


def _init_supports_if_missing() -> bool:
    return False


if __name__ == "__main__":
    sys.exit(main())
