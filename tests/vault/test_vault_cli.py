"""The operator's story on the command line: init, store (via the importer), verify, audit, status,
retention and legal hold, evidence export, and what a tampered vault looks like."""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import pytest

from appliance.cli_vault import register
from storage.vault import Vault
from tests.vault.conftest import cast


def sessiontap(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sessiontap")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("SESSIONTAP_HOME", str(home))
    monkeypatch.setenv("SESSIONTAP_ACTOR", "operator-olga")
    monkeypatch.delenv("SESSIONTAP_PASSPHRASE", raising=False)
    monkeypatch.delenv("SESSIONTAP_KEY_FILE", raising=False)
    return home


def test_quick_start(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert sessiontap("init") == 0
    out = capsys.readouterr().out
    assert "vault created" in out and "fingerprint" in out and "90 days" in out

    Vault.open(env).put("sess-7", "terminal.cast", cast(7))    # what the importer does

    assert sessiontap("verify", "--all") == 0
    assert "OK: 1 recording(s)" in capsys.readouterr().out

    assert sessiontap("evidence", "sess-7", "-o", str(tmp_path / "case-7.zip"), "--purpose", "case 7") == 0
    # no capture imported yet, so no catalog: the bundle still goes out, with a warning
    assert "the catalog is not available" in capsys.readouterr().err
    assert "recordings/terminal.cast" in zipfile.ZipFile(tmp_path / "case-7.zip").namelist()

    assert sessiontap("audit-log", "--json") == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [(e["actor"], e["action"], e["target"]) for e in lines][-1] == ("operator-olga", "export", "sess-7")
    assert lines[-1]["purpose"] == "case 7"

    assert sessiontap("audit-log") == 0
    assert "operator-olga" in capsys.readouterr().out

    assert sessiontap("status", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["recordings"] == 1 and st["retention_days"] == 90 and st["thresholds"] == [95, 85, 70]
    assert sessiontap("status") == 0
    assert "headroom" in capsys.readouterr().out


def test_retention_and_legal_hold(env: Path, capsys: pytest.CaptureFixture) -> None:
    sessiontap("init")
    Vault.open(env).put("sess-1", "terminal.cast", cast(1))
    capsys.readouterr()
    assert sessiontap("retention", "--days", "30") == 2
    assert "minimum is 90 days" in capsys.readouterr().err
    assert sessiontap("retention", "--days", "180") == 0
    assert sessiontap("hold", "sess-", "--reason", "case 42") == 0      # a unique prefix will do
    assert sessiontap("retention") == 0
    assert "legal holds: sess-1" in capsys.readouterr().out
    assert sessiontap("release", "sess-1") == 0
    assert sessiontap("release", "sess-1") == 2
    assert "not on legal hold" in capsys.readouterr().err
    assert sessiontap("retention", "--apply") == 0
    assert "0 recording(s) crypto-shredded" in capsys.readouterr().out


def test_tampered_vault_fails_verify_and_names_it(env: Path, capsys: pytest.CaptureFixture) -> None:
    sessiontap("init")
    vault = Vault.open(env)
    vault.put("sess-1", "terminal.cast", cast(1))
    path = vault._data_path(vault.manifest("sess-1", "terminal.cast")["rid"])
    blob = bytearray(path.read_bytes())
    blob[40] ^= 1
    path.write_bytes(bytes(blob))
    capsys.readouterr()
    assert sessiontap("verify", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert any("sess-1/terminal.cast" in p["where"] and "chunk 0 fails authentication" in p["message"]
               for p in report["problems"])
    assert sessiontap("verify") == 1
    assert "FAILED" in capsys.readouterr().out


def test_errors_are_one_line_and_exit_2(env: Path, capsys: pytest.CaptureFixture) -> None:
    assert sessiontap("status") == 2
    err = capsys.readouterr().err
    assert err.startswith("sessiontap: error: no vault in") and err.count("\n") == 1
    sessiontap("init")
    (env / "keys" / "master.key").unlink()
    capsys.readouterr()
    assert sessiontap("verify") == 2
    assert "master key file" in capsys.readouterr().err


def test_rotate_key(env: Path, capsys: pytest.CaptureFixture) -> None:
    sessiontap("init")
    Vault.open(env).put("s", "terminal.cast", cast(2))
    assert sessiontap("rotate-key") == 0
    assert "1 data key(s) rewrapped" in capsys.readouterr().out
    assert Vault.open(env).get("s", "terminal.cast", actor="x", purpose="y") == cast(2)
