"""Opening the vault: passphrase, key file, and what the user sees when it goes wrong."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.vault import RefusedError, Vault, VaultError, WrongKeyError
from tests.vault.conftest import ACTOR, cast


def test_quick_start_init_without_options_makes_a_key_file_vault(home: Path) -> None:
    v = Vault.init(home)
    kf = home / "keys" / "master.key"
    assert kf.stat().st_mode & 0o777 == 0o600
    v.put("s", "terminal.cast", cast(1))
    assert Vault.open(home).get("s", "terminal.cast", actor=ACTOR, purpose="t") == cast(1)


def test_passphrase_vault_opens_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Vault.init(home, passphrase="s3cret passphrase").put("s", "x", b"data")
    assert not (home / "keys" / "master.key").exists()
    monkeypatch.setenv("SESSIONTAP_PASSPHRASE", "s3cret passphrase")
    assert Vault.open(home).get("s", "x", actor=ACTOR, purpose="t") == b"data"


def test_wrong_passphrase_is_one_clear_line_and_changes_nothing(home: Path) -> None:
    Vault.init(home, passphrase="right one").put("s", "x", b"data")
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(WrongKeyError) as err:
        Vault.open(home, passphrase="wrong one")
    assert str(err.value) == "wrong passphrase: it does not unlock this vault's master key"
    after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


def test_missing_passphrase_says_how_to_give_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Vault.init(home, passphrase="right one")
    monkeypatch.delenv("SESSIONTAP_PASSPHRASE", raising=False)
    with pytest.raises(VaultError, match="protected by a passphrase: set SESSIONTAP_PASSPHRASE"):
        Vault.open(home)


def test_missing_key_file_is_one_clear_line(home: Path) -> None:
    Vault.init(home).put("s", "x", b"data")
    (home / "keys" / "master.key").unlink()
    with pytest.raises(VaultError) as err:
        Vault.open(home)
    assert "master key file" in str(err.value) and "is missing" in str(err.value)
    assert "\n" not in str(err.value)


def test_key_file_of_another_vault_is_refused(tmp_path: Path) -> None:
    Vault.init(tmp_path / "a")
    Vault.init(tmp_path / "b")
    with pytest.raises(WrongKeyError, match="wrong key file"):
        Vault.open(tmp_path / "a", key_file=tmp_path / "b" / "keys" / "master.key")


def test_key_file_readable_by_others_is_refused(home: Path) -> None:
    Vault.init(home)
    os.chmod(home / "keys" / "master.key", 0o644)
    with pytest.raises(VaultError, match="readable by other users"):
        Vault.open(home)


def test_key_file_kept_outside_the_data_directory(tmp_path: Path) -> None:
    """The recommended setup: key on other media (USB token, TPM-unsealed tmpfs ...)."""
    key = tmp_path / "removable" / "sessiontap.key"
    Vault.init(tmp_path / "data", key_file=key).put("s", "x", b"data")
    assert not (tmp_path / "data" / "keys" / "master.key").exists()
    assert Vault.open(tmp_path / "data").get("s", "x", actor=ACTOR, purpose="t") == b"data"
    key.unlink()
    with pytest.raises(VaultError, match="is missing"):
        Vault.open(tmp_path / "data")


def test_init_never_overwrites_a_vault(home: Path) -> None:
    Vault.init(home)
    with pytest.raises(RefusedError, match="already holds a vault"):
        Vault.init(home)


def test_opening_a_directory_without_a_vault(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match=r"no vault in .* \(run `sessiontap init` first\)"):
        Vault.open(tmp_path)


def test_an_altered_keyring_is_refused(home: Path) -> None:
    Vault.init(home)
    path = home / "keys" / "keyring.json"
    text = path.read_text()
    path.write_text(text.replace('"public":"', '"public":"A', 1))
    with pytest.raises(VaultError, match="keyring.json was altered"):
        Vault.open(home)
