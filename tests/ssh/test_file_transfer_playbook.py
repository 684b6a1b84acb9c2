"""Playbooks for the file-transfer rooms: feed the channel bytes -> expect FileTransfer events."""
from __future__ import annotations

import hashlib
import struct

import reconstruct.ssh.scp as scp
import reconstruct.ssh.sftp as sftp
from reconstruct.events import FileTransfer, Notice
from reconstruct.ssh.scp import ScpDecoder, scp_mode
from reconstruct.ssh.sftp import SftpDecoder


def s(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def pkt(t: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, t) + body


def test_scp_mode_from_the_exec_command():
    assert scp_mode("scp -t upload.txt") == "upload"
    assert scp_mode("scp -v -f -- /etc/passwd") == "download"
    assert scp_mode("/usr/bin/scp -r -t dir") == "upload"
    assert scp_mode("scpx -t a") is None and scp_mode("echo scp -t") is None


def test_scp_upload_of_two_files_in_a_directory():
    dec = ScpDecoder("upload")
    ev = dec.feed("c2s", b"D0755 0 conf\nC0644 5 a.txt\nhello\0", 1.0)
    ev += dec.feed("s2c", b"\0\0\0", 1.1)                       # the sink's acks: ignored
    ev += dec.feed("c2s", b"C0600 3 b.bin\n\x00\x01", 1.2)
    ev += dec.feed("c2s", b"\x02\0E\n", 1.3)
    assert [(e.path, e.size, e.sha256, e.content, e.complete) for e in ev] == [
        ("conf/a.txt", 5, hashlib.sha256(b"hello").hexdigest(), b"hello", True),
        ("conf/b.bin", 3, hashlib.sha256(b"\0\1\2").hexdigest(), b"\0\1\2", True)]


def test_scp_file_beyond_the_content_bound_keeps_only_the_hash(monkeypatch):
    monkeypatch.setattr(scp, "MAX_CONTENT", 4)
    dec = ScpDecoder("download")
    ev = dec.feed("s2c", b"C0644 10 big\n0123456789\0", 1.0)
    (f,) = ev
    assert (f.direction, f.size, f.content, f.sha256) == (
        "download", 10, None, hashlib.sha256(b"0123456789").hexdigest())


def test_scp_cut_mid_file_is_an_incomplete_transfer():
    dec = ScpDecoder("upload")
    dec.feed("c2s", b"C0644 10 part\n01234", 1.0)
    (f,) = dec.close(2.0)
    assert (f.size, f.complete, f.content) == (5, False, None)


def _sftp_upload(dec: SftpDecoder, chunks: list[tuple[int, bytes]]) -> list:
    ev = dec.feed("c2s", pkt(1, struct.pack(">I", 3)), 0.0)
    ev += dec.feed("c2s", pkt(3, struct.pack(">I", 1) + s(b"up.bin") + struct.pack(">II", 0x1a, 0)), 1.0)
    ev += dec.feed("s2c", pkt(102, struct.pack(">I", 1) + s(b"H1")), 1.1)
    for i, (off, data) in enumerate(chunks):
        ev += dec.feed("c2s", pkt(6, struct.pack(">I", 10 + i) + s(b"H1") + struct.pack(">Q", off) + s(data)), 1.2)
    ev += dec.feed("c2s", pkt(4, struct.pack(">I", 99) + s(b"H1")), 1.3)
    ev += dec.feed("s2c", pkt(101, struct.pack(">II", 99, 0) + s(b"") + s(b"")), 1.4)
    return ev


def test_sftp_writes_out_of_order_are_hashed_in_file_order():
    ev = _sftp_upload(SftpDecoder(), [(4, b"4567"), (0, b"0123"), (8, b"89")])
    (f,) = [e for e in ev if isinstance(e, FileTransfer)]
    assert (f.direction, f.path, f.size, f.content, f.complete) == ("upload", "up.bin", 10, b"0123456789", True)
    assert f.sha256 == hashlib.sha256(b"0123456789").hexdigest()


def test_sftp_file_beyond_the_content_bound(monkeypatch):
    monkeypatch.setattr(sftp, "MAX_CONTENT", 5)
    ev = _sftp_upload(SftpDecoder(), [(0, b"0123"), (4, b"4567")])
    (f,) = [e for e in ev if isinstance(e, FileTransfer)]
    assert (f.size, f.content, f.complete) == (8, None, True)
    assert f.sha256 == hashlib.sha256(b"01234567").hexdigest()


def test_sftp_rename_failure_is_reported_as_such():
    dec = SftpDecoder()
    ev = dec.feed("c2s", pkt(18, struct.pack(">I", 5) + s(b"a") + s(b"b")), 1.0)
    ev += dec.feed("s2c", pkt(101, struct.pack(">II", 5, 3) + s(b"denied") + s(b"")), 1.1)
    (n,) = ev
    assert isinstance(n, Notice) and n.text == "rename a -> b (failed, status 3)"


def test_sftp_absurd_length_is_an_error():
    import pytest
    with pytest.raises(sftp.SftpError, match="out of range"):
        SftpDecoder().feed("c2s", b"\xff\xff\xff\xff", 1.0)
