"""The user's story on the command line: import an RDP capture with its key log or server key,
list RDP sessions, read the transcript, export the PyRDP replay and, where PyRDP can render the
graphics, an MP4; where it cannot, the refusal says why."""
from __future__ import annotations

import hashlib

import pytest

from rdp_corpus import MANIFEST, RDP


def _import(cli, name):
    entry = MANIFEST[name]
    args = ["--keys", str(RDP / entry["keys"])] if entry["keys"] else \
           ["--rdp-server-key", str(RDP / entry["rdp_server_key"])]
    cli("import", "-q", str(RDP / name), *args)
    return args


def test_import_list_transcript(cli):
    _import(cli, "rdp-stdsec.pcap")
    _import(cli, "rdp-tls12-rsa.pcap")
    sessions = cli.json_lines("sessions", "--protocol", "rdp", "--json")
    assert len(sessions) == 2 and {s["user"] for s in sessions} == {"rdpdemo"}
    for s in sessions:
        detail = cli.json("show", s["id"], "--json")
        name = "rdp-stdsec.pcap" if detail["metadata"]["client_name"] == "DEV-STDSEC" else "rdp-tls12-rsa.pcap"
        want = MANIFEST[name]["sessions"][0]
        assert [c["text"] for c in detail["commands"]] == want["commands"]
        assert detail["metadata"]["resolution"] == want["resolution"]
        text = cli("transcript", s["id"]).stdout.decode()
        for c in want["commands"]:
            assert c in text
        for clip in want["clipboard"]:
            assert f"{clip['direction']}: {clip['text']}" in text


def test_export_replay_and_video(cli, tmp_path):
    args = _import(cli, "rdp-video.pcap")
    sid = cli.json_lines("sessions", "--json")[0]["id"]
    out = tmp_path / "s.pyrdp"
    cli("export", sid, "--format", "pyrdp", "-o", str(out), *args)
    assert out.stat().st_size > 10000
    pytest.importorskip("PySide6", reason="optional video dependencies")
    mp4 = tmp_path / "s.mp4"
    cli("export", sid, "--format", "mp4", "-o", str(mp4), *args)
    assert mp4.read_bytes()[4:8] == b"ftyp"
    # the render was sealed: the next export (and the console) reads it instead of rendering again
    again = tmp_path / "again.mp4"
    cli("export", sid, "--format", "mp4", "-o", str(again))
    assert again.read_bytes() == mp4.read_bytes()
    trail = cli("audit-log", "--json").stdout.decode()
    assert f"{sid}/rdp.mp4" in trail and "export rdp video" in trail


def test_bulk_compressed_session_exports_and_keyless_export_says_why(cli, tmp_path):
    # imported without its key log: no replay could be built, and export says so
    cli("import", "-q", str(RDP / "rdp-tls13.pcap"))
    sid = cli.json_lines("sessions", "--json")[0]["id"]
    p = cli("export", sid, "--format", "pyrdp", "-o", str(tmp_path / "x.pyrdp"), check=False)
    assert p.returncode != 0 and b"no RDP replay" in p.stderr
    # the key arrives: the replay is built and kept, and exports need no key any more
    cli("keys", "add", str(RDP / MANIFEST["rdp-tls13.pcap"]["keys"]))
    cli("export", sid, "--format", "pyrdp", "-o", str(tmp_path / "x.pyrdp"))
    assert (tmp_path / "x.pyrdp").stat().st_size > 10000
    pytest.importorskip("PySide6", reason="optional video dependencies")
    cli("export", sid, "--format", "mp4", "-o", str(tmp_path / "x.mp4"))
    assert (tmp_path / "x.mp4").stat().st_size > 10000


@pytest.mark.parametrize("name", ["rdp-clipfile.pcap", "rdp-drive.pcap"])
def test_files_moved_in_an_rdp_session_are_listed_tagged_and_kept(cli, home, name):
    """An auditor imports the session where a file was pasted through the clipboard (or read
    from and written to the client's shared drive): the session is tagged file-copy, its files
    are listed with name, size, direction and SHA-256, and each file's bytes are sealed in the
    vault under that hash."""
    from pathlib import Path

    from appliance.home import Home

    _import(cli, name)
    want = MANIFEST[name]["sessions"][0]["files"]
    [s] = cli.json_lines("sessions", "--json")
    assert "file-copy" in s["tags"]
    detail = cli.json("show", s["id"], "--json")
    assert [(f["direction"], f["path"], f["method"], f["size"], f["sha256"]) for f in detail["files"]] == \
        [(w["direction"], w["path"], w["method"], w["size"], w["sha256"]) for w in want]
    store = Home(Path(home)).store()
    for w in want:
        data = store.get(s["id"], f"files/{w['sha256']}", actor="test", purpose="check the sealed copy")
        assert len(data) == w["size"] and hashlib.sha256(data).hexdigest() == w["sha256"]
