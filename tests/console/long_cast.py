"""A long shell session as an asciicast v2, made up but shaped like the real ones the importer
writes (``reconstruct/asciicast.py``): a coloured prompt, commands echoed a key at a time with
``i`` events beside them, tables and logs, a ``top``-like full-screen program on the alternate
screen with a scroll region and a hidden cursor, an editor, line-drawing boxes, wide
characters, 256 colours, window resizes, ``clear``, markers, and long idle pauses.

Deterministic for a seed, so a test can say what the screen shows at any second by replaying
the cast itself through the emulator. Used by tests/console (30 minutes) and by
benchmarks/console.py (8 hours, tens of MB).
"""
from __future__ import annotations

import json
import random

PROMPT = "\x1b[1;32moperator@plc-gw\x1b[0m:\x1b[1;34m~/cell-{cell}\x1b[0m$ "


def shell_session(seconds: float, *, seed: int = 7, width: int = 120, height: int = 40,
                  marker_every: float = 600.0) -> bytes:
    """``seconds`` of a session. Every ``marker_every`` seconds the user runs
    ``echo checkpoint-<second>``, so a test can find a known line at a known time."""
    r = random.Random(seed)
    lines = [json.dumps({"version": 2, "width": width, "height": height, "timestamp": 1700000000,
                         "env": {"TERM": "xterm"}, "title": "operator@10.20.0.5:23 (telnet)"})]
    t = 0.5
    cell = 1
    cols, rows = width, height
    next_marker = marker_every

    def emit(code: str, data: str, dt: float = 0.0) -> None:
        nonlocal t
        t += dt
        lines.append(json.dumps([round(t, 6), code, data], ensure_ascii=False))

    def type_command(cmd: str) -> None:
        for ch in cmd:
            emit("i", ch, r.uniform(0.05, 0.25))
            emit("o", ch, 0.002)
        emit("i", "\r", r.uniform(0.1, 0.4))
        emit("o", "\r\n", 0.003)

    def prompt() -> None:
        emit("o", PROMPT.format(cell=cell), 0.01)

    def table() -> None:
        out = ["\x1b[1mInterface   Status  Speed   RX packets   TX packets\x1b[0m\r\n"]
        for n in range(r.randint(8, 30)):
            up = r.random() > 0.1
            status = "\x1b[32mup\x1b[0m    " if up else "\x1b[31mdown\x1b[0m  "
            out.append(f"ge-0/0/{n:<5} {status}  1000M  {r.randint(0, 10**9):>11}  {r.randint(0, 10**9):>11}\r\n")
        emit("o", "".join(out), r.uniform(0.05, 0.3))

    def log_tail() -> None:
        for _ in range(r.randint(50, 400)):
            lvl = r.choice(["INFO", "INFO", "INFO", "WARN", "ERR "])
            color = {"INFO": "0", "WARN": "33", "ERR ": "1;31"}[lvl]
            emit("o", f"Nov 24 {r.randint(0, 23):02}:{r.randint(0, 59):02}:{r.randint(0, 59):02} plc-gw "
                      f"\x1b[{color}m{lvl}\x1b[0m modbusd[{r.randint(100, 9999)}]: unit {r.randint(1, 247)} "
                      f"register {r.randint(0, 65535)} = {r.randint(0, 65535)}\r\n", r.uniform(0.005, 0.2))
        emit("o", "^C\r\n", r.uniform(0.5, 3))

    def listing() -> None:
        out = []
        for n in range(r.randint(5, 25)):
            kind = r.choice(["\x1b[01;34m", "\x1b[0m", "\x1b[01;32m", "\x1b[38;5;208m"])
            out.append(f"-rw-r--r-- 1 operator ops {r.randint(10, 99999):>6} Nov 24 10:{n:02} "
                       f"{kind}file-{n}.cfg\x1b[0m\r\n")
        emit("o", "".join(out), 0.05)

    def top() -> None:
        emit("o", "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J", 0.1)
        for frame in range(r.randint(3, 15)):
            head = (f"\x1b[H\x1b[7m top - 10:{frame:02}:00 up 41 days, load average: {r.random():.2f} "
                    f"{r.random():.2f}".ljust(cols) + "\x1b[27m")
            body = [f"\x1b[{y + 3};1H{r.randint(100, 9999):>6} operator  20   0 {r.randint(1000, 99999):>8} "
                    f"\x1b[38;5;{r.randint(16, 231)}m{r.random() * 100:5.1f}\x1b[0m  modbusd-{y}\x1b[K"
                    for y in range(min(rows - 4, 20))]
            emit("o", head + "\x1b[3;" + str(rows) + "r" + "".join(body) + "\x1b[r", r.uniform(1, 3))
        emit("o", "\x1b[?25h\x1b[?1049l", r.uniform(0.5, 2))

    def editor() -> None:
        emit("o", "\x1b[?1049h\x1b[H\x1b[2J" + "".join(f"\x1b[{y + 1};1H\x1b[34m~\x1b[0m" for y in range(1, rows - 1))
             + f"\x1b[{rows};1H\"unit.cfg\" 12L, 301B\x1b[1;1H", 0.2)
        for n in range(r.randint(2, 6)):
            text = f"setpoint.{n} = {r.randint(0, 500)}"
            for ch in text:
                emit("i", ch, r.uniform(0.05, 0.2))
                emit("o", ch, 0.002)
            emit("o", "\r\n", 0.1)
        emit("o", f"\x1b[{rows};1H\x1b[K:wq\r\x1b[?1049l", r.uniform(1, 3))

    def boxes() -> None:
        w = r.randint(10, 40)
        emit("o", "\x1b(0lqqq" + "q" * w + "k\r\nx\x1b(B status OK \x1b(0" + " " * (w - 9) + "x\r\nmqqq"
             + "q" * w + "j\x1b(B\r\n", 0.05)

    def wide() -> None:
        emit("o", "\u8b66\u544a: \u6e29\u5ea6\u30bb\u30f3\u30b5 " + str(r.randint(1, 99)) + " \u2103 \u2714\r\n", 0.05)

    def resize() -> None:
        nonlocal cols, rows
        cols, rows = r.choice([(120, 40), (132, 43), (100, 30)])
        emit("r", f"{cols}x{rows}", 0.1)

    while t < seconds:
        prompt()
        if t >= next_marker:
            mark = int(next_marker)
            type_command(f"echo checkpoint-{mark}")
            emit("o", f"checkpoint-{mark}\r\n", 0.01)
            emit("m", f"checkpoint: {mark}", 0.0)
            next_marker += marker_every
            continue
        what = r.choices(["table", "log", "ls", "top", "vi", "box", "wide", "clear", "resize", "idle"],
                         [5, 8, 5, 1, 1, 2, 1, 1, 0.3, 0.5])[0]
        cmd = {"table": "show interfaces", "log": "tail -f /var/log/modbusd.log", "ls": "ls --color -l",
               "top": "top", "vi": "vi unit.cfg", "box": "status --box", "wide": "cat alarm.txt",
               "clear": "clear", "resize": "", "idle": ""}[what]
        if cmd:
            type_command(cmd)
        if what == "table":
            table()
        elif what == "log":
            log_tail()
        elif what == "ls":
            listing()
        elif what == "top":
            top()
        elif what == "vi":
            editor()
        elif what == "box":
            boxes()
        elif what == "wide":
            wide()
        elif what == "clear":
            emit("o", "\x1b[H\x1b[2J", 0.01)
        elif what == "resize":
            emit("o", "\r\n", 0.01)
            resize()
        else:
            emit("o", "\r\n", r.uniform(20, 180))  # the user walked away
        if r.random() < 0.05:
            cell = r.randint(1, 9)
    return ("\n".join(lines) + "\n").encode()
