"""Child process of the crash tests: works on a vault until it is killed with SIGKILL.

``python -m tests.vault.crash_writer HOME N [many]`` kills itself at the N-th durable file
operation (write, fsync, rename, unlink), which walks the kill point through every step of
put, audited get, retention and key rotation; ``N = 0`` runs until the parent kills it.
Recording ``s<i>/terminal.cast`` always holds ``cast(i)``, so the parent knows what to expect.
With ``many`` the recordings are written three at a time by ``put_many`` (the bulk import's
group commit: one key file, one pack and one ledger segment per group).
"""
from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta

from storage.vault import Vault
from storage.vault.vault import utcnow
from tests.vault.conftest import cast


def arm(kill_at: int) -> None:
    count = 0

    def wrap(fn):
        def inner(*a, **kw):
            nonlocal count
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **kw)
        return inner

    for name in ("write", "fsync", "replace", "rename", "unlink", "ftruncate"):
        setattr(os, name, wrap(getattr(os, name)))


def main() -> None:
    home, kill_at = sys.argv[1], int(sys.argv[2])
    many = sys.argv[3:] == ["many"]
    vault = Vault.open(home)
    start = len(vault.sessions()) + 1000 * len(vault.audit_entries())
    if kill_at:
        arm(kill_at)
    i = start
    while True:
        if many:
            vault.put_many([(f"s{j}", "terminal.cast", cast(j, lines=60), {}) for j in (i, i + 1, i + 2)])
            i += 2
        else:
            vault.put(f"s{i}", "terminal.cast", cast(i, lines=60))
        vault.get(f"s{i}", "terminal.cast", actor="crash-test", purpose="read back")
        if i % 3 == 0:
            vault.hold(f"s{i}", actor="crash-test")
        if i % 4 == 1:
            vault.seal_secret(f"ssh/host{i}", b"key material %d" % i, actor="crash-test")
        if i % 5 == 2:
            vault.apply_retention(actor="crash-test", now=utcnow() + timedelta(days=365))
        if i % 7 == 3:
            vault.rotate_master_key(actor="crash-test")
        i += 1


if __name__ == "__main__":
    main()
