"""Terminal events -> an asciicast v2 recording (what ``asciinema play`` and its web player read).

asciicast v2 is newline-delimited JSON: one header object, then ``[time, code, data]``
events with time in seconds from the start. We write:

* ``"o"`` for every ``Output`` (what the user's terminal received),
* ``"i"`` for every ``Input`` in its redacted form (typed passwords are ``*``),
* ``"r"`` for every ``Resize`` (``"COLSxROWS"``),
* ``"m"`` markers for ``Tagged`` events (``"destructive: rm -rf /x"``), so a player can jump
  to them.

Header width/height come from the first ``Resize`` (80x24 when there is none); ``env.TERM``
from the terminal type the client announced. Bytes are decoded as UTF-8 with an incremental
decoder per direction (a character split over two segments stays whole); invalid bytes
become U+FFFD, since asciicast data is text. Times never go backwards (the two directions of
a capture can interleave by a few microseconds).
"""
from __future__ import annotations

import codecs
import json
from json.encoder import encode_basestring  # the C escaper behind json.dumps(ensure_ascii=False)
from typing import Iterable, Protocol

from reconstruct.events import Event, Input, Output, Resize, Tagged


class _RecordLike(Protocol):
    """What ``render`` needs from a session record (``reconstruct.session.SessionRecord``)."""
    start: float
    protocol: str
    user: str | None
    server_ip: str
    server_port: int
    metadata: dict[str, str]
    terminal: list[Event]


def to_asciicast(events: Iterable[Event], *, start: float | None = None, title: str | None = None,
                 term: str | None = None, width: int | None = None, height: int | None = None) -> bytes:
    """Events (any order-preserving iterable; non-terminal events are skipped) -> .cast bytes."""
    events = [e for e in events if isinstance(e, (Output, Input, Resize, Tagged))]
    if start is None:
        start = events[0].ts if events else 0.0
    first_resize = next((e for e in events if isinstance(e, Resize)), None)
    header: dict[str, object] = {
        "version": 2,
        "width": width or (first_resize.cols if first_resize else 80),
        "height": height or (first_resize.rows if first_resize else 24),
        "timestamp": int(start),
        "env": {"TERM": (term or "xterm").lower()},
    }
    if title:
        header["title"] = title
    lines = [json.dumps(header, ensure_ascii=False)]
    decoders = {Output: codecs.getincrementaldecoder("utf-8")("replace"),
                Input: codecs.getincrementaldecoder("utf-8")("replace")}
    codes = {Output: "o", Input: "i"}
    append = lines.append
    last = 0.0
    for e in events:
        t = round(e.ts - start, 6)
        if t > last:
            last = t
        else:
            t = last
        kind = type(e)
        dec = decoders.get(kind)
        if dec is not None:
            raw = e.data  # type: ignore[attr-defined]
            # nothing held back from the last event and all ASCII (nearly every keystroke and
            # echo): what the decoder would give, without its Python-level buffering
            data = raw.decode("ascii") if not dec.buffer and raw.isascii() else dec.decode(raw)
            code = codes[kind]
        elif isinstance(e, (Output, Input)):
            code, data = ("o", decoders[Output].decode(e.data)) if isinstance(e, Output) \
                else ("i", decoders[Input].decode(e.data))
        elif isinstance(e, Resize):
            code, data = "r", f"{e.cols}x{e.rows}"
        else:
            code, data = "m", f"{e.tag}: {e.text}"[:200]  # type: ignore[attr-defined]
        if data:
            # what json.dumps([t, code, data], ensure_ascii=False) writes, without its per-call
            # encoder set-up (a recording has one line per keystroke and echo)
            append(f'[{t!r}, "{code}", {encode_basestring(data)}]')
    return ("\n".join(lines) + "\n").encode("utf-8")


def render(rec: _RecordLike) -> bytes:
    """One session record's terminal events -> .cast bytes, titled "user@server:port (protocol)"."""
    who = f"{rec.user}@" if rec.user else ""
    title = f"{who}{rec.server_ip}:{rec.server_port} ({rec.protocol})"
    return to_asciicast(rec.terminal, start=rec.start, title=title, term=rec.metadata.get("terminal"))
