"""Retention: recordings live at least 90 days, legal holds keep them, expiry crypto-shreds."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from storage.vault import MIN_RETENTION_DAYS, NotFoundError, RefusedError, Vault
from storage.vault.vault import utcnow
from tests.vault.conftest import ACTOR, cast


def test_a_retention_shorter_than_90_days_needs_force(vault: Vault) -> None:
    assert vault.retention_days == MIN_RETENTION_DAYS == 90
    with pytest.raises(RefusedError, match="minimum is 90 days .*--force"):
        vault.set_retention(30, actor="admin")
    vault.set_retention(30, actor="admin", force=True)
    vault.set_retention(180, actor="admin")
    assert vault.retention_days == 180


def test_expired_recordings_are_shredded_held_ones_kept(vault: Vault, home: Path) -> None:
    for seed, s in enumerate(("old-1", "old-held", "recent")):
        vault.put(s, "terminal.cast", cast(seed))
    vault.hold("old-held", actor="legal", reason="case 42")
    later = utcnow() + timedelta(days=91)

    # nothing is older than 90 days yet
    assert vault.apply_retention(actor="retention-job") == []
    shredded = vault.apply_retention(actor="retention-job", now=later)

    assert sorted(s.session_id for s in shredded) == ["old-1", "recent"]
    assert vault.sessions() == ["old-held"]
    rid = shredded[0].rid
    assert not vault._key_path(rid).exists() and not vault._data_path(rid).exists()
    with pytest.raises(NotFoundError):
        vault.get("old-1", "terminal.cast", actor=ACTOR, purpose="t")
    # deletions are in the ledger and the audit log, and the vault still verifies
    v = Vault.open(home)
    report = v.verify(actor=ACTOR)
    assert report.ok, report.problems
    shreds = [e for e in v.audit_entries() if e["action"] == "shred"]
    assert {e["target"] for e in shreds} == {"old-1/terminal.cast", "recent/terminal.cast"}
    assert all(e["actor"] == "retention-job" for e in shreds)

    # after release the held session goes at the next run
    v.release("old-held", actor="legal", reason="case closed")
    assert [s.session_id for s in v.apply_retention(actor="retention-job", now=later)] == ["old-held"]
    assert v.verify(actor=ACTOR).ok


def test_hold_needs_an_existing_session(vault: Vault) -> None:
    with pytest.raises(NotFoundError, match="no session 'ghost'"):
        vault.hold("ghost", actor="legal")
    with pytest.raises(NotFoundError, match="not on legal hold"):
        vault.release("ghost", actor="legal")


def test_holds_and_policy_survive_reopening(vault: Vault, home: Path) -> None:
    vault.put("s", "terminal.cast", b"x")
    vault.hold("s", actor="legal")
    vault.set_retention(365, actor="admin")
    v = Vault.open(home)
    assert v.holds() == ["s"] and v.retention_days == 365


def test_capacity_thresholds_raise_events(vault: Vault) -> None:
    vault.put("s", "terminal.cast", cast(1))
    st = vault.status()
    assert st.recordings == 1 and st.stored_bytes > 0 and st.rate_bytes_per_day > 0
    # thresholds are about the disk the vault is on; put one below the current fill level
    low = max(1, int(st.used_pct) - 1) if st.used_pct >= 2 else None
    if low is None:
        pytest.skip("the test disk is almost empty; no threshold below its fill level")
    events = vault.status(thresholds=(low, 100)).events
    assert [e.kind for e in events][:1] == ["vault-capacity"]
    assert f"threshold {low} %" in events[0].text
    assert all(e.kind != "vault-capacity" for e in vault.status(thresholds=(100,)).events)
