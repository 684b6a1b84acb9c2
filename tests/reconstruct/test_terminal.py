"""Playbooks for the shared terminal: keys from the client, screen bytes from the server ->
the commands that really ran.

Server bytes are what bash 5.2 / readline sent on a real pty for the same keys (recorded
once with a pty probe), so line editing is judged the way a real shell did it.
"""
from __future__ import annotations

from reconstruct.events import CommandEntered, CommandOutput
from reconstruct.terminal import HISTORY_LINES, MAX_OUTPUT_CHARS, Terminal

PROMPT = b"\x1b[?2004hu@h:~$ "
RUN = b"\r\n\x1b[?2004l\r"          # bash's echo of Enter


class Shell:
    def __init__(self, cols: int = 80, rows: int = 24) -> None:
        self.term = Terminal(cols, rows)
        self.events: list = []
        self.t = 0.0
        self.server(PROMPT)

    def server(self, data: bytes) -> None:
        self.t += 0.01
        self.events += self.term.output(data, self.t)

    def keys(self, data: bytes) -> None:
        self.t += 0.01
        self.events += self.term.keys(data, self.t)

    def session(self, *steps: tuple[bytes, bytes]) -> None:
        """Each step: (what the user typed, what the server answered)."""
        for typed, answer in steps:
            self.keys(typed)
            self.server(answer)

    def close(self) -> None:
        self.events += self.term.close(self.t + 1)

    def commands(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, CommandEntered)]

    def outputs(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, CommandOutput)]


def typed(s: Shell, text: bytes) -> None:
    """Printable keys one by one, each echoed."""
    for ch in text:
        s.keys(bytes((ch,)))
        s.server(bytes((ch,)))


def test_backspaces_give_the_corrected_command():
    s = Shell()
    typed(s, b"echo abXX")
    s.session((b"\x7f", b"\x08\x1b[K"), (b"\x7f", b"\x08\x1b[K"))
    typed(s, b"-ok")
    s.session((b"\r", RUN + b"ab-ok\r\n" + PROMPT))
    assert s.commands() == ["echo ab-ok"]


def test_ctrl_u_discards_what_was_typed_before_it():
    s = Shell()
    typed(s, b"echo junk")
    s.session((b"\x15", b"\r" + b"\x1b[C" * 7 + b"\x1b[K"))
    typed(s, b"echo kept")
    s.session((b"\r", RUN + b"kept\r\n" + PROMPT))
    assert s.commands() == ["echo kept"]


def test_history_recall_with_up_arrow_gives_the_recalled_command():
    s = Shell()
    typed(s, b"echo kept")
    s.session((b"\r", RUN + b"kept\r\n" + PROMPT))
    s.session((b"\x1b[A", b"echo kept"), (b"\r", RUN + b"kept\r\n" + PROMPT))
    assert s.commands() == ["echo kept", "echo kept"]


def test_tab_completion_gives_the_completed_path():
    s = Shell()
    typed(s, b"ls /et")
    s.session((b"\t", b"c/"), (b"\r", RUN + b"adduser.conf\tissue\r\n" + PROMPT))
    s.close()
    assert s.commands() == ["ls /etc/"]
    assert s.outputs() == ["adduser.conf    issue"]


def test_ctrl_c_on_a_typed_line_means_it_never_ran():
    s = Shell()
    typed(s, b"echo never")
    s.session((b"\x03", b"^C\x1b[?2004l\r\x1b[?2004h\x1b[?2004l\r\r\n" + PROMPT))
    typed(s, b"id")
    s.session((b"\r", RUN + b"uid=1000(u)\r\n" + PROMPT))
    assert s.commands() == ["id"]


def test_ctrl_c_on_a_running_command_keeps_the_command():
    s = Shell()
    typed(s, b"sleep 30")
    s.session((b"\r", RUN), (b"\x03", b"^C\r\n" + PROMPT))
    s.close()
    assert s.commands() == ["sleep 30"]
    assert s.outputs() == ["^C"]


def test_command_wrapped_over_two_rows_is_read_whole():
    s = Shell()
    cmd = b"echo " + b"x" * 90
    typed(s, cmd[:73])                                  # prompt (7) + 73 = the 80 columns
    s.server(b" \r")                                    # bash's forced wrap
    typed(s, cmd[73:])
    s.session((b"\r", RUN + b"x" * 90 + b"\r\n" + PROMPT))
    assert s.commands() == [cmd.decode()]


def test_full_screen_program_keys_are_not_commands_and_screen_comes_back():
    s = Shell()
    typed(s, b"vi notes.txt")
    s.session((b"\r", RUN + b"\x1b[?1049h\x1b[22;0;0t\x1b[H\x1b[2J~\r\n~\r\n\"notes.txt\" [New]"))
    s.session((b"i", b""), (b"some text", b"some text"), (b"\x1b", b""), (b":q!\r", b":q!"))
    s.server(b"\x1b[?1049l\x1b[23;0;0t" + PROMPT)
    typed(s, b"echo back")
    s.session((b"\r", RUN + b"back\r\n" + PROMPT))
    s.close()
    assert s.commands() == ["vi notes.txt", "echo back"]
    assert s.outputs() == ["", "back"]
    assert not s.term.full_screen


def test_answer_typed_to_a_program_is_not_a_command():
    s = Shell()
    typed(s, b"rm -i f")
    s.session((b"\r", RUN + b"rm: remove regular file 'f'? "))
    s.session((b"y", b"y"), (b"\r", b"\r\n" + PROMPT))
    typed(s, b"ls")
    s.session((b"\r", RUN + PROMPT))
    assert s.commands() == ["rm -i f", "ls"]


def test_line_mode_lines_from_the_client_with_and_without_server_echo():
    s = Shell()
    s.events += s.term.line("echo one", 1.0)
    s.server(b"echo one" + RUN + b"one\r\n" + PROMPT)    # echoed by the server's pty
    s.events += s.term.line("echo twoX\x7f", 2.0)         # an erase the client left in
    s.server(b"two\r\n" + PROMPT)                        # echoed locally by the client
    s.close()
    assert s.commands() == ["echo one", "echo two"]
    assert s.outputs() == ["one", "two"]


def test_output_longer_than_the_history_is_cut_and_marked():
    s = Shell(rows=24)
    typed(s, b"seq 5000")
    s.keys(b"\r")
    s.server(RUN + b"".join(b"%d\r\n" % i for i in range(1, 5001)) + PROMPT)
    s.close()
    out = s.outputs()[0]
    assert out.startswith("[... ") and "lines not kept" in out.splitlines()[0]
    assert out.endswith("\n5000") and len(out) <= MAX_OUTPUT_CHARS + 40
    assert len(s.term.screen.history) == HISTORY_LINES


def test_hostile_escape_sequences_stay_bounded_and_do_not_break_the_screen():
    s = Shell()
    s.server(b"\x1b[" + b"9" * 200_000 + b"m")          # CSI digits without end
    s.server(b"\x1b]0;" + b"T" * 200_000)              # OSC title without terminator
    s.server(b"\x1b[?5;7m")                             # private SGR: pyte itself would raise
    s.server(b"\r\n" + PROMPT)
    typed(s, b"id")
    s.session((b"\r", RUN + b"uid=0\r\n" + PROMPT))
    assert s.commands() == ["id"]


def test_picked_up_mid_line_without_prompt_still_gives_following_commands():
    s = Terminal()
    ev = []
    ev += s.keys(b"d", 1)
    ev += s.output(b"d", 1)
    ev += s.keys(b"\r", 2)
    ev += s.output(b"\r\n/home/u\r\n" + PROMPT, 2)
    for ch in b"whoami":
        ev += s.keys(bytes((ch,)), 3)
        ev += s.output(bytes((ch,)), 3)
    ev += s.keys(b"\r", 4)
    ev += s.output(RUN + b"u\r\n" + PROMPT, 4)
    assert [e.text for e in ev if isinstance(e, CommandEntered)][-1] == "whoami"


def test_keys_typed_before_their_echo_arrives_are_read_at_the_line_break():
    s = Shell()
    typed(s, b"id")
    s.keys(b"\r")
    s.keys(b"uname -a\r")                               # the server's answer is held back
    s.server(RUN + b"uid=0\r\n" + PROMPT + b"uname -a" + RUN + b"Linux\r\n" + PROMPT)
    s.close()
    assert s.commands() == ["id", "uname -a"]
    assert s.outputs() == ["uid=0", "Linux"]


def test_after_lost_server_output_the_next_line_counts_even_without_its_prompt():
    s = Shell()
    typed(s, b"sudo -n true")
    s.session((b"\r", RUN))
    s.term.gap()                                        # "sudo: ...\r\n" + prompt were lost
    typed(s, b"rm -rf /tmp/x")
    s.session((b"\r", RUN + PROMPT))
    assert s.commands() == ["sudo -n true", "rm -rf /tmp/x"]
