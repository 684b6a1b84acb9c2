"""Render a PyRDP replay (what RDPDecoder.replay() returns) to MP4 with PyRDP's own renderer
(Qt, headless) and PyAV, and optionally a thumbnail strip (thumbnails.py) in the same pass.
Meant to run in its own process, one session per process:

    python -m reconstruct.rdp.video session.pyrdp out.mp4 [fps] [--thumbnails strip.json] [--every S]

The video keeps session time: second ``t`` of the video is the screen ``t`` seconds after the
first screen of the session (its capture time is the strip's ``origin``), so an event of the
timeline or a thumbnail seeks to the right frame. A frame is encoded only when the screen or the
pointer changed (variable frame rate), so an idle hour costs nothing to render.

PyRDP renders uncompressed and RLE/planar bitmaps and GDI orders (the decoder has already undone
MPPC bulk compression); it cannot render NCRUSH/XCRUSH, RDPGFX or surface-command graphics,
which the decoder reports as Metadata "video" = "not reconstructed: ...". Needs the optional
packages PySide6-Essentials, av and qimage2ndarray.
"""
from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction
from typing import Any

from reconstruct.rdp.thumbnails import Thumbnails


def _handler_class() -> type:
    """The renderer, defined once its optional imports are known to be there."""
    import av
    import qimage2ndarray
    from PySide6.QtGui import QColor, QPainter
    from pyrdp.convert.MP4EventHandler import MP4Image
    from pyrdp.enum import CapabilityType
    from pyrdp.player.RenderingEventHandler import RenderingEventHandler

    class SessionTimeVideo(RenderingEventHandler):
        # PyRDP's MP4EventHandler writes a frame per screen update on top of the frames for
        # elapsed time, so its video runs ahead of the session (35.6 s for a 24.7 s session);
        # here a frame's timestamp is the session time of the screen it shows
        def __init__(self, dst: str, fps: int, thumbs: Thumbnails | None) -> None:
            self.fps = fps
            self.thumbs = thumbs
            self.mp4 = av.open(dst, "w", options={"movflags": "+faststart"})
            self.stream = self.mp4.add_stream("h264", rate=fps)
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.gop_size = fps * 5  # a seek decodes at most 5 s of frames
            self.scale = False
            self.mouse = (0, 0)
            self.origin: int | None = None    # ms timestamp of the first screen
            self.t = 0.0                      # session time of the record being applied
            self.tick = 0
            self.last_pts = -1
            self.dirty_pts: int | None = None  # first tick whose screen no frame shows yet
            super().__init__(MP4Image())

        def onPDUReceived(self, pdu: Any) -> None:
            if self.origin is not None:
                self._advance((pdu.timestamp - self.origin) / 1000.0)
            super().onPDUReceived(pdu)
            if self.origin is None and self.imageHandler.screen is not None:
                self.origin = pdu.timestamp
                self._changed()

        def _advance(self, t: float) -> None:
            """Everything up to ``t`` showed the screen as it is now, before this record."""
            t = max(t, self.t)  # a record stamped earlier than the one before it changes nothing
            tick = int(t * self.fps)
            if self.dirty_pts is not None and tick > self.dirty_pts:
                self._frame(self.dirty_pts)
                self.dirty_pts = None
            if self.thumbs is not None:
                while self.thumbs.due(t):
                    self.thumbs.take(self._surface())
            self.t, self.tick = t, tick

        def _changed(self) -> None:
            if self.dirty_pts is None:
                self.dirty_pts = max(self.tick, self.last_pts + 1)

        def onFinishRender(self) -> None:
            self._changed()

        def onMousePosition(self, x: int, y: int) -> None:
            self.mouse = (x, y)
            self._changed()
            super().onMousePosition(x, y)

        def onCapabilities(self, caps: Any) -> None:
            bmp = caps[CapabilityType.CAPSTYPE_BITMAP]
            w, h = bmp.desktopWidth, bmp.desktopHeight
            self.imageHandler.resize(w, h)
            self.scale = w % 2 != 0 or h % 2 != 0   # H.264 in 4:2:0 needs even sizes
            self.stream.width, self.stream.height = w + w % 2, h + h % 2
            super().onCapabilities(caps)

        def _surface(self) -> Any:
            screen = self.imageHandler.screen
            surface = screen.scaled(self.stream.width, self.stream.height) if self.scale else screen.copy()
            p = QPainter(surface)
            p.setBrush(QColor.fromRgb(255, 255, 0, 180))
            p.drawEllipse(self.mouse[0], self.mouse[1], 5, 5)
            p.end()
            return surface

        def _frame(self, pts: int) -> None:
            surface = self._surface()  # rgb_view is a view into it: it must outlive the copy below
            frame = av.VideoFrame.from_ndarray(qimage2ndarray.rgb_view(surface), format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, self.fps)
            for packet in self.stream.encode(frame):
                self.mp4.mux(packet)
            self.last_pts = pts

        def finish(self) -> float:
            """Closes the file; returns the capture time (epoch s) of the video's second 0."""
            if self.origin is None:
                self.mp4.close()
                raise SystemExit("the replay never set up a screen: nothing to render")
            if self.dirty_pts is not None:
                self._frame(self.dirty_pts)
            # the last screen stays until the session's last record, so the video lasts as long
            self._frame(max(self.last_pts + 1, round(self.t * self.fps)))
            if self.thumbs is not None:
                self.thumbs.finish(self.t, self._surface())
            for packet in self.stream.encode():
                self.mp4.mux(packet)
            self.mp4.close()
            return self.origin / 1000.0

    return SessionTimeVideo


def render(src: str, dst: str, fps: int = 10, thumbnails: str | None = None, every: float = 5.0) -> int:
    """Returns the number of replay records rendered."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from reconstruct.rdp import pyrdp_fixes
    pyrdp_fixes.apply()
    try:
        from PySide6.QtWidgets import QApplication
        handler_class = _handler_class()
    except ImportError as e:
        raise SystemExit(f"mp4 export needs PySide6-Essentials, av and qimage2ndarray ({e.name} is missing)")
    from pyrdp.layer import PlayerLayer

    app = QApplication.instance() or QApplication([])   # PyRDP's glyph cache crashes without one
    thumbs = Thumbnails(every=every) if thumbnails else None
    handler = handler_class(dst, fps, thumbs)
    pdus: list = []
    player = PlayerLayer()
    player.createObserver(onPDUReceived=pdus.append)
    size = os.path.getsize(src)
    count = failed = 0
    last_error = ""
    with open(src, "rb") as f:
        while f.tell() < size:
            player.recv(f.read(8))
            player.recv(f.read(player.getDataLengthRequired()))
            for pdu in pdus:
                try:
                    handler.onPDUReceived(pdu)
                    count += 1
                except Exception as e:       # one unrenderable update is a blemish, not the end
                    failed += 1
                    last_error = f"{type(e).__name__}: {e}"
            pdus.clear()
    origin = handler.finish()
    if thumbs is not None and thumbnails:
        with open(thumbnails, "wb") as out:
            out.write(thumbs.document(origin))
    if failed:
        print(f"{failed} replay records could not be rendered (last: {last_error})", file=sys.stderr)
    del app
    return count


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m reconstruct.rdp.video")
    ap.add_argument("src", help="PyRDP replay")
    ap.add_argument("dst", help="MP4 to write")
    ap.add_argument("fps", nargs="?", type=int, default=10)
    ap.add_argument("--thumbnails", metavar="JSON", help="also write the thumbnail strip here")
    ap.add_argument("--every", type=float, default=5.0, help="seconds of session time between thumbnails")
    a = ap.parse_args(argv)
    n = render(a.src, a.dst, a.fps, a.thumbnails, a.every)
    print(f"{a.dst}: {n} replay records rendered", file=sys.stderr)
    sys.stderr.flush()
    # PyRDP's C extension and Qt can abort in interpreter teardown on Python 3.11 after the file
    # is complete; leave without teardown (the caller checks the file, not only the status)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
