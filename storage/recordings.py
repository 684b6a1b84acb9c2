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


class DirectoryStore:
    """Recordings as plain files under one directory. Only for a data directory without a
    vault (``sessiontap init`` creates the vault); reads are not audited here."""

    def __init__(self, root: str) -> None:
        import os
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _path(self, session_id: str, name: str) -> str:
        import os
        if "/" in session_id or ".." in name.split("/"):
            raise ValueError(f"bad artefact name {session_id}/{name}")
        return os.path.join(self.root, session_id, *name.split("/"))

    def put(self, session_id: str, name: str, data: bytes) -> str:
        import hashlib
        import os
        path = self._path(session_id, name)
        digest = hashlib.sha256(data).hexdigest()
        if os.path.exists(path):
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    raise FileExistsError(f"{session_id}/{name} is already stored with other content")
            return digest
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return digest

    def get(self, session_id: str, name: str, *, actor: str, purpose: str) -> bytes:
        with open(self._path(session_id, name), "rb") as f:
            return f.read()

    def names(self, session_id: str) -> list[str]:
        import os
        base = os.path.join(self.root, session_id)
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for fn in files:
                if not fn.endswith(".tmp"):
                    out.append(os.path.relpath(os.path.join(dirpath, fn), base).replace(os.sep, "/"))
        return sorted(out)

    def exists(self, session_id: str, name: str) -> bool:
        import os
        return os.path.exists(self._path(session_id, name))
