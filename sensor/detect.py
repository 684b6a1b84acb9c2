"""Which protocol a connection speaks, decided from its first bytes; ports are only hints.

Returns a protocol name, ``None`` (not an admin protocol: skip the flow) or ``UNDECIDED``
(need more bytes). The decision must come early: every byte of an undecided flow goes through
per-packet Python, while a skipped flow costs only vectorised header work.
"""
from __future__ import annotations

UNDECIDED = "?"
DETECT_LIMIT = 2048           # bytes per direction looked at before giving up
TELNET_PORTS = frozenset({23, 107, 992, 2323})
SSH_PORTS = frozenset({22, 2222})
RDP_PORTS = frozenset({3389})
SERVICE_PORTS = TELNET_PORTS | SSH_PORTS | RDP_PORTS

_IAC = 0xFF
_NEGOTIATE = frozenset({0xFB, 0xFC, 0xFD, 0xFE, 0xFA})   # WILL WONT DO DONT SB
# first bytes of protocols that are certainly not ours: decide at once
_OTHER_PREFIXES = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"HTTP/", b"OPTIONS ", b"DELETE ",
                   b"CONNECT ", b"PRI * HTTP", b"\x16\x03", b"220 ", b"220-", b"+OK", b"* OK",
                   b"EHLO", b"HELO", b"\x00\x00\x00\x00")


def _telnet_negotiation(data: bytes) -> bool:
    """IAC followed by an option verb within the first bytes: the Telnet signature."""
    i = data.find(b"\xff", 0, 64)
    while i != -1 and i + 1 < len(data):
        if data[i + 1] in _NEGOTIATE:
            return True
        i = data.find(b"\xff", i + 2, 64)
    return False


def _rdp_request(data: bytes) -> bool:
    # TPKT v3, X.224 Connection Request (0xE0) or Confirm (0xD0)
    return len(data) >= 7 and data[0] == 3 and data[1] == 0 and data[5] in (0xE0, 0xD0)


def _texty(data: bytes) -> bool:
    if not data:
        return False
    printable = sum(1 for b in data[:256] if 32 <= b < 127 or b in (8, 9, 10, 13, 27, 7, 0))
    return printable >= 0.9 * min(len(data), 256)


def detect(c2s: bytes, s2c: bytes, client_port: int, server_port: int, picked_up: bool) -> str | None:
    for d in (c2s, s2c):
        if d.startswith(b"SSH-"):
            return "ssh"
    if _rdp_request(c2s) or _rdp_request(s2c):
        return "rdp"
    if _telnet_negotiation(s2c) or _telnet_negotiation(c2s):
        return "telnet"
    for d in (c2s, s2c):
        if d[:2] and any(d.startswith(p) for p in _OTHER_PREFIXES):
            if not (server_port in RDP_PORTS and picked_up and d.startswith(b"\x16\x03")):
                return None
    # picked up mid-stream: no handshake to recognise, so lean on the port hint plus content
    if picked_up or (server_port in SERVICE_PORTS):
        if server_port in SSH_PORTS and (c2s or s2c):
            return "ssh" if picked_up else None
        if server_port in RDP_PORTS and (c2s[:1] in (b"\x03", b"\x16", b"\x17") or s2c[:1] in (b"\x03", b"\x16", b"\x17")):
            return "rdp"
        if server_port in TELNET_PORTS and (_texty(s2c) or _texty(c2s)):
            return "telnet"
        if picked_up and _interactive_text(c2s, s2c):
            return "telnet"
    if len(c2s) >= DETECT_LIMIT or len(s2c) >= DETECT_LIMIT:
        return None
    if (c2s or s2c) and not picked_up and len(c2s) + len(s2c) >= 64:
        # both sides talked and nothing above matched: not an admin protocol
        if c2s and s2c:
            return None
    return UNDECIDED


def _interactive_text(c2s: bytes, s2c: bytes) -> bool:
    """A cleartext terminal seen mid-stream: short keystroke text one way, terminal text the other."""
    return len(s2c) >= 32 and _texty(s2c) and (not c2s or _texty(c2s)) and b"\x1b[" in s2c or (
        len(s2c) >= 64 and _texty(s2c) and any(p in s2c for p in (b"$ ", b"# ", b"> ", b"login:")))
