"""Standard RDP Security, passively (MS-RDPBCGR 5.3.4 - 5.3.7).

The server random travels in clear (SC_SECURITY); the client random travels RSA-encrypted
(little-endian, raw RSA) to the server's key in the Security Exchange PDU. With the server's
private key both randoms give the session keys: RC4 per direction, re-keyed every 4096
packets, and a MAC key. Every decrypted PDU's MAC is checked (plain or salted), so a wrong key
or damaged data is a clear error, never silent garbage.
"""
from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher

PAD1, PAD2 = b"\x36" * 40, b"\x5c" * 48
METHOD_40, METHOD_128, METHOD_56, METHOD_FIPS = 1, 2, 8, 0x10
REKEY_EVERY = 4096


class StdSecError(ValueError):
    pass


def _salted_hash(s: bytes, i: bytes, cr: bytes, sr: bytes) -> bytes:
    return hashlib.md5(s + hashlib.sha1(i + s + cr + sr).digest()).digest()


def _reduce(key16: bytes, method: int) -> bytes:
    """40/56-bit keys: the first 64 bits with a fixed salt (5.3.5.1); 128-bit: unchanged."""
    if method == METHOD_40:
        return b"\xd1\x26\x9e" + key16[3:8]
    if method == METHOD_56:
        return b"\xd1" + key16[1:8]
    return key16


def session_keys(client_random: bytes, server_random: bytes, method: int) -> tuple[bytes, bytes, bytes]:
    """(mac_key, c2s_key, s2c_key) from the two 32-byte randoms (5.3.5)."""
    if method not in (METHOD_40, METHOD_56, METHOD_128):
        raise StdSecError(f"encryption method {method:#x} is not RC4 (FIPS is not supported)")
    cr, sr = client_random, server_random
    pms = cr[:24] + sr[:24]
    master = b"".join(_salted_hash(pms, x, cr, sr) for x in (b"A", b"BB", b"CCC"))
    blob = b"".join(_salted_hash(master, x, cr, sr) for x in (b"X", b"YY", b"ZZZ"))

    def final(k: bytes) -> bytes:
        return hashlib.md5(k + cr + sr).digest()
    mac_key = blob[:16]
    s2c = final(blob[16:32])            # the client's decrypt key = the server's encrypt key
    c2s = final(blob[32:48])            # the client's encrypt key
    return _reduce(mac_key, method), _reduce(c2s, method), _reduce(s2c, method)


def decrypt_client_random(encrypted_le: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """Raw RSA on the little-endian encrypted client random (trailing padding removed)."""
    nums = key.private_numbers()
    n = nums.public_numbers.n
    c = int.from_bytes(encrypted_le.rstrip(b"\x00") or b"\x00", "little")
    if c >= n:
        raise StdSecError("the encrypted client random is larger than the server key's modulus (wrong key)")
    # Chinese remainder theorem: four times faster than pow(c, d, n) on a 2048-bit key
    m1, m2 = pow(c, nums.dmp1, nums.p), pow(c, nums.dmq1, nums.q)
    m = m2 + nums.q * ((nums.iqmp * (m1 - m2)) % nums.p)
    if m >> 256:
        raise StdSecError("the client random did not decrypt to 32 bytes (wrong server key)")
    return m.to_bytes(32, "little")


class RC4Stream:
    """One direction: RC4 with the 4096-packet key update and MAC check."""

    def __init__(self, key: bytes, mac_key: bytes, method: int) -> None:
        self.initial = key
        self.current = key
        self.mac_key = mac_key
        self.method = method
        self.count = 0                   # packets decrypted with this stream so far
        self.rekeys = 0
        self.macs = {"plain": 0, "salted": 0, "flag-mismatch": 0}
        self._rc4 = Cipher(ARC4(key), mode=None).decryptor()

    def _update_key(self) -> None:
        n = len(self.initial)
        sha = hashlib.sha1(self.initial[:n] + PAD1[:40] + self.current[:n]).digest()
        temp = hashlib.md5(self.initial[:n] + PAD2 + sha).digest()[:n]
        new = Cipher(ARC4(temp), mode=None).encryptor().update(temp)
        self.current = _reduce(new, self.method) if n == 8 else new
        self._rc4 = Cipher(ARC4(self.current), mode=None).decryptor()
        self.rekeys += 1

    def mac(self, data: bytes, salted: bool, count: int) -> bytes:
        extra = struct.pack("<I", count) if salted else b""
        sha = hashlib.sha1(self.mac_key + PAD1 + struct.pack("<I", len(data)) + data + extra).digest()
        return hashlib.md5(self.mac_key + PAD2 + sha).digest()[:8]

    def decrypt(self, signature: bytes, data: bytes, salted: bool) -> bytes:
        if self.count and self.count % REKEY_EVERY == 0:
            self._update_key()
        count = self.count
        plain = self._rc4.update(data)
        self.count += 1
        if self.mac(plain, salted, count) == signature:
            self.macs["salted" if salted else "plain"] += 1
        elif self.mac(plain, not salted, count) == signature:
            # some clients set the salted flag inconsistently: the other MAC form is accepted, counted
            self.macs["flag-mismatch"] += 1
        else:
            raise StdSecError("a Standard RDP Security MAC did not match (wrong server key or damaged data)")
        return plain


class StdSecSession:
    """Both directions of one connection's Standard RDP Security."""

    def __init__(self, client_random: bytes, server_random: bytes, method: int) -> None:
        mac_key, c2s, s2c = session_keys(client_random, server_random, method)
        self.streams = {"c2s": RC4Stream(c2s, mac_key, method), "s2c": RC4Stream(s2c, mac_key, method)}

    def decrypt(self, direction: str, signature: bytes, data: bytes, salted: bool) -> bytes:
        return self.streams[direction].decrypt(signature, data, salted)
