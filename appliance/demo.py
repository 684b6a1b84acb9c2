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
    return rc


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
