"""The narrow interface between the rest of the appliance and where recording bytes live.

Everything that writes or reads recording content (terminal casts, RDP replays, transferred
files) goes through a ``RecordingStore``. Reading takes an ``actor`` and a ``purpose`` because
every read of evidence is an audited access: implementations write the audit entry *before*
returning any byte.
"""
from __future__ import annotations

from typing import Protocol


def latest_version(names: list[str], base: str) -> str | None:
    """The newest stored version of artefact ``base``. Artefacts are never overwritten
    (evidence): a session decoded again stores ``name.v2.ext``, ``name.v3.ext``, ..."""
    stem, _, ext = base.rpartition(".")
    found = [n for n in names if n == base or (n.startswith(stem + ".v") and n.endswith("." + ext))]
    return max(found, key=lambda n: (len(n), n)) if found else None


def next_version(names: list[str], base: str) -> str:
    """The name under which a new version of ``base`` is stored."""
    if base not in names:
        return base
    stem, _, ext = base.rpartition(".")
    taken = set(names)
    v = 2
    while f"{stem}.v{v}.{ext}" in taken:
        v += 1
    return f"{stem}.v{v}.{ext}"


class RecordingStore(Protocol):
    def put(self, session_id: str, name: str, data: bytes) -> str:
        """Store ``data`` as artefact ``name`` ("terminal.cast", "files/<sha256>", ...) of a
        session; returns the hex SHA-256 of the plaintext. Replaces nothing: putting the same
        name twice with other bytes is an error."""

    def get(self, session_id: str, name: str, *, actor: str, purpose: str) -> bytes:
        """Audited read of one artefact."""

    def names(self, session_id: str) -> list[str]:
        """The artefacts stored for a session (no content, not audited)."""

    def exists(self, session_id: str, name: str) -> bool: ...

