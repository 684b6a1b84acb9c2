"""The data directory: where the catalog, the recordings and the keys live.

``$SESSIONTAP_HOME`` if set, else ``$XDG_DATA_HOME/sessiontap`` (``~/.local/share/sessiontap``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from storage.catalog import Catalog
from storage.recordings import DirectoryStore, RecordingStore


def default_home() -> Path:
    env = os.environ.get("SESSIONTAP_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "sessiontap"


@dataclass
class Home:
    path: Path = field(default_factory=default_home)

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.duckdb"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def catalog(self, read_only: bool = False) -> Catalog:
        if read_only and not self.catalog_path.exists():
            raise FileNotFoundError(f"no catalog in {self.path}: import a capture first "
                                    f"(sessiontap import FILE) or set SESSIONTAP_HOME")
        self.ensure()
        return Catalog(str(self.catalog_path), read_only=read_only)

    def store(self) -> RecordingStore:
        self.ensure()
        return DirectoryStore(str(self.path / "recordings"))
