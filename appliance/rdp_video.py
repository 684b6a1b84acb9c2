"""The video and thumbnail strip of an RDP session: rendered once from the session's sealed
PyRDP replay and sealed beside it, so the console and ``sessiontap export --format mp4`` share
one render.

Names follow the replay's version, so a session decoded again (``rdp.v2.pyrdp``) gets a video of
what it now holds instead of the old one: ``rdp.pyrdp`` -> ``rdp.mp4`` + ``rdp.thumbs.json``,
``rdp.v2.pyrdp`` -> ``rdp.v2.mp4`` + ``rdp.v2.thumbs.json``.

Rendering is PyRDP's player code (Qt + PyAV) in a child process (``python -m
reconstruct.rdp.video``): a crash, a leak or a hang there costs one render, never the caller.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from storage.recordings import latest_version

REPLAY = "rdp.pyrdp"
RENDER_TIMEOUT = 1800.0  # an 8-hour session renders in minutes (frames only where the screen changed)


class RenderError(Exception):
    """The child process made no usable video; the message is its last word."""


@dataclass(frozen=True)
class VideoNames:
    replay: str
    video: str
    thumbnails: str


def video_names(names: list[str]) -> VideoNames | None:
    """The artefacts of the video of the session's newest replay; None without a replay."""
    replay = latest_version(names, REPLAY)
    if replay is None:
        return None
    stem = replay[: -len(".pyrdp")]
    return VideoNames(replay, stem + ".mp4", stem + ".thumbs.json")


def why_no_video(session: dict[str, Any]) -> str | None:
    """The decoder's reason why no video can be made (RDPGFX, surface commands, ...), or None."""
    verdict = str((session.get("metadata") or {}).get("video") or "")
    if verdict.startswith("not reconstructed"):
        return verdict.partition(": ")[2] or verdict
    return None


def session_time_range(session: dict[str, Any]) -> tuple[float, float] | None:
    """The session's start and end (epoch s) for the sealed artefacts' manifests."""
    from storage.catalog import parse_time

    try:
        return parse_time(session["start"]), parse_time(session["end"])
    except (KeyError, TypeError, ValueError):
        return None


def render(replay: bytes, timeout: float = RENDER_TIMEOUT,
           started: Callable[[subprocess.Popen], None] | None = None) -> tuple[bytes, bytes]:
    """MP4 and thumbnail strip (JSON, see reconstruct/rdp/thumbnails.py) of a PyRDP replay.
    ``started`` receives the child process, so an owner that shuts down can end it."""
    with tempfile.TemporaryDirectory(prefix="sessiontap-rdp-") as tmp:
        src, mp4, strip = (os.path.join(tmp, n) for n in ("session.pyrdp", "session.mp4", "thumbs.json"))
        with open(src, "wb") as f:
            f.write(replay)
        proc = subprocess.Popen([sys.executable, "-m", "reconstruct.rdp.video", src, mp4, "--thumbnails", strip],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
        if started is not None:
            started(proc)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RenderError(f"rendering took longer than {timeout:.0f} s") from None
        # the child leaves with os._exit(0) once the files are complete, so the files decide
        if proc.returncode != 0 or not os.path.exists(mp4) or not os.path.getsize(mp4) or not os.path.exists(strip):
            last = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise RenderError(last)
        with open(mp4, "rb") as f1, open(strip, "rb") as f2:
            return f1.read(), f2.read()


def seal(vault: Any, sid: str, names: VideoNames, video: bytes, thumbnails: bytes, by: str,
         time_range: tuple[float, float] | None = None) -> None:
    """Seals both artefacts as one group. A render sealed meanwhile by someone else stays: a
    second render is not byte-identical, and recordings are never replaced."""
    from storage.vault.errors import RefusedError

    meta = {"time_range": time_range, "source": f"rendered from {names.replay} by {by}"}
    items = [(sid, name, data, meta) for name, data in ((names.video, video), (names.thumbnails, thumbnails))
             if not vault.exists(sid, name)]
    try:
        vault.put_many(items)
    except RefusedError:
        if not (vault.exists(sid, names.video) and vault.exists(sid, names.thumbnails)):
            raise
