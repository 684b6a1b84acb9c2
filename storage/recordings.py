"""The narrow interface between the rest of the appliance and where recording bytes live.

Everything that writes or reads recording content (terminal casts, RDP replays, transferred
files) goes through a ``RecordingStore``. Reading takes an ``actor`` and a ``purpose`` because
every read of evidence is an audited access: implementations write the audit entry *before*
returning any byte.
"""
from __future__ import annotations

from typing import Protocol


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

