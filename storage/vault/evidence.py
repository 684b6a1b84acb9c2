"""Evidence bundles: one session's recordings, metadata and proofs in a zip anyone can check.

The zip holds the plaintext recordings, their signed manifests exactly as in the ledger, the
hash-chain links up to the signed ledger head, the caller's metadata and events, the public
key, and ``verify.py`` (Python + cryptography only). ``bundle.json`` lists every file with
its SHA-256 and is signed by the appliance key, so the metadata taken from the catalog is
attested too. Exporting is an audited read.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from .chain import canonical, entry_hash, sign_entry
from .errors import NotFoundError, VaultError
from .fsutil import TMP_SUFFIX, fsync_dir
from .vault import Vault, iso, utcnow

_SAFE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")

README = """sessiontap evidence bundle
==========================

session:      {session}
exported:     {created} by {actor}
appliance key fingerprint (SHA-256): {fingerprint}

recordings/   the recorded artefacts, decrypted, byte-exact
manifests/    their signed manifests, as kept in the appliance's hash-chained ledger
chain.json    the ledger's hash chain (sequence, hash, previous hash) and its signed head
metadata.json session metadata and events from the catalog
bundle.json   every file's SHA-256, signed by the appliance key
verify.py     checks all of the above: `python3 verify.py` (needs `pip install cryptography`)

Compare the fingerprint above with the one the appliance owner published.
"""


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, **dataclasses.asdict(obj)}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, datetime):
        return iso(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _member(name: str, used: set[str]) -> str:
    path = name if _SAFE.match(name) and ".." not in name.split("/") else \
        hashlib.sha256(name.encode()).hexdigest()[:16] + ".bin"
    base, n = path, 2
    while path in used:
        path, n = f"{base}.{n}", n + 1
    used.add(path)
    return path


def build_evidence(vault: Vault, session_id: str, metadata: dict, out_path: str | os.PathLike,
                   actor: str, *, purpose: str | None = None) -> Path:
    """Write the evidence bundle of ``session_id`` to ``out_path`` (a .zip); returns its path."""
    out = Path(out_path)
    names = vault.names(session_id)
    if not names:
        raise NotFoundError(f"no recording of session {session_id!r} in the vault")
    manifests = [vault._recs[vault._by_session[session_id][n]] for n in names]
    door = vault._access(actor, purpose or f"evidence bundle {out.name}", "export",
                         [m["rid"] for m in manifests], session_id)
    files: dict[str, bytes] = {}
    recordings: dict[str, str] = {}
    used: set[str] = set()
    for m in manifests:
        path = "recordings/" + _member(m["name"], used)
        files[path] = door.plaintext(m["rid"])
        recordings[str(m["seq"])] = path
        files[f"manifests/{m['seq']:08d}.json"] = canonical(m) + b"\n"
        tsr = vault.home / "ledger" / f"{m['seq']:08d}.tsr"
        if tsr.exists():
            files[f"timestamps/{m['seq']:08d}.tsr"] = tsr.read_bytes()
    entries = vault._ledger.load()
    head = vault._ledger.read_head()
    files["chain.json"] = json.dumps(
        {"entries": [[e["seq"], entry_hash(e), e.get("prev", "")] for e in entries], "head": head},
        indent=None).encode() + b"\n"
    files["metadata.json"] = json.dumps(metadata, indent=1, sort_keys=True, default=_jsonable).encode() + b"\n"
    files["public_key.pem"] = vault.public_key_pem()
    files["verify.py"] = (Path(__file__).with_name("bundle_verify.py")).read_bytes()
    created = iso(utcnow())
    files["README.txt"] = README.format(session=session_id, created=created, actor=actor,
                                        fingerprint=vault.fingerprint()).encode()
    bundle = sign_entry(vault._keys.signing, {
        "kind": "sessiontap-evidence", "format": 1, "session_id": session_id, "created": created,
        "exported_by": actor, "vault_id": vault._keys.vault_id, "fingerprint": vault.fingerprint(),
        "recordings": recordings,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    })
    files["bundle.json"] = json.dumps(bundle, indent=1, sort_keys=True).encode() + b"\n"
    files["SHA256SUMS"] = b"".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n".encode()
                                   for n, d in sorted(files.items()))
    bundle["files"]["SHA256SUMS"] = hashlib.sha256(files["SHA256SUMS"]).hexdigest()
    bundle = sign_entry(vault._keys.signing, bundle)
    files["bundle.json"] = json.dumps(bundle, indent=1, sort_keys=True).encode() + b"\n"
    tmp = out.with_name(out.name + TMP_SUFFIX)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(files.items()):
                zf.writestr(name, data)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise VaultError(f"cannot write the evidence bundle {out}: {err.strerror}") from None
    return out
