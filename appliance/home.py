"""The data directory: where the catalog, the recordings and the keys live.

``$SESSIONTAP_HOME`` if set, else ``$XDG_DATA_HOME/sessiontap`` (``~/.local/share/sessiontap``).
The evidence vault lives at its top (see ``storage/vault``): recordings are sealed there and
the DuckDB catalog is an encrypted database whose key the vault derives. A data directory
without a vault gets one on first use, unlocked by a key file (``keys/master.key``) so that
unattended imports work; ``sessiontap init --passphrase`` chooses a passphrase instead.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from storage.catalog import Catalog
from storage.vault import Vault


LOCK_WAIT = 15.0    # seconds to wait for another process's hold on the catalog


def default_home() -> Path:
    env = os.environ.get("SESSIONTAP_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "sessiontap"


@dataclass
class Home:
    path: Path = field(default_factory=default_home)
    actor: str = "appliance"
    _vault: Vault | None = field(default=None, repr=False)

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.duckdb"

    def has_vault(self) -> bool:
        return (self.path / "vault.json").exists()

    def vault(self, create: bool = True) -> Vault:
        if self._vault is None:
            if not self.has_vault():
                if not create:
                    raise FileNotFoundError(f"no sessiontap data in {self.path}: import a capture first "
                                            f"(sessiontap import FILE) or set SESSIONTAP_HOME")
                self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._vault = Vault.init(self.path, passphrase=os.environ.get("SESSIONTAP_PASSPHRASE"),
                                         actor=self.actor)
                if not os.environ.get("SESSIONTAP_PASSPHRASE"):
                    print(f"sessiontap: created the evidence vault in {self.path}; its master key is "
                          f"{self.path / 'keys' / 'master.key'}: keep a copy of it elsewhere",
                          file=sys.stderr)
            else:
                self._vault = Vault.open(self.path)
        return self._vault

    def catalog(self, read_only: bool = False) -> Catalog:
        vault = self.vault(create=not read_only)
        if read_only and not self.catalog_path.exists():
            raise FileNotFoundError(f"no catalog in {self.path}: import a capture first (sessiontap import FILE)")
        key = vault.catalog_key(actor=self.actor)
        # DuckDB has one writer at a time: the console and the live sensor hold the file for a
        # few milliseconds per request or checkpoint, so a busy file is retried, not fatal
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                return Catalog(str(self.catalog_path), encryption_key=key, read_only=read_only)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def store(self) -> Vault:
        return self.vault()
