"""Escrowed SSH secrets: the three deposit formats, parsed into records, and an in-memory store.

Formats (one file may mix them; blank lines and ``#`` comments are skipped):

* Wireshark 4.0 key log: ``<cookie-hex> <private-key-hex>`` -- the KEXINIT cookie of the
  endpoint whose ephemeral private key follows (X25519 scalar, DH exponent; we also accept an
  ECDH nistp scalar, which Wireshark cannot use).
* Newer Wireshark: ``<cookie-hex> PRIVATE_KEY <hex>`` (same meaning) and
  ``<cookie-hex> SHARED_SECRET <hex>`` (K as mpint magnitude, or the hash string of a PQ hybrid;
  filed under either cookie).
* sessiontap escrow JSON lines: one object per key exchange with ``client_cookie`` and
  ``server_cookie`` and either ``K`` (+ optional ``H``, ``session_id``, ``K_encoding``) or the
  derived keys ``c2s``/``s2c`` = ``{"iv", "enc_key", "mac_key"}`` (hex).

Nothing here reads files: the caller hands over text. A line that cannot be a secret is
reported as a problem (line number and reason, never the secret) and skipped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_HEX = re.compile(r"^[0-9a-fA-F]+$")
COOKIE_KIND = "ssh-cookie"


@dataclass(frozen=True, slots=True)
class DerivedKeys:
    """IV, encryption key and integrity key of one direction, as the transport installs them."""
    iv: bytes
    enc_key: bytes
    mac_key: bytes


@dataclass(frozen=True, slots=True)
class SSHSecret:
    """One escrowed secret for one key exchange.

    ``kind``: "private_key" (an endpoint's ephemeral private key), "shared_secret" (K, maybe
    with H) or "derived" (the six transport keys). ``cookies`` are the KEXINIT cookies it is
    filed under (lower-case hex)."""
    kind: str
    cookies: tuple[str, ...]
    value: bytes = b""                       # private key or K
    k_encoding: str | None = None            # "mpint" | "string" | None (decide from the kex)
    exchange_hash: bytes | None = None       # H, when the depositor gave it
    session_id: bytes | None = None
    c2s: DerivedKeys | None = None
    s2c: DerivedKeys | None = None
    source: str = field(default="", compare=False)

    def __repr__(self) -> str:               # never print key material
        return f"SSHSecret({self.kind}, cookies={self.cookies}, source={self.source!r})"


@dataclass(slots=True)
class ParseResult:
    secrets: list[SSHSecret]
    problems: list[str]                      # "line 7: reason" -- safe to log


def _hex(s: str, what: str) -> bytes:
    if not _HEX.match(s) or len(s) % 2:
        raise ValueError(f"{what} is not an even-length hex string")
    return bytes.fromhex(s)


def _cookie(s: str) -> str:
    if len(s) != 32 or not _HEX.match(s):
        raise ValueError("cookie must be 32 hex digits")
    return s.lower()


def _json_secret(obj: dict, source: str) -> SSHSecret:
    cookies = tuple(_cookie(obj[k]) for k in ("client_cookie", "server_cookie") if obj.get(k))
    if not cookies:
        raise ValueError("record has no client_cookie/server_cookie")
    sid = _hex(obj["session_id"], "session_id") if obj.get("session_id") else None
    if obj.get("K"):
        enc = obj.get("K_encoding")
        if enc not in (None, "mpint", "string"):
            raise ValueError("K_encoding must be mpint or string")
        h = _hex(obj["H"], "H") if obj.get("H") else None
        return SSHSecret("shared_secret", cookies, _hex(obj["K"], "K"), enc, h, sid,
                         source=source)
    if obj.get("c2s") and obj.get("s2c"):
        dk = []
        for side in ("c2s", "s2c"):
            d = obj[side]
            dk.append(DerivedKeys(*(_hex(d.get(k) or "", k) if d.get(k) else b""
                                    for k in ("iv", "enc_key", "mac_key"))))
            if not dk[-1].enc_key:
                raise ValueError(f"{side} has no enc_key")
        return SSHSecret("derived", cookies, session_id=sid, c2s=dk[0], s2c=dk[1], source=source)
    raise ValueError("record has neither K nor c2s/s2c keys")


def parse_ssh_keys(text: str, source: str = "") -> ParseResult:
    """Parse a key log / escrow file in any of the three formats."""
    out: list[SSHSecret] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{n}" if source else f"line {n}"
        try:
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError("not a complete JSON object (truncated?)") from None
                if not isinstance(obj, dict):
                    raise ValueError("JSON line is not an object")
                if obj.get("escrow_error") or obj.get("record", "kex") != "kex":
                    continue
                out.append(_json_secret(obj, where))
                continue
            parts = line.split()
            if len(parts) == 2:
                out.append(SSHSecret("private_key", (_cookie(parts[0]),),
                                     _hex(parts[1], "private key"), source=where))
            elif len(parts) == 3 and parts[1] in ("PRIVATE_KEY", "SHARED_SECRET"):
                kind = "private_key" if parts[1] == "PRIVATE_KEY" else "shared_secret"
                out.append(SSHSecret(kind, (_cookie(parts[0]),), _hex(parts[2], parts[1]),
                                     source=where))
            else:
                raise ValueError("not '<cookie> <key>' nor '<cookie> PRIVATE_KEY|SHARED_SECRET <hex>'")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{where}: {exc}")
    return ParseResult(out, problems)


class KeyStore:
    """In-memory ``reconstruct.decoder.KeyLookup`` for SSH secrets (``kind="ssh-cookie"``,
    ``ident`` = a KEXINIT cookie in hex). Bounded by what the operator deposits."""

    def __init__(self, secrets: list[SSHSecret] | None = None) -> None:
        self._by_cookie: dict[str, list[SSHSecret]] = {}
        self.problems: list[str] = []
        for s in secrets or ():
            self.add(s)

    def add(self, secret: SSHSecret) -> None:
        for c in secret.cookies:
            lst = self._by_cookie.setdefault(c, [])
            if secret not in lst:
                lst.append(secret)

    def add_text(self, text: str, source: str = "") -> ParseResult:
        """Parse one deposit (file contents) and keep its secrets; returns what was parsed."""
        res = parse_ssh_keys(text, source)
        for s in res.secrets:
            self.add(s)
        self.problems.extend(res.problems)
        return res

    def lookup(self, kind: str, ident: str) -> list[object]:
        if kind != COOKIE_KIND:
            return []
        return list(self._by_cookie.get(ident.lower(), ()))

    def __len__(self) -> int:
        return len({id(s) for lst in self._by_cookie.values() for s in lst})
