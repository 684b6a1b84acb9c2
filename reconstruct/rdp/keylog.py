"""NSS key log ("SSLKEYLOGFILE") parsing, and the KeyLookup that serves TLS secrets from it.

A line is ``<LABEL> <client_random hex> <secret hex>``. TLS 1.2 and older write
``CLIENT_RANDOM`` (the 48-byte master secret); TLS 1.3 writes one line per traffic secret
(``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_TRAFFIC_SECRET_0``, ...). ``RSA`` lines
(encrypted pre-master prefix -> pre-master) are keyed by something else and are skipped, as are
comments and malformed lines: a key log is often appended to by several programs at once.

The lookup answers ``lookup("tls-client-random", <client random hex>)`` with one
``TLSSecrets`` (label -> secret bytes) per client random, so a decoder never sees the secrets
of another connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field

KIND = "tls-client-random"

LABELS = frozenset({
    "CLIENT_RANDOM",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET", "CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET",
})


@dataclass(slots=True)
class TLSSecrets:
    """Everything a key log knows about one handshake (one client random)."""
    client_random: bytes
    secrets: dict[str, bytes] = field(default_factory=dict)

    @property
    def master_secret(self) -> bytes | None:
        return self.secrets.get("CLIENT_RANDOM")


def parse_keylog(text: str) -> dict[bytes, TLSSecrets]:
    """Parse key log text into ``{client_random: TLSSecrets}``; bad lines are ignored."""
    out: dict[bytes, TLSSecrets] = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) != 3 or parts[0] not in LABELS:
            continue
        try:
            cr, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            continue
        if len(cr) != 32 or not secret:
            continue
        out.setdefault(cr, TLSSecrets(cr)).secrets[parts[0]] = secret
    return out


class KeyLogLookup:
    """A ``reconstruct.decoder.KeyLookup`` over one or more parsed key logs."""

    def __init__(self, *texts: str) -> None:
        self._by_cr: dict[bytes, TLSSecrets] = {}
        for t in texts:
            self.add(t)

    def add(self, text: str) -> None:
        for cr, s in parse_keylog(text).items():
            self._by_cr.setdefault(cr, TLSSecrets(cr)).secrets.update(s.secrets)

    def __len__(self) -> int:
        return len(self._by_cr)

    def lookup(self, kind: str, ident: str) -> list[object]:
        if kind != KIND:
            return []
        try:
            s = self._by_cr.get(bytes.fromhex(ident))
        except ValueError:
            return []
        return [s] if s is not None else []
