"""The contract every protocol decoder fulfils (sans-I/O, like h11/wsproto).

A decoder is created per TCP connection once the sensor has detected its protocol. It is
fed the ordered bytes of each direction with the capture timestamp and returns the events
those bytes complete. It never reads a file, a socket, a clock or the database; secrets it
needs (SSH/TLS keys) come through the ``KeyLookup`` it is given.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from reconstruct.events import Direction, Event


class KeyLookup(Protocol):
    """Answers a decoder's question "do you have a secret for this handshake?".

    ``kind`` names the secret family ("ssh-cookie", "ssh-session", "tls-client-random",
    "rdp-server-key", ...); ``ident`` is what identifies it in that family (hex).
    Returns the secret records found (possibly several) or an empty list."""

    def lookup(self, kind: str, ident: str) -> list[object]: ...


class NoKeys:
    def lookup(self, kind: str, ident: str) -> list[object]:
        return []


class Decoder(Protocol):
    protocol: str

    def feed(self, direction: Direction, data: bytes, ts: float) -> Sequence[Event]:
        """Bytes of one direction, in TCP order, contiguous with the previous call's."""

    def gap(self, direction: Direction, nbytes: int, ts: float) -> Sequence[Event]:
        """``nbytes`` of this direction are missing; the next ``feed`` continues after them.
        The session layer records the ``Gap`` event itself: a decoder only resynchronises
        (and may report what the gap cost it, e.g. a non-fatal ``DecodeError``)."""

    def close(self, ts: float, reason: str) -> Sequence[Event]:
        """The connection ended (or the capture did); flush whatever is pending."""
