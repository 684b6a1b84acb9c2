"""Render a PyRDP replay (what RDPDecoder.replay() returns) to MP4 with PyRDP's own renderer
(Qt, headless) and PyAV. Meant to run in its own process, one session per process:

    python -m reconstruct.rdp.video session.pyrdp out.mp4 [fps]

PyRDP renders uncompressed and RLE/planar bitmaps and GDI orders (the decoder has already undone
MPPC bulk compression); it cannot render NCRUSH/XCRUSH, RDPGFX or surface-command graphics,
which the decoder reports as Metadata "video" = "not reconstructed: ...". Needs the optional packages PySide6-Essentials,
av and qimage2ndarray.
"""
from __future__ import annotations

import os
import sys


def render(src: str, dst: str, fps: int = 10) -> int:
    """Returns the number of replay records rendered."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from reconstruct.rdp import pyrdp_fixes
    pyrdp_fixes.apply()
    try:
        from PySide6.QtWidgets import QApplication
        from pyrdp.convert.MP4EventHandler import MP4EventHandler
    except ImportError as e:
        raise SystemExit(f"mp4 export needs PySide6-Essentials, av and qimage2ndarray ({e.name} is missing)")
    from pyrdp.layer import PlayerLayer

    app = QApplication.instance() or QApplication([])   # PyRDP's glyph cache crashes without one
    handler = MP4EventHandler(dst, fps=fps)
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
    handler.cleanup()
    if failed:
        print(f"{failed} replay records could not be rendered (last: {last_error})", file=sys.stderr)
    del app
    return count


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m reconstruct.rdp.video in.pyrdp out.mp4 [fps]")
    n = render(argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 10)
    print(f"{argv[1]}: {n} replay records rendered", file=sys.stderr)
    sys.stderr.flush()
    # PyRDP's C extension and Qt can abort in interpreter teardown on Python 3.11 after the file
    # is complete; leave without teardown (the caller checks the file, not only the status)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
