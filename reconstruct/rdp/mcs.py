"""MCS (T.125) and GCC user data of the RDP connection sequence, as flat parsers over bytes.

Only what a passive reader needs: the client and server data blocks of Connect-Initial /
Connect-Response (MS-RDPBCGR 2.2.1.3, 2.2.1.4), and the channel id + user data of the
Send-Data PDUs that carry everything after them. The BER/PER around the GCC blocks is skipped
by finding the H.221 key ("Duca" / "McDn") that precedes them, as every RDP stack emits it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

MCS_CONNECT_INITIAL, MCS_CONNECT_RESPONSE = 0x65, 0x66
DOMAIN_ATTACH_USER_CONFIRM, DOMAIN_CHANNEL_JOIN_CONFIRM = 11, 15
DOMAIN_SEND_DATA_REQUEST, DOMAIN_SEND_DATA_INDICATION, DOMAIN_DISCONNECT_ULTIMATUM = 25, 26, 8

ENCRYPTION_METHODS = {0: "NONE", 1: "40BIT", 2: "128BIT", 8: "56BIT", 0x10: "FIPS"}
ENCRYPTION_LEVELS = {0: "NONE", 1: "LOW", 2: "CLIENT_COMPATIBLE", 3: "HIGH", 4: "FIPS"}
RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL = 0x0100


class MCSError(ValueError):
    pass


@dataclass(slots=True)
class ClientData:
    version: int = 0
    width: int = 0
    height: int = 0
    color_depth: int = 0
    keyboard_layout: int = 0
    client_build: int = 0
    client_name: str = ""
    keyboard_type: int = 0
    high_color_depth: int | None = None
    early_capability_flags: int = 0
    dig_product_id: str = ""
    encryption_methods: int = 0
    channels: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ServerData:
    version: int = 0
    encryption_method: int = 0
    encryption_level: int = 0
    server_random: bytes = b""
    certificate: bytes = b""
    io_channel: int = 1003
    channel_ids: list[int] = field(default_factory=list)


def _utf16z(b: bytes) -> str:
    return b.decode("utf-16-le", "replace").split("\x00", 1)[0]


def _per_length(b: bytes, i: int) -> tuple[int, int]:
    if b[i] & 0x80:
        return ((b[i] & 0x3F) << 8) | b[i + 1], i + 2
    return b[i], i + 1


def _blocks(data: bytes, key: bytes):
    i = data.find(key)
    if i < 0:
        raise MCSError(f"no GCC {key.decode()} user data in the MCS connect PDU")
    n, i = _per_length(data, i + 4)
    end = min(len(data), i + n)
    while i + 4 <= end:
        btype, blen = struct.unpack_from("<HH", data, i)
        if blen < 4:
            raise MCSError(f"GCC user data block {btype:#06x} has length {blen}")
        yield btype, data[i + 4:i + blen]
        i += blen


def parse_client_data(mcs: bytes) -> ClientData:
    """Client core / security / network data from an MCS Connect-Initial."""
    cd = ClientData()
    for btype, b in _blocks(mcs, b"Duca"):
        if btype == 0xC001 and len(b) >= 128:                     # CS_CORE
            (cd.version, cd.width, cd.height, cd.color_depth, _sas, cd.keyboard_layout,
             cd.client_build) = struct.unpack_from("<IHHHHII", b, 0)
            cd.client_name = _utf16z(b[20:52])
            cd.keyboard_type = struct.unpack_from("<I", b, 52)[0]
            # optional tail: postBeta2ColorDepth 128, productId 130, serial 132, highColorDepth 136,
            # supportedColorDepths 138, earlyCapabilityFlags 140, clientDigProductId 142..206
            if len(b) >= 138:
                cd.high_color_depth = struct.unpack_from("<H", b, 136)[0]
            if len(b) >= 142:
                cd.early_capability_flags = struct.unpack_from("<H", b, 140)[0]
            if len(b) >= 206:
                cd.dig_product_id = _utf16z(b[142:206])
        elif btype == 0xC002 and len(b) >= 4:                     # CS_SECURITY
            cd.encryption_methods = struct.unpack_from("<I", b, 0)[0]
        elif btype == 0xC003 and len(b) >= 4:                     # CS_NET
            count = struct.unpack_from("<I", b, 0)[0]
            for k in range(min(count, 31)):
                name = b[4 + 12 * k:4 + 12 * k + 8]
                cd.channels.append(name.split(b"\x00", 1)[0].decode("ascii", "replace"))
    return cd


def parse_server_data(mcs: bytes) -> ServerData:
    """Server core / security / network data from an MCS Connect-Response."""
    sd = ServerData()
    for btype, b in _blocks(mcs, b"McDn"):
        if btype == 0x0C01 and len(b) >= 4:                       # SC_CORE
            sd.version = struct.unpack_from("<I", b, 0)[0]
        elif btype == 0x0C02 and len(b) >= 8:                     # SC_SECURITY
            sd.encryption_method, sd.encryption_level = struct.unpack_from("<II", b, 0)
            if len(b) >= 16:
                rlen, clen = struct.unpack_from("<II", b, 8)
                sd.server_random = b[16:16 + rlen]
                sd.certificate = b[16 + rlen:16 + rlen + clen]
        elif btype == 0x0C03 and len(b) >= 4:                     # SC_NET
            sd.io_channel, count = struct.unpack_from("<HH", b, 0)
            sd.channel_ids = list(struct.unpack_from(f"<{count}H", b, 4)) if len(b) >= 4 + 2 * count else []
    return sd


def connect_pdu_type(mcs: bytes) -> int | None:
    """MCS_CONNECT_INITIAL / MCS_CONNECT_RESPONSE for a BER connect PDU, else None."""
    if len(mcs) >= 2 and mcs[0] == 0x7F and mcs[1] in (MCS_CONNECT_INITIAL, MCS_CONNECT_RESPONSE):
        return mcs[1]
    return None


def domain_pdu(mcs: bytes) -> tuple[int, int | None, bytes]:
    """(domain PDU type, channel id, user data) of a PER-encoded MCS domain PDU."""
    if not mcs:
        raise MCSError("empty MCS PDU")
    kind = mcs[0] >> 2
    if kind in (DOMAIN_SEND_DATA_REQUEST, DOMAIN_SEND_DATA_INDICATION):
        if len(mcs) < 7:
            raise MCSError("MCS Send-Data PDU is truncated")
        channel = struct.unpack_from(">H", mcs, 3)[0]
        n, i = _per_length(mcs, 6)
        if i + n > len(mcs):
            raise MCSError("MCS Send-Data user data is longer than its TPKT")
        return kind, channel, mcs[i:i + n]
    return kind, None, b""


def server_public_modulus(cert: bytes) -> int | None:
    """The RSA modulus of the server certificate in SC_SECURITY (proprietary or X.509 chain)."""
    if len(cert) < 4:
        return None
    version = struct.unpack_from("<I", cert, 0)[0] & 0x7FFFFFFF
    if version == 1:                                              # proprietary certificate
        i = 12
        _blob_type, blob_len = struct.unpack_from("<HH", cert, i)
        blob = cert[i + 4:i + 4 + blob_len]
        if blob[:4] != b"RSA1":
            return None
        keylen = struct.unpack_from("<I", blob, 4)[0]
        return int.from_bytes(blob[20:20 + keylen], "little")
    if version == 2:                                              # X.509 chain: the last is the leaf
        from cryptography import x509
        count = struct.unpack_from("<I", cert, 4)[0]
        i, der = 8, b""
        for _ in range(count):
            n = struct.unpack_from("<I", cert, i)[0]
            der = cert[i + 4:i + 4 + n]
            i += 4 + n
        try:
            return x509.load_der_x509_certificate(der).public_key().public_numbers().n
        except Exception:
            return None
    return None
