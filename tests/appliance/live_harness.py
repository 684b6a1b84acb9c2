"""Real parts for the appliance tests: a virtual SPAN port (a network namespace and a veth
pair), the sensor as a child process, a syslog receiver on loopback."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSIONTAP = [sys.executable, "-m", "appliance.cli"]


def env_for(home: Path) -> dict[str, str]:
    return dict(os.environ, SESSIONTAP_HOME=str(home), COLUMNS="200", PYTHONUNBUFFERED="1")


def run(home: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    p = subprocess.run([*SESSIONTAP, *args], capture_output=True, env=env_for(home), cwd=ROOT, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"sessiontap {' '.join(args)} exited {p.returncode}:\n{p.stderr.decode()}")
    return p


def json_lines(home: Path, *args: str) -> list[dict]:
    """A catalog read; the running sensor holds the catalog a few ms per checkpoint, so retry."""
    for _ in range(50):
        p = run(home, *args, check=False)
        if p.returncode == 0:
            return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        if b"lock" not in p.stderr.lower():
            raise AssertionError(p.stderr.decode())
        time.sleep(0.1)
    raise AssertionError("catalog stayed locked")


def json_doc(home: Path, *args: str) -> dict:
    for _ in range(50):
        p = run(home, *args, check=False)
        if p.returncode == 0:
            return json.loads(p.stdout)
        if b"lock" not in p.stderr.lower():
            raise AssertionError(p.stderr.decode())
        time.sleep(0.1)
    raise AssertionError("catalog stayed locked")


def wait_for(what: str, pred, timeout: float = 30.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sensor:
    """``sessiontap sensor`` as a child process."""

    def __init__(self, home: Path, *args: str, stdin: int | None = None) -> None:
        self.home = home
        self.stderr_path = home.parent / f"sensor-{time.monotonic_ns()}.log"
        home.mkdir(parents=True, exist_ok=True)
        self.errf = open(self.stderr_path, "wb")
        self.p = subprocess.Popen([*SESSIONTAP, "sensor", *args], env=env_for(home), cwd=ROOT,
                                  stdin=stdin, stdout=subprocess.DEVNULL, stderr=self.errf)

    def status(self) -> dict | None:
        try:
            return json.loads((self.home / "run" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_started(self) -> None:
        wait_for("the sensor to start", lambda: self.p.poll() is not None or
                 (self.status() or {}).get("pid") == self.p.pid)
        assert self.p.poll() is None, self.log()

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout=timeout)
        self.errf.close()
        return rc

    def wait(self, timeout: float = 60) -> int:
        """The sensor ends by itself when its pcap stream ends."""
        rc = self.p.wait(timeout=timeout)
        self.errf.close()
        return rc

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=10)
        self.errf.close()


class SpanPort:
    """A veth pair: the sensor listens on ``inside``'s peer ``mirror`` in our namespace,
    tcpreplay sends on ``inside`` from a namespace of its own (as a switch's SPAN port would)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = f"sessiontap-test-{tag}"
        self.mirror = f"stm{tag}"
        self.inside = f"sti{tag}"
        self._ip("netns", "add", self.ns)
        try:
            self._ip("link", "add", self.mirror, "mtu", "65535", "type", "veth", "peer", "name", self.inside,
                     "mtu", "65535")
            self._ip("link", "set", self.inside, "netns", self.ns)
            self._ip("link", "set", self.mirror, "up")
            self._ip("netns", "exec", self.ns, "ip", "link", "set", self.inside, "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*args: str) -> None:
        p = subprocess.run(["ip", *args], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")

    def replay(self, *pcaps: Path, rate: list[str] | None = None) -> str:
        """tcpreplay onto the SPAN port; returns its summary."""
        p = subprocess.run(["ip", "netns", "exec", self.ns, "tcpreplay", "-i", self.inside, *(rate or ["--topspeed"]),
                            *map(str, pcaps)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.mirror], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class SyslogReceiver:
    """RFC 5424 over TCP (RFC 6587 octet counting) or UDP, on loopback; keeps every message."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if kind == "tcp":
            self.sock.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        if self.kind == "udp":
            while True:
                data, _ = self.sock.recvfrom(65536)
                self.messages.append(data.decode())
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b" " in buf:
                n, _, rest = buf.partition(b" ")
                if len(rest) < int(n):
                    break
                self.messages.append(rest[:int(n)].decode())
                buf = rest[int(n):]
