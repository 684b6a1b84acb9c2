"""The vault's disk fills up (SR 2.10): the write fails with one clear line, nothing stored is
damaged, and the vault goes on once space is freed. Runs on a real, size-limited tmpfs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from storage.vault import Vault, VaultError
from tests.vault.conftest import ACTOR, cast, incompressible


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root / CAP_SYS_ADMIN): "
                    f"{proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_cleanly_and_damages_nothing(small_disk: Path) -> None:
    home = small_disk / "data"
    vault = Vault.init(home, chunk_size=64 * 1024)
    stored = {f"s{i}": cast(i) for i in range(3)}
    for s, data in stored.items():
        vault.put(s, "terminal.cast", data)

    with pytest.raises(VaultError) as err:
        vault.put("big", "files/firmware.bin", incompressible(7, 3 * 1024 * 1024))
    msg = str(err.value)
    assert msg.startswith("no space left on the device while writing") and msg.endswith("nothing was stored")
    assert "\n" not in msg
    assert not vault.exists("big", "files/firmware.bin")

    # what was there before is intact, and nothing half-written lingers
    again = Vault.open(home)
    report = again.verify(actor=ACTOR)
    assert report.ok, [str(p) for p in report.problems]
    for s, data in stored.items():
        assert again.get(s, "terminal.cast", actor=ACTOR, purpose="t") == data
    assert [p for p in home.rglob("*.tmp")] == []

    # once space is freed the same write goes through
    filler = small_disk / "filler"
    usage = shutil.disk_usage(small_disk)
    filler.write_bytes(b"\0" * (usage.free - 4096))
    with pytest.raises(VaultError, match="no space left"):
        again.put("s9", "terminal.cast", cast(9))
    filler.unlink()
    again.put("s9", "terminal.cast", cast(9))
    assert again.verify(actor=ACTOR).ok


def test_an_audited_read_is_refused_when_its_audit_entry_cannot_be_written(small_disk: Path) -> None:
    home = small_disk / "data"
    vault = Vault.init(home)
    vault.put("s", "terminal.cast", cast(1))
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * shutil.disk_usage(small_disk).free)
    with pytest.raises(VaultError, match="no space left .* the audit log"):
        vault.get("s", "terminal.cast", actor=ACTOR, purpose="t")
    filler.unlink()
    assert Vault.open(home).verify(actor=ACTOR).ok
