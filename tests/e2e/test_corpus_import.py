"""An investigator imports each bundled capture (with its keys) and gets exactly what the
capture's manifest says: the sessions, users, login results, commands, gaps, status — and
no password anywhere in the data directory."""
from __future__ import annotations

import json
import re

import pytest

from corpus import entries, key_args

# protocols whose decoders are complete enough for the manifests to be the contract
READY = ("telnet", "adversarial", "ssh", "rdp")
CASES = entries(*READY)


def screen_text(cast: bytes) -> str:
    """What the terminal printed, with control sequences removed."""
    text = "".join(json.loads(l)[2] for l in cast.decode().splitlines()[1:] if json.loads(l)[1] == "o")
    return re.sub(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|.)|\r|\x00", "", text)


def _id(case):
    return f"{case[0]}/{case[1].name}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_import_yields_manifest(cli, home, case):
    proto, cap, entry = case
    want = entry["sessions"]
    p = cli("import", "-q", str(cap), *key_args(cap, entry), check=False)
    stderr = "".join(l for l in p.stderr.decode().splitlines(True)
                     if not l.startswith("sessiontap: created the evidence vault"))
    if entry.get("expect_error"):
        # one clear line naming the file and what is wrong; sessions of the readable part kept
        lines = [l for l in stderr.splitlines() if entry["expect_error"] in l]
        assert len(lines) == 1 and cap.name in lines[0], stderr
        assert "Traceback" not in stderr
        assert p.returncode == (0 if want else 1), stderr
        if not want:
            return
    else:
        assert p.returncode == 0 and stderr == "", stderr
    sessions = cli.json_lines("sessions", "--json")
    assert len(sessions) == len(want)
    for s, w in zip(sessions, want):
        assert s["protocol"] == w["protocol"]
        assert s["server_port"] == w["server_port"]
        if "user" in w:
            assert s["user"] == w["user"]
        if "auth" in w:
            assert s["auth"] == w["auth"]
        if w.get("status"):
            assert s["status"] == w["status"], s["status_reason"]
        assert s["decrypted"] == w.get("decrypted")
        assert s["picked_up"] == w.get("picked_up", False)
        detail = cli.json("show", s["id"], "--json")
        if "commands" in w:
            assert [c["text"] for c in detail["commands"]] == w["commands"]
        for c in w.get("not_commands", []):
            assert c not in [x["text"] for x in detail["commands"]]
        if "auth_attempts" in w:
            assert [(a["user"], a["result"]) for a in detail["auth_attempts"]] == \
                   [(a["user"], a["result"]) for a in w["auth_attempts"]]
        gaps = [(g["direction"], g["nbytes"]) for g in detail["gaps"]]
        assert gaps == [(g["direction"], g["nbytes"]) for g in w.get("gaps", [])]
        if w.get("output_contains"):
            shown = screen_text(cli("export", s["id"], "--format", "asciicast", "-o", "-").stdout)
            for text in w["output_contains"]:
                assert text in shown, f"{text!r} never appeared on the screen"
        for tag in w.get("tags", []):
            assert tag in s["tags"]
        if w.get("files"):      # a session that moved files is a file copy, whatever was typed
            assert "file-copy" in s["tags"], [f["path"] for f in w["files"]]
        conflicts = [e for e in detail["events"] if e["kind"] == "retransmission-conflict"]
        assert len(conflicts) == w.get("conflicts", 0)
    # typed passwords never reach storage, in any file of the data directory
    secrets = [sec.encode() for w in want for sec in w.get("secrets", [])]
    for f in home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for sec in secrets:
                assert sec not in data, f"password found in {f.relative_to(home)}"
