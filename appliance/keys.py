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


def read_key_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise OSError(f"{path}: cannot read the key file ({e.strerror})") from None


def load_keys(paths: list[str], home: Any = None, actor: str = "appliance") -> KeyLookup:
    """Keys from the files given plus every key deposited earlier. The files given are
    deposited too (sealed), so their sessions can be decoded again later."""
    texts = [(p, read_key_file(p)) for p in paths]
    ring = KeyRing()
    for p, text in texts:               # a file no parser understands is an error, before anything is stored
        ring.lookups.extend(parse_key_text(text, p).lookups)
    if home is not None and (texts or home.has_vault()):
        vault = home.vault()
        ring.lookups.extend(deposited_keys(vault, actor).lookups)
        for p, text in texts:
            deposit(vault, text, p, actor)
    return ring if len(ring) else NoKeys()


# -- deposited key material: sealed in the vault, indexed by a sealed list of names ----------
_INDEX = "escrow/index"


def deposited_names(vault: Any, actor: str) -> list[str]:
    import json
    try:
        return json.loads(vault.open_secret(_INDEX, actor=actor, purpose="list escrowed keys"))
    except Exception as e:  # no index yet
        if type(e).__name__ == "NotFoundError":
            return []
        raise


def deposit(vault: Any, text: str, source: str, actor: str) -> tuple[str, bool]:
    """Seal one key file's text in the vault. Returns its name and whether it was new."""
    import hashlib
    import json
    name = "escrow/" + hashlib.sha256(text.encode()).hexdigest()
    names = deposited_names(vault, actor)
    if name in names:
        return name, False
    vault.seal_secret(name, text.encode(), actor=actor)
    vault.seal_secret(_INDEX, json.dumps(names + [name]).encode(), actor=actor)
    return name, True


def deposited_keys(vault: Any, actor: str, purpose: str = "decrypt sessions") -> KeyRing:
    ring = KeyRing()
    for name in deposited_names(vault, actor):
        text = vault.open_secret(name, actor=actor, purpose=purpose).decode("utf-8", "replace")
        try:
            ring.lookups.extend(parse_key_text(text, name).lookups)
        except ValueError:
            continue
    return ring
