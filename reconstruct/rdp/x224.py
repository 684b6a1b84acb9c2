"""TPKT / X.224 framing and RDP security negotiation (MS-RDPBCGR 2.2.1.1, 2.2.1.2), plus the
PDU boundary of the two RDP framings (TPKT and fast-path), over plain bytes.

Everything here is readable without keys: the X.224 Connection Request carries the routing
cookie (``mstshash=<user>``) and the protocols the client offers; the Confirm carries the
protocol the server chose (or why it refused).
"""
from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_RDSTLS, PROTOCOL_HYBRID_EX = 0, 1, 2, 4, 8
PROTOCOL_NAMES = {PROTOCOL_SSL: "SSL", PROTOCOL_HYBRID: "HYBRID", PROTOCOL_RDSTLS: "RDSTLS",
                  PROTOCOL_HYBRID_EX: "HYBRID_EX", 0x10: "RDSAAD"}
FAILURE_CODES = {1: "SSL_REQUIRED_BY_SERVER", 2: "SSL_NOT_ALLOWED_BY_SERVER", 3: "SSL_CERT_NOT_ON_SERVER",
                 4: "INCONSISTENT_FLAGS", 5: "HYBRID_REQUIRED_BY_SERVER", 6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}

X224_CR, X224_CC, X224_DT, X224_DR = 0xE0, 0xD0, 0xF0, 0x80
MAX_PDU = 0xFFFF                        # TPKT length is 16 bits; fast-path at most 0x7FFF


class X224Error(ValueError):
    pass


def protocols_text(mask: int) -> str:
    """Zeek-style names: 0 -> "RDP", 3 -> "SSL|HYBRID"."""
    if mask == 0:
        return "RDP"
    names = [n for bit, n in PROTOCOL_NAMES.items() if mask & bit]
    return "|".join(names) or f"{mask:#x}"


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    cookie: str | None                  # "mstshash=<user>" (or a routing token), without CRLF
    requested_protocols: int            # 0 when the client sent no RDP_NEG_REQ (legacy)
    flags: int

    @property
    def cookie_user(self) -> str | None:
        if self.cookie and self.cookie.startswith("mstshash="):
            return self.cookie[len("mstshash="):]
        return None


@dataclass(frozen=True, slots=True)
class ConnectionConfirm:
    selected_protocol: int | None       # None when the server refused (see failure)
    flags: int
    failure: str | None = None


def pdu_length(buf: bytes | bytearray) -> int | None:
    """Length of the RDP PDU at the start of ``buf`` (TPKT or fast-path), None if not yet known."""
    if not buf:
        return None
    if buf[0] == 0x03:                  # TPKT version 3
        if len(buf) < 4:
            return None
        n = (buf[2] << 8) | buf[3]
        if n < 7:
            raise X224Error(f"TPKT length {n} is too short for an X.224 header")
        return n
    if buf[0] & 0x03 != 0:
        raise X224Error(f"byte {buf[0]:#04x} starts neither a TPKT nor a fast-path PDU")
    if len(buf) < 2:
        return None
    if buf[1] & 0x80:
        if len(buf) < 3:
            return None
        n = ((buf[1] & 0x7F) << 8) | buf[2]
    else:
        n = buf[1]
    if n < 2:
        raise X224Error(f"fast-path length {n} is impossible")
    return n


def x224_payload(tpkt: bytes) -> tuple[int, bytes]:
    """(X.224 TPDU code, user data) of one whole TPKT."""
    li = tpkt[4]
    if 5 + li > len(tpkt) or li < 2:
        raise X224Error(f"X.224 length indicator {li} does not fit the TPKT")
    code = tpkt[5] & 0xF0
    return code, tpkt[5 + li:] if code != X224_DT else tpkt[7:]


def parse_connection_request(tpkt: bytes) -> ConnectionRequest:
    code, _ = x224_payload(tpkt)
    if code != X224_CR:
        raise X224Error(f"expected an X.224 Connection Request, got TPDU code {code:#04x}")
    var = tpkt[11:4 + 1 + tpkt[4]]      # after LI, code, dst-ref, src-ref, class
    cookie = None
    if var.startswith(b"Cookie: ") or var.startswith(b"Cookie:"):
        end = var.find(b"\r\n")
        if end < 0:
            raise X224Error("the X.224 cookie is not terminated by CRLF")
        cookie = var[len(b"Cookie: "):end].decode("latin-1").strip()
        var = var[end + 2:]
    protocols, flags = 0, 0
    if len(var) >= 8 and var[0] == 1:   # RDP_NEG_REQ
        flags = var[1]
        protocols = int.from_bytes(var[4:8], "little")
    return ConnectionRequest(cookie, protocols, flags)


def parse_connection_confirm(tpkt: bytes) -> ConnectionConfirm:
    code, _ = x224_payload(tpkt)
    if code != X224_CC:
        raise X224Error(f"expected an X.224 Connection Confirm, got TPDU code {code:#04x}")
    var = tpkt[11:4 + 1 + tpkt[4]]
    if len(var) >= 8 and var[0] == 2:   # RDP_NEG_RSP
        return ConnectionConfirm(int.from_bytes(var[4:8], "little"), var[1])
    if len(var) >= 8 and var[0] == 3:   # RDP_NEG_FAILURE
        fc = int.from_bytes(var[4:8], "little")
        return ConnectionConfirm(None, var[1], FAILURE_CODES.get(fc, f"failure code {fc}"))
    return ConnectionConfirm(PROTOCOL_RDP, 0)   # legacy server: Standard RDP Security
