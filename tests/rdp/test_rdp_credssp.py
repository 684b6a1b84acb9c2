"""NLA (CredSSP) playbook, bytes spelled out from MS-CSSP / MS-NLMP: inside the decrypted TLS
stream the client's TSRequest carries an NTLM AUTHENTICATE message -> the user and domain are
reported (AuthAttempt method "ntlm"), the credentials are never looked at, and the RDP PDUs
that follow CredSSP are decoded as usual."""
from __future__ import annotations

import struct

from reconstruct.rdp.credssp import der_length, find_ntlm_authenticate
from reconstruct.rdp.decoder import RDPDecoder
from test_rdp_playbooks import x224_cc, x224_cr


def ntlm_authenticate(user: str, domain: str, workstation: str) -> bytes:
    fields = [b"", b"\x01" * 24, domain.encode("utf-16-le"), user.encode("utf-16-le"),
              workstation.encode("utf-16-le"), b""]
    off, head, body = 64, b"", b""
    for f in fields:
        head += struct.pack("<HHI", len(f), len(f), off + len(body))
        body += f
    return b"NTLMSSP\0" + struct.pack("<I", 3) + head + struct.pack("<I", 0xE2088235) + body


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + struct.pack(">H", n)
    return bytes([tag]) + length + content


def ts_request(token: bytes) -> bytes:
    # TSRequest ::= SEQUENCE { version [0] INTEGER, negoTokens [1] NegoData }
    nego = der(0x30, der(0x30, der(0xA0, der(0x04, token))))
    return der(0x30, der(0xA0, der(0x02, b"\x06")) + der(0xA1, nego))


def test_ntlm_user_and_domain_from_the_authenticate_message():
    msg = ts_request(ntlm_authenticate("operator", "PLANT", "HMI-07"))
    assert der_length(msg) == len(msg)
    auth = find_ntlm_authenticate(msg)
    assert (auth.user, auth.domain, auth.workstation) == ("operator", "PLANT", "HMI-07")


def test_credssp_is_skipped_and_reported_then_rdp_follows():
    dec = RDPDecoder()
    dec.feed("c2s", x224_cr(b"Cookie: mstshash=operator\r\n", 0x3), 1.0)
    dec.feed("s2c", x224_cc(0x2), 1.1)                          # HYBRID: TLS + CredSSP
    # (TLS itself is covered by the capture tests; here the decrypted bytes go straight in)
    dec._ts = 1.2
    dec._feed_plain("c2s", ts_request(b"NTLMSSP\0" + struct.pack("<I", 1) + b"\0" * 24))   # NEGOTIATE
    dec._feed_plain("s2c", ts_request(b"NTLMSSP\0" + struct.pack("<I", 2) + b"\0" * 40))   # CHALLENGE
    auth_msg = ts_request(ntlm_authenticate("operator", "PLANT", "HMI-07"))
    dec._feed_plain("c2s", auth_msg[:10])                      # split anywhere
    dec._feed_plain("c2s", auth_msg[10:])
    dec._feed_plain("c2s", der(0x30, der(0xA2, der(0x04, b"\x55" * 40))))   # authInfo: never read
    dec._feed_plain("c2s", b"\x03\x00\x00\x08\x02\xf0\x80\x04")           # a TPKT: RDP again
    events = dec._flush()
    auth = [e for e in events if type(e).__name__ == "AuthAttempt"]
    assert [(a.user, a.method, a.result) for a in auth] == [("operator", "ntlm", "success")]
    assert ("domain", "PLANT") in [(e.key, e.value) for e in events if type(e).__name__ == "Metadata"]
    assert not [e for e in events if type(e).__name__ == "DecodeError"]
    assert dec._nla == {"c2s": False, "s2c": True}              # the client has moved on to RDP


def test_a_connection_that_ends_inside_credssp_is_a_failed_login():
    dec = RDPDecoder()
    dec.feed("c2s", x224_cr(b"", 0x3), 1.0)
    dec.feed("s2c", x224_cc(0x2), 1.1)
    dec._ts = 1.2
    dec._feed_plain("c2s", ts_request(ntlm_authenticate("intruder", "PLANT", "X")))
    events = dec._flush() + dec.close(1.5, "fin")
    auth = [(e.user, e.result) for e in events if type(e).__name__ == "AuthAttempt"]
    assert auth == [("intruder", "failure")]
