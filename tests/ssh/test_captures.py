"""The user's story on real captures: an operator imports a jump host's capture with the
escrowed keys and reads who logged in, what ran, what the screen showed and which files moved.

Expected values come from pcaps/ssh/manifest.json, written by the corpus generator from what it
typed and ran (never from this decoder).
"""
from __future__ import annotations

import hashlib
import json

import pytest

from reconstruct.events import (AuthAttempt, CommandEntered, DecodeError, FileTransfer, Input,
                                Metadata, Notice, Output, Resize)
from tests.ssh.replay import PCAPS, keystore, replay

MANIFEST = json.loads((PCAPS / "manifest.json").read_text())
NAMES = sorted(MANIFEST)


def _session(name: str):
    entry = MANIFEST[name]
    events = replay(name, keystore(entry["keys"]))
    assert len(events) == len(entry["sessions"]) == 1
    return entry["sessions"][0], events[0]


@pytest.fixture(scope="module", params=NAMES)
def decoded(request):
    return (request.param,) + _session(request.param)


def _meta(events) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in events:
        if isinstance(e, Metadata):
            out.setdefault(e.key, e.value)
    return out


def test_every_capture_is_decrypted_without_error(decoded):
    name, exp, events = decoded
    md = _meta(events)
    assert md["decrypted"] == "true", md.get("decrypted_detail")
    assert [e.reason for e in events if isinstance(e, DecodeError)] == []


def test_algorithms_as_negotiated(decoded):
    name, exp, events = decoded
    md = _meta(events)
    assert md["kex_alg"] == exp["kex"]
    assert md["cipher_alg"] == exp["cipher"]
    assert md["mac_alg"] == exp["mac"]
    assert md["compression_alg"] == exp["compression"]
    assert md["strict_kex"] == ("true" if exp["strict_kex"] else "false")
    assert md["host_key_fingerprint"].startswith("SHA256:")
    assert len(md["hassh"]) == len(md["hassh_server"]) == 32


def test_who_logged_in_and_each_attempt(decoded):
    name, exp, events = decoded
    attempts = [e for e in events if isinstance(e, AuthAttempt)]
    assert [(a.user, a.method, a.result) for a in attempts] == \
        [(a["user"], a["method"], a["result"]) for a in exp["auth_attempts"]]
    assert _meta(events)["auth_result"] == exp["auth"]


def test_commands_exactly_as_they_ran(decoded):
    name, exp, events = decoded
    cmds = [e for e in events if isinstance(e, CommandEntered)]
    assert [c.text for c in cmds] == exp["commands"]
    assert [c.index for c in cmds] == list(range(len(cmds)))
    for never in exp["not_commands"]:
        assert never not in [c.text for c in cmds]


def test_screen_shows_the_markers(decoded):
    name, exp, events = decoded
    screen = b"".join(e.data for e in events if isinstance(e, Output))
    for text in exp["output_contains"]:
        assert text.encode() in screen


def test_files_with_size_hash_and_content(decoded):
    name, exp, events = decoded
    files = [e for e in events if isinstance(e, FileTransfer)]
    assert [(f.direction, f.path, f.size, f.sha256) for f in files] == \
        [(f["direction"], f["path"], f["size"], f["sha256"]) for f in exp["files"]]
    for f, want in zip(files, exp["files"]):
        assert f.method == want["method"] and f.complete
        assert f.content is not None and hashlib.sha256(f.content).hexdigest() == f.sha256


def test_no_secret_leaves_the_decoder(decoded):
    name, exp, events = decoded
    blob = repr(events).encode()
    for secret in exp["secrets"]:
        assert secret.encode() not in blob


def test_tunnels_are_flagged(decoded):
    name, exp, events = decoded
    tunnel = [e for e in events if isinstance(e, Notice) and "tunnel" in e.tags]
    if "tunnel" in exp["tags"]:
        assert tunnel and all(n.severity in ("medium", "low") for n in tunnel)
        kinds = {n.kind for n in tunnel}
        want = {"auth-agent-req@openssh.com": "agent-forwarding", "x11-req": "x11-req",
                "tcpip-forward": "tcpip-forward", "direct-tcpip": "direct-tcpip"}
        assert {want[r] for r in exp["requests"]} <= kinds
    else:
        assert tunnel == []


def test_exit_status(decoded):
    name, exp, events = decoded
    if "exit_status" in exp:
        st = [e.text for e in events if isinstance(e, Notice) and e.kind == "exit-status"]
        assert st == [f"exit status {exp['exit_status']}"]


# ------------------------------------------------------------------ stories told one by one

def test_story_interactive_shell_typo_fixed_with_backspaces():
    """a01: OpenSSH client, password typed at the tty prompt; `ecoh` fixed with two DELs runs
    as `echo demo-bs-ok`; the pty size and terminal type are recorded."""
    exp, events = _session("a01_shell_curve25519_aes128ctr.pcap")
    assert [e for e in events if isinstance(e, Resize)][0] == \
        Resize(next(e.ts for e in events if isinstance(e, Resize)), 80, 24)
    assert _meta(events)["term"] == "xterm"
    typed = b"".join(e.data for e in events if isinstance(e, Input))
    assert b"ecoh\x7f\x7fho demo-bs-ok\r" in typed


def test_story_rekey_mid_session_keeps_decrypting():
    """a14: RekeyLimit=4K forces a second key exchange during the output; strict kex resets
    sequence numbers at each NEWKEYS; every line of the output is there, in order."""
    exp, events = _session("a14_exec_rekey_curve25519_chacha20.pcap")
    assert exp["kex_count"] >= 2
    screen = b"".join(e.data for e in events if isinstance(e, Output)).decode()
    lines = [ln for ln in screen.splitlines() if ln.startswith("demo-rekey-line-")]
    assert lines == [f"demo-rekey-line-{i}" for i in range(1, 1501)]


def test_story_sftp_tour_reports_each_operation():
    """b03: asyncssh client against OpenSSH's internal-sftp: mkdir, put, rename, get, remove,
    rmdir, each one visible to the analyst."""
    exp, events = _session("b03_sftp_tour_curve25519_aes256gcm.pcap")
    ops = [e.text for e in events if isinstance(e, Notice) and e.kind.startswith("sftp-")]
    assert ops == ["mkdir sub", "rename upload-demo.txt -> sub/upload-demo.txt",
                   "remove sub/upload-demo.txt", "rmdir sub"]
    assert _meta(events)["subsystem"] == "sftp"


def test_story_failed_login_never_runs_the_command():
    """a07: two wrong passwords; the command on the ssh command line never runs."""
    exp, events = _session("a07_authfail_curve25519_aes256gcm.pcap")
    assert [e.result for e in events if isinstance(e, AuthAttempt)] == ["failure", "failure"]
    assert not [e for e in events if isinstance(e, CommandEntered)]
    assert "Pw-" not in repr(events)
