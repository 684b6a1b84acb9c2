"""SSH sessions decrypted from escrowed secrets: ``SSHDecoder`` (a ``reconstruct.decoder.Decoder``)
and ``KeyStore`` (a ``KeyLookup`` filled from key logs / escrow JSON lines).

Rooms: ``keylog`` (deposit formats), ``transport`` (packets, kex, NEWKEYS, compression),
``kex`` (exchange hash, key derivation), ``ciphers`` (per-packet decryption + MAC),
``connection`` (auth, channels), ``sftp`` / ``scp`` (file transfers), ``fingerprint``
(HASSH, host key).
"""
from __future__ import annotations

from typing import Sequence

from reconstruct.decoder import KeyLookup, NoKeys
from reconstruct.events import DecodeError, Direction, Event, Metadata
from reconstruct.ssh.connection import Connection
from reconstruct.ssh.keylog import KeyStore, SSHSecret, parse_ssh_keys
from reconstruct.ssh.transport import Message, Transport
from reconstruct.ssh.wire import WireError


class SSHDecoder:
    """One SSH connection. A pure function of the two byte streams and the escrowed keys."""
    protocol = "ssh"

    def __init__(self, keys: KeyLookup | None = None) -> None:
        self._t = Transport(keys or NoKeys())
        self._c = Connection()
        self._dead = False

    def _pump(self, items: list, ts: float) -> list[Event]:
        out: list[Event] = []
        for it in items:
            if isinstance(it, Message):
                if self._dead:
                    continue
                try:
                    out += self._c.message(it.direction, it.payload, it.ts)
                except (WireError, IndexError) as exc:
                    self._dead = True
                    out.append(DecodeError(it.ts, f"malformed {it.direction} SSH message type "
                                                  f"{it.payload[0]}: {exc}"))
            else:
                out.append(it)
        return out

    def feed(self, direction: Direction, data: bytes, ts: float) -> Sequence[Event]:
        return self._pump(self._t.feed(direction, data, ts), ts)

    def gap(self, direction: Direction, nbytes: int, ts: float) -> Sequence[Event]:
        return self._pump(self._t.gap(direction, nbytes, ts), ts)

    def close(self, ts: float, reason: str) -> Sequence[Event]:
        out = self._pump(self._t.close(ts), ts)
        out += self._c.close(ts)
        if self._c.user is not None:
            out.append(Metadata(ts, "auth_result", self._c.auth_result))
        return out


__all__ = ["SSHDecoder", "KeyStore", "SSHSecret", "parse_ssh_keys"]
