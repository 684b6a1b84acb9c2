"""Fixtures of the live-appliance tests; the helpers live in live_harness.py (a module of its
own name: every tests/ folder has a conftest.py, and `from conftest import` would find another)."""
from __future__ import annotations

import os
import subprocess

import pytest

from live_harness import SpanPort


@pytest.fixture(scope="module")
def span():
    if os.geteuid() != 0:
        pytest.fail("the live-capture tests need root (network namespace, veth pair, packet socket)")
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            pytest.fail(f"{tool} is not installed (Debian packages iproute2, tcpreplay, tcpdump)")
    s = SpanPort()
    yield s
    s.close()
