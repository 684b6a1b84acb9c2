"""The API against its own OpenAPI description, fuzzed by schemathesis: whatever a script
sends, the console answers with a status it documents, never a 500. Bounded: a few
examples per operation (a few hundred requests in all), with an auditor's token and with an
admin's token."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def st_cli() -> str:
    exe = Path(sys.executable).with_name("st")
    if not exe.exists():
        pytest.fail("schemathesis is not installed (pip install schemathesis)")
    return str(exe)


def test_the_spec_lists_every_route_and_is_openapi_3(console):
    c = console.client()
    spec = c.call("GET", "/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert ops == {(r.method, r.path) for r in console.console.api.routes}
    assert spec["paths"]["/api/login"]["post"]["security"] == []


@pytest.mark.parametrize("role, phase, tag", [
    ("auditor", "fuzzing", None),       # every operation, random inputs (~100 cases)
    ("auditor", "coverage", "sessions"),  # boundaries, wrong types, other methods on session routes (~370)
    ("admin", "fuzzing", None),         # user and zone administration (~100)
])
def test_fuzzing_the_api_finds_no_server_error(console, role, phase, tag, tmp_path):
    user = console.user(f"fuzz-{role}-{phase}", role)
    c = console.client()
    assert c.sign_in(user).status == 200
    token = c.call("POST", "/api/tokens", {"label": "fuzz"}).json()["token"]
    cmd = [st_cli(), "run", console.url + "/api/openapi.json", "-H", f"Authorization: Bearer {token}",
           "--checks", "not_a_server_error", "--max-examples", "5", "--seed", "7",
           "--phases", phase, *(["--include-tag", tag] if tag else []), "--request-timeout", "20",
           "--exclude-path", "/api/live",                   # an endless event stream by design
           "--exclude-path", "/api/users/{name}/reset",     # would revoke the token under test
           "--exclude-path", "/api/tokens/{tid}",
           "--exclude-path", "/api/logout",
           "--generation-allow-x00", "false", "--no-color"]
    p = subprocess.run(cmd, capture_output=True, timeout=170, cwd=tmp_path)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, out[-6000:]
    assert "Server error" not in out
