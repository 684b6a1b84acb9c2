"""Clipboard file transfer playbooks (MS-RDPECLIP 3.1.5.4), bytes spelled out from the
specification: one side copies files (its Format List names FileGroupDescriptorW), the other
asks for the file list, then pulls each file with File Contents Requests (SIZE, RANGE) -> one
FileTransfer per file read to its end, with name, size, direction and SHA-256, and a Notice
tagged file-copy. The real capture (xfreerdp -> xrdp-chansrv) is in test_rdp_captures.py."""
from __future__ import annotations

import hashlib
import struct

from reconstruct.events import FileTransfer, Notice
from reconstruct.rdp.cliprdr_files import ClipboardFiles
from reconstruct.rdp.decoder import RDPDecoder

FILES_ID = 0xC0FE                  # any id: what counts is the name the Format List gives it
CB_FORMAT_LIST, CB_FORMAT_DATA_REQUEST, CB_FORMAT_DATA_RESPONSE = 2, 4, 5
CB_FILECONTENTS_REQUEST, CB_FILECONTENTS_RESPONSE = 8, 9
OK, FAIL = 0x1, 0x2
SIZE, RANGE = 0x1, 0x2


def pdu(msg_type: int, flags: int, body: bytes) -> bytes:
    return struct.pack("<HHI", msg_type, flags, len(body)) + body


def format_list(*names: str) -> bytes:
    body = b"".join(struct.pack("<I", FILES_ID + i) + (n + "\0").encode("utf-16-le") for i, n in enumerate(names))
    return pdu(CB_FORMAT_LIST, 0, body)


def data_request(fmt: int = FILES_ID) -> bytes:
    return pdu(CB_FORMAT_DATA_REQUEST, 0, struct.pack("<I", fmt))


def descriptor(name: str, size: int | None, directory: bool = False) -> bytes:
    flags = 0x4 | 0x20 | (0x40 if size is not None else 0)
    d = struct.pack("<I", flags) + b"\0" * 32 + struct.pack("<I", 0x10 if directory else 0x20) + b"\0" * 24
    d += struct.pack("<II", (size or 0) >> 32, (size or 0) & 0xFFFFFFFF)
    return d + (name + "\0").encode("utf-16-le").ljust(520, b"\0")


def file_list(*descriptors: bytes, count: int | None = None) -> bytes:
    return pdu(CB_FORMAT_DATA_RESPONSE, OK,
               struct.pack("<I", len(descriptors) if count is None else count) + b"".join(descriptors))


def contents_request(stream: int, lindex: int, flags: int, pos: int = 0, n: int = 0,
                     clip_id: int | None = None) -> bytes:
    body = struct.pack("<IiIIII", stream, lindex, flags, pos & 0xFFFFFFFF, pos >> 32, n)
    return pdu(CB_FILECONTENTS_REQUEST, 0, body + (b"" if clip_id is None else struct.pack("<I", clip_id)))


def contents_response(stream: int, data: bytes, flags: int = OK) -> bytes:
    return pdu(CB_FILECONTENTS_RESPONSE, flags, struct.pack("<I", stream) + data)


def feed(dec: RDPDecoder, direction: str, msg: bytes, ts: float) -> list:
    """One cliprdr message, cut into 1,600-byte channel chunks as clients and servers send them,
    handed in where the decoder's MCS layer hands static-channel data (a whole decrypted RDP
    connection built by hand around it would test nothing more)."""
    dec._ts = ts
    for i in range(0, len(msg), 1600):
        flags = (0x1 if i == 0 else 0) | (0x2 if i + 1600 >= len(msg) else 0)
        dec._virtual_channel(direction, 1004, "cliprdr", struct.pack("<II", len(msg), flags) + msg[i:i + 1600])
    return dec._flush()


def play(steps: list[tuple[str, bytes]], dec: RDPDecoder | None = None) -> list:
    dec = dec or RDPDecoder()
    out = []
    for k, (direction, msg) in enumerate(steps):
        out += feed(dec, direction, msg, 10.0 + k)
    return out


def files(events: list) -> list[FileTransfer]:
    return [e for e in events if isinstance(e, FileTransfer)]


def recipe(n: int) -> bytes:
    return b"".join(b"step %05d: valve V%d to %d%%\n" % (i, i % 7, i % 100) for i in range(n))


# ------------------------------------------------------------------------------ stories ----
def test_a_file_copied_on_the_client_and_pasted_on_the_server():
    content = recipe(400)                                              # 12 KB: several channel chunks
    events = play([
        ("c2s", format_list("FileGroupDescriptorW", "FileContents")),  # client: "I have files"
        ("s2c", data_request()),                                       # server: "which?"
        ("c2s", file_list(descriptor("recipe.csv", len(content)))),
        ("s2c", contents_request(7, 0, SIZE, n=8)),                    # server: "how big?"
        ("c2s", contents_response(7, struct.pack("<Q", len(content)))),
        ("s2c", contents_request(7, 0, RANGE, 0, 8192)),               # server: "bytes 0..8191"
        ("c2s", contents_response(7, content[:8192])),
        ("s2c", contents_request(7, 0, RANGE, 8192, 8192)),
        ("c2s", contents_response(7, content[8192:])),                 # a short answer: the end
    ])
    [f] = files(events)
    assert (f.direction, f.path, f.size, f.method, f.complete) == ("upload", "recipe.csv", len(content),
                                                                   "clipboard", True)
    assert f.sha256 == hashlib.sha256(content).hexdigest() and f.content == content
    notices = [(n.kind, n.text, n.tags) for n in events if isinstance(n, Notice)]
    assert notices == [
        ("clipboard-files", f"the client's clipboard offers 1 file to the server: recipe.csv ({len(content)} bytes)", ()),
        ("clipboard-file-copy", f"recipe.csv ({len(content)} bytes) copied from the client's clipboard to the server",
         ("file-copy",)),
    ]


def test_server_files_pasted_on_the_client_only_the_one_read_is_reported():
    fw = bytes(range(256)) * 40
    events = play([
        ("s2c", format_list("FileGroupDescriptorW")),
        ("c2s", data_request()),
        ("s2c", file_list(descriptor("configs", None, directory=True), descriptor("configs\\readme.txt", 5),
                          descriptor("configs\\fw.bin", len(fw)))),
        ("c2s", contents_request(1, 2, RANGE, 0, len(fw))),            # no SIZE request: the list said it
        ("s2c", contents_response(1, fw)),
    ])
    [f] = files(events)
    assert (f.direction, f.path, f.size, f.sha256) == ("download", "configs\\fw.bin", len(fw),
                                                       hashlib.sha256(fw).hexdigest())
    offered = [n.text for n in events if isinstance(n, Notice) and n.kind == "clipboard-files"]
    assert offered == ["the server's clipboard offers 3 files to the client: configs/, configs\\readme.txt "
                       f"(5 bytes), configs\\fw.bin ({len(fw)} bytes)"]


def test_ranges_answered_out_of_order_still_give_the_files_hash():
    content = recipe(300)
    third = len(content) // 3
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("a.txt", len(content)))),
        ("s2c", contents_request(3, 0, RANGE, 2 * third, len(content))),
        ("c2s", contents_response(3, content[2 * third:])),
        ("s2c", contents_request(4, 0, RANGE, third, third)),
        ("c2s", contents_response(4, content[third:2 * third])),
        ("s2c", contents_request(5, 0, RANGE, 0, third + 10)),          # overlaps the next piece
        ("c2s", contents_response(5, content[:third + 10])),
    ])
    [f] = files(events)
    assert f.complete and f.sha256 == hashlib.sha256(content).hexdigest() and f.content == content


def test_pasting_the_same_file_twice_is_two_copies():
    content = b"setpoint=42\n" * 100
    read = [("s2c", contents_request(1, 0, RANGE, 0, 4096)), ("c2s", contents_response(1, content))]
    events = play([("c2s", format_list("FileGroupDescriptorW")), ("s2c", data_request()),
                   ("c2s", file_list(descriptor("sp.ini", len(content))))] + read + read)
    assert [(f.path, f.size, f.complete) for f in files(events)] == [("sp.ini", len(content), True)] * 2


def test_a_paste_cut_short_is_reported_incomplete_when_the_clipboard_changes():
    content = recipe(200)
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("big.log", len(content)))),
        ("s2c", contents_request(9, 0, RANGE, 0, 1000)),
        ("c2s", contents_response(9, content[:1000])),
        ("c2s", format_list("UTF8_STRING")),                            # the user copied something else
    ])
    [f] = files(events)
    assert (f.path, f.size, f.complete, f.content) == ("big.log", 1000, False, None)
    assert f.sha256 == hashlib.sha256(content[:1000]).hexdigest()      # of the bytes that were seen
    [n] = [n for n in events if isinstance(n, Notice) and n.kind == "clipboard-file-copy"]
    assert n.text.endswith(f"(incomplete: 1000 of {len(content)} bytes seen)")


def test_the_session_ending_mid_paste_reports_what_was_seen():
    dec = RDPDecoder()
    play([("c2s", format_list("FileGroupDescriptorW")), ("s2c", data_request()),
          ("c2s", file_list(descriptor("x.bin", 5000))),
          ("s2c", contents_request(1, 0, RANGE, 0, 2000)), ("c2s", contents_response(1, b"\1" * 2000))], dec)
    [f] = files(dec.close(99.0, "rst"))
    assert (f.size, f.complete, f.ts) == (2000, False, 99.0)


def test_refused_and_unmatched_answers_move_nothing():
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("locked.db", 10))),
        ("s2c", contents_request(1, 0, RANGE, 0, 10)),
        ("c2s", contents_response(1, b"", flags=FAIL)),                 # the client could not read it
        ("c2s", contents_response(2, b"0123456789")),                   # no request for stream 2
        ("s2c", contents_request(3, 5, RANGE, 0, 10)),                  # no file 5 in the list
        ("c2s", contents_response(3, b"0123456789")),
    ])
    assert files(events) == []


def test_a_lying_file_list_is_one_warning_and_the_clipboard_goes_on():
    dec = RDPDecoder()
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("a", 1), count=1000)),             # announces 1000, holds 1
        ("s2c", pdu(CB_FILECONTENTS_REQUEST, 0, b"\0" * 5)),            # truncated request
        ("s2c", pdu(CB_FILECONTENTS_REQUEST, 0, b"\0" * 7)),
    ], dec)
    warnings = [n.text for n in events if isinstance(n, Notice) and n.kind == "decode-warning"]
    assert warnings == ["clipboard file transfer: a clipboard file list announces 1000 files but holds 1; skipped"]
    assert not dec.failed
    # text still flows afterwards
    later = play([("s2c", format_list("UTF8_STRING")), ("c2s", pdu(CB_FORMAT_DATA_REQUEST, 0, struct.pack("<I", FILES_ID))),
                  ("s2c", pdu(CB_FORMAT_DATA_RESPONSE, OK, b"still here\0"))], dec)
    assert [e.text for e in later if type(e).__name__ == "ClipboardCopy"] == ["still here"]


def test_a_file_over_the_memory_bound_keeps_its_hash_not_its_content():
    clip = ClipboardFiles(max_file=1000)
    content = bytes(range(256)) * 20                                    # 5,120 bytes
    desc = file_list(descriptor("image.bin", len(content)))[8:]
    clip.file_list("c2s", desc, 1.0)
    out = []
    for pos in range(0, len(content), 700):
        clip.request("s2c", contents_request(1, 0, RANGE, pos, 700)[8:])
        out += clip.response("c2s", OK, struct.pack("<I", 1) + content[pos:pos + 700], 2.0)
    [f] = files(out)
    assert (f.size, f.complete, f.content) == (len(content), True, None)
    assert f.sha256 == hashlib.sha256(content).hexdigest()
    assert clip.held == 0


def test_ranges_that_never_line_up_cost_a_bounded_amount_of_memory():
    clip = ClipboardFiles(max_file=1000)
    clip.file_list("c2s", file_list(descriptor("holes.bin", 10**9))[8:], 1.0)
    for k in range(1, 400):                                             # every piece after a hole
        clip.request("s2c", contents_request(1, 0, RANGE, k * 1000, 600)[8:])
        clip.response("c2s", OK, struct.pack("<I", 1) + b"x" * 600, 2.0)
    assert clip.ahead_bytes <= 1000 and clip.ahead_pieces <= 256
    [f] = files(clip.close(3.0))
    assert not f.complete and clip.ahead_bytes == 0 and clip.held == 0


def test_a_capture_gap_during_a_paste_makes_that_file_incomplete():
    content = recipe(100)
    dec = RDPDecoder()
    events = play([("c2s", format_list("FileGroupDescriptorW")), ("s2c", data_request()),
                   ("c2s", file_list(descriptor("g.txt", len(content)))),
                   ("s2c", contents_request(1, 0, RANGE, 0, 1000)), ("c2s", contents_response(1, content[:1000])),
                   ("s2c", contents_request(1, 0, RANGE, 1000, 1000))], dec)
    dec._after_gap("c2s", 1460)                 # what RDPDecoder.gap does once TLS resumes
    events += play([("c2s", contents_response(1, content[1000:2000])),   # answer to a request it no longer knows
                    ("s2c", contents_request(1, 0, RANGE, 2000, len(content))),
                    ("c2s", contents_response(1, content[2000:]))], dec)
    events += dec.close(50.0, "fin")
    [f] = files(events)
    assert not f.complete and f.content is None


def lock(clip_id: int, unlock: bool = False) -> bytes:
    return pdu(0xB if unlock else 0xA, 0, struct.pack("<I", clip_id))


def test_a_locked_clipboard_is_read_to_the_end_after_the_owner_copies_something_else():
    """Windows locks the clipboard it pastes from (clipDataId) and goes on reading its files
    with requests naming that id while the user already copied something new."""
    content = recipe(300)
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", lock(5)),                                               # the server locks it at once
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("plc.cfg", len(content)))),
        ("s2c", contents_request(1, 0, RANGE, 0, 4000, clip_id=5)),
        ("c2s", contents_response(1, content[:4000])),
        ("c2s", format_list("UTF8_STRING")),                            # the user copies some text
        ("s2c", contents_request(1, 0, RANGE, 4000, len(content), clip_id=5)),
        ("c2s", contents_response(1, content[4000:])),
        ("s2c", lock(5, unlock=True)),
    ])
    [f] = files(events)
    assert (f.path, f.size, f.complete) == ("plc.cfg", len(content), True)
    assert f.sha256 == hashlib.sha256(content).hexdigest()


def test_unlocking_a_clipboard_that_was_replaced_reports_what_was_read_of_it():
    content = recipe(300)
    dec = RDPDecoder()
    events = play([
        ("c2s", format_list("FileGroupDescriptorW")),
        ("s2c", lock(9)),
        ("s2c", data_request()),
        ("c2s", file_list(descriptor("half.bin", len(content)))),
        ("s2c", contents_request(2, 0, RANGE, 0, 3000, clip_id=9)),
        ("c2s", contents_response(2, content[:3000])),
        ("c2s", format_list("UTF8_STRING")),
    ], dec)
    assert files(events) == []                                          # still locked: it may go on
    [f] = files(play([("s2c", lock(9, unlock=True))], dec))
    assert (f.path, f.size, f.complete) == ("half.bin", 3000, False)
