"""Drive redirection playbook (MS-RDPEFS), bytes spelled out from the specification: the client
shares drive "SHARE"; the server opens a file on it, reads it in two pieces, closes it, then
creates another file and writes to it -> two FileTransfer events with path, size and SHA-256.
The real capture (rdesktop sharing a folder with xrdp) is tested in test_rdp_captures.py and
test_rdp_cli.py."""
from __future__ import annotations

import hashlib
import struct

from reconstruct.rdp.decoder import RDPDecoder

RDPDR_CORE = 0x4472


def hdr(packet_id: int) -> bytes:
    return struct.pack("<HH", RDPDR_CORE, packet_id)


def device_list(dev_id: int, name: bytes) -> bytes:
    return hdr(0x4441) + struct.pack("<II", 1, 8) + struct.pack("<I", dev_id) + name.ljust(8, b"\0") + \
        struct.pack("<I", 0)


def create_req(dev: int, completion: int, path: str) -> bytes:
    p = (path + "\0").encode("utf-16-le")
    return hdr(0x4952) + struct.pack("<IIIII", dev, 0, completion, 0x0, 0) + \
        struct.pack("<IQIIIII", 0x80000000, 0, 0x80, 0x7, 1, 0x40, len(p)) + p


def create_rsp(dev: int, completion: int, file_id: int) -> bytes:
    return hdr(0x4943) + struct.pack("<III", dev, completion, 0) + struct.pack("<IB", file_id, 1)


def read_req(dev: int, file_id: int, completion: int, length: int, offset: int) -> bytes:
    return hdr(0x4952) + struct.pack("<IIIII", dev, file_id, completion, 0x3, 0) + \
        struct.pack("<IQ", length, offset) + b"\0" * 20


def read_rsp(dev: int, completion: int, data: bytes) -> bytes:
    return hdr(0x4943) + struct.pack("<III", dev, completion, 0) + struct.pack("<I", len(data)) + data


def write_req(dev: int, file_id: int, completion: int, offset: int, data: bytes) -> bytes:
    return hdr(0x4952) + struct.pack("<IIIII", dev, file_id, completion, 0x4, 0) + \
        struct.pack("<IQ", len(data), offset) + b"\0" * 20 + data


def close_req(dev: int, file_id: int, completion: int) -> bytes:
    return hdr(0x4952) + struct.pack("<IIIII", dev, file_id, completion, 0x2, 0) + b"\0" * 32


def feed(dec: RDPDecoder, direction: str, msg: bytes, ts: float):
    """One reassembled rdpdr message, handed in where the decoder's static-channel layer hands it
    (building a whole decrypted RDP connection by hand around it would test nothing more)."""
    dec._ts = ts
    dec._rdpdr(direction, msg)
    return dec._flush()


def test_files_read_and_written_on_a_redirected_drive():
    dec = RDPDecoder()
    content = b"".join(b"%d\n" % i for i in range(1, 1001))
    events = []
    events += feed(dec, "c2s", device_list(1, b"SHARE"), 1.0)
    events += feed(dec, "s2c", create_req(1, 10, "\\plant\\recipe.txt"), 2.0)
    events += feed(dec, "c2s", create_rsp(1, 10, 77), 2.1)
    events += feed(dec, "s2c", read_req(1, 77, 11, 2048, 0), 2.2)
    events += feed(dec, "c2s", read_rsp(1, 11, content[:2048]), 2.3)
    events += feed(dec, "s2c", read_req(1, 77, 12, 2048, 2048), 2.4)
    events += feed(dec, "c2s", read_rsp(1, 12, content[2048:]), 2.5)
    events += feed(dec, "s2c", close_req(1, 77, 13), 2.6)
    events += feed(dec, "s2c", create_req(1, 20, "\\out.bin"), 3.0)
    events += feed(dec, "c2s", create_rsp(1, 20, 78), 3.1)
    events += feed(dec, "s2c", write_req(1, 78, 21, 0, b"firmware-v2"), 3.2)
    events += feed(dec, "s2c", close_req(1, 78, 22), 3.3)
    meta = [(e.key, e.value) for e in events if type(e).__name__ == "Metadata"]
    assert ("redirected_devices", "SHARE") in meta
    files = [e for e in events if type(e).__name__ == "FileTransfer"]
    assert [(f.direction, f.path, f.size, f.method, f.complete) for f in files] == [
        ("upload", "SHARE:\\plant\\recipe.txt", len(content), "rdpdr", True),
        ("download", "SHARE:\\out.bin", 11, "rdpdr", True)]
    assert files[0].sha256 == hashlib.sha256(content).hexdigest() and files[0].content == content
    assert files[1].content == b"firmware-v2"


def test_a_read_with_a_hole_is_marked_incomplete():
    dec = RDPDecoder()
    events = feed(dec, "c2s", device_list(1, b"C"), 1.0)
    events += feed(dec, "s2c", create_req(1, 1, "\\a"), 1.0)
    events += feed(dec, "c2s", create_rsp(1, 1, 5), 1.0)
    events += feed(dec, "s2c", read_req(1, 5, 2, 10, 100), 1.0)         # offset 100: bytes 0..99 never seen
    events += feed(dec, "c2s", read_rsp(1, 2, b"0123456789"), 1.0)
    events += feed(dec, "s2c", close_req(1, 5, 3), 1.0)
    f = [e for e in events if type(e).__name__ == "FileTransfer"]
    assert len(f) == 1 and not f[0].complete and f[0].content is None


def test_the_end_of_a_directory_listing_is_not_a_parse_failure():
    """`ls` on the share (rdp-drive.pcap): the client ends the listing with STATUS_NO_MORE_FILES and
    an empty buffer, which PyRDP's parser cannot read; it is not ours to read either."""
    dec = RDPDecoder()
    path = "\\*".encode("utf-16-le") + b"\0\0"
    query = hdr(0x4952) + struct.pack("<IIIII", 1, 77, 30, 0xC, 0x1) + \
        struct.pack("<IBI", 0x3, 1, len(path)) + b"\0" * 23 + path          # IRP_MN_QUERY_DIRECTORY
    no_more = hdr(0x4943) + struct.pack("<III", 1, 30, 0x80000006) + struct.pack("<I", 0) + b"\0"
    events = feed(dec, "c2s", device_list(1, b"SHARE"), 1.0)
    events += feed(dec, "s2c", query, 1.1) + feed(dec, "c2s", no_more, 1.2)
    assert not [e for e in events if type(e).__name__ == "Notice"]
    assert dec.drives.parser.majorFunctionsForParsingResponse == {}       # nothing kept per request
