"""A strip of small frames of an RDP session, taken while its video is rendered.

The strip is one JSON document (``rdp.thumbs.json`` in the vault), so a page shows it with one
audited read and no image endpoint of its own::

    {"format": "sessiontap-thumbnails/1",
     "origin": 1700000000.123,      # capture time (epoch s) of the video's second 0
     "every": 5.0,                  # seconds of session time between frames (after thinning)
     "width": 160, "height": 120,
     "thumbnails": [{"t": 0.0, "image": "data:image/jpeg;base64,..."}, ...]}

``t`` is seconds from the video's start, which is also the session time since ``origin``: the
video keeps session time (see video.py), so seeking the video to ``t`` shows that frame. The
first frame is at 0 and the last at the end of the session; a long session keeps at most
``limit`` frames (every other one is dropped and the interval doubled when the strip fills up).
"""
from __future__ import annotations

import base64
import json
from typing import Any

FORMAT = "sessiontap-thumbnails/1"


class Thumbnails:
    def __init__(self, every: float = 5.0, width: int = 160, limit: int = 100) -> None:
        self.every = every
        self.width = width
        self.limit = limit
        self.size = (0, 0)
        self.frames: list[tuple[float, str]] = []
        self.next_t = 0.0

    def due(self, t: float) -> bool:
        """Whether the screen as it is now is the frame for the next point at or before ``t``."""
        return t >= self.next_t

    def take(self, screen: Any) -> None:
        """Keeps a small copy of ``screen`` (a QImage) as the frame at ``next_t``."""
        at = self.next_t
        self._add(at, screen)
        self.next_t = at + self.every
        if len(self.frames) >= self.limit:
            # thinning keeps the strip evenly spaced however long the session runs
            self.frames = self.frames[::2]
            self.every *= 2
            self.next_t = self.frames[-1][0] + self.every

    def finish(self, t_end: float, screen: Any) -> None:
        """The session's last screen, unless a frame was taken at that very moment."""
        if screen is not None and (not self.frames or t_end - self.frames[-1][0] > 0.05):
            self._add(t_end, screen)

    def _add(self, t: float, screen: Any) -> None:
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt

        small = screen.scaledToWidth(self.width, Qt.TransformationMode.SmoothTransformation)
        self.size = (small.width(), small.height())
        for fmt, mime in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
            data = QByteArray()
            buf = QBuffer(data)
            buf.open(QIODevice.OpenModeFlag.WriteOnly)
            # a Qt without its JPEG plugin still writes PNG (built in)
            if small.save(buf, fmt, 75 if fmt == "JPEG" else -1):
                buf.close()
                self.frames.append((round(t, 3), f"data:{mime};base64,"
                                    + base64.b64encode(bytes(data.data())).decode()))
                return
            buf.close()
        raise RuntimeError("Qt could not encode a thumbnail (neither JPEG nor PNG)")

    def document(self, origin: float) -> bytes:
        return json.dumps({"format": FORMAT, "origin": origin, "every": self.every,
                           "width": self.size[0], "height": self.size[1],
                           "thumbnails": [{"t": t, "image": img} for t, img in self.frames]},
                          separators=(",", ":")).encode()
