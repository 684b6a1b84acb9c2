"""Each correction in reconstruct/rdp/pyrdp_fixes.py, shown on the input that needs it."""
from __future__ import annotations

import struct

import pytest

from reconstruct.rdp import pyrdp_fixes
from reconstruct.rdp.pyrdp_bridge import Clipboard

pyrdp_fixes.apply()


def cliprdr(msg_type: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("<HHI", msg_type, flags, len(payload)) + payload


def test_format_list_with_an_unterminated_name_ends():
    # CB_FORMAT_LIST: id 13 named "AB" without its UTF-16 NUL (PyRDP 2.1.0 loops forever here)
    payload = struct.pack("<I", 13) + "AB".encode("utf-16-le")
    kind, names = Clipboard().message("c2s", cliprdr(2, 0, payload))
    assert kind == "formats" and "13" in names


def test_format_list_still_reads_well_formed_names():
    payload = (struct.pack("<I", 0xC004) + "UTF8_STRING\0".encode("utf-16-le")
               + struct.pack("<I", 13) + b"\0\0")
    kind, names = Clipboard().message("s2c", cliprdr(2, 0, payload))
    assert "UTF8_STRING" in names and "13" in names


def test_client_data_of_a_newer_rdp_version_is_kept():
    from pyrdp.enum import RDPVersion
    from pyrdp.parser import ClientConnectionParser
    with pytest.raises(ValueError):
        RDPVersion(0x80011)                     # what PyRDP's parser did with Windows 11 clients
    core = bytearray(216)
    struct.pack_into("<IHHHHII", core, 0, 0x80011, 1920, 1080, 0xCA01, 0xAA03, 0x409, 22621)
    core[20:20 + 8] = "WIN11".encode("utf-16-le") + b"\0\0"
    block = struct.pack("<HH", 0xC001, 4 + len(core)) + bytes(core)
    sec = struct.pack("<HHII", 0xC002, 12, 0x1B, 0)
    net = struct.pack("<HHI", 0xC003, 8, 0)
    pdu = ClientConnectionParser().parse(block + sec + net)
    assert pdu.coreData.version == 0x80011
    assert pdu.coreData.clientName.startswith("WIN11")


def test_unparsable_input_leaves_no_bytes_in_the_logs(caplog):
    """A fast-path input PDU whose last event is cut: PyRDP would log its bytes (keystrokes)."""
    import logging

    from reconstruct.rdp.pyrdp_bridge import InputReader
    caplog.set_level(logging.DEBUG)
    # header: 2 events; a scancode event (0x00 'p'=0x19) then a mouse event cut after 2 bytes
    pdu = bytes([0x08, 7, 0x00, 0x19, 0x20, 0x00, 0x10])
    with pytest.raises(Exception):
        InputReader().fastpath(pdu)
    assert "19" not in caplog.text and "Exception occurred" not in caplog.text
