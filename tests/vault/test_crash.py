"""kill -9 in the middle of vault work: afterwards the vault opens, verifies, and every
recording it lists reads back whole. Nothing half-written is ever visible."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.vault import Vault
from tests.vault.conftest import cast

ROOT = Path(__file__).resolve().parents[2]


def run_child(home: Path, kill_at: int, delay: float | None = None, many: bool = False) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.vault.crash_writer", str(home), str(kill_at)]
                            + (["many"] if many else []),
                            cwd=ROOT, env=env, stderr=subprocess.PIPE)
    if delay is None:
        _, err = proc.communicate(timeout=120)
    else:
        time.sleep(delay)          # a random instant, not a performance bound
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return proc.returncode


def assert_consistent(home: Path) -> None:
    vault = Vault.open(home)                      # recovery runs here
    report = vault.verify(actor="crash-check")
    assert report.ok, [str(p) for p in report.problems]
    for session in vault.sessions():
        i = int(session[1:])
        assert vault.get(session, "terminal.cast", actor="crash-check", purpose="t") == cast(i, lines=60)
    leftovers = [p for p in home.rglob("*") if p.name.endswith(".tmp")] + list((home / "pending").iterdir())
    assert leftovers == []


# every durable operation of the first rounds of put/get/hold/secret/retention/rotation
@pytest.mark.parametrize("kill_at", list(range(1, 120, 4)))
def test_kill_at_the_nth_durable_operation(tmp_path: Path, kill_at: int) -> None:
    home = tmp_path / "data"
    Vault.init(home, chunk_size=512)
    run_child(home, kill_at)
    assert_consistent(home)
    # and the vault keeps working after the recovery
    run_child(home, kill_at + 7)
    assert_consistent(home)


@pytest.mark.parametrize("seed", range(8))
def test_kill_at_a_random_instant(tmp_path: Path, seed: int) -> None:
    home = tmp_path / "data"
    Vault.init(home, chunk_size=512)
    run_child(home, 0, delay=0.4 + random.Random(seed).random() * 1.2)
    assert_consistent(home)


# the same for group commits (put_many: key file, pack, ledger segment), then single puts,
# retention, holds and rotation over the packs
@pytest.mark.parametrize("kill_at", list(range(1, 90, 6)))
def test_kill_during_group_commits(tmp_path: Path, kill_at: int) -> None:
    home = tmp_path / "data"
    Vault.init(home, chunk_size=512)
    run_child(home, kill_at, many=True)
    assert_consistent(home)
    run_child(home, kill_at + 5, many=True)
    assert_consistent(home)
