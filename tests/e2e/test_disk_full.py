"""The data directory's disk fills up during an import: one clear line, a non-zero exit, and
everything imported before is still there and still verifies."""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from corpus import PCAPS
from sessiontap_cli import CLI


@pytest.fixture
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    d = tempfile.mkdtemp(prefix="st-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", d], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", "-l", d])
    os.rmdir(d)


def test_import_onto_a_full_disk_says_so_and_keeps_what_was_stored(small_disk, tmp_path):
    from pathlib import Path
    cli = CLI(Path(small_disk) / "home")
    cli("import", "-q", str(PCAPS / "telnet" / "t2_failed_then_success.pcap"))
    before = cli.json_lines("sessions", "--json")
    # fill the disk, then import more
    with open(Path(small_disk) / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    p = cli("import", "-q", str(PCAPS / "telnet" / "t1_inetutils_full_session.pcap"), check=False)
    lines = [l for l in p.stderr.decode().splitlines() if l.strip()]
    assert p.returncode != 0
    assert len(lines) == 1 and "no space left" in lines[0] and "Traceback" not in p.stderr.decode()
    # free the space: the earlier session is intact, verifies, and nothing half-written shows
    os.unlink(Path(small_disk) / "filler")
    after = cli.json_lines("sessions", "--json")
    assert [s["id"] for s in before] == [s["id"] for s in after if s["id"] in {b["id"] for b in before}]
    assert cli("verify", "--all").returncode == 0
