"""CredSSP / NLA (MS-CSSP) inside the decrypted TLS stream: skip it, and keep only who logged in.

With NLA the client authenticates before any RDP PDU: TSRequest messages (DER SEQUENCEs,
first byte 0x30) carry SPNEGO/NTLM tokens, then the client's credentials encrypted with the
NTLM/Kerberos session key. We never try to read the credentials; the NTLM AUTHENTICATE
message gives the user and domain in clear. With HYBRID_EX the server then sends a 4-byte Early
User Authorization Result (0 = success).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

NTLMSSP = b"NTLMSSP\x00"
MAX_TSREQUEST = 64 * 1024


class CredSSPError(ValueError):
    pass


def der_length(buf: bytes | bytearray) -> int | None:
    """Total length of the DER element at the start of ``buf``; None until it is known."""
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4:
        raise CredSSPError("a CredSSP TSRequest has an invalid DER length")
    if len(buf) < 2 + n:
        return None
    total = 2 + n + int.from_bytes(buf[2:2 + n], "big")
    if total > MAX_TSREQUEST:
        raise CredSSPError(f"a CredSSP TSRequest of {total} bytes is beyond our bound")
    return total


@dataclass(frozen=True, slots=True)
class NTLMAuthenticate:
    user: str
    domain: str
    workstation: str


def find_ntlm_authenticate(tsrequest: bytes) -> NTLMAuthenticate | None:
    """The NTLM AUTHENTICATE (type 3) message inside a TSRequest, if there is one."""
    i = tsrequest.find(NTLMSSP)
    while i >= 0:
        msg = tsrequest[i:]
        if len(msg) >= 64 and struct.unpack_from("<I", msg, 8)[0] == 3:
            flags = struct.unpack_from("<I", msg, 60)[0]
            unicode = bool(flags & 0x1)

            def field(off: int) -> str:
                n, _max, pos = struct.unpack_from("<HHI", msg, off)
                raw = msg[pos:pos + n]
                return raw.decode("utf-16-le" if unicode else "latin-1", "replace")
            return NTLMAuthenticate(user=field(36), domain=field(28), workstation=field(44))
        i = tsrequest.find(NTLMSSP, i + 1)
    return None
