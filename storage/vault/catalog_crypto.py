"""Open the DuckDB catalog encrypted at rest with the vault's catalog key.

DuckDB (>= 1.4) encrypts a database file with AES-GCM when it is attached with
``ENCRYPTION_KEY``. Since 1.4.2 it *writes* such files only with OpenSSL, which comes with
its ``httpfs`` extension; without it DuckDB refuses ("read-only crypto module") rather than
fall back to its built-in mbedtls, which it no longer considers safe for writing. We never
set ``force_mbedtls_unsafe``. An appliance has no route to DuckDB's extension repository, so
httpfs must come from a package: ``duckdb-ext-httpfs`` on PyPI ships it for DuckDB 1.4.x.
"""
from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

from .errors import VaultError


def _packaged_httpfs(version: str) -> Path | None:
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "extensions" / f"v{version}" / f"linux_{arch}" / "httpfs.duckdb_extension"
        if candidate.exists():
            return candidate
    return None


def load_openssl(con) -> None:
    """Make ``con`` able to write encrypted databases, or say in one line why it cannot."""
    import duckdb
    try:
        con.execute("LOAD httpfs")
        return
    except duckdb.Error:
        pass
    path = _packaged_httpfs(duckdb.__version__)
    if path is not None:
        con.execute(f"LOAD '{path}'")
        return
    raise VaultError(f"DuckDB {duckdb.__version__} cannot write an encrypted catalog here: its httpfs "
                     "extension (OpenSSL) is missing; install the duckdb-ext-httpfs package matching "
                     "this DuckDB version, or `INSTALL httpfs` where the extension repository is reachable")


def attach_encrypted(con, path: str | Path, key: str, alias: str = "catalog") -> None:
    """``ATTACH path AS alias (ENCRYPTION_KEY key)`` after making sure DuckDB can write it."""
    if not key or any(c not in "0123456789abcdef" for c in key):
        raise VaultError("the catalog key must be the hex string from Vault.catalog_key()")
    if not alias.isidentifier():
        raise VaultError(f"{alias!r} is not a valid database alias")
    load_openssl(con)
    con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {alias} (ENCRYPTION_KEY '{key}')")
