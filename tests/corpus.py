"""The bundled captures and what their manifests say each must yield."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"


def manifest(proto: str) -> dict:
    p = PCAPS / proto / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


def entries(*protos: str):
    """(protocol folder, capture path, manifest entry) for every capture listed."""
    out = []
    for proto in protos:
        for name, entry in manifest(proto).items():
            if isinstance(entry, dict) and (PCAPS / proto / name).exists():
                out.append((proto, PCAPS / proto / name, entry))
    return out


def key_args(cap: Path, entry: dict) -> list[str]:
    args: list[str] = []
    keys = entry.get("keys") or []
    for k in [keys] if isinstance(keys, str) else keys:
        args += ["--keys", str(cap.parent / k)]
    srv = entry.get("rdp_server_key") or []
    for k in [srv] if isinstance(srv, str) else srv:
        args += ["--rdp-server-key", str(cap.parent / k)]
    return args
