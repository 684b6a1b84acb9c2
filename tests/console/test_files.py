"""A file copied over SCP, downloaded from the console by an auditor: the bytes are the ones
the capture's manifest names (SHA-256 from the scenario), the download is in the vault's
trail, and an analyst cannot have it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from console_harness import ROOT, Running

CAP = ROOT / "pcaps" / "ssh" / "a10_scp_legacy_curve25519_aes128gcm.pcap"


@pytest.fixture(scope="module")
def scp_console(tmp_path_factory):
    manifest = json.loads((ROOT / "pcaps" / "ssh" / "manifest.json").read_text())[CAP.name]
    home = tmp_path_factory.mktemp("files") / "home"
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "import", "-q", str(CAP), "--keys",
                        str(CAP.parent / manifest["keys"])], capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    r = Running(home)
    yield r, manifest["sessions"][0]["files"][0]
    r.close()


def test_auditor_downloads_the_copied_file_and_the_read_is_audited(scp_console):
    console, expect = scp_console
    c = console.client()
    assert c.sign_in(console.user("walt", "auditor")).status == 200
    [s] = c.call("GET", "/api/sessions").json()["sessions"]
    detail = c.call("GET", f"/api/sessions/{s['id']}").json()
    [f] = [f for f in detail["files"] if f["sha256"] == expect["sha256"]]
    assert f["path"].endswith(expect["path"]) and f["size"] == expect["size"] and f["stored"]
    got = c.call("GET", f"/api/sessions/{s['id']}/files/{expect['sha256']}")
    assert got.status == 200 and len(got.body) == expect["size"]
    assert hashlib.sha256(got.body).hexdigest() == expect["sha256"]
    assert got.headers["Content-Disposition"] == f'attachment; filename="{os.path.basename(expect["path"])}"'
    trail = console.accounts.vault.audit_entries()
    assert any(e["actor"] == "console:walt" and e["purpose"].startswith("download transferred file") for e in trail)
    wrong = c.call("GET", f"/api/sessions/{s['id']}/files/{'0' * 64}")
    assert wrong.status == 404

    analyst = console.client()
    assert analyst.sign_in(console.user("xena", "analyst")).status == 200
    assert analyst.call("GET", f"/api/sessions/{s['id']}/files/{expect['sha256']}").status == 403
    assert analyst.call("GET", f"/api/sessions/{s['id']}").json()["files"][0]["stored"] is None
    # videos are RDP's (tests/console/test_video_renders.py): an SSH session has none, and says so
    assert detail["replay"]["video"] is False
    assert c.call("GET", f"/api/sessions/{s['id']}/video").status == 404
