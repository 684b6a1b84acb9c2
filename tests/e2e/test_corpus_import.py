"""An investigator imports each bundled capture (with its keys) and gets exactly what the
capture's manifest says: the sessions, users, login results, commands, gaps, status — and
no password anywhere in the data directory."""
from __future__ import annotations

import pytest

from corpus import entries, key_args

# protocols whose decoders are complete enough for the manifests to be the contract
READY = ("telnet",)
CASES = [(p, c, e) for p, c, e in entries(*READY) if not e.get("expect_error")]


def _id(case):
    return f"{case[0]}/{case[1].name}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_import_yields_manifest(cli, home, case):
    proto, cap, entry = case
    cli("import", "-q", str(cap), *key_args(cap, entry))
    sessions = cli.json_lines("sessions", "--json")
    want = entry["sessions"]
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
        shown = "\n".join((c["output"] or "") for c in detail["commands"])
        for text in w.get("output_contains", []):
            assert text in shown or any(text in e["text"] for e in detail["events"]), text
        for tag in w.get("tags", []):
            assert tag in s["tags"]
    # typed passwords never reach storage, in any file of the data directory
    secrets = [sec.encode() for w in want for sec in w.get("secrets", [])]
    for f in home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for sec in secrets:
                assert sec not in data, f"password found in {f.relative_to(home)}"
