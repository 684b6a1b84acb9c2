"""The vault as the rest of the appliance sees it: store artefacts, read them back, audited."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from storage.recordings import RecordingStore
from storage.vault import NotFoundError, RefusedError, Vault
from tests.vault.conftest import ACTOR, cast

MARKER = "PLAINTEXT-MARKER-7f3a9c"


def test_an_importer_stores_a_session_and_an_analyst_reads_it_back(vault: Vault, home: Path) -> None:
    data = cast(1)
    digest = vault.put("sess-1", "terminal.cast", data, time_range=(1700000000.0, 1700000300.5),
                       source="pcap:switch-maint.pcap", clock="ntp-synced")
    vault.put("sess-1", "files/ab12", b"firmware image bytes")

    store: RecordingStore = vault   # what the catalog and importer hold
    assert all(callable(getattr(store, m)) for m in ("put", "get", "names", "exists"))
    assert vault.names("sess-1") == ["files/ab12", "terminal.cast"]
    assert vault.exists("sess-1", "terminal.cast") and not vault.exists("sess-1", "nope")
    assert vault.get("sess-1", "terminal.cast", actor=ACTOR, purpose="incident 42") == data
    m = vault.manifest("sess-1", "terminal.cast")
    assert m["plaintext_sha256"] == digest and m["plaintext_size"] == len(data)
    assert m["time_range"] == [1700000000.0, 1700000300.5] and m["clock"] == "ntp-synced"
    assert m["source"] == "pcap:switch-maint.pcap"

    # a second process (the CLI next to the daemon) sees the same vault
    again = Vault.open(home)
    assert again.get("sess-1", "files/ab12", actor=ACTOR, purpose="review") == b"firmware image bytes"


def test_every_read_is_in_the_audit_log_with_who_and_why(vault: Vault) -> None:
    vault.put("sess-1", "terminal.cast", cast(1))
    vault.get("sess-1", "terminal.cast", actor="bob", purpose="shift review")
    last = vault.audit_entries()[-1]
    assert (last["actor"], last["action"], last["target"], last["purpose"]) == \
        ("bob", "read", "sess-1/terminal.cast", "shift review")


def test_a_read_without_an_actor_is_refused_before_any_byte(vault: Vault) -> None:
    vault.put("sess-1", "terminal.cast", cast(1))
    before = len(vault.audit_entries())
    with pytest.raises(Exception, match="actor"):
        vault.get("sess-1", "terminal.cast", actor="", purpose="x")
    assert len(vault.audit_entries()) == before


def test_recordings_are_never_replaced(vault: Vault) -> None:
    vault.put("s", "terminal.cast", b"first")
    assert vault.put("s", "terminal.cast", b"first")  # same bytes again: idempotent
    with pytest.raises(RefusedError, match="never replaced"):
        vault.put("s", "terminal.cast", b"second")
    assert vault.get("s", "terminal.cast", actor=ACTOR, purpose="t") == b"first"


def test_unknown_artefact_is_a_clear_error(vault: Vault) -> None:
    with pytest.raises(NotFoundError, match="no artefact 'x' for session 'nope'"):
        vault.get("nope", "x", actor=ACTOR, purpose="t")


def test_no_plaintext_anywhere_under_the_data_directory(vault: Vault, home: Path) -> None:
    for i in range(5):
        vault.put(f"sess-{i}", "terminal.cast", cast(i, marker=MARKER))
    vault.put("sess-0", "files/cfg", f"hostname sw1\n{MARKER}\n".encode() * 50)
    vault.seal_secret("ssh/sw1/session-key", MARKER.encode() * 4)
    vault.get("sess-0", "terminal.cast", actor=ACTOR, purpose="t")
    key_text = vault.catalog_key()
    needles = [MARKER.encode(), b"show running-config", b"sw-core-", key_text.encode()]
    for root, _dirs, files in os.walk(home):
        for f in files:
            blob = (Path(root) / f).read_bytes()
            for needle in needles:
                assert needle not in blob, f"{needle!r} found in clear in {Path(root, f).relative_to(home)}"


def test_escrowed_keys_are_sealed_and_their_use_audited(vault: Vault, home: Path) -> None:
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
    vault.seal_secret("ssh/plc-gw/host-key", key, actor="escrow-intake")
    assert Vault.open(home).open_secret("ssh/plc-gw/host-key", actor="ssh-decoder") == key
    actions = [(e["actor"], e["action"], e["target"]) for e in vault.audit_entries()]
    assert ("escrow-intake", "seal-secret", "ssh/plc-gw/host-key") in actions
    assert ("ssh-decoder", "open-secret", "ssh/plc-gw/host-key") in actions
    with pytest.raises(NotFoundError):
        vault.open_secret("ssh/unknown")


def test_master_key_rotation_rewraps_keys_and_leaves_recordings_alone(vault: Vault, home: Path) -> None:
    vault.put("s", "terminal.cast", cast(3))
    vault.seal_secret("tls/rdp-gw", b"keylog line")
    catalog = vault.catalog_key()
    sealed_files = {p: p.read_bytes() for p in (home / "recordings").rglob("*.sealed")}
    old_keyring = json.loads((home / "keys" / "keyring.json").read_text())

    assert vault.rotate_master_key(actor="root") == 2     # one data key, one secret

    assert {p: p.read_bytes() for p in (home / "recordings").rglob("*.sealed")} == sealed_files
    new_keyring = json.loads((home / "keys" / "keyring.json").read_text())
    assert list(new_keyring["masters"]) == ["m2"] and list(old_keyring["masters"]) == ["m1"]
    reopened = Vault.open(home)
    assert reopened.get("s", "terminal.cast", actor=ACTOR, purpose="t") == cast(3)
    assert reopened.open_secret("tls/rdp-gw") == b"keylog line"
    assert reopened.catalog_key() == catalog       # the encrypted catalog still opens
    assert reopened.verify(actor=ACTOR).ok


def test_changing_the_passphrase_keeps_everything_readable(tmp_path: Path) -> None:
    v = Vault.init(tmp_path / "v", passphrase="correct horse battery staple")
    v.put("s", "terminal.cast", cast(4))
    v.change_passphrase(actor="root", passphrase="a new long passphrase")
    assert Vault.open(tmp_path / "v", passphrase="a new long passphrase").get(
        "s", "terminal.cast", actor=ACTOR, purpose="t") == cast(4)


def test_catalog_key_is_a_stable_secret_hex_string(vault: Vault, home: Path) -> None:
    k = vault.catalog_key()
    assert len(k) == 64 and int(k, 16) >= 0
    assert Vault.open(home).catalog_key() == k
    assert Vault.init(home.parent / "other").catalog_key() != k


def test_only_the_audited_door_decrypts_recordings() -> None:
    """No code path reads recordings around the audit: ``_Door`` is made only by
    ``Vault._access`` (after its audit entry) and chunks are opened only inside ``_Door``."""
    root = Path(__file__).resolve().parents[2] / "storage" / "vault"
    makers, openers = set(), set()
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]:
            for call in ast.walk(func):
                if isinstance(call, ast.Call):
                    name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
                    if name == "_Door":
                        makers.add((path.name, func.name))
                    if name == "open_chunks":
                        openers.add((path.name, func.name))
    assert {m for m in makers if m[1] != "Vault"} == {("vault.py", "_access")}
    assert {o for o in openers if o[1] not in ("_Door",)} == {("vault.py", "plaintext"), ("vault.py", "check")}


class RecordingTSA:
    """Stands in for an RFC 3161 authority, which a passive appliance usually cannot reach:
    returns a token naming the digest it was asked to stamp."""

    def __init__(self) -> None:
        self.digests: list[bytes] = []

    def stamp(self, digest: bytes) -> bytes | None:
        self.digests.append(digest)
        return b"TSR:" + digest.hex().encode()


def test_a_timestamp_hook_stamps_each_ledger_entry_hash(home: Path) -> None:
    from storage.vault.chain import entry_hash
    tsa = RecordingTSA()
    v = Vault.init(home, timestamper=tsa)
    v.put("s", "terminal.cast", cast(1))
    m = v.manifest("s", "terminal.cast")
    assert tsa.digests == [bytes.fromhex(entry_hash(m))]
    assert (home / "ledger" / f"{m['seq']:08d}.tsr").read_bytes() == b"TSR:" + entry_hash(m).encode()
    # the default hook stores nothing
    Vault.open(home).put("s", "other", b"x")
    assert len(list((home / "ledger").glob("*.tsr"))) == 1
