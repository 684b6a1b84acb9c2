"""Every correction we make to PyRDP 2.1.0 (PyPI ``pyrdp-mitm``), in one place.

PyRDP's last release is from January 2024; these are bugs on the paths we use, each with a test
in tests/rdp/test_pyrdp_fixes.py. ``apply()`` is idempotent and is called by ``pyrdp_bridge``
(and by the video exporter, which runs PyRDP's own player code).

1. ``ClipboardParser.parseFormatList`` loops forever on a format name without its UTF-16 NUL
   terminator (a truncated or hostile Format List): reading past the end yields b"" forever.
   Fixed upstream after 2.1.0, unreleased. Ours stops at the end of the payload.
2. ``ClientConnectionParser`` turns the client core data version into the ``RDPVersion`` enum,
   which raises on versions newer than it knows (Windows 11 mstsc sends 0x80011; PyRDP issue
   #478), losing the client data of the whole session. Ours keeps unknown versions as ints.
3. PyRDP logs the hex of any input event it fails to parse ("Exception occurred when receiving:
   ...") on the "pyrdp" logger: keystrokes, so possibly a typed password, in the appliance's
   logs. Ours silences the "pyrdp" logger; parse failures reach the analyst as decoder notices
   without bytes.
"""
from __future__ import annotations

import logging
from io import BytesIO

_applied = False


def _parse_format_list(self, payload, msgFlags):
    from pyrdp.core import Uint32LE
    from pyrdp.pdu.rdp.virtual_channel.clipboard import FormatListPDU, LongFormatName

    stream = BytesIO(payload)
    end = len(payload)
    self.formats = {}
    while end - stream.tell() >= 4:
        format_id = Uint32LE.unpack(stream)
        name = b""
        while stream.tell() < end:
            pair = stream.read(2)
            name += pair
            if pair == b"\x00\x00" or len(pair) < 2:
                break
        self.formats[format_id] = LongFormatName(format_id, name)
    return FormatListPDU(dict(self.formats), msgFlags)


class _TolerantVersion:
    """Callable standing in for the RDPVersion enum inside the connection parser."""

    def __init__(self, enum) -> None:
        self.enum = enum

    def __call__(self, value: int):
        try:
            return self.enum(value)
        except ValueError:
            return value

    def __getattr__(self, name: str):
        return getattr(self.enum, name)


def apply() -> None:
    global _applied
    if _applied:
        return
    from pyrdp.parser.rdp import connection
    from pyrdp.parser.rdp.virtual_channel.clipboard import ClipboardParser

    ClipboardParser.parseFormatList = _parse_format_list
    pyrdp_log = logging.getLogger("pyrdp")
    pyrdp_log.setLevel(logging.CRITICAL + 1)
    pyrdp_log.propagate = False
    if not isinstance(connection.RDPVersion, _TolerantVersion):
        connection.RDPVersion = _TolerantVersion(connection.RDPVersion)
    _applied = True
