"""How busy a terminal recording is along its length: the activity strip beside the console's player.

Guacamole 1.6 shows an activity heatmap under its player and Teleport's users asked for the same:
in an 8-hour recording an auditor wants to see where the user typed and where the screen moved,
skip the idle hours and jump to the bursts. The strip is a fixed number of bins over the
recording's duration; each bin counts the keystroke events (``i``), the characters of output
(``o``, as stored in the recording: an escape sequence counts by its JSON-escaped length) and the
markers (``m``, tagged events) whose time falls in it.

One regular-expression pass over the asciicast bytes, no JSON parse per event: the events of a
recording are ours (``reconstruct/asciicast.py``) or any writer of ``[time, "code", data]``
lines; lines that do not look like events are passed over, as the player does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from reconstruct.seek import CastError, header_of

MAX_BINS = 2000
# ``[time, "code", data]``: the data's span gives its size without copying it
_EVENT = re.compile(rb'^\[\s*(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*,\s*"([oim])"\s*,\s*"(.*)"\s*\]\s*$', re.M)


@dataclass
class Activity:
    duration: float          # seconds, the time of the last event
    bin_seconds: float       # each bin's width
    input: list[int]         # keystroke events per bin
    output: list[int]        # output characters per bin
    markers: list[int]       # tagged events per bin

    def to_json(self) -> dict:
        return {"duration": self.duration, "bin_seconds": self.bin_seconds, "input": self.input,
                "output": self.output, "markers": self.markers}


def activity(cast: bytes, bins: int = 200) -> Activity:
    """The activity of one asciicast v2 recording in ``bins`` equal slices of its duration.
    Raises ``CastError`` when the bytes are not an asciicast v2 recording."""
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be between 1 and {MAX_BINS}")
    _header, pos = header_of(cast)
    events = [(float(m.group(1)), m.group(2), m.end(3) - m.start(3)) for m in _EVENT.finditer(cast, pos)]
    duration = max((t for t, _c, _n in events), default=0.0)
    width = duration / bins if duration > 0 else 1.0
    counts = {b"i": [0] * bins, b"o": [0] * bins, b"m": [0] * bins}
    last = bins - 1
    for t, code, size in events:
        i = int(t / width)
        if i > last:
            i = last
        counts[code][i] += size if code == b"o" else 1
    return Activity(round(duration, 6), width, counts[b"i"], counts[b"o"], counts[b"m"])


__all__ = ["Activity", "CastError", "activity", "MAX_BINS"]
