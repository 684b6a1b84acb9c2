"""Fixtures of the console tests (the harness is in console_harness.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console_harness import RENDERED, ROOT, T2, UNRENDERABLE, Running, import_captures, import_rdp


@pytest.fixture(scope="module")
def t2_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("console") / "home"
    import_captures(home, T2)
    return home


@pytest.fixture(scope="module")
def console(t2_home):
    r = Running(t2_home)
    yield r
    r.close()


@pytest.fixture(scope="module")
def rdp_console(tmp_path_factory):
    """A console over two real RDP sessions: one whose video renders, one (RDPGFX) whose cannot."""
    home = tmp_path_factory.mktemp("rdpvideo") / "home"
    import_rdp(home, RENDERED, UNRENDERABLE)
    r = Running(home)
    yield r
    r.close()


@pytest.fixture(scope="module")
def t2_session_id(t2_home) -> str:
    env = dict(os.environ, SESSIONTAP_HOME=str(t2_home))
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "sessions", "--json"], capture_output=True, env=env,
                       cwd=ROOT, timeout=120, check=True)
    rows = [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]
    assert len(rows) == 1, rows
    return rows[0]["id"]
