"""Someone with write access to the disk alters the evidence; ``verify`` says exactly what.

Each test stores three sessions, makes one kind of change with plain file operations (as an
intruder would, without the keys), and expects verify to name the recording, chunk or
ledger entry concerned, while the untouched recordings still check out.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from storage.vault import Vault
from storage.vault.sealed import HEADER_SIZE, OVERHEAD
from tests.vault.conftest import ACTOR, CHUNK, incompressible

SESSIONS = ("sess-a", "sess-b", "sess-c")
STRIDE = CHUNK + OVERHEAD


@pytest.fixture
def filled(vault: Vault, home: Path) -> Vault:
    for i, s in enumerate(SESSIONS):
        # incompressible, so the sealed file has a known number of chunks (5 of 1 KiB, last shorter)
        vault.put(s, "terminal.cast", incompressible(i, 4 * CHUNK + 300))
    assert vault.verify(actor=ACTOR).ok
    return vault


def sealed_of(v: Vault, session: str) -> Path:
    return v._data_path(v.manifest(session, "terminal.cast")["rid"])


def ledger_file(home: Path, seq: int) -> Path:
    return home / "ledger" / f"{seq:08d}.json"


def problems(v: Vault, home: Path, target: str | None = None) -> list[str]:
    report = Vault.open(home).verify(target, actor=ACTOR)
    assert not report.ok
    return [str(p) for p in report.problems]


def only(msgs: list[str], *needles: str) -> None:
    assert any(all(n in m for n in needles) for m in msgs), msgs


def test_one_flipped_byte_in_a_chunk_is_named(filled: Vault, home: Path) -> None:
    path = sealed_of(filled, "sess-b")
    blob = bytearray(path.read_bytes())
    blob[HEADER_SIZE + 2 * STRIDE + 100] ^= 0x01          # inside chunk 2
    path.write_bytes(bytes(blob))
    msgs = problems(filled, home)
    only(msgs, "sess-b/terminal.cast", "chunk 2 fails authentication")
    assert not any("sess-a" in m or "sess-c" in m for m in msgs)
    assert Vault.open(home).verify("sess-a", actor=ACTOR).ok


def test_two_swapped_chunks_are_named_with_their_true_places(filled: Vault, home: Path) -> None:
    path = sealed_of(filled, "sess-a")
    blob = path.read_bytes()
    c1 = blob[HEADER_SIZE + STRIDE:HEADER_SIZE + 2 * STRIDE]
    c3 = blob[HEADER_SIZE + 3 * STRIDE:HEADER_SIZE + 4 * STRIDE]
    path.write_bytes(blob[:HEADER_SIZE + STRIDE] + c3 + blob[HEADER_SIZE + 2 * STRIDE:HEADER_SIZE + 3 * STRIDE]
                     + c1 + blob[HEADER_SIZE + 4 * STRIDE:])
    msgs = problems(filled, home)
    only(msgs, "sess-a/terminal.cast", "chunk 1 is chunk 3 of this recording moved to position 1")
    only(msgs, "sess-a/terminal.cast", "chunk 3 is chunk 1 of this recording moved to position 3")


def test_a_chunk_taken_from_another_recording_is_named(filled: Vault, home: Path) -> None:
    a, b = sealed_of(filled, "sess-a"), sealed_of(filled, "sess-b")
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    lo, hi = HEADER_SIZE + STRIDE, HEADER_SIZE + 2 * STRIDE
    a.write_bytes(blob_a[:lo] + blob_b[lo:hi] + blob_a[hi:])
    only(problems(filled, home), "sess-a/terminal.cast", "chunk 1 fails authentication",
         "another recording")


def test_truncation_at_a_chunk_boundary_is_named(filled: Vault, home: Path) -> None:
    path = sealed_of(filled, "sess-c")
    path.write_bytes(path.read_bytes()[:HEADER_SIZE + 3 * STRIDE])   # chunks 3 and 4 dropped
    msgs = problems(filled, home)
    only(msgs, "sess-c/terminal.cast", "truncated")
    only(msgs, "sess-c/terminal.cast", "chunk 2 is not the final chunk")


def test_truncation_inside_a_chunk_is_named(filled: Vault, home: Path) -> None:
    path = sealed_of(filled, "sess-c")
    path.write_bytes(path.read_bytes()[:-10])
    only(problems(filled, home), "sess-c/terminal.cast", "the manifest says", "truncated")


def test_deleted_sealed_data_is_named(filled: Vault, home: Path) -> None:
    sealed_of(filled, "sess-b").unlink()
    only(problems(filled, home), "sess-b/terminal.cast", "sealed data is missing")


def test_a_recording_deleted_with_its_manifest_breaks_the_chain(filled: Vault, home: Path) -> None:
    """The intruder removes the whole recording: data, key and its ledger entry (entry 2)."""
    rid = filled.manifest("sess-b", "terminal.cast")["rid"]
    sealed_of(filled, "sess-b").unlink()
    (home / "keys" / "data" / f"{rid}.key").unlink()
    ledger_file(home, 2).unlink()
    only(problems(filled, home), "ledger entry 2 missing (removed)")


def test_the_last_recording_deleted_is_caught_by_the_signed_head(filled: Vault, home: Path) -> None:
    ledger_file(home, 3).unlink()
    msgs = problems(filled, home)
    only(msgs, "head names entry 3 but the last entry is 2", "removed")
    only(msgs, "has no manifest in the ledger")          # its sealed data is still there


def test_an_edited_manifest_is_named(filled: Vault, home: Path) -> None:
    path = ledger_file(home, 2)
    m = json.loads(path.read_text())
    m["session_id"] = "sess-innocent"                     # the intruder relabels the evidence
    path.write_text(json.dumps(m, sort_keys=True, separators=(",", ":")) + "\n")
    msgs = problems(filled, home)
    only(msgs, "ledger entry 00000002.json has an invalid signature")
    only(msgs, "ledger entry 00000003.json does not link to the entry before it")


def test_a_manifest_replaced_by_another_valid_one_is_named(filled: Vault, home: Path) -> None:
    shutil.copy(ledger_file(home, 1), ledger_file(home, 2))   # genuine signature, wrong place
    msgs = problems(filled, home)
    only(msgs, "00000002.json claims to be entry 1", "reordered")
    only(msgs, "has no manifest in the ledger")


def test_reordered_ledger_entries_are_named(filled: Vault, home: Path) -> None:
    a, b = ledger_file(home, 1), ledger_file(home, 2)
    tmp = home / "ledger" / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    msgs = problems(filled, home)
    only(msgs, "00000001.json claims to be entry 2", "reordered")
    only(msgs, "00000002.json claims to be entry 1", "reordered")


def test_a_destroyed_data_key_is_named(filled: Vault, home: Path) -> None:
    rid = filled.manifest("sess-a", "terminal.cast")["rid"]
    (home / "keys" / "data" / f"{rid}.key").unlink()
    only(problems(filled, home), "sess-a/terminal.cast", "data key is missing")


def test_a_recording_replaced_by_another_sealed_file_is_named(filled: Vault, home: Path) -> None:
    shutil.copy(sealed_of(filled, "sess-a"), sealed_of(filled, "sess-b"))
    only(problems(filled, home), "sess-b/terminal.cast", "ciphertext hash")


def test_an_edited_audit_log_is_named(filled: Vault, home: Path) -> None:
    filled.get("sess-a", "terminal.cast", actor="mallory", purpose="curiosity")
    log = home / "audit" / "log.jsonl"
    log.write_text(log.read_text().replace('"actor":"mallory"', '"actor":"alice"'))
    only(problems(filled, home), "audit log", "invalid signature")


def test_removing_audit_entries_is_named(filled: Vault, home: Path) -> None:
    filled.get("sess-a", "terminal.cast", actor="mallory", purpose="curiosity")
    log = home / "audit" / "log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))                    # mallory's read erased
    only(problems(filled, home), "audit log entry 3 missing (removed)")


def test_a_read_of_tampered_data_refuses_instead_of_returning_it(filled: Vault, home: Path) -> None:
    path = sealed_of(filled, "sess-b")
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(Exception, match="sess-b/terminal.cast fails verification"):
        Vault.open(home).get("sess-b", "terminal.cast", actor=ACTOR, purpose="t")
