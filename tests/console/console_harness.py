"""The console test harness: a real console over a real data directory (captures imported
with the CLI in a child process), serving on a free loopback port in a thread of the test
process; users made with the same code `sessiontap users add` runs; an HTTP client.
(A module of its own name: every tests/ folder has a conftest.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T2 = ROOT / "pcaps" / "telnet" / "t2_failed_then_success.pcap"
RDP = ROOT / "pcaps" / "rdp"
RENDERED = "rdp-video.pcap"     # graphics PyRDP renders: a video
UNRENDERABLE = "rdp-nla.pcap"   # RDPGFX: no video, and the session says why


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class Client:
    """An HTTP client that keeps the console's cookie by hand (Python's cookie jar would not
    send a Secure cookie over http://127.0.0.1, which browsers do)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.token: str | None = None

    def call(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None) -> Answer:
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        elif self.cookie:
            h["Cookie"] = self.cookie
            if self.csrf and method != "GET" and "X-CSRF-Token" not in h:
                h["X-CSRF-Token"] = self.csrf
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                ans = Answer(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            ans = Answer(e.code, dict(e.headers), e.read())
        cookie = ans.headers.get("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return ans

    def sign_in(self, user: "User") -> Answer:
        from appliance.console.totp import totp
        a = self.call("POST", "/api/login", {"user": user.name, "password": user.password, "code": user.code()})
        if a.status == 200:
            self.csrf = a.json()["csrf"]
        return a


@dataclass
class User:
    name: str
    role: str
    password: str
    secret: str

    def code(self, at: float | None = None) -> str:
        """A code for a time step not used yet by this user (a code is good once)."""
        import time as _t
        from appliance.console.totp import STEP, totp
        self._step = getattr(self, "_step", 0)
        now = _t.time() if at is None else at
        step = int(now // STEP)
        if step <= self._step:  # used: take the next step (inside the accepted window of one step)
            step = self._step + 1
        self._step = step
        return totp(self.secret, step * STEP)


class Running:
    def __init__(self, home: Path) -> None:
        from appliance.console.app import build
        from appliance.home import Home

        self.home = home
        self.console = build(Home(path=home, actor="test"), "127.0.0.1", 0, tls=False, live_interval=0.5)
        self.thread = threading.Thread(target=self.console.serve_forever, daemon=True)
        self.thread.start()
        self.url = self.console.url.rstrip("/")
        self.accounts = self.console.accounts

    def user(self, name: str, role: str, zones: list[str] | None = None) -> User:
        nu = self.accounts.create(name, role, zones or ["*"], actor="test")
        return User(nu.name, nu.role, nu.password, nu.totp_secret)

    def client(self) -> Client:
        return Client(self.url)

    def close(self) -> None:
        self.console.close()


def import_captures(home: Path, *captures: Path) -> None:
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "import", "-q", *map(str, captures)],
                       capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr.decode()


def import_rdp(home: Path, *names: str) -> None:
    """Bundled RDP captures, each with the key its manifest names."""
    manifest = json.loads((RDP / "manifest.json").read_text())
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    for name in names:
        entry = manifest[name]
        keys = ["--keys", str(RDP / entry["keys"])] if entry["keys"] else \
               ["--rdp-server-key", str(RDP / entry["rdp_server_key"])]
        p = subprocess.run([sys.executable, "-m", "appliance.cli", "import", "-q", str(RDP / name), *keys],
                           capture_output=True, env=env, cwd=ROOT, timeout=300)
        assert p.returncode == 0, p.stderr.decode()


def session_from(client: Client, capture: str) -> dict:
    """The one session imported from ``capture``, as the sessions list shows it."""
    rows = client.call("GET", "/api/sessions?protocol=rdp").json()["sessions"]
    [s] = [s for s in rows if (s["source"] or "").endswith(capture)]
    return s
