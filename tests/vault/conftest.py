"""Shared pieces of the vault tests: a fresh vault per test and terminal-like recordings."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from storage.vault import Vault

# small chunks so that a few kilobytes of recording make several chunks to swap and cut
CHUNK = 1024
ACTOR = "analyst-alice"


def cast(seed: int, lines: int = 200, marker: str = "") -> bytes:
    """An asciicast v2 recording of a made-up switch console session: what the vault stores."""
    rnd = random.Random(seed)
    out = [json.dumps({"version": 2, "width": 80, "height": 24, "timestamp": 1700000000 + seed})]
    t = 0.0
    cmds = ["show running-config", "show interfaces status", "configure terminal",
            "interface Gi1/0/%d", "switchport access vlan %d", "copy tftp: flash:", "write memory"]
    for i in range(lines):
        t += rnd.random() * 2
        cmd = rnd.choice(cmds)
        if "%d" in cmd:
            cmd = cmd % rnd.randint(1, 48)
        out.append(json.dumps([round(t, 3), "i", cmd + "\r"]))
        text = f"{marker}sw-core-{seed}# {cmd}\r\n" + "".join(
            f"Gi1/0/{p:<3} connected  {rnd.randint(1, 4094):<5} a-full a-1000 10/100/1000BaseTX {rnd.getrandbits(32):08x}\r\n"
            for p in range(rnd.randint(1, 6)))
        out.append(json.dumps([round(t + 0.05, 3), "o", text]))
    return ("\n".join(out) + "\n").encode()


def incompressible(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def vault(home: Path) -> Vault:
    return Vault.init(home, chunk_size=CHUNK)
