"""`sessiontap serve` and `sessiontap users` as an operator runs them."""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

from console_harness import ROOT


def run(home, *args, check=True):
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    p = subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True, env=env, cwd=ROOT,
                       timeout=120)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_users_add_prints_credentials_once_and_list_never_shows_secrets(t2_home):
    made = json.loads(run(t2_home, "users", "add", "uma", "--role", "analyst", "--json").stdout)
    assert made["role"] == "analyst" and len(made["password"]) >= 12 and made["totp_uri"].startswith("otpauth://")
    listed = run(t2_home, "users", "list", "--json").stdout.decode()
    assert "uma" in listed and made["password"] not in listed and made["totp_secret"] not in listed
    assert "pw_hash" not in listed and "argon2" not in listed
    db = (t2_home / "console" / "console.db").read_bytes()
    assert made["password"].encode() not in db and made["totp_secret"].encode() not in db
    assert b"$argon2id$" in db
    again = run(t2_home, "users", "add", "uma", "--role", "analyst", check=False)
    assert again.returncode == 2 and b"exists already" in again.stderr
    nozone = run(t2_home, "users", "add", "vic", "--role", "auditor", "--zone", "nowhere", check=False)
    assert nozone.returncode == 2 and b"no zone 'nowhere'" in nozone.stderr


def test_serve_over_tls_prints_the_first_admin_once_and_refuses_clear_http_off_loopback(tmp_path):
    home = tmp_path / "home"
    port = free_port()
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        lines = []
        while not any("console on" in line for line in lines):
            line = proc.stdout.readline().decode()
            assert line, proc.stderr.read().decode()
            lines.append(line)
        text = "".join(lines)
        assert "first admin account created" in text and f"https://127.0.0.1:{port}/" in text
        password = next(l.split()[1] for l in lines if l.strip().startswith("password:"))
        secret = next(l.split()[2] for l in lines if l.strip().startswith("TOTP secret:"))
        ctx = ssl.create_default_context(cafile=str(home / "console" / "tls-cert.pem"))
        from appliance.console.totp import totp
        body = json.dumps({"user": "admin", "password": password, "code": totp(secret)}).encode()
        req = urllib.request.Request(f"https://127.0.0.1:{port}/api/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            cookie = r.headers["Set-Cookie"]
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert cookie.startswith("__Host-st_session=") and "Secure" in cookie and "HttpOnly" in cookie
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # a second start creates no second admin and prints no password
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "serve", "--port", str(free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        first = proc.stdout.readline().decode()
        assert first.startswith("sessiontap console on https://"), first
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    refused = run(home, "serve", "--http", "--host", "0.0.0.0", "--port", str(free_port()), check=False)
    assert refused.returncode == 2 and b"in clear" in refused.stderr


def test_the_demo_ends_by_itself_without_a_terminal(t2_home):
    env = dict(os.environ, SESSIONTAP_HOME=str(t2_home))
    env.pop("DEMO_SERVE", None)
    code = "from appliance.demo import serve_console; serve_console()"
    p = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, env=env,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0 and b"console: not started" in p.stdout
    p = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True,
                       env={**env, "DEMO_SERVE": "0"}, cwd=ROOT, timeout=60)
    assert b"console: not started" in p.stdout


def test_the_demo_serves_when_asked_and_prints_url_and_accounts(t2_home):
    env = dict(os.environ, SESSIONTAP_HOME=str(t2_home), DEMO_SERVE="1", DEMO_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-c", "from appliance.demo import serve_console; serve_console()"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        lines = [proc.stdout.readline().decode() for _ in range(4)]
        text = "".join(lines)
        assert f"http://127.0.0.1:{env['DEMO_PORT']}/" in text
        assert "user demo-admin" in text and "user demo-auditor" in text and "TOTP secret" in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_seek_index_indexes_long_recordings_once_and_leaves_short_ones(tmp_path):
    from appliance.home import Home
    from long_cast import shell_session
    from test_long_replay import add_session

    home = tmp_path / "home"
    add_session(Home(path=home, actor="test"), "3c" * 8, shell_session(1800, seed=5))
    add_session(Home(path=home, actor="test"), "4d" * 8, shell_session(60, seed=5))
    out = run(home, "seek-index").stdout.decode()
    assert out == f"{'3c' * 8} terminal.cast: indexed as terminal.cast.seek\n"
    assert run(home, "seek-index", "3c").stdout == b""  # already there, for these bytes
    names = Home(path=home, actor="test").vault().names("4d" * 8)
    assert names == ["terminal.cast"]
