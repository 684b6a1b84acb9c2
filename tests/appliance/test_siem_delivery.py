"""SIEM delivery playbooks with real sockets on loopback: TLS syslog (RFC 5425 framing)
verified against the receiver's certificate; a target that is down gets its messages once it
comes up (retry), and a queue that overflows drops its oldest and counts them."""
from __future__ import annotations

import socket
import ssl
import threading
import time

from appliance.config import SyslogTarget
from appliance.escrow_intake import ensure_certificate
from appliance.siem import Siem, SiemEvent, SyslogSender, syslog_line, to_cef
from live_harness import free_port, wait_for

SESSION = {"id": "0123456789abcdef", "protocol": "telnet", "client_ip": "10.20.0.5", "client_port": 40001,
           "server_ip": "10.20.1.1", "server_port": 23, "user": "op|er=1"}


def receiver(sock: socket.socket, got: list[str], wrap=None) -> None:  # type: ignore[no-untyped-def]
    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            if wrap is not None:
                conn = wrap(conn)
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                while b" " in buf:
                    n, _, rest = buf.partition(b" ")
                    if len(rest) < int(n):
                        break
                    got.append(rest[:int(n)].decode())
                    buf = rest[int(n):]
    threading.Thread(target=serve, daemon=True).start()


def test_tls_syslog_is_verified_and_framed(tmp_path):
    cert, key, _fp = ensure_certificate(tmp_path / "tls", "localhost")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    got: list[str] = []
    receiver(srv, got, lambda c: ctx.wrap_socket(c, server_side=True))
    siem = Siem([SyslogTarget("tls://localhost", "tls", "localhost", srv.getsockname()[1], "cef", str(cert))], None)
    siem.send(SiemEvent("tag", 1_700_000_000.25, "config-change: sed -i s/a/b/ /etc/motd", "medium", SESSION,
                        {"tag": "config-change", "command": "sed -i s/a/b/ /etc/motd"}))
    wait_for("the TLS message", lambda: got, timeout=10)
    siem.close()
    msg = got[0]
    assert msg.startswith("<108>1 2023-11-14T22:13:20.250000Z ")       # facility 13, severity 4
    # CEF escaping: '|' in the header, '=' and '\' in extension values
    assert "suser=op|er\\=1" in msg and "cs2=config-change" in msg and "dpt=23" in msg
    assert "cs3=sed -i s/a/b/ /etc/motd" in msg


def test_unreachable_target_gets_its_messages_when_it_comes_back():
    port = free_port()
    sender = SyslogSender(SyslogTarget(f"tcp://127.0.0.1:{port}", "tcp", "127.0.0.1", port, "json"), limit=100)
    for i in range(5):
        sender.put(syslog_line(SiemEvent("session-start", 1_700_000_000 + i, f"start {i}", "info", SESSION), "json"))
    wait_for("a failed attempt", lambda: sender.errors > 0, timeout=5)
    assert sender.depth() == 5 and sender.dropped == 0
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(2)
    got: list[str] = []
    receiver(srv, got)
    wait_for("the queued messages", lambda: len(got) == 5, timeout=20)
    assert [m.split('"name": "')[1].split('"')[0] for m in got] == [f"start {i}" for i in range(5)]
    assert sender.depth() == 0
    sender.close()
    srv.close()


def test_full_queue_drops_oldest_and_counts():
    port = free_port()    # nobody listens: everything stays queued
    sender = SyslogSender(SyslogTarget(f"tcp://127.0.0.1:{port}", "tcp", "127.0.0.1", port, "cef"), limit=10)
    for i in range(25):
        sender.put(b"msg %d" % i)
    time.sleep(0.1)
    assert sender.dropped == 15 and sender.depth() == 10
    assert list(sender.q)[-1] == b"msg 24"
    sender.close(drain_seconds=0)


def test_cef_header_escapes():
    line = to_cef(SiemEvent("alert", 0.0, "pipe | and back\\slash", "high", None, {"reason": "a=b"}))
    assert line.startswith("CEF:0|sessiontap|sessiontap|")
    assert "|alert|pipe \\| and back\\\\slash|8|" in line and "reason=a\\=b" in line
