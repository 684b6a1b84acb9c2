"""Play an asciicast v2 recording in a terminal, like ``asciinema play``."""
from __future__ import annotations

import json
import time
from typing import BinaryIO, Iterator


def frames(cast: bytes) -> tuple[dict, Iterator[tuple[float, str, str]]]:
    lines = cast.decode("utf-8").splitlines()
    header = json.loads(lines[0]) if lines else {}

    def it() -> Iterator[tuple[float, str, str]]:
        for line in lines[1:]:
            if line.strip():
                t, code, data = json.loads(line)
                yield float(t), code, data
    return header, it()


def play(cast: bytes, out: BinaryIO, speed: float = 1.0, idle_limit: float | None = None,
         start: float = 0.0, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
    """Write the "o" frames to ``out`` with the recorded pauses (divided by ``speed``, each
    capped at ``idle_limit``). Frames before ``start`` are written at once, so the screen is
    right when timed play begins."""
    header, it = frames(cast)
    idle_limit = idle_limit if idle_limit is not None else header.get("idle_time_limit")
    prev = 0.0
    for t, code, data in it:
        if code != "o":
            continue
        if t > start:
            pause = t - max(prev, start)
            if idle_limit is not None:
                pause = min(pause, idle_limit)
            if pause > 0 and speed > 0:
                sleep(pause / speed)
        prev = t
        out.write(data.encode("utf-8"))
        out.flush()


def final_screen(cast: bytes) -> list[str]:
    """The screen as it looked at the end of the recording (emulated with pyte)."""
    import pyte

    header, it = frames(cast)
    cols, rows = int(header.get("width", 80)), int(header.get("height", 24))
    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    for _t, code, data in it:
        if code == "o":
            stream.feed(data)
        elif code == "r":
            c, r = data.split("x")
            screen.resize(int(r), int(c))
    return [line.rstrip() for line in screen.display]
