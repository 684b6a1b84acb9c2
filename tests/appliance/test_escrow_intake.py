"""A jump host's keys reach the sensor after the SSH session it made has ended: the jump host
runs ``escrow_client.py`` (stdlib only) against the sensor's HTTPS intake, and the session,
stored undecrypted, is decoded: user, commands, decrypted. A wrong token and a text without
keys are refused with one clear line, and nothing is kept."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from live_harness import ROOT, Sensor, free_port, json_doc, json_lines, wait_for

SSH = ROOT / "pcaps" / "ssh" / "a01_shell_curve25519_aes128ctr.pcap"
KEYS = ROOT / "pcaps" / "ssh" / "a01_shell_curve25519_aes128ctr.keylog"
WANT = json.loads((ROOT / "pcaps" / "ssh" / "manifest.json").read_text())[SSH.name]["sessions"][0]
CLIENT = ROOT / "appliance" / "escrow_client.py"


def client(*args: str) -> subprocess.CompletedProcess:
    # the jump host has a bare Python: no project on the path, nothing installed
    return subprocess.run([sys.executable, "-I", str(CLIENT), *args], capture_output=True, text=True, timeout=60,
                          cwd="/")


def test_key_after_the_session_ended_still_decrypts_it(tmp_path):
    home = tmp_path / "home"
    token = "jump-1-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:24]
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "wrong").write_text("not-the-token\n")
    port = free_port()
    conf = tmp_path / "sensor.toml"
    conf.write_text(f"""
[capture]
pcap = "-"
[sessions]
checkpoint_seconds = 1
[escrow]
listen = "127.0.0.1:{port}"
tokens = {{ "jump-1" = "sha256:{hashlib.sha256(token.encode()).hexdigest()}" }}
""")
    sensor = Sensor(home, "--config", str(conf), stdin=subprocess.PIPE)
    assert sensor.p.stdin is not None
    try:
        sensor.p.stdin.write(SSH.read_bytes())          # the session happens, no key yet
        sensor.p.stdin.flush()
        sensor.wait_started()
        row = wait_for("the ended session", lambda: [s for s in json_lines(home, "sessions", "--json")
                                                     if s["status"] != "live"])[0]
        assert row["protocol"] == "ssh" and row["decrypted"] is False and row["user"] is None
        cert = home / "escrow-tls" / "intake.crt"
        url = f"https://127.0.0.1:{port}"

        bad = client("--url", url, "--token-file", str(tmp_path / "wrong"), "--cafile", str(cert),
                     "--file", str(KEYS), "--retries", "0")
        assert bad.returncode == 1 and "401" in bad.stderr and "unknown or missing token" in bad.stderr
        junk = tmp_path / "junk.txt"
        junk.write_text("this is not a key log\n")
        bad = client("--url", url, "--token-file", str(tmp_path / "token"), "--cafile", str(cert),
                     "--file", str(junk), "--retries", "0")
        assert bad.returncode == 1 and "400" in bad.stderr and "no SSH or TLS key lines" in bad.stderr
        # without the sensor's certificate the client will not talk
        bad = client("--url", url, "--token-file", str(tmp_path / "token"), "--file", str(KEYS), "--retries", "0")
        assert bad.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in bad.stderr

        ok = client("--url", url, "--token-file", str(tmp_path / "token"), "--cafile", str(cert),
                    "--file", str(KEYS))
        assert ok.returncode == 0, ok.stderr
        assert "key line(s) sealed" in ok.stderr
        s = wait_for("the session decrypted", lambda: [
            s for s in json_lines(home, "sessions", "--json") if s["id"] == row["id"] and s["decrypted"]])[0]
        detail = json_doc(home, "show", s["id"], "--json")
        assert s["user"] == WANT["user"] and s["auth"] == WANT["auth"]
        assert [c["text"] for c in detail["commands"]] == WANT["commands"]
        st = sensor.status()
        assert st is not None and st["counters"]["keys_received"] == 1 and st["counters"]["redecoded"] == 1
    finally:
        sensor.p.stdin.close()                           # end of the stream: the sensor stops
        rc = sensor.wait()
    assert rc == 0, sensor.log()
    log = sensor.log()
    lines = len([l for l in KEYS.read_text().splitlines() if l.strip()])
    assert f"escrow: {lines} key line(s) from jump-1 sealed" in log
    assert f"session {row['id']} decrypted with escrowed keys" in log
    assert token not in log and KEYS.read_text().split()[1] not in log
    # the key is sealed in the vault, not lying around in the data directory
    secret = KEYS.read_text().split()[1].encode()
    for f in home.rglob("*"):
        if f.is_file():
            assert secret not in f.read_bytes(), f
