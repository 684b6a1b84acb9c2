"""A real Telnet session happening now, seen through a real mirror: inetutils telnetd in one
network namespace, the inetutils telnet client (driven by expect) in another, and the server
side's link mirrored with ``tc ... action mirred egress mirror`` onto the SPAN port the sensor
listens on - what a switch's SPAN session does. While the operator is still logged in, the
session is ``live`` in the catalog with the commands typed so far; when they leave it is
``complete``.

Scenario parameters (the expected results come from these, not from the code under test)."""
from __future__ import annotations

import subprocess
import sys
import time

from live_harness import Sensor, json_doc, json_lines, run, wait_for

USER = "opdemo"                         # sent by the client as USER (telnet -l): no password typed
MARKER = "st-live-telnetd-marker"
COMMANDS = [f"echo {MARKER}", "id", "exit"]
PORT = 2323
SERVER, CLIENT = "10.99.23.1", "10.99.23.2"

INETD = """
import socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
# inetd's job: the accepted connection is telnetd's stdin/stdout; a shell instead of /bin/login
subprocess.run(["/usr/sbin/telnetd", "-h", "-E", "/bin/sh"], stdin=c.fileno(), stdout=c.fileno(),
               stderr=subprocess.DEVNULL)
"""

CLIENT_EXP = r"""
set timeout 20
spawn telnet -l %(user)s %(server)s %(port)d
expect -re {[#$] $}
sleep 0.3
send "echo %(marker)s\r"
expect -re {%(marker)s\r\n.*[#$] $}
sleep 0.3
send "id\r"
expect -re {uid=.*[#$] $}
# the operator stays logged in until the test has looked at the live session
while {![file exists %(go)s]} { after 100 }
send "exit\r"
expect eof
"""


def sh(*args: str) -> None:
    p = subprocess.run(list(args), capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")


def test_a_real_telnet_session_through_a_mirror(span, tmp_path):
    for tool in ("/usr/sbin/telnetd", "telnet", "expect", "tc"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise AssertionError(f"{tool} is missing (Debian packages inetutils-telnetd inetutils-telnet expect iproute2)")
    cns, srv_if, cli_if = f"{span.ns}-c", f"{span.mirror}s", f"{span.mirror}c"
    sh("ip", "netns", "add", cns)
    inetd = None
    client = None
    sensor = None
    try:
        sh("ip", "link", "add", srv_if, "type", "veth", "peer", "name", cli_if)
        sh("ip", "link", "set", srv_if, "netns", span.ns)
        sh("ip", "link", "set", cli_if, "netns", cns)
        sh("ip", "netns", "exec", span.ns, "ip", "addr", "add", f"{SERVER}/24", "dev", srv_if)
        sh("ip", "netns", "exec", span.ns, "ip", "link", "set", srv_if, "up")
        sh("ip", "netns", "exec", cns, "ip", "addr", "add", f"{CLIENT}/24", "dev", cli_if)
        sh("ip", "netns", "exec", cns, "ip", "link", "set", cli_if, "up")
        # the SPAN session: both directions of the server's link copied onto the mirror port
        sh("ip", "netns", "exec", span.ns, "tc", "qdisc", "add", "dev", srv_if, "clsact")
        for hook in ("ingress", "egress"):
            # u32 "match u32 0 0" matches every frame (matchall is not built into every kernel)
            sh("ip", "netns", "exec", span.ns, "tc", "filter", "add", "dev", srv_if, hook, "protocol", "all",
               "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", span.inside)

        home = tmp_path / "home"
        sensor = Sensor(home, "--interface", span.mirror, "--subnet", "10.99.23.0/24", "--port", str(PORT),
                        "--checkpoint-seconds", "1")
        sensor.wait_started()
        # a second, independent witness on the same mirror port: tcpdump writing a pcap
        witness = tmp_path / "witness.pcap"
        dump = subprocess.Popen(["tcpdump", "-i", span.mirror, "-U", "-w", str(witness), "tcp"],
                                stderr=subprocess.PIPE)
        assert dump.stderr is not None and b"listening" in dump.stderr.readline()
        (tmp_path / "inetd.py").write_text(INETD)
        inetd = subprocess.Popen(["ip", "netns", "exec", span.ns, sys.executable, str(tmp_path / "inetd.py"),
                                  SERVER, str(PORT)], stdout=subprocess.PIPE, text=True)
        assert inetd.stdout is not None and inetd.stdout.readline().strip() == "ready"
        go = tmp_path / "go"
        (tmp_path / "client.exp").write_text(CLIENT_EXP % {"user": USER, "server": SERVER, "port": PORT,
                                                           "marker": MARKER, "go": go})
        client = subprocess.Popen(["ip", "netns", "exec", cns, "expect", str(tmp_path / "client.exp")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        # while the operator is logged in: live, with what was typed so far
        row = wait_for("the live session in the catalog", lambda: [
            s for s in json_lines(home, "sessions", "--json") if s["status"] == "live" and s["commands"] >= 2])[0]
        assert (row["protocol"], row["user"], row["client_ip"], row["server_ip"], row["server_port"]) == \
               ("telnet", USER, CLIENT, SERVER, PORT)
        live = json_lines(home, "live", "--json")
        assert [s["id"] for s in live] == [row["id"]] and live[0]["last_command"] == "id"

        go.touch()
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0, out.decode()
        done = wait_for("the ended session", lambda: [
            s for s in json_lines(home, "sessions", "--json") if s["id"] == row["id"] and s["status"] != "live"])[0]
        time.sleep(1.0)
        dump.terminate()
        dump.wait(timeout=10)
        assert done["status"] == "complete" and done["end_reason"] == "fin"
        detail = json_doc(home, "show", row["id"], "--json")
        got = [c["text"] for c in detail["commands"]]
        # `exit` kills the shell at once: telnetd may close before the pty echoes the line, and a
        # line never echoed is not counted as run (the same rule as at import, checked below)
        assert got in (COMMANDS, COMMANDS[:2]), got
        assert MARKER in run(home, "transcript", row["id"]).stdout.decode()
        # the witness's capture, imported, says the same
        other = tmp_path / "import-home"
        run(other, "import", "-q", str(witness))
        imported = json_lines(other, "sessions", "--json")
        assert [(s["user"], s["client_port"], s["status"]) for s in imported] == \
               [(done["user"], done["client_port"], done["status"])]
        assert [c["text"] for c in json_doc(other, "show", imported[0]["id"], "--json")["commands"]] == got
    finally:
        for p in (client, inetd):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if sensor is not None:
            sensor.stop()
        subprocess.run(["ip", "netns", "exec", span.ns, "ip", "link", "del", srv_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", cns], capture_output=True)
        time.sleep(0.1)
