"""A bulk import seals its recordings as a group: one key file, one pack and one ledger
segment for the whole group. Each recording must still read back, verify, be named when it is
altered, and be shredded on its own by retention, exactly like a recording in its own file."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from storage.vault import Vault
from storage.vault.errors import NotFoundError
from storage.vault.vault import utcnow
from tests.vault.conftest import ACTOR, cast

SESSIONS = [f"bulk-{i}" for i in range(5)]


@pytest.fixture
def packed(vault: Vault) -> Vault:
    vault.put_many([(s, "terminal.cast", cast(i), {"source": "mix.pcap"}) for i, s in enumerate(SESSIONS)])
    return vault


def pack_of(v: Vault, session: str) -> Path:
    return v._pack_path(v.manifest(session, "terminal.cast")["pack"])


def problems(home: Path) -> list[str]:
    report = Vault.open(home).verify(actor=ACTOR)
    assert not report.ok
    return [str(p) for p in report.problems]


def test_a_group_is_three_files_and_every_recording_reads_back(packed: Vault, home: Path) -> None:
    gid = packed.manifest("bulk-0", "terminal.cast")["pack"]
    assert {packed.manifest(s, "terminal.cast")["pack"] for s in SESSIONS} == {gid}
    assert sorted(p.name for p in (home / "recordings").rglob("*") if p.is_file()) == [f"{gid}.pack"]
    assert sorted(p.name for p in (home / "keys" / "data").iterdir()) == [f"{gid}.keys"]
    assert [p.suffix for p in (home / "ledger").glob("0*")] == [".jsonl"]
    v = Vault.open(home)
    for i, s in enumerate(SESSIONS):
        assert v.get(s, "terminal.cast", actor=ACTOR, purpose="review") == cast(i)
    report = v.verify(actor=ACTOR)
    assert report.ok and report.recordings_checked == 5 and report.ledger_entries == 5


def test_a_flipped_byte_in_a_pack_names_only_that_recording(packed: Vault, home: Path) -> None:
    m = packed.manifest("bulk-3", "terminal.cast")
    path = pack_of(packed, "bulk-3")
    blob = bytearray(path.read_bytes())
    blob[m["offset"] + m["ciphertext_size"] // 2] ^= 0x40
    path.write_bytes(bytes(blob))
    msgs = problems(home)
    assert msgs and all("bulk-3/terminal.cast" in p for p in msgs), msgs
    v = Vault.open(home)
    assert v.verify("bulk-2", actor=ACTOR).ok and v.verify("bulk-4", actor=ACTOR).ok


def test_a_cut_pack_names_the_recordings_at_its_end(packed: Vault, home: Path) -> None:
    m = packed.manifest("bulk-4", "terminal.cast")
    path = pack_of(packed, "bulk-4")
    path.write_bytes(path.read_bytes()[:m["offset"] + 10])
    msgs = problems(home)
    assert any("bulk-4/terminal.cast" in p and "truncated" in p for p in msgs), msgs
    assert not any("bulk-0" in p for p in msgs)


def test_an_edited_or_removed_ledger_line_is_named(packed: Vault, home: Path) -> None:
    seg = next((home / "ledger").glob("*.jsonl"))
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:2] + [lines[2].replace(b"bulk-2", b"bulk-9")] + lines[3:]))
    assert any("ledger entry 3" in p and "invalid signature" in p for p in problems(home))
    seg.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert any("missing" in p or "renamed or reordered" in p for p in problems(home))


def test_retention_shreds_one_recording_of_a_pack_and_the_pack_with_the_last(packed: Vault, home: Path) -> None:
    packed.hold("bulk-1", actor="legal", reason="case 7")
    shredded = packed.apply_retention(actor="retention-job", now=utcnow() + timedelta(days=91))
    assert sorted(s.session_id for s in shredded) == [s for s in SESSIONS if s != "bulk-1"]
    keys = next((home / "keys" / "data").glob("*.keys")).read_text().splitlines()
    assert len(keys) == 1 and packed.manifest("bulk-1", "terminal.cast")["rid"] in keys[0]
    assert pack_of(packed, "bulk-1").exists()        # the held recording still lives in it
    v = Vault.open(home)
    assert v.get("bulk-1", "terminal.cast", actor=ACTOR, purpose="case 7") == cast(1)
    with pytest.raises(NotFoundError):
        v.get("bulk-0", "terminal.cast", actor=ACTOR, purpose="t")
    assert v.verify(actor=ACTOR).ok
    v.release("bulk-1", actor="legal", reason="closed")
    v.apply_retention(actor="retention-job", now=utcnow() + timedelta(days=91))
    assert list((home / "recordings" / "packs").iterdir()) == []
    assert list((home / "keys" / "data").iterdir()) == []
    assert Vault.open(home).verify(actor=ACTOR).ok


def test_rotation_rewraps_the_keys_of_a_pack(packed: Vault, home: Path) -> None:
    before = next((home / "keys" / "data").glob("*.keys")).read_bytes()
    assert packed.rotate_master_key(actor="admin") == len(SESSIONS)
    assert next((home / "keys" / "data").glob("*.keys")).read_bytes() != before
    v = Vault.open(home)
    assert [v.get(s, "terminal.cast", actor=ACTOR, purpose="t") for s in SESSIONS] == \
        [cast(i) for i in range(len(SESSIONS))]


def test_a_pack_without_manifests_is_reported(packed: Vault, home: Path) -> None:
    stray = home / "recordings" / "packs" / ("ab" * 16 + ".pack")
    stray.write_bytes(b"planted")
    assert any("has no manifest" in p and stray.name in p for p in problems(home))
