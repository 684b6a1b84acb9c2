"""SSH binary packet protection (RFC 4253 section 6, OpenSSH's AEAD and -etm variants).

One ``PacketOpener`` per direction and key set turns the bytes of that direction into packet
payloads, verifying the MAC or AEAD tag of every packet. All cryptography runs in C
(``cryptography`` / OpenSSL via ``hmac``); Python does one or two calls per packet.

``open(buf, pos, seq)`` returns ``(end, payload)`` for the packet starting at ``buf[pos]``, or
``None`` when the packet is not complete yet. It raises ``PacketError`` on a bad length or a
failed MAC/tag: the caller turns that into the session's one DecodeError.
"""
from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

try:                                   # 3DES moved to the "decrepit" module in cryptography 43+
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:                    # pragma: no cover - older cryptography
    TripleDES = algorithms.TripleDES   # type: ignore[attr-defined]

# OpenSSH refuses packets over 256 KiB; anything larger is a wrong key or a corrupt stream.
MAX_PACKET = 256 * 1024
_U32 = struct.Struct(">I")


class PacketError(Exception):
    """The stream cannot be a valid SSH packet here (bad length, MAC or tag)."""


@dataclass(frozen=True, slots=True)
class CipherSpec:
    key_len: int
    iv_len: int
    block: int
    kind: str                          # "ctr" | "cbc" | "gcm" | "chacha" | "none"


CIPHERS: dict[str, CipherSpec] = {
    "none": CipherSpec(0, 0, 8, "none"),
    "aes128-ctr": CipherSpec(16, 16, 16, "ctr"),
    "aes192-ctr": CipherSpec(24, 16, 16, "ctr"),
    "aes256-ctr": CipherSpec(32, 16, 16, "ctr"),
    "aes128-cbc": CipherSpec(16, 16, 16, "cbc"),
    "aes192-cbc": CipherSpec(24, 16, 16, "cbc"),
    "aes256-cbc": CipherSpec(32, 16, 16, "cbc"),
    "rijndael-cbc@lysator.liu.se": CipherSpec(32, 16, 16, "cbc"),
    "3des-cbc": CipherSpec(24, 8, 8, "cbc"),
    "3des-ctr": CipherSpec(24, 8, 8, "ctr"),
    "aes128-gcm@openssh.com": CipherSpec(16, 12, 16, "gcm"),
    "aes256-gcm@openssh.com": CipherSpec(32, 12, 16, "gcm"),
    "chacha20-poly1305@openssh.com": CipherSpec(64, 0, 8, "chacha"),
}

# name -> (hash name for hmac, key length, tag length, encrypt-then-mac)
MACS: dict[str, tuple[str, int, int, bool]] = {
    "hmac-sha1": ("sha1", 20, 20, False),
    "hmac-sha1-96": ("sha1", 20, 12, False),
    "hmac-md5": ("md5", 16, 16, False),
    "hmac-sha2-256": ("sha256", 32, 32, False),
    "hmac-sha2-512": ("sha512", 64, 64, False),
    "hmac-sha1-etm@openssh.com": ("sha1", 20, 20, True),
    "hmac-sha1-96-etm@openssh.com": ("sha1", 20, 12, True),
    "hmac-md5-etm@openssh.com": ("md5", 16, 16, True),
    "hmac-sha2-256-etm@openssh.com": ("sha256", 32, 32, True),
    "hmac-sha2-512-etm@openssh.com": ("sha512", 64, 64, True),
}


def key_sizes(cipher: str, mac: str | None) -> tuple[int, int, int]:
    """(iv, enc key, mac key) lengths to derive for a negotiated cipher/MAC pair."""
    spec = CIPHERS[cipher]
    mac_len = 0 if spec.kind in ("gcm", "chacha") or not mac else MACS[mac][1]
    return spec.iv_len, spec.key_len, mac_len


def _check_len(plen: int, block: int, etm_or_aead: bool) -> None:
    if plen < 5 or plen > MAX_PACKET:
        raise PacketError(f"packet length {plen} is out of range (wrong key or corrupt stream)")
    if not etm_or_aead and (plen + 4) % block:
        raise PacketError(f"packet length {plen} is not a multiple of the cipher block")


def _payload(pkt: bytes | memoryview, plen: int) -> bytes:
    """pkt = padding_length byte + payload + padding (without the length field)."""
    pad = pkt[0]
    if pad + 1 > plen:
        raise PacketError("padding longer than the packet (wrong key or corrupt stream)")
    return bytes(pkt[1:plen - pad])


class PacketOpener:
    """Cleartext packets (before the first NEWKEYS)."""
    tag_len = 0

    def open(self, buf: bytearray, pos: int, seq: int) -> tuple[int, bytes] | None:
        if len(buf) - pos < 4:
            return None
        plen = _U32.unpack_from(buf, pos)[0]
        _check_len(plen, 8, True)
        end = pos + 4 + plen
        if len(buf) < end:
            return None
        return end, _payload(memoryview(buf)[pos + 4:end], plen)


class BlockOpener(PacketOpener):
    """aes-ctr / aes-cbc / 3des-cbc with an HMAC (classic or encrypt-then-MAC)."""

    def __init__(self, cipher: str, key: bytes, iv: bytes, mac: str, mac_key: bytes) -> None:
        spec = CIPHERS[cipher]
        algo = TripleDES(key) if cipher.startswith("3des") else algorithms.AES(key)
        mode = modes.CTR(iv) if spec.kind == "ctr" else modes.CBC(iv)
        self._dec = Cipher(algo, mode).decryptor()
        self._block = spec.block
        self._hash, _, self.tag_len, self._etm = MACS[mac]
        self._mac_key = mac_key
        self._first: bytes | None = None     # decrypted first block of a packet not yet complete

    def open(self, buf: bytearray, pos: int, seq: int) -> tuple[int, bytes] | None:
        avail = len(buf) - pos
        tl = self.tag_len
        if self._etm:
            if avail < 4:
                return None
            plen = _U32.unpack_from(buf, pos)[0]
            _check_len(plen, self._block, True)
            if plen % self._block:
                raise PacketError(f"packet length {plen} is not a multiple of the cipher block")
            end = pos + 4 + plen + tl
            if len(buf) < end:
                return None
            mv = memoryview(buf)
            tag = hmac.digest(self._mac_key, _U32.pack(seq) + mv[pos:end - tl], self._hash)
            if not hmac.compare_digest(tag, mv[end - tl:end]):
                raise PacketError("MAC check failed")
            plain = self._dec.update(mv[pos + 4:end - tl])
            return end, _payload(plain, plen)
        b = self._block
        if self._first is None:
            if avail < b:
                return None
            self._first = self._dec.update(memoryview(buf)[pos:pos + b])
        plen = _U32.unpack_from(self._first, 0)[0]
        _check_len(plen, b, False)
        end = pos + 4 + plen + tl
        if len(buf) < end:
            return None
        mv = memoryview(buf)
        plain = self._first + self._dec.update(mv[pos + b:end - tl])
        self._first = None
        tag = hmac.digest(self._mac_key, _U32.pack(seq) + plain, self._hash)
        if not hmac.compare_digest(tag, mv[end - tl:end]):
            raise PacketError("MAC check failed")
        return end, _payload(memoryview(plain)[4:], plen)


class GcmOpener(PacketOpener):
    """aes128/256-gcm@openssh.com (RFC 5647 as OpenSSH does it: length is the AAD)."""
    tag_len = 16

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._aead = AESGCM(key)
        self._fixed = iv[:4]
        self._ctr = int.from_bytes(iv[4:12], "big")

    def open(self, buf: bytearray, pos: int, seq: int) -> tuple[int, bytes] | None:
        if len(buf) - pos < 4:
            return None
        plen = _U32.unpack_from(buf, pos)[0]
        _check_len(plen, 16, True)
        if plen % 16:
            raise PacketError(f"packet length {plen} is not a multiple of the cipher block")
        end = pos + 4 + plen + 16
        if len(buf) < end:
            return None
        mv = memoryview(buf)
        nonce = self._fixed + (self._ctr & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        try:
            plain = self._aead.decrypt(nonce, mv[pos + 4:end], mv[pos:pos + 4])
        except InvalidTag:
            raise PacketError("AES-GCM tag check failed") from None
        self._ctr += 1
        return end, _payload(plain, plen)


class ChaChaOpener(PacketOpener):
    """chacha20-poly1305@openssh.com: K_2 (first 32 bytes) for the payload and the Poly1305
    key, K_1 (last 32) for the length; the nonce is the sequence number."""
    tag_len = 16

    def __init__(self, key: bytes) -> None:
        self._main = key[:32]
        self._hdr = key[32:64]

    def open(self, buf: bytearray, pos: int, seq: int) -> tuple[int, bytes] | None:
        if len(buf) - pos < 4:
            return None
        seqb = seq.to_bytes(8, "big")
        mv = memoryview(buf)
        lenc = Cipher(algorithms.ChaCha20(self._hdr, b"\0" * 8 + seqb), None).encryptor()
        plen = _U32.unpack(lenc.update(mv[pos:pos + 4]))[0]
        _check_len(plen, 8, True)
        end = pos + 4 + plen + 16
        if len(buf) < end:
            return None
        ks = Cipher(algorithms.ChaCha20(self._main, b"\0" * 8 + seqb), None).encryptor()
        poly_key = ks.update(b"\0" * 64)[:32]          # block 0 -> Poly1305 key
        try:
            Poly1305.verify_tag(poly_key, mv[pos:end - 16], bytes(mv[end - 16:end]))
        except InvalidSignature:
            raise PacketError("ChaCha20-Poly1305 tag check failed") from None
        plain = ks.update(mv[pos + 4:end - 16])      # continues at block 1
        return end, _payload(plain, plen)


def make_opener(cipher: str, mac: str | None, iv: bytes, key: bytes, mac_key: bytes) -> PacketOpener:
    spec = CIPHERS.get(cipher)
    if spec is None:
        raise ValueError(f"cipher {cipher} is not supported")
    if spec.kind == "gcm":
        return GcmOpener(key[:spec.key_len], iv[:12])
    if spec.kind == "chacha":
        return ChaChaOpener(key[:64])
    if spec.kind == "none":
        return PacketOpener()
    if not mac or mac not in MACS:
        raise ValueError(f"MAC {mac} is not supported")
    return BlockOpener(cipher, key[:spec.key_len], iv[:spec.iv_len], mac,
                       mac_key[:MACS[mac][1]])
