"""An analyst pipes sessiontap into other tools (`sessiontap show ID | head`, `... | grep -m1`):
when the reader stops early, sessiontap ends quietly (status 1, as Python programs do on a
broken pipe) instead of printing an error about the data directory."""
from __future__ import annotations

import os
import subprocess

from sessiontap_cli import ROOT, SESSIONTAP

T1 = ROOT / "pcaps" / "telnet" / "t1_inetutils_full_session.pcap"


def test_a_reader_that_goes_away_is_no_error(cli, home):
    cli("import", "-q", str(T1))
    sid = cli.json_lines("sessions", "--json")[0]["id"]
    env = dict(os.environ, SESSIONTAP_HOME=str(home), COLUMNS="200")
    for args in (["show", sid], ["show", sid, "--json"], ["transcript", sid], ["sessions"],
                 ["sessions", "--json"], ["search", "echo"], ["export", sid, "-o", "-"]):
        p = subprocess.Popen([*SESSIONTAP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()                # the reader is gone before the first line is written
        err = p.stderr.read().decode()
        assert p.wait(timeout=120) == 1, (args, err)
        assert err == "", (args, err)
