"""Running the real `sessiontap` command line from tests, as a user would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSIONTAP = [sys.executable, "-m", "appliance.cli"]


class CLI:
    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, SESSIONTAP_HOME=str(self.home), COLUMNS="200")
        p = subprocess.run([*SESSIONTAP, *args], capture_output=True, env=env, cwd=ROOT, input=input, timeout=600)
        if check and p.returncode != 0:
            raise AssertionError(f"sessiontap {' '.join(args)} exited {p.returncode}:\n{p.stderr.decode()}")
        return p

    def json_lines(self, *args: str) -> list[dict]:
        return [json.loads(l) for l in self(*args).stdout.decode().splitlines() if l.strip()]

    def json(self, *args: str) -> dict:
        return json.loads(self(*args).stdout)
