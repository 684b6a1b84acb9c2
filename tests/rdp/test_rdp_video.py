"""The analyst replays what the screen showed: the decoder's PyRDP replay opens with PyRDP's
reader (the file pyrdp-player takes) with the login name but no password, and for a session
whose graphics PyRDP can render (rdp-video.pcap: xrdp without bulk compression) the MP4 shows
the session's desktop (gen.sh's session.sh paints the root window #2f4f6f) and the white xterm."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from rdp_corpus import MANIFEST, decoded


def test_replay_opens_in_pyrdp_and_keeps_no_password():
    from pyrdp.enum import PlayerPDUType
    from pyrdp.parser import ClientInfoParser
    from pyrdp.player import Replay

    data = decoded("rdp-video.pcap").decoders[0].replay()
    replay = Replay(io.BytesIO(data))
    kinds = {}
    from pyrdp.layer import PlayerLayer
    seen = []
    layer = PlayerLayer()
    layer.createObserver(onPDUReceived=seen.append)
    f = io.BytesIO(data)
    while f.tell() < len(data):
        layer.recv(f.read(8))
        layer.recv(f.read(layer.getDataLengthRequired()))
    for pdu in seen:
        kinds[pdu.header] = kinds.get(pdu.header, 0) + 1
    assert replay.duration > 5
    assert kinds[PlayerPDUType.CLIENT_DATA] == 1 and kinds[PlayerPDUType.CONNECTION_CLOSE] == 1
    assert kinds[PlayerPDUType.FAST_PATH_INPUT] > 10
    assert kinds[PlayerPDUType.FAST_PATH_OUTPUT] + kinds[PlayerPDUType.SLOW_PATH_PDU] > 10
    info = ClientInfoParser().parse(next(p.payload for p in seen if p.header == PlayerPDUType.CLIENT_INFO))
    assert info.username.rstrip("\0") == MANIFEST["rdp-video.pcap"]["sessions"][0]["user"]
    assert info.password.rstrip("\0") == ""


def test_mp4_shows_the_desktop_and_the_terminal(tmp_path):
    pytest.importorskip("PySide6", reason="optional video dependencies (PySide6-Essentials, av, qimage2ndarray)")
    av = pytest.importorskip("av")
    src, dst = tmp_path / "s.pyrdp", tmp_path / "s.mp4"
    src.write_bytes(decoded("rdp-video.pcap").decoders[0].replay())
    p = subprocess.run([sys.executable, "-m", "reconstruct.rdp.video", str(src), str(dst)],
                       capture_output=True, text=True, timeout=300)
    assert dst.exists() and dst.stat().st_size > 1000, p.stderr
    with av.open(str(dst)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) > 20 and frames[-1].shape == (600, 800, 3)
    mid = frames[len(frames) * 2 // 3].astype(int)
    desktop = mid[400:590, 700:790].reshape(-1, 3).mean(axis=0)
    assert all(abs(a - b) < 12 for a, b in zip(desktop, (0x2F, 0x4F, 0x6F))), desktop
    xterm = mid[60:170, 400:640].reshape(-1, 3).mean(axis=0)           # console xterm at +10+10
    assert all(v > 235 for v in xterm), xterm


def test_bulk_compressed_session_renders_what_was_typed(tmp_path):
    """rdp-tls13.pcap: xrdp compressed 172 server PDUs with MPPC; after decompression the MP4 shows
    the "work" xterm that the session opened at +40+230 (80x16) and the desktop around it."""
    pytest.importorskip("PySide6", reason="optional video dependencies (PySide6-Essentials, av, qimage2ndarray)")
    av = pytest.importorskip("av")
    src, dst = tmp_path / "s.pyrdp", tmp_path / "s.mp4"
    src.write_bytes(decoded("rdp-tls13.pcap").decoders[0].replay())
    p = subprocess.run([sys.executable, "-m", "reconstruct.rdp.video", str(src), str(dst)],
                       capture_output=True, text=True, timeout=300)
    assert "could not be rendered" not in p.stderr, p.stderr
    with av.open(str(dst)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    late = frames[int(len(frames) * 0.86)].astype(int)        # before the final `exit`s
    work = late[420:500, 300:660].reshape(-1, 3).mean(axis=0)  # lower part of the work xterm: blank
    assert all(v > 235 for v in work), work
    desktop = late[520:590, 700:790].reshape(-1, 3).mean(axis=0)
    assert all(abs(a - b) < 12 for a, b in zip(desktop, (0x2F, 0x4F, 0x6F))), desktop
    text_rows = late[235:345, 45:400]                          # the work xterm's lines of text
    assert (text_rows.sum(axis=2) < 200).mean() > 0.02         # dark glyph pixels are there
