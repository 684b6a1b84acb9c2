"""An investigator imports a capture with a long shell session: its seek index is sealed next to
the recording at import, so the console opens it at any second from the very first replay.

"Long" is a recording over ``seek.WHOLE_LIMIT`` (1 MB); the bundled captures are short, so the
limit is lowered here to make a real corpus session count as long."""
from __future__ import annotations

import hashlib

from reconstruct import seek
from appliance.home import Home
from appliance.importer import Importer
from corpus import PCAPS

CAPTURE = PCAPS / "telnet" / "t1_inetutils_full_session.pcap"


def test_a_long_recording_is_imported_with_its_seek_index(tmp_path, monkeypatch):
    monkeypatch.setattr(seek, "WHOLE_LIMIT", 2048)
    home = Home(tmp_path / "data", actor="investigator")
    with home.catalog() as catalog:
        res = Importer(home, actor="investigator").import_file(str(CAPTURE), catalog, home.store())
    (s,) = res.sessions
    vault = home.vault()
    assert {"terminal.cast", "terminal.cast.seek"} <= set(vault.names(s["id"]))
    cast = vault.get(s["id"], "terminal.cast", actor="investigator", purpose="test")
    index = seek.SeekIndex.from_bytes(vault.get(s["id"], "terminal.cast.seek", actor="investigator", purpose="test"))
    assert index.source_sha256 == hashlib.sha256(cast).hexdigest() and index.size == len(cast)
    # a window late in the session is a valid recording of its own that covers that second
    t = index.duration * 0.9
    w = seek.window(cast, index, t, window_bytes=256)
    assert w.cast.startswith(b'{"version": 2') and w.start <= t <= w.end and index.keyframes


def test_a_short_recording_gets_no_index(tmp_path):
    home = Home(tmp_path / "data", actor="investigator")
    with home.catalog() as catalog:
        res = Importer(home, actor="investigator").import_file(str(CAPTURE), catalog, home.store())
    (s,) = res.sessions
    assert "terminal.cast.seek" not in home.vault().names(s["id"])
