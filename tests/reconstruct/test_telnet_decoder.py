"""Playbooks for the Telnet decoder: feed these bytes from the client/server -> expect these events.

The server byte sequences are what inetutils telnetd + /bin/login + bash and busybox send
(taken from the corpus captures), trimmed to what each rule needs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reconstruct.events import (AuthAttempt, CommandEntered, CommandOutput, DecodeError, Input,
                                Metadata, Notice, Output, Resize)
from reconstruct.telnet import TelnetDecoder, parse_environ
from reconstruct.terminal import HISTORY_LINES

ROOT = Path(__file__).resolve().parents[2]

IAC, SB, SE, WILL, WONT, DO, DONT = b"\xff", b"\xfa", b"\xf0", b"\xfb", b"\xfc", b"\xfd", b"\xfe"
PROMPT = b"\x1b[?2004h\x1b]0;tndemo@vm: ~\x07tndemo@vm:~$ "
SECRET = "Pw-k7Qm2xR9vL"


class Play:
    """A Telnet connection driven by hand; remembers every event."""

    def __init__(self, **kw) -> None:
        self.d = TelnetDecoder(**kw)
        self.events: list = []
        self.t = 1000.0

    def server(self, data: bytes) -> list:
        return self._go("s2c", data)

    def client(self, data: bytes) -> list:
        return self._go("c2s", data)

    def type(self, text: bytes, echo: bool = True) -> None:
        """Character mode: one segment per key, the server echoes each."""
        for ch in text:
            k = bytes((ch,))
            self.client(k)
            if echo and k != b"\r":
                self.server(k)

    def _go(self, direction: str, data: bytes) -> list:
        self.t += 0.1
        ev = list(self.d.feed(direction, data, self.t))
        self.events += ev
        return ev

    def close(self) -> list:
        ev = list(self.d.close(self.t + 1, "fin"))
        self.events += ev
        return ev

    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    def commands(self) -> list[str]:
        return [e.text for e in self.of(CommandEntered)]

    def outputs(self) -> dict[int, str]:
        return {e.index: e.text for e in self.of(CommandOutput)}


def login(p: Play, user: bytes = b"tndemo", password: bytes = SECRET.encode()) -> None:
    """inetutils: negotiation, "login: ", user echoed, "Password: " not echoed, MOTD, prompt."""
    p.server(IAC + DO + b"\x18" + IAC + WILL + b"\x01")
    p.server(b"\r\nLinux 6.1 (localhost) (pts/1)\r\n\r\nvm login: ")
    p.type(user + b"\r")
    p.server(b"\r\n")
    p.server(b"Password: ")
    p.type(password + b"\r", echo=False)
    p.server(b"\r\n")
    p.server(b"Last login: Wed Nov 25 01:55:42 UTC 2026 from localhost on pts/3\r\n")
    p.server(PROMPT)


def run_command(p: Play, cmd: bytes, output: bytes) -> None:
    p.type(cmd + b"\r")
    p.server(b"\r\n\x1b[?2004l\r" + output + PROMPT)


# ------------------------------------------------------------------------- IAC protocol
def test_doubled_iac_is_one_data_byte_and_commands_are_stripped():
    p = Play()
    p.server(IAC + WILL + b"\x01")
    out = p.server(b"abc" + IAC + IAC + b"def" + IAC + b"\xf1" + b"ghi")   # IAC IAC, IAC NOP
    assert b"".join(e.data for e in out if isinstance(e, Output)) == b"abc\xffdefghi"


def test_iac_command_split_across_feeds_leaks_nothing_into_data():
    p = Play()
    assert p.server(IAC) == []
    assert p.server(WILL) == []
    p.server(b"\x01" + b"login: ")
    assert b"".join(e.data for e in p.of(Output)) == b"login: "
    p.client(IAC + DO)
    p.client(b"\x01")
    assert p.of(Input) == []


def test_cr_nul_becomes_cr_even_split_between_feeds():
    p = Play()
    p.server(IAC + WILL + b"\x01")
    a = p.server(b"one\r")
    b = p.server(b"\x00two\r\x00\n")
    assert a[0].data == b"one\r" and b[0].data == b"two\r\n"


def test_naws_subnegotiation_split_and_with_doubled_255_gives_resize():
    p = Play()
    p.client(IAC + SB + b"\x1f\x00")
    p.client(b"\x50\x00\x18" + IAC)
    p.client(SE)
    p.client(IAC + SB + b"\x1f\x00" + IAC + IAC + b"\x00\x30" + IAC + SE)
    assert [(e.cols, e.rows) for e in p.of(Resize)] == [(80, 24), (255, 48)]


def test_ttype_new_environ_user_and_linemode_become_metadata():
    p = Play()
    p.server(IAC + DO + b"\x27")
    p.client(IAC + SB + b"\x18\x00xterm" + IAC + SE)
    p.client(IAC + SB + b"\x27\x00\x00USER\x01tndemo\x00DISPLAY\x01:0" + IAC + SE)
    p.client(IAC + SB + b"\x22\x01\x03" + IAC + SE)
    meta = {e.key: e.value for e in p.of(Metadata)}
    assert meta == {"terminal": "xterm", "env-user": "tndemo", "linemode": "EDIT|TRAPSIG"}


def test_environ_parser_handles_escapes_uservar_and_bsd_swapped_codes():
    assert parse_environ(b"\x00US\x02\x01ER\x01bob\x03ME\x01x") == [("US\x01ER", "bob"), ("ME", "x")]
    assert parse_environ(b"\x01USER\x00alice", old=True) == [("USER", "alice")]


def test_subnegotiation_without_se_is_cut_at_the_bound_and_decoding_goes_on():
    p = Play()
    p.server(IAC + WILL + b"\x01")
    p.client(IAC + SB + b"\x18\x00" + b"A" * 5000)
    p.client(b"later")
    errors = p.of(DecodeError)
    assert len(errors) == 1 and "without IAC SE" in errors[0].reason and not errors[0].fatal
    assert p.of(Input)[-1].data.endswith(b"later")


def test_invalid_iac_sequences_give_one_decode_error_only():
    p = Play()
    p.server(IAC + WILL + b"\x01")
    p.server(b"x" + IAC + b"\x10" + b"y")
    p.server(IAC + b"\x11")
    assert len(p.of(DecodeError)) == 1
    assert b"".join(e.data for e in p.of(Output)).startswith(b"x\x10y")


# ------------------------------------------------------------------------- logins and secrets
def test_successful_login_user_from_prompt_password_redacted_everywhere():
    p = Play()
    login(p)
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [("tndemo", "success")]
    secret_inputs = [e for e in p.of(Input) if e.redacted]
    assert [e.data for e in secret_inputs] == [b"*"] * len(SECRET)
    assert SECRET not in repr(p.events)


def test_failed_logins_inetutils_wording_then_success():
    p = Play()
    p.server(IAC + DO + b"\x18")
    p.server(b"vm login: ")
    p.type(b"nosuchuser\r")
    p.server(b"\r\nPassword: ")
    p.type(b"Pw-b4Ns6jXc1U\r", echo=False)
    p.server(b"\r\n")
    p.server(b"\r\nLogin incorrect\r\nvm login: ")
    p.type(b"tndemo\r")
    p.server(b"\r\nPassword: ")
    p.type(b"Pw-w9Ep3fKr7H\r", echo=False)
    p.server(b"\r\n\r\nLogin incorrect\r\nvm login: ")
    p.type(b"tndemo\r")
    p.server(b"\r\nPassword: ")
    p.type(SECRET.encode() + b"\r", echo=False)
    p.server(b"\r\n" + PROMPT)
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [
        ("nosuchuser", "failure"), ("tndemo", "failure"), ("tndemo", "success")]
    assert p.commands() == []      # user names typed at "login:" are not commands
    for s in ("Pw-b4Ns6jXc1U", "Pw-w9Ep3fKr7H", SECRET):
        assert s not in repr(p.events)


def test_busybox_login_user_edited_with_backspace():
    p = Play()
    p.server(IAC + WILL + b"\x01" + IAC + WILL + b"\x03")
    p.server(b"\r\nvm login: ")
    p.type(b"tndemx\x7fo\r")
    p.server(b"\r\nPassword: ")
    p.type(SECRET.encode() + b"\r\x00", echo=False)
    p.server(b"\r\n\x1b]0;tndemo@vm: ~\x07tndemo@vm:~$ ")
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [("tndemo", "success")]


def test_new_environ_user_is_the_user_when_only_a_password_is_asked():
    p = Play()
    p.server(IAC + DO + b"\x27")
    p.client(IAC + SB + b"\x27\x00\x00USER\x01opsadmin" + IAC + SE)
    p.server(b"Password: ")
    p.type(SECRET.encode() + b"\r\n", echo=False)
    p.server(b"\r\n% Login invalid\r\n\r\nPassword: ")
    p.close()
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [("opsadmin", "failure"), ("opsadmin", "unknown")]


def test_line_mode_password_line_is_redacted_but_its_enter_kept():
    p = Play()
    p.server(IAC + DO + b"\x22")
    p.client(IAC + WILL + b"\x22")
    p.server(IAC + SB + b"\x22\x01\x03" + IAC + SE)
    p.server(b"vm login: ")
    p.client(b"tndemo\n")
    p.server(b"tndemo\r\nPassword: ")
    ev = p.client(SECRET.encode() + b"\n")
    assert ev == [Input(ts=p.t, data=b"*" * len(SECRET) + b"\n", redacted=True)]


def test_sudo_password_in_the_shell_is_redacted_and_not_a_command():
    p = Play()
    login(p)
    p.type(b"sudo -v\r")
    p.server(b"\r\n\x1b[?2004l\r[sudo] password for tndemo: ")
    p.type(b"hunter2-secret\r", echo=False)
    p.server(b"\r\n" + PROMPT)
    p.type(b"id\r")
    p.server(b"\r\nuid=1002(tndemo)\r\n" + PROMPT)
    assert p.commands() == ["sudo -v", "id"]
    assert "hunter2" not in repr(p.events)


# ------------------------------------------------------------------------- shell
def test_commands_and_output_after_login():
    p = Play()
    login(p)
    run_command(p, b"echo st-first", b"st-first\r\n")
    run_command(p, b"id", b"uid=1002(tndemo) gid=1002(tndemo)\r\n")
    p.close()
    assert p.commands() == ["echo st-first", "id"]
    assert p.outputs() == {0: "st-first", 1: "uid=1002(tndemo) gid=1002(tndemo)"}


def test_interrupt_as_iac_ip_abandons_the_line_being_typed():
    p = Play()
    login(p)
    p.type(b"echo never")
    p.client(IAC + b"\xf4" + IAC + DO + b"\x06")
    p.server(b"^C\r\n" + PROMPT)
    run_command(p, b"id", b"uid=1\r\n")
    assert p.commands() == ["id"]
    assert [n.text for n in p.of(Notice)] == ["interrupt process (IAC IP)"]


def test_linemode_edit_whole_lines_from_the_client_are_commands():
    p = Play()
    p.server(IAC + DO + b"\x22")
    p.client(IAC + WILL + b"\x22")
    p.client(IAC + SB + b"\x22\x01\x07" + IAC + SE)
    p.server(b"vm login: ")
    p.client(b"tndemo\n")
    p.server(b"tndemo\r\nPassword: ")
    p.client(SECRET.encode() + b"\n")
    p.server(b"\r\n" + PROMPT)
    p.client(b"echo st-line\n")                  # the pty echoes the line
    p.server(b"echo st-line\r\n\x1b[?2004l\rst-line\r\n" + PROMPT)
    p.client(b"id\n")                            # no echo this time: the client echoed locally
    p.server(b"uid=1002(tndemo)\r\n" + PROMPT)
    p.close()
    assert p.commands() == ["echo st-line", "id"]
    assert p.outputs() == {0: "st-line", 1: "uid=1002(tndemo)"}


def test_session_picked_up_mid_shell_still_gives_commands_and_output():
    p = Play()
    p.server(b"\r\nst-earlier-output\r\n" + PROMPT)   # no negotiation, no login seen
    run_command(p, b"uname -a", b"Linux vm 6.1 x86_64 GNU/Linux\r\n")
    p.close()
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [(None, "unknown")]
    assert p.commands() == ["uname -a"]
    assert p.outputs()[0] == "Linux vm 6.1 x86_64 GNU/Linux"


def test_session_picked_up_while_the_user_name_is_typed_is_a_login_not_a_command():
    p = Play(picked_up=True)
    p.type(b"tndemo\r")
    p.server(b"\r\nPassword: ")
    p.type(b"wrong-one\r", echo=False)
    p.server(b"\r\n\r\nLogin incorrect\r\nvm login: ")
    p.type(b"tndemo\r")
    p.server(b"\r\nPassword: ")
    p.type(SECRET.encode() + b"\r", echo=False)
    p.server(b"\r\n" + PROMPT)
    run_command(p, b"whoami", b"tndemo\r\n")
    assert [(a.user, a.result) for a in p.of(AuthAttempt)] == [("tndemo", "failure"), ("tndemo", "success")]
    assert p.commands() == ["whoami"]


# ------------------------------------------------------------------------- damage
def test_gap_inside_an_iac_sequence_resynchronises_on_data():
    p = Play()
    login(p)
    p.server(IAC)                                # the rest of the command is lost
    assert p.d.gap("s2c", 2, p.t) == []          # the session layer records the Gap itself
    out = p.server(b"hello")
    assert out[0] == Output(ts=p.t, data=b"hello")


def test_gap_in_keystrokes_commands_still_come_from_the_echo():
    p = Play()
    login(p)
    p.type(b"echo st-")
    p.d.gap("c2s", 3, p.t)
    p.server(b"abc")                            # the echo of the lost keys is still there
    p.type(b"def\r")
    p.server(b"\r\nst-abcdef\r\n" + PROMPT)
    assert p.commands() == ["echo st-abcdef"]


# Run in a process of its own: tracemalloc counts every thread's allocations, and in a test worker
# other tests' background threads (a console's renders and live streams) allocate meanwhile.
_GARBAGE_MEMORY = """
import json, os, tracemalloc
from reconstruct.events import DecodeError
from reconstruct.telnet import TelnetDecoder
d = TelnetDecoder()
rnd = os.urandom(64 * 1024)
d.feed("s2c", b"\\xff\\xfb\\x01", 0.5)
errors = 0
tracemalloc.start()
for i in range(64):                      # 4 MiB each way, same chunk over and over
    for ev in (d.feed("s2c", rnd, 1.0 + i), d.feed("c2s", rnd[::-1], 1.0 + i)):
        errors += sum(isinstance(e, DecodeError) for e in ev)
    if i == 8:
        base = tracemalloc.get_traced_memory()[0]
grown = tracemalloc.get_traced_memory()[0] - base
print(json.dumps({"errors": errors, "grown": grown, "history": len(d.term.screen.history)}))
"""


def test_garbage_stream_costs_bounded_memory_and_at_most_one_error():
    out = subprocess.run([sys.executable, "-c", _GARBAGE_MEMORY], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=300)
    got = json.loads(out.stdout)
    assert got["errors"] <= 1
    assert got["history"] <= HISTORY_LINES
    assert got["grown"] < 8 * 1024 * 1024, got


