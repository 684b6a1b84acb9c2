"""An investigator exports a session as an evidence bundle and hands it to a third party, who
checks it with nothing but Python and the `cryptography` package."""
from __future__ import annotations

import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from reconstruct.events import CommandEntered, SessionStarted
from storage.vault import NotFoundError, Vault, build_evidence
from tests.vault.conftest import ACTOR, cast


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only `cryptography` (and what it needs), none of sessiontap."""
    where = tmp_path_factory.mktemp("bare-venv")
    venv.create(where, with_pip=True, clear=True)
    py = where / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "cryptography"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot install cryptography into a fresh venv: {proc.stderr.strip()[-300:]}")
    return py


METADATA = {
    "session": {"id": "sess-42", "protocol": "telnet", "user": "maint", "client": "10.1.2.3:51515",
                "server": "10.9.0.7:23", "start": 1700000000.0, "end": 1700000300.5},
    "events": [SessionStarted(1700000000.0, "telnet", "10.1.2.3", 51515, "10.9.0.7", 23),
               CommandEntered(1700000010.2, 0, "copy tftp: flash:")],
}


@pytest.fixture
def bundle(vault: Vault, tmp_path: Path) -> Path:
    vault.put("sess-42", "terminal.cast", cast(42))
    vault.put("sess-42", "files/3f9a", b"\x7fELF firmware")
    vault.put("sess-other", "terminal.cast", cast(1))
    return build_evidence(vault, "sess-42", METADATA, tmp_path / "case-42.zip", actor="investigator")


def run_verify(py: Path, target: Path, script: Path | None = None) -> subprocess.CompletedProcess:
    script = script or target / "verify.py"
    return subprocess.run([str(py), str(script), str(target)], capture_output=True, text=True,
                          cwd=target.parent, env={"PATH": os.environ.get("PATH", "")})


def unpack(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(into)
    return into


def test_bundle_holds_the_session_and_verifies_with_only_cryptography(
        bundle: Path, vault: Vault, tmp_path: Path, bare_python: Path) -> None:
    d = unpack(bundle, tmp_path / "case")
    assert (d / "recordings" / "terminal.cast").read_bytes() == cast(42)
    assert (d / "recordings" / "files" / "3f9a").read_bytes() == b"\x7fELF firmware"
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["events"][1] == {"type": "CommandEntered", "ts": 1700000010.2, "index": 0,
                                 "text": "copy tftp: flash:", "source": "terminal"}
    assert not any("sess-other" in p.read_text(errors="ignore") for p in (d / "manifests").iterdir())

    proc = run_verify(bare_python, d)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"fingerprint (SHA-256): {vault.fingerprint()}" in proc.stdout
    assert "OK" in proc.stdout
    # the zip itself can be checked without unpacking
    assert run_verify(bare_python, bundle, d / "verify.py").returncode == 0
    # the export is an audited access
    last = vault.audit_entries()[-1]
    assert (last["actor"], last["action"], last["target"]) == ("investigator", "export", "sess-42")


@pytest.mark.parametrize("tamper, expected", [
    (lambda d: (d / "recordings" / "terminal.cast").write_bytes(cast(43)),
     "recordings/terminal.cast: altered"),
    (lambda d: (d / "metadata.json").write_text('{"session": {"user": "nobody"}}'),
     "metadata.json: altered"),
    (lambda d: (d / "recordings" / "files" / "3f9a").unlink(),
     "recordings/files/3f9a: listed in bundle.json but missing"),
    (lambda d: (d / "recordings" / "extra.txt").write_text("planted"),
     "recordings/extra.txt: not part of the signed bundle"),
])
def test_a_tampered_bundle_fails_and_says_where(bundle: Path, tmp_path: Path, bare_python: Path,
                                                tamper, expected: str) -> None:
    d = unpack(bundle, tmp_path / "case")
    tamper(d)
    proc = run_verify(bare_python, d)
    assert proc.returncode == 1
    assert expected in proc.stdout, proc.stdout


def test_a_resigned_manifest_with_another_key_fails(bundle: Path, tmp_path: Path, bare_python: Path) -> None:
    """Editing the file list and swapping in the forger's own key is caught by the fingerprint
    only; editing without the key is caught by the signature."""
    d = unpack(bundle, tmp_path / "case")
    m = sorted((d / "manifests").iterdir())[0]
    doc = json.loads(m.read_text())
    doc["plaintext_sha256"] = "0" * 64
    m.write_text(json.dumps(doc))
    proc = run_verify(bare_python, d)
    assert proc.returncode == 1
    assert f"{m.relative_to(d).as_posix()}: manifest signature invalid" in proc.stdout


def test_evidence_of_an_unknown_session(vault: Vault, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no recording of session 'ghost'"):
        build_evidence(vault, "ghost", {}, tmp_path / "x.zip", actor=ACTOR)
    assert not (tmp_path / "x.zip").exists()
