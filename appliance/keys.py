"""Key material handed to the importer: SSH key logs (both Wireshark forms, escrow JSON
lines) and TLS key logs (NSS format), gathered behind one ``KeyLookup``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from reconstruct.decoder import KeyLookup, NoKeys


class KeyRing:
    def __init__(self) -> None:
        self.lookups: list[Any] = []

    def lookup(self, kind: str, ident: str) -> list[object]:
        found: list[object] = []
        for lk in self.lookups:
            found.extend(lk.lookup(kind, ident))
        return found

    def __len__(self) -> int:
        return sum(len(lk) for lk in self.lookups)


def parse_key_text(text: str, source: str) -> KeyRing:
    """Every protocol's parser looks at the text; a file none of them understands is an error."""
    ring = KeyRing()
    try:
        from reconstruct.ssh.keylog import KeyStore
        ssh = KeyStore()
        ssh.add_text(text, source)
        if len(ssh):
            ring.lookups.append(ssh)
    except ImportError:
        pass
    try:
        from reconstruct.rdp.keylog import KeyLogLookup
        tls = KeyLogLookup(text)
        if len(tls):
            ring.lookups.append(tls)
    except ImportError:
        pass
    if not ring.lookups:
        raise ValueError(f"{source}: no SSH or TLS key lines found (expected a Wireshark SSH key log, "
                         f"escrow JSON lines or an NSS key log)")
    return ring


def load_keys(paths: list[str], home: Any = None) -> KeyLookup:
    if not paths:
        return NoKeys()
    ring = KeyRing()
    for p in paths:
        try:
            text = Path(p).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise OSError(f"{p}: cannot read the key file ({e.strerror})") from None
        ring.lookups.extend(parse_key_text(text, p).lookups)
    return ring
