"""Passive TLS record decryption (sans-I/O): the bytes of both directions of one TLS
connection go in, the application-data plaintext of each direction comes out.

Secrets come from outside: a key log (``KeyLookup`` kind ``tls-client-random``: TLS 1.2
master secret or TLS 1.3 traffic secrets), or the server's RSA private key for TLS 1.2 with
RSA key exchange (the pre-master secret is decrypted from the ClientKeyExchange; extended master
secret is honoured). Ciphers: AES-GCM, AES-CBC + HMAC, ChaCha20-Poly1305 (TLS 1.2 and 1.3).

Nothing here trusts its input: a record that does not authenticate, a handshake we cannot
follow or a buffer above its bound raises ``TLSError`` with a one-sentence reason, and the
caller turns it into that session's DecodeError.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from reconstruct.decoder import KeyLookup
from reconstruct.rdp.keylog import KIND as KEYLOG_KIND

MAX_RECORD = 5 + 16384 + 2048          # header + the largest ciphertext TLS allows
MAX_HANDSHAKE = 256 * 1024             # one handshake message (certificate chains included)
MAX_SKIPPED_RECORDS = 4096             # after a gap: how many lost records we try to step over
MAX_RESYNC_CANDIDATES = 64             # after a gap: header-looking positions tried per record

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE, HS_CLIENT_KEY_EXCHANGE, HS_FINISHED = 1, 2, 11, 16, 20
EXT_SUPPORTED_VERSIONS, EXT_EMS, EXT_ENCRYPT_THEN_MAC = 43, 23, 22


class TLSError(Exception):
    """This connection's TLS cannot be (further) decrypted; ``str()`` is the reason."""


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    rsa_kex: bool             # TLS 1.2 RSA key exchange (decryptable with the server key)
    cipher: str               # "gcm" | "cbc" | "chacha"
    key_len: int
    mac: str | None           # HMAC hash for CBC suites
    prf: str                  # "sha256" | "sha384"


SUITES: dict[int, Suite] = {
    0x009C: Suite("TLS_RSA_WITH_AES_128_GCM_SHA256", True, "gcm", 16, None, "sha256"),
    0x009D: Suite("TLS_RSA_WITH_AES_256_GCM_SHA384", True, "gcm", 32, None, "sha384"),
    0x002F: Suite("TLS_RSA_WITH_AES_128_CBC_SHA", True, "cbc", 16, "sha1", "sha256"),
    0x0035: Suite("TLS_RSA_WITH_AES_256_CBC_SHA", True, "cbc", 32, "sha1", "sha256"),
    0x003C: Suite("TLS_RSA_WITH_AES_128_CBC_SHA256", True, "cbc", 16, "sha256", "sha256"),
    0x003D: Suite("TLS_RSA_WITH_AES_256_CBC_SHA256", True, "cbc", 32, "sha256", "sha256"),
    0x009E: Suite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", False, "gcm", 16, None, "sha256"),
    0x009F: Suite("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", False, "gcm", 32, None, "sha384"),
    0xC02B: Suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", False, "gcm", 16, None, "sha256"),
    0xC02C: Suite("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", False, "gcm", 32, None, "sha384"),
    0xC02F: Suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", False, "gcm", 16, None, "sha256"),
    0xC030: Suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", False, "gcm", 32, None, "sha384"),
    0xC009: Suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", False, "cbc", 16, "sha1", "sha256"),
    0xC00A: Suite("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", False, "cbc", 32, "sha1", "sha256"),
    0xC013: Suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", False, "cbc", 16, "sha1", "sha256"),
    0xC014: Suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", False, "cbc", 32, "sha1", "sha256"),
    0xC027: Suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", False, "cbc", 16, "sha256", "sha256"),
    0xC028: Suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", False, "cbc", 32, "sha384", "sha384"),
    0xCCA8: Suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", False, "chacha", 32, None, "sha256"),
    0xCCA9: Suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", False, "chacha", 32, None, "sha256"),
    0xCCAA: Suite("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", False, "chacha", 32, None, "sha256"),
    # TLS 1.3
    0x1301: Suite("TLS_AES_128_GCM_SHA256", False, "gcm", 16, None, "sha256"),
    0x1302: Suite("TLS_AES_256_GCM_SHA384", False, "gcm", 32, None, "sha384"),
    0x1303: Suite("TLS_CHACHA20_POLY1305_SHA256", False, "chacha", 32, None, "sha256"),
}


# ------------------------------------------------------------------ key schedule ----
def prf12(secret: bytes, label: bytes, seed: bytes, n: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:n]


def hkdf_expand_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    """HKDF-Expand-Label of RFC 8446 section 7.1 with an empty context."""
    full = b"tls13 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hash_name).digest()
        out += t
        i += 1
    return out[:length]


class _Direction:
    """Decryption state of one direction: cipher, keys, sequence number."""

    def __init__(self, suite: Suite, key: bytes, iv: bytes, mac_key: bytes = b"", tls13: bool = False,
                 encrypt_then_mac: bool = False):
        self.suite, self.key, self.iv, self.mac_key, self.tls13 = suite, key, iv, mac_key, tls13
        self.etm = encrypt_then_mac
        self.seq = 0
        if suite.cipher == "gcm":
            self.aead = AESGCM(key)
        elif suite.cipher == "chacha":
            self.aead = ChaCha20Poly1305(key)
        else:
            self.aead = None

    def decrypt(self, ctype: int, version: int, body: bytes) -> tuple[int, bytes]:
        """Decrypt one record body; returns (inner content type, plaintext)."""
        seq = self.seq
        self.seq += 1
        return self.decrypt_at(seq, ctype, version, body)

    def decrypt_at(self, seq: int, ctype: int, version: int, body: bytes) -> tuple[int, bytes]:
        """Decrypt a record as the ``seq``-th of this direction (no state changes)."""
        s = self.suite
        try:
            if self.tls13:
                hdr = struct.pack(">BHH", ctype, version, len(body))
                inner = self.aead.decrypt(self._nonce_at(seq), body, hdr)
                end = len(inner)
                while end and inner[end - 1] == 0:
                    end -= 1
                if not end:
                    raise TLSError("a TLS 1.3 record has no inner content type")
                return inner[end - 1], inner[: end - 1]
            if s.cipher == "gcm":
                if len(body) < 24:
                    raise TLSError("a TLS record is too short for AES-GCM")
                nonce = self.iv[:4] + body[:8]
                aad = struct.pack(">QBHH", seq, ctype, version, len(body) - 24)
                return ctype, self.aead.decrypt(nonce, body[8:], aad)
            if s.cipher == "chacha":
                if len(body) < 16:
                    raise TLSError("a TLS record is too short for ChaCha20-Poly1305")
                aad = struct.pack(">QBHH", seq, ctype, version, len(body) - 16)
                return ctype, self.aead.decrypt(self._nonce_at(seq), body, aad)
            return ctype, self._decrypt_cbc(seq, ctype, version, body)
        except InvalidTag:
            raise TLSError("a TLS record failed authentication (wrong key or damaged data)") from None

    def _nonce_at(self, seq: int) -> bytes:
        # the IV XOR the sequence number left-padded to its length (RFC 8446 5.3, RFC 7905)
        n = len(self.iv)
        return (int.from_bytes(self.iv, "big") ^ seq).to_bytes(n, "big")

    def _decrypt_cbc(self, seq: int, ctype: int, version: int, body: bytes) -> bytes:
        mac_len = hashlib.new(self.suite.mac).digest_size
        if self.etm:
            return self._decrypt_etm(seq, ctype, version, body, mac_len)
        if len(body) < 32 or len(body) % 16:
            raise TLSError("a TLS CBC record has an impossible length")
        dec = Cipher(algorithms.AES(self.key), modes.CBC(body[:16])).decryptor()
        plain = dec.update(body[16:]) + dec.finalize()
        pad = plain[-1]
        if pad + 1 + mac_len > len(plain) or plain[-pad - 1:] != bytes([pad]) * (pad + 1):
            raise TLSError("a TLS CBC record has bad padding (wrong key or damaged data)")
        plain = plain[: -pad - 1]
        content, mac = plain[:-mac_len], plain[-mac_len:]
        want = hmac.new(self.mac_key, struct.pack(">QBHH", seq, ctype, version, len(content)) + content,
                        self.suite.mac).digest()
        if not hmac.compare_digest(mac, want):
            raise TLSError("a TLS record failed its MAC check (wrong key or damaged data)")
        return content


    def _decrypt_etm(self, seq: int, ctype: int, version: int, body: bytes, mac_len: int) -> bytes:
        """RFC 7366 encrypt-then-MAC (OpenSSL's default for CBC suites): the MAC covers the
        IV and ciphertext and follows them."""
        enc, mac = body[:-mac_len], body[-mac_len:]
        if len(enc) < 32 or len(enc) % 16:
            raise TLSError("a TLS CBC record has an impossible length")
        want = hmac.new(self.mac_key, struct.pack(">QBHH", seq, ctype, version, len(enc)) + enc,
                        self.suite.mac).digest()
        if not hmac.compare_digest(mac, want):
            raise TLSError("a TLS record failed its MAC check (wrong key or damaged data)")
        dec = Cipher(algorithms.AES(self.key), modes.CBC(enc[:16])).decryptor()
        plain = dec.update(enc[16:]) + dec.finalize()
        pad = plain[-1]
        if pad + 1 > len(plain) or plain[-pad - 1:] != bytes([pad]) * (pad + 1):
            raise TLSError("a TLS CBC record has bad padding")
        return plain[:-pad - 1]


def _tls13_direction(suite: Suite, secret: bytes) -> _Direction:
    key = hkdf_expand_label(secret, "key", suite.key_len, suite.prf)
    iv = hkdf_expand_label(secret, "iv", 12, suite.prf)
    return _Direction(suite, key, iv, tls13=True)


# ------------------------------------------------------------------ the decryptor ----
class TLSDecryptor:
    """Follows one TLS connection passively. ``feed`` returns application-data plaintext.

    ``directions``: "c2s" is the TLS client. ``server_keys`` are RSA private keys (used for
    TLS 1.2 RSA key exchange, chosen by matching the server certificate's modulus).
    """

    def __init__(self, keys: KeyLookup, server_keys: Sequence[rsa.RSAPrivateKey] = ()) -> None:
        self.keys = keys
        self.server_keys = list(server_keys)
        self._buf = {"c2s": bytearray(), "s2c": bytearray()}
        self._hs = {"c2s": bytearray(), "s2c": bytearray()}
        self._transcript = hashlib.sha256(), hashlib.sha384()
        self._encrypted = {"c2s": False, "s2c": False}
        self._dirs: dict[str, _Direction] = {}
        self._app13: dict[str, _Direction] = {}
        self.client_random: bytes | None = None
        self.server_random: bytes | None = None
        self.suite_id: int | None = None
        self.version: str | None = None        # "TLS 1.2" | "TLS 1.3" (negotiated)
        self.ems = False
        self.etm = False                       # RFC 7366 encrypt-then-MAC (CBC suites)
        self.sni: str | None = None
        self.server_cert: x509.Certificate | None = None
        self.master_secret: bytes | None = None
        self.secret_source: str | None = None  # "keylog" | "server-key"
        self.no_secret_reason: str | None = None
        self._resync = {"c2s": False, "s2c": False}
        self.skipped_records = {"c2s": 0, "s2c": 0}
        self.resyncs = 0

    @property
    def suite(self) -> Suite | None:
        return SUITES.get(self.suite_id) if self.suite_id is not None else None

    @property
    def decrypting(self) -> bool:
        return bool(self._dirs)

    def gap(self, direction: str) -> None:
        """Bytes of this direction are missing: what is buffered is useless, and the next record
        boundary and sequence number must be found again (``feed`` does it)."""
        if not self.decrypting or self.version not in ("TLS 1.2", "TLS 1.3") or self._app13:
            raise TLSError("bytes are missing inside the TLS handshake: the session cannot be decrypted")
        self._buf[direction].clear()
        self._resync[direction] = True

    def _find_record(self, direction: str) -> bool:
        """After a gap: find a header whose record authenticates at some later sequence number.
        Drops the bytes before it. False when more data is needed."""
        buf = self._buf[direction]
        d = self._dirs[direction]
        tried = 0
        i = 0
        while i + 5 <= len(buf):
            ctype, version, length = buf[i], (buf[i + 1] << 8) | buf[i + 2], (buf[i + 3] << 8) | buf[i + 4]
            if ctype not in (CT_ALERT, CT_HANDSHAKE, CT_APPDATA) or version not in (0x0301, 0x0302, 0x0303) \
                    or not 16 <= length <= MAX_RECORD - 5:
                i += 1
                continue
            if i + 5 + length > len(buf):
                del buf[:i]
                return False                      # wait for the whole candidate record
            body = bytes(buf[i + 5:i + 5 + length])
            for seq in range(d.seq, d.seq + MAX_SKIPPED_RECORDS):
                try:
                    d.decrypt_at(seq, ctype, version, body)
                except TLSError:
                    continue
                self.skipped_records[direction] += seq - d.seq
                d.seq = seq                       # found: the normal path decrypts it again
                del buf[:i]
                self._resync[direction] = False
                self.resyncs += 1
                return True
            tried += 1
            if tried >= MAX_RESYNC_CANDIDATES:
                raise TLSError("no TLS record could be authenticated after a gap")
            i += 1
        if len(buf) > 4 * MAX_RECORD:
            raise TLSError("no TLS record could be found after a gap")
        return False

    def feed(self, direction: str, data: bytes) -> list[bytes]:
        """Bytes of one direction; returns the application data those bytes complete."""
        buf = self._buf[direction]
        buf += data
        out: list[bytes] = []
        if self._resync[direction] and not self._find_record(direction):
            return out
        while len(buf) >= 5:
            ctype, version, length = struct.unpack_from(">BHH", buf, 0)
            if ctype not in (CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA) or version >> 8 != 3:
                raise TLSError(f"not a TLS record (type {ctype}, version {version:#06x})")
            if length + 5 > MAX_RECORD:
                raise TLSError(f"a TLS record of {length} bytes is longer than TLS allows")
            if len(buf) < 5 + length:
                break
            body = bytes(buf[5:5 + length])
            del buf[:5 + length]
            plain = self._record(direction, ctype, version, body)
            if plain:
                out.append(plain)
        return out

    # one record ------------------------------------------------------------------------
    def _record(self, direction: str, ctype: int, version: int, body: bytes) -> bytes | None:
        if ctype == CT_CCS:
            if self.version != "TLS 1.3":
                self._encrypted[direction] = True
            return None
        tls13 = self.version == "TLS 1.3"
        encrypted = self._encrypted[direction] or (tls13 and ctype == CT_APPDATA)
        if not encrypted:
            if ctype == CT_HANDSHAKE:
                self._handshake_bytes(direction, body)
            elif ctype == CT_APPDATA:
                raise TLSError("application data before the TLS handshake finished")
            return None
        d = self._dirs.get(direction)
        if d is None:
            return None                         # no secret: counted by the caller as undecrypted
        inner, plain = d.decrypt(ctype, version, body)
        if inner == CT_APPDATA:
            return plain
        if tls13 and inner == CT_HANDSHAKE and direction in self._app13:
            # handshake keys still in use: a Finished switches this direction to traffic keys
            if self._has_finished(plain):
                self._dirs[direction] = self._app13.pop(direction)
        return None

    @staticmethod
    def _has_finished(data: bytes) -> bool:
        i = 0
        while i + 4 <= len(data):
            t, n = data[i], int.from_bytes(data[i + 1:i + 4], "big")
            if t == HS_FINISHED:
                return True
            i += 4 + n
        return False

    def _handshake_bytes(self, direction: str, body: bytes) -> None:
        hs = self._hs[direction]
        hs += body
        while len(hs) >= 4:
            n = int.from_bytes(hs[1:4], "big")
            if n > MAX_HANDSHAKE:
                raise TLSError(f"a TLS handshake message of {n} bytes is beyond our bound")
            if len(hs) < 4 + n:
                break
            msg = bytes(hs[:4 + n])
            del hs[:4 + n]
            self._handshake_message(direction, msg)

    def _handshake_message(self, direction: str, msg: bytes) -> None:
        mtype, body = msg[0], msg[4:]
        try:
            if mtype == HS_CLIENT_HELLO and direction == "c2s":
                self._client_hello(body)
            elif mtype == HS_SERVER_HELLO and direction == "s2c":
                self._server_hello(body)
            elif mtype == HS_CERTIFICATE and direction == "s2c" and self.version != "TLS 1.3":
                self._certificate(body)
        except (IndexError, struct.error, ValueError) as e:
            raise TLSError(f"a TLS handshake message (type {mtype}) is malformed: {e}") from None
        for h in self._transcript:
            h.update(msg)
        if mtype == HS_CLIENT_KEY_EXCHANGE and direction == "c2s":
            self._client_key_exchange(body)

    def _client_hello(self, b: bytes) -> None:
        self.client_random = b[2:34]
        i = 34
        i += 1 + b[i]                                        # session id
        i += 2 + int.from_bytes(b[i:i + 2], "big")           # cipher suites
        i += 1 + b[i]                                        # compression
        for etype, ebody in _extensions(b, i):
            if etype == 0 and len(ebody) > 5:                # server_name
                self.sni = ebody[5:].decode("ascii", "replace")

    def _server_hello(self, b: bytes) -> None:
        legacy_version = int.from_bytes(b[0:2], "big")
        self.server_random = b[2:34]
        i = 34
        i += 1 + b[i]
        self.suite_id = int.from_bytes(b[i:i + 2], "big")
        i += 3
        version = legacy_version
        for etype, ebody in _extensions(b, i):
            if etype == EXT_SUPPORTED_VERSIONS and len(ebody) == 2:
                version = int.from_bytes(ebody, "big")
            elif etype == EXT_EMS:
                self.ems = True
            elif etype == EXT_ENCRYPT_THEN_MAC:
                self.etm = True
        self.version = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}.get(
            version, f"{version:#06x}")
        if self.suite is None:
            self.no_secret_reason = f"TLS cipher suite {self.suite_id:#06x} is not supported"
            return
        if self.version == "TLS 1.3":
            self._setup_tls13()
        elif self.version != "TLS 1.2":
            self.no_secret_reason = f"{self.version} is not supported (TLS 1.2 and 1.3 are)"
        else:
            self._setup_tls12_from_keylog()

    def _keylog_secrets(self):
        if self.client_random is None:
            return None
        found = self.keys.lookup(KEYLOG_KIND, self.client_random.hex())
        return found[0] if found else None

    def _setup_tls13(self) -> None:
        s = self._keylog_secrets()
        suite = self.suite
        needed = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                  "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
        if s is None or not all(k in s.secrets for k in needed):
            self.no_secret_reason = ("no TLS 1.3 traffic secrets in the key log for this session's "
                                     "client random")
            return
        self._dirs = {"c2s": _tls13_direction(suite, s.secrets[needed[0]]),
                      "s2c": _tls13_direction(suite, s.secrets[needed[1]])}
        self._app13 = {"c2s": _tls13_direction(suite, s.secrets[needed[2]]),
                       "s2c": _tls13_direction(suite, s.secrets[needed[3]])}
        self.secret_source = "keylog"

    def _setup_tls12_from_keylog(self) -> None:
        s = self._keylog_secrets()
        if s is not None and s.master_secret is not None:
            self._set_master(s.master_secret, "keylog")

    def _certificate(self, b: bytes) -> None:
        if len(b) < 6:
            return
        n = int.from_bytes(b[3:6], "big")
        self.server_cert = x509.load_der_x509_certificate(b[6:6 + n])

    def _client_key_exchange(self, b: bytes) -> None:
        suite = self.suite
        if self.master_secret is not None or suite is None or self.version != "TLS 1.2":
            return
        if not suite.rsa_kex:
            self.no_secret_reason = (f"{suite.name} is forward secret: only a key log (not the "
                                     "server key) can decrypt it; no CLIENT_RANDOM for this session")
            return
        if not self.server_keys:
            self.no_secret_reason = ("TLS 1.2 RSA key exchange and no key log entry: the server's "
                                     "private key (--rdp-server-key) is needed")
            return
        key = self._matching_server_key()
        if key is None:
            raise TLSError("none of the given RDP server keys matches the server's TLS certificate")
        enc = b[2:2 + int.from_bytes(b[0:2], "big")]
        try:
            pms = key.decrypt(enc, padding.PKCS1v15())
        except ValueError:
            raise TLSError("the RSA pre-master secret did not decrypt with the server key") from None
        if len(pms) != 48:
            raise TLSError("the RSA pre-master secret has a wrong length (wrong server key?)")
        if self.ems:
            h = self._transcript[0 if suite.prf == "sha256" else 1].copy().digest()
            ms = prf12(pms, b"extended master secret", h, 48, suite.prf)
        else:
            ms = prf12(pms, b"master secret", self.client_random + self.server_random, 48, suite.prf)
        self._set_master(ms, "server-key")

    def _matching_server_key(self) -> rsa.RSAPrivateKey | None:
        if self.server_cert is None:
            return self.server_keys[0] if len(self.server_keys) == 1 else None
        pub = self.server_cert.public_key()
        if not isinstance(pub, rsa.RSAPublicKey):
            return None
        n = pub.public_numbers().n
        for k in self.server_keys:
            if k.public_key().public_numbers().n == n:
                return k
        return None

    def _set_master(self, ms: bytes, source: str) -> None:
        suite = self.suite
        self.master_secret, self.secret_source = ms, source
        mac_len = hashlib.new(suite.mac).digest_size if suite.mac else 0
        iv_len = {"gcm": 4, "chacha": 12, "cbc": 0}[suite.cipher]
        n = 2 * (mac_len + suite.key_len + iv_len)
        kb = prf12(ms, b"key expansion", self.server_random + self.client_random, n, suite.prf)
        i = 0

        def take(k: int) -> bytes:
            nonlocal i
            i += k
            return kb[i - k:i]
        cmac, smac = take(mac_len), take(mac_len)
        ckey, skey = take(suite.key_len), take(suite.key_len)
        civ, siv = take(iv_len), take(iv_len)
        etm = self.etm and suite.cipher == "cbc"
        self._dirs = {"c2s": _Direction(suite, ckey, civ, cmac, encrypt_then_mac=etm),
                      "s2c": _Direction(suite, skey, siv, smac, encrypt_then_mac=etm)}


def _extensions(b: bytes, i: int):
    if i + 2 > len(b):
        return
    end = i + 2 + int.from_bytes(b[i:i + 2], "big")
    i += 2
    while i + 4 <= end:
        etype, n = struct.unpack_from(">HH", b, i)
        yield etype, b[i + 4:i + 4 + n]
        i += 4 + n


def load_rsa_private_key(data: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or from xrdp's rsakeys.ini."""
    from cryptography.hazmat.primitives import serialization
    text = data.lstrip()
    if text.startswith(b"-----"):
        key = serialization.load_pem_private_key(data, password=None)
    elif b"pri_exp" in data:
        key = _xrdp_rsakeys_ini(data.decode("ascii", "replace"))
    else:
        key = serialization.load_der_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def _xrdp_rsakeys_ini(text: str) -> rsa.RSAPrivateKey:
    """xrdp's rsakeys.ini: little-endian byte lists pub_exp, pub_mod, pri_exp (no primes)."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() in ("pub_exp", "pub_mod", "pri_exp"):
            vals[k.strip()] = int.from_bytes(bytes(int(x, 16) for x in v.strip().split(",") if x), "little")
    e, n, d = vals["pub_exp"], vals["pub_mod"], vals["pri_exp"]
    p, q = rsa.rsa_recover_prime_factors(n, e, d)
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                 rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)).private_key()


__all__ = ["TLSDecryptor", "TLSError", "SUITES", "load_rsa_private_key", "prf12", "hkdf_expand_label"]
