"""What identifies an SSH client, server and host key without decrypting anything:
HASSH / HASSHServer (Salesforce's method, as Zeek reports them) and the host key's type and
OpenSSH-style SHA256 fingerprint."""
from __future__ import annotations

import base64
import hashlib

from reconstruct.ssh.wire import Reader, WireError


def hassh_string(lists: list[list[str]], server: bool = False) -> str:
    """kex;cipher;mac;compression from one KEXINIT (client->server lists for the client,
    server->client lists for the server)."""
    enc, mac, comp = (3, 5, 7) if server else (2, 4, 6)
    return ";".join(",".join(lists[i]) for i in (0, enc, mac, comp))


def hassh(lists: list[list[str]], server: bool = False) -> str:
    return hashlib.md5(hassh_string(lists, server).encode(), usedforsecurity=False).hexdigest()


def host_key(blob: bytes) -> tuple[str, str]:
    """(key type, "SHA256:<base64 without padding>") of a K_S public key blob."""
    try:
        ktype = Reader(blob).text()
    except WireError:
        ktype = "unknown"
    fp = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return ktype, "SHA256:" + fp
