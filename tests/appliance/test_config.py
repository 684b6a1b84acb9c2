"""The operator's mistakes in sensor.toml: each is one line naming the key, before anything
starts; a bad file on SIGHUP keeps the running configuration and raises an alert."""
from __future__ import annotations

import signal
import subprocess

import pytest

from appliance.config import ConfigError, parse
from live_harness import ROOT, Sensor, run, wait_for

BAD = [
    ("[capture]\nsubnets = ['10.0.0.0/33']", "capture.subnets[0]: '10.0.0.0/33' is not an IP network"),
    ("[capture]\nports = [22, 70000]", "capture.ports[1]: 70000 is not a TCP port"),
    ("[capture]\nintreface = 'eth1'", "capture.intreface: unknown key"),
    ("[captur]\ninterface = 'eth1'", "[captur]: unknown section"),
    ("[capture]\nports = []", "capture.ports: empty, and content_detection is off"),
    ("[sessions]\ncheckpoint_seconds = 0", "sessions.checkpoint_seconds: must be greater than 0"),
    ("[sessions]\ncheckpoint_seconds = 600", "sessions.checkpoint_seconds: at most 60"),
    ("[[siem.syslog]]\ntarget = 'http://x:514'", "siem.syslog[0].target: 'http://x:514' is not udp://"),
    ("[[siem.syslog]]\ntarget = 'tcp://x:514'\nformat = 'leef'", "siem.syslog[0].format: 'leef' is not"),
    ("[metrics]\nlisten = 'localhost'", "metrics.listen: 'localhost' is not HOST:PORT"),
    ("[escrow]\nlisten = '0.0.0.0:8443'", "escrow.tokens: the intake needs at least one host token"),
    ("[escrow]\nlisten = '0.0.0.0:8443'\ntokens = { j = 'hunter2' }", "escrow.tokens.j: expected \"sha256:<64 hex"),
    ("[capture]\nmethod = 'pfring'", "capture.method: 'pfring' is not \"ring\" or \"socket\""),
    ("[sessions]\nstop_seconds = 90", "sessions.stop_seconds: 90 is not between 0 and 40"),
    ("[sessions]\nstop_seconds = 'soon'", "sessions.stop_seconds: expected a number of seconds"),
    ("[capture\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_one_line_error_naming_the_key(text, message):
    with pytest.raises(ConfigError) as e:
        parse(text, "sensor.toml")
    assert str(e.value).startswith("sensor.toml: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_good_file():
    cfg = parse("""
[capture]
interface = "eth1"
subnets = ["10.20.0.0/16", "192.168.7.9/24"]
content_detection = true
[capture.ring]
file_mb = 8
files = 4
[[siem.syslog]]
target = "udp://[::1]:514"
format = "json"
""")
    assert cfg.subnets == ["10.20.0.0/16", "192.168.7.0/24"] and cfg.content_detection
    assert cfg.ring is not None and cfg.ring.files == 4 and cfg.ring.file_seconds == 3600
    assert cfg.syslog[0].host == "::1" and cfg.syslog[0].port == 514


def test_sensor_refuses_to_start_on_a_bad_file(tmp_path):
    conf = tmp_path / "sensor.toml"
    conf.write_text("[capture]\ninterface = 'eth1'\nports = [22, 'telnet']\n")
    p = run(tmp_path / "home", "sensor", "--config", str(conf), check=False)
    assert p.returncode == 2
    assert p.stderr.decode().strip() == f"sessiontap: {conf}: capture.ports[1]: expected a port number, got 'telnet'"


def test_sighup_reloads_or_keeps_the_running_config(tmp_path):
    home = tmp_path / "home"
    conf = tmp_path / "sensor.toml"
    conf.write_text("[capture]\npcap = '-'\n[sessions]\ncheckpoint_seconds = 1\n")
    sensor = Sensor(home, "--config", str(conf), stdin=subprocess.PIPE)
    assert sensor.p.stdin is not None
    sensor.p.stdin.write((ROOT / "pcaps" / "telnet" / "t3a_inetutils_linemode.pcap").read_bytes()[:24])
    sensor.p.stdin.flush()
    sensor.wait_started()
    conf.write_text("[capture]\npcap = '-'\n[sessions]\ncheckpoint_seconds = 'soon'\n")
    sensor.p.send_signal(signal.SIGHUP)
    st = wait_for("the reload alert", lambda: (s := sensor.status()) and s["alerts"] and s)
    assert st["alerts"][0]["name"] == "config-reload"
    assert "sessions.checkpoint_seconds: expected a number" in st["alerts"][0]["message"]
    assert st["checkpoint_seconds"] == 1.0
    h = run(home, "health", check=False)
    assert h.returncode == 1 and "ALERT config-reload" in h.stdout.decode()
    conf.write_text("[capture]\npcap = '-'\n[sessions]\ncheckpoint_seconds = 3\n")
    sensor.p.send_signal(signal.SIGHUP)
    wait_for("the new checkpoint interval", lambda: (s := sensor.status()) and s["checkpoint_seconds"] == 3.0)
    sensor.p.stdin.close()
    assert sensor.wait() == 0
    assert f"SIGHUP: configuration {conf} reloaded" in sensor.log()


def test_the_shipped_example_is_valid(tmp_path):
    example = (ROOT / "appliance" / "systemd" / "sensor.toml.example").read_text()
    conf = tmp_path / "sensor.toml"
    conf.write_text("\n".join(l for l in example.splitlines() if not l.startswith("ca = ")))
    p = run(tmp_path / "home", "sensor", "--config", str(conf), "--check")
    out = p.stdout.decode()
    assert out.startswith(f"{conf}: ok; capture filter: (tcp and (net 10.20.0.0/16) and (port 22 or ")
