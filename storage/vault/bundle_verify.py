#!/usr/bin/env python3
"""Verify a sessiontap evidence bundle. Needs only Python 3.9+ and the `cryptography` package.

Usage:  python verify.py [bundle-directory-or-zip]     (default: the directory of this script)

Checks, and names whatever fails:
  1. bundle.json is signed by the appliance key in public_key.pem, and every file it lists is
     present with the listed SHA-256 (nothing added, nothing missing);
  2. each manifest in manifests/ is signed by the same key, and the recording it describes has
     exactly the plaintext SHA-256 and size the manifest states;
  3. the manifests sit in the appliance's hash chain (chain.json), whose signed head names the
     last entry at export time: so the recordings existed, unaltered, in that order.
Compare the printed key fingerprint with the one the appliance owner published
(`sessiontap status` shows it).
"""
import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

SIG_CONTEXT = b"sessiontap-chain-v1\n"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signed_ok(pub, obj):
    try:
        sig = base64.b64decode(obj["sig"])
        pub.verify(sig, SIG_CONTEXT + canonical({k: v for k, v in obj.items() if k != "sig"}))
        return True
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False


class Bundle:
    def __init__(self, where):
        where = Path(where)
        if where.is_file():
            zf = zipfile.ZipFile(where)
            self.files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        else:
            self.files = {p.relative_to(where).as_posix(): p.read_bytes()
                          for p in where.rglob("*") if p.is_file()}


def verify(where):
    b = Bundle(where)
    problems = []
    if "public_key.pem" not in b.files or "bundle.json" not in b.files:
        return ["public_key.pem or bundle.json is missing: this is not a sessiontap evidence bundle"], None
    pub = load_pem_public_key(b.files["public_key.pem"])
    fingerprint = hashlib.sha256(pub.public_bytes_raw()).hexdigest()
    try:
        bundle = json.loads(b.files["bundle.json"])
    except ValueError:
        return ["bundle.json is not readable JSON (altered)"], fingerprint
    if not signed_ok(pub, bundle):
        problems.append("bundle.json: signature invalid (the file list or its metadata was altered)")
    listed = bundle.get("files", {})
    for name, digest in sorted(listed.items()):
        data = b.files.get(name)
        if data is None:
            problems.append(f"{name}: listed in bundle.json but missing")
        elif hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name}: altered (SHA-256 differs from bundle.json)")
    for name in sorted(set(b.files) - set(listed) - {"bundle.json"}):
        problems.append(f"{name}: not part of the signed bundle (added later)")

    chain = json.loads(b.files.get("chain.json", b"{}") or b"{}")
    links = chain.get("entries", [])
    by_seq = {}
    prev_hash = None
    for seq, h, prev in links:
        if prev_hash is not None and prev != prev_hash:
            problems.append(f"chain.json: entry {seq} does not link to entry {seq - 1}")
        by_seq[seq] = h
        prev_hash = h
    head = chain.get("head")
    if not head or not signed_ok(pub, head):
        problems.append("chain.json: the ledger head is missing or its signature is invalid")
    elif not links or head.get("seq") != links[-1][0] or head.get("hash") != links[-1][1]:
        problems.append("chain.json: the signed head does not name the last chain entry")

    for name in sorted(n for n in b.files if n.startswith("manifests/")):
        try:
            m = json.loads(b.files[name])
        except ValueError:
            problems.append(f"{name}: not readable JSON (altered)")
            continue
        if not signed_ok(pub, m):
            problems.append(f"{name}: manifest signature invalid (altered or replaced)")
        h = hashlib.sha256(canonical(m)).hexdigest()
        if by_seq.get(m.get("seq")) != h:
            problems.append(f"{name}: manifest is not the one at entry {m.get('seq')} of the hash chain")
        bundle_paths = bundle.get("recordings", {})
        rec = bundle_paths.get(str(m.get("seq")))
        data = b.files.get(rec) if rec else None
        if data is None:
            problems.append(f"{name}: its recording ({m.get('session_id')}/{m.get('name')}) is not in the bundle")
            continue
        if len(data) != m.get("plaintext_size") or hashlib.sha256(data).hexdigest() != m.get("plaintext_sha256"):
            problems.append(f"{rec}: does not match the signed manifest {name} (recording altered)")
    return problems, fingerprint


def main(argv):
    where = argv[1] if len(argv) > 1 else Path(__file__).resolve().parent
    problems, fingerprint = verify(where)
    if fingerprint:
        print(f"appliance key fingerprint (SHA-256): {fingerprint}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("OK: signatures, hashes and hash chain verify")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
