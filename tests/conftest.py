import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sessiontap_cli import CLI  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("SESSIONTAP_HOME", str(h))
    return h


@pytest.fixture
def cli(home):
    return CLI(home)


@pytest.fixture(scope="session")
def tshark():
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed: run ./quickstart.sh test, which installs it (Debian package tshark)")
    return path
