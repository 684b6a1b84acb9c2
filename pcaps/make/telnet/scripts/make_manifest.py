#!/usr/bin/env python3
"""Write pcaps/telnet/manifest.json: what each capture must yield, from the scenario scripts and
the generator's parameters only (never from the code under test).

usage: make_manifest.py ALTERATIONS.json > manifest.json

Parameters are read from the environment with gen.sh's defaults (MARK, TN_USER, TN_PASS, ...).
The typed content below mirrors scripts/t*.exp: when you change a scenario, change it here too.
ALTERATIONS.json (written by alter.py and cut_pickup.py during the same run) gives the exact
length of the deleted segment in t5a and the cut point of t6.
"""
import json
import os
import sys

E = os.environ.get
MARK = E("MARK", "st")
USER, PASS = E("TN_USER", "tndemo"), E("TN_PASS", "Pw-k7Qm2xR9vL")
USER2, PASS2 = E("TN_USER2", "tndemo2"), E("TN_PASS2", "Pw-h3Zt8nWq5Y")
BAD_USER, BAD_PASS = E("TN_BAD_USER", "nosuchuser"), E("TN_BAD_PASS", "Pw-b4Ns6jXc1U")
WRONG_PASS = E("TN_WRONG_PASS", "Pw-w9Ep3fKr7H")
SLEEP = E("TN_SLEEP", "5")
P_INETUTILS, P_BUSYBOX = int(E("P_INETUTILS", "2323")), int(E("P_BUSYBOX", "2324"))
alter = json.load(open(sys.argv[1]))

GEN = "pcaps/make/telnet/gen.sh"
INETUTILS_SERVER = "inetutils telnetd 2.4 (via inetutils-inetd), /bin/login, bash"
BUSYBOX_SERVER = "busybox telnetd 1.35.0 (-l /bin/login), bash"
INETUTILS_CLIENT = "inetutils telnet 2.4"
BUSYBOX_CLIENT = "busybox telnet 1.35.0"


def session(port=P_INETUTILS, user=USER, attempts=None, commands=(), not_commands=(), output=(),
            tags=(), command_tags=(), secrets=(PASS,), status="complete", gaps=(), picked_up=False,
            **extra):
    s = {
        "protocol": "telnet", "server_port": port,
        "user": user, "auth": "success",
        "auth_attempts": attempts if attempts is not None else [{"user": user, "result": "success"}],
        "commands": list(commands), "not_commands": list(not_commands),
        "output_contains": list(output),
        "tags": list(tags),
        "command_tags": [{"command": c, "tags": t} for c, t in command_tags],
        "gaps": list(gaps), "conflicts": 0, "picked_up": picked_up, "decrypted": None,
        "status": status, "files": [], "secrets": list(secrets),
        "window": {"cols": 80, "rows": 24},
    }
    s.update(extra)
    return s


def capture(description, sessions, made_by, oracle=True, **extra):
    c = {"description": description, "made_by": made_by, "oracle": oracle, "keys": None,
         "expect_error": None, "sessions": sessions}
    c.update(extra)
    return c


m = MARK
# --- t1: everything an interactive admin does; vi and top are full-screen / multi-line output
t1_commands = [f"echo {m}-t1-first", "id", "uname -a", f"echo {m}-t1-bs-ok", f"sleep {SLEEP}",
               "top -b -n1 | head -n 20", f"vi {m}-t1-vi.txt", "logout"]
t1_not = [USER,                                 # typed at the login prompt
          f"echo {m}-t1-cancelled",            # typed, then abandoned with Ctrl-C
          f"echo {m}-t1-bsXX-ok",              # the keys before line editing
          f"i{m}-t1-vi-text not saved", ":q!"]  # typed inside vi, not at the shell
t1_out = [f"{m}-t1-first", "uid=", "GNU/Linux", f"{m}-t1-bs-ok", "PID USER", f"{m}-t1-vi.txt"]
# vi draws the typed text with cursor movements between the characters: it is on the emulated
# screen (80x24), not contiguous in the raw output bytes
t1_session = dict(commands=t1_commands, not_commands=t1_not, output=t1_out,
                  screen_contains=[f"{m}-t1-vi-text not saved"],
                  server=INETUTILS_SERVER, client=INETUTILS_CLIENT, mode="character",
                  terminal_type="XTERM")

# --- t2: two failed logins, then a good one, then commands the default rule pack must tag
t2_tagged = [
    (f"cp /etc/hostname /tmp/{m}-copy", ["file-copy"]),
    (f"sed -i s/^/{m}-/ /etc/motd", ["config-change"]),          # fails: Permission denied
    (f"fwupdate -i /tmp/{m}-fw.bin", ["firmware-upgrade"]),      # fails: command not found
    ("sudo -n true", ["privilege-change"]),                      # fails: a password is required
    (f"rm -rf /tmp/{m}-copy", ["destructive"]),
]
t2_commands = [f"echo {m}-t2-after-fail", "whoami"] + [c for c, _ in t2_tagged] + ["exit"]
t2_out = ["Login incorrect", f"{m}-t2-after-fail", "Permission denied", "command not found",
          "sudo: a password is required", "logout"]
t2_tags = ["file-copy", "config-change", "firmware-upgrade", "privilege-change", "destructive"]
t2_session = dict(commands=t2_commands, not_commands=[BAD_USER, USER], output=t2_out,
                  tags=t2_tags, command_tags=t2_tagged,
                  server=INETUTILS_SERVER, client=INETUTILS_CLIENT, mode="character",
                  terminal_type="XTERM")

manifest = {}
manifest["t1_inetutils_full_session.pcap"] = capture(
    "inetutils telnet -> inetutils telnetd, character mode, remote echo: login, marker echo, id, uname, "
    "a typo fixed with two backspaces, sleep interrupted by Ctrl-C (server answers IAC DM, TCP urgent), "
    "a typed line abandoned with Ctrl-C, top (first 20 lines), vi (alternate screen, text typed and "
    "discarded with :q!), logout",
    [session(**t1_session)], f"{GEN} (scripts/t1_full.exp)")

manifest["t2_failed_then_success.pcap"] = capture(
    "inetutils both sides: unknown user (Login incorrect), known user with a wrong password (Login "
    "incorrect), then the right password; marker echo, whoami, then cp/sed -i on /etc/firmware tool/"
    "sudo/rm -rf for the event-tag rules (harmless for the unprivileged account), exit",
    [session(attempts=[{"user": BAD_USER, "result": "failure"}, {"user": USER, "result": "failure"},
                       {"user": USER, "result": "success"}],
             secrets=[BAD_PASS, WRONG_PASS, PASS], **t2_session)],
    f"{GEN} (scripts/t2_failed_login.exp)")

manifest["t3a_inetutils_linemode.pcap"] = capture(
    "inetutils telnet switched to LINEMODE (EDIT|TRAPSIG) at the login prompt: whole lines on the wire "
    "ending in bare LF, the typo is edited in the client (only the corrected line is sent), Ctrl-C "
    "becomes IAC IP + DO TIMING-MARK; the password goes as one segment, echoed only locally",
    [session(commands=[f"echo {m}-t3a-line", f"echo {m}-t3a-bs-ok", "id", f"sleep {SLEEP}", "exit"],
             not_commands=[f"echo {m}-t3a-bsXX-ok"],
             output=[f"{m}-t3a-line", f"{m}-t3a-bs-ok", "uid="],
             server=INETUTILS_SERVER, client=INETUTILS_CLIENT, mode="line", terminal_type="XTERM")],
    f"{GEN} (scripts/t3a_linemode.exp)")

manifest["t3b_busybox_server.pcap"] = capture(
    "inetutils telnet -> busybox telnetd (negotiates only ECHO, SGA, NAWS): Enter is CR NUL, backspace "
    "echoed as BS ESC[K; marker echo, id, typo fixed with backspaces, sleep interrupted by Ctrl-C, exit",
    [session(port=P_BUSYBOX,
             commands=[f"echo {m}-t3b-bbserver", "id", f"echo {m}-t3b-bs-ok", f"sleep {SLEEP}", "exit"],
             not_commands=[f"echo {m}-t3b-bsXX-ok"],
             output=[f"{m}-t3b-bbserver", "uid=", f"{m}-t3b-bs-ok"],
             server=BUSYBOX_SERVER, client=INETUTILS_CLIENT, mode="character", terminal_type=None)],
    f"{GEN} (scripts/t3b_busybox_server.exp)")

manifest["t3c_busybox_client_env_user.pcap"] = capture(
    "busybox telnet -l USER -> inetutils telnetd: WONT LINEMODE/BINARY, TTYPE xterm, NEW-ENVIRON IS "
    "USER=<user> (inetutils still prompts, the user name is typed as well), Enter is CR LF, raw Ctrl-C",
    [session(commands=[f"echo {m}-t3c-bbclient", f"echo {m}-t3c-bs-ok", f"sleep {SLEEP}", "uname -a",
                       "exit"],
             not_commands=[f"echo {m}-t3c-bsXX-ok"],
             output=[f"{m}-t3c-bbclient", f"{m}-t3c-bs-ok", "GNU/Linux"],
             server=INETUTILS_SERVER, client=BUSYBOX_CLIENT, mode="character", terminal_type="xterm",
             env_user=USER)],
    f"{GEN} (scripts/t3c_busybox_client.exp)")

manifest["t4_two_concurrent_sessions.pcap"] = capture(
    "two inetutils clients to inetutils telnetd at the same time (A = first connection, B = second): "
    "interleaved logins, two marker commands typed interleaved key by key, id in both, more commands "
    "interleaved command by command; A exits first",
    [session(commands=[f"echo {m}-t4-a-one", "id", f"echo {m}-t4-a-three", "exit"],
             not_commands=[f"echo {m}-t4-b-two", f"echo {m}-t4-b-five"],
             output=[f"{m}-t4-a-one", "uid=", f"{m}-t4-a-three"],
             server=INETUTILS_SERVER, client=INETUTILS_CLIENT, mode="character", terminal_type="XTERM"),
     session(user=USER2, secrets=[PASS2],
             commands=[f"echo {m}-t4-b-two", "id", f"echo {m}-t4-b-four && hostname", f"echo {m}-t4-b-five",
                       "exit"],
             not_commands=[f"echo {m}-t4-a-one", f"echo {m}-t4-a-three"],
             output=[f"{m}-t4-b-two", "uid=", f"{m}-t4-b-four", f"{m}-t4-b-five"],
             server=INETUTILS_SERVER, client=INETUTILS_CLIENT, mode="character", terminal_type="XTERM")],
    f"{GEN} (scripts/t4_concurrent.exp)")

# --- damaged copies of t1 (alter.py)
a = alter["t5a_loss_one_segment.pcap"]["deleted"]
t5a = dict(t1_session)
# the lost segment held the whole `id` output: it must not be invented
t5a["output"] = [o for o in t1_out if o != "uid="]
manifest["t5a_loss_one_segment.pcap"] = capture(
    "copy of t1 with the server->client segment that carries the `id` output deleted (never "
    "retransmitted; the client's ACK of it is still there): a gap of exactly %d bytes in s2c" % a["len"],
    [session(gaps=[{"direction": "s2c", "nbytes": a["len"]}], status="partial",
             output_not_contains=["uid="], **t5a)],
    f"{GEN} (scripts/alter.py)", oracle=False)

b = alter["t5b_reordered_keystrokes.pcap"]
manifest["t5b_reordered_keystrokes.pcap"] = capture(
    "copy of t1 with the second-to-last keystroke of `echo %s-t1-first` moved after the last one "
    "(timestamp + 1 us): keys %r and %r arrive swapped, the sequence order gives the real command"
    % (m, b["moved"]["payload"], b["now_after"]["payload"]),
    [session(**t1_session)], f"{GEN} (scripts/alter.py)", oracle=True, reordered=True)

manifest["t5c_duplicate_retransmission.pcap"] = capture(
    "copy of t1 with the segment carrying the output line %s-t1-bs-ok duplicated 200 ms later (same "
    "seq, same bytes: a spurious retransmission); the line must be reconstructed exactly once" % m,
    [session(output_once=[f"{m}-t1-bs-ok"], **t1_session)], f"{GEN} (scripts/alter.py)",
    oracle=True, duplicated=True)

# --- t6: t2 picked up mid-stream (cut_pickup.py)
c = alter["t6_pickup_without_syn.pcap"]
t6 = dict(t2_session)
manifest["t6_pickup_without_syn.pcap"] = capture(
    "t2 without its first %s s (no SYN, no option negotiation, no first login attempt): the capture "
    "starts as the user name of the second attempt is typed; the sensor must pick the connection up "
    "(client = ephemeral-port side) and the decoder must still see the wrong-password attempt (user "
    "typed before 'Password: '), the successful login, every command and every tag. Status 'partial' "
    "because the beginning is missing." % c["cut_seconds"][:4],
    [session(user=USER, picked_up=True, status="partial",
             attempts=[{"user": USER, "result": "failure"}, {"user": USER, "result": "success"}],
             secrets=[WRONG_PASS, PASS], **t6)],
    f"{GEN} (scripts/cut_pickup.py)", oracle=True)

json.dump(manifest, sys.stdout, indent=2)
print()
