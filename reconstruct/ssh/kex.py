"""Key exchange arithmetic: shared secret from an escrowed private key, exchange hash H
(RFC 4253 section 8, RFC 4419, RFC 5656, RFC 8731, OpenSSH's PQ hybrids) and key derivation
(RFC 4253 section 7.2).

What the transport collects while watching a handshake goes into ``KexContext``; given an
escrowed secret, ``derive_keys`` returns the six transport keys or raises ``KexError`` with a
human reason.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, x25519

from reconstruct.ssh.keylog import DerivedKeys, SSHSecret

# RFC 3526 MODP groups (generator 2) used by diffie-hellman-group{14,16,18}-*. Rather than
# thousands of hex digits, the primes are rebuilt from their definition in the RFC:
# p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + c)


def _arctan_inv(x: int, scale: int) -> int:
    """floor(arctan(1/x) * 2^scale) to within a few units, integers only."""
    one = 1 << scale
    term = one // x
    total, k, x2 = term, 1, x * x
    while term:
        term //= x2
        k += 2
        total += -(term // k) if k % 4 == 3 else term // k
    return total


def _modp(n: int, c: int) -> int:
    guard = 64
    bits = n - 130
    pi_fixed = 16 * _arctan_inv(5, bits + guard) - 4 * _arctan_inv(239, bits + guard)
    return (1 << n) - (1 << (n - 64)) - 1 + ((pi_fixed >> guard) + c << 64)


_MODP_DEF = {"group14": (2048, 124476), "group16": (4096, 240904), "group18": (8192, 4743158)}
_MODP_CACHE: dict[str, int] = {}


def modp_prime(name: str) -> int:
    if name not in _MODP_CACHE:
        _MODP_CACHE[name] = _modp(*_MODP_DEF[name])
    return _MODP_CACHE[name]


class KexError(Exception):
    """An escrowed secret does not fit this key exchange (the reason is for a human)."""


def ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def ssh_mpint(n: int | bytes) -> bytes:
    if isinstance(n, (bytes, bytearray)):
        n = int.from_bytes(n, "big")
    if n == 0:
        return b"\0\0\0\0"
    b = n.to_bytes((n.bit_length() + 8) // 8, "big")   # one spare bit keeps the sign positive
    return ssh_string(b)


def kex_family(alg: str) -> str:
    """"x25519" | "ecdh" | "dh" | "gex" | "pq" | "unknown"."""
    if alg.startswith("curve25519-sha256"):
        return "x25519"
    if alg.startswith("ecdh-sha2-nistp"):
        return "ecdh"
    if alg.startswith("diffie-hellman-group-exchange"):
        return "gex"
    if alg.startswith("diffie-hellman-group"):
        return "dh"
    if alg.startswith(("sntrup761x25519", "mlkem768x25519", "mlkem")):
        return "pq"
    return "unknown"


def kex_hash(alg: str):
    if alg.endswith("sha512") or alg.endswith("sha512@openssh.com"):
        return hashlib.sha512
    if alg.endswith("nistp384") or alg.endswith("sha384"):
        return hashlib.sha384
    if alg.endswith("nistp521"):
        return hashlib.sha512
    if alg.endswith("sha1") or alg in ("diffie-hellman-group1-sha1",):
        return hashlib.sha1
    return hashlib.sha256


@dataclass(slots=True)
class KexContext:
    """Everything the exchange hash needs, filled in as the handshake goes by."""
    alg: str = ""
    v_c: bytes = b""
    v_s: bytes = b""
    i_c: bytes = b""                 # client KEXINIT payload
    i_s: bytes = b""
    client_cookie: str = ""
    server_cookie: str = ""
    host_key: bytes = b""            # K_S blob
    client_pub: bytes = b""          # Q_C / e (mpint body) / C_INIT
    server_pub: bytes = b""          # Q_S / f / S_REPLY
    gex_req: bytes = b""             # encoded min|n|max or n (old request)
    gex_p: int = 0
    gex_g: int = 0
    exchange_hash_seen: bytes = b""  # not on the wire; kept for symmetry with escrow
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(self.i_c and self.i_s and self.client_pub and self.server_pub)


def _dh_prime(ctx: KexContext) -> tuple[int, int]:
    fam = kex_family(ctx.alg)
    if fam == "gex":
        if not ctx.gex_p:
            raise KexError("group-exchange parameters were not seen")
        return ctx.gex_p, ctx.gex_g
    for name in _MODP_DEF:
        if name + "-" in ctx.alg:
            return modp_prime(name), 2
    if "group1-" in ctx.alg:
        raise KexError("diffie-hellman-group1 is not supported")
    raise KexError(f"unknown DH group in {ctx.alg}")


def shared_secret_from_private(ctx: KexContext, priv: bytes) -> bytes:
    """K (unsigned big-endian) from one endpoint's ephemeral private key. Which endpoint it
    belongs to is found by recomputing its public value."""
    fam = kex_family(ctx.alg)
    if fam == "x25519":
        if len(priv) != 32:
            raise KexError("an X25519 private key is 32 bytes")
        k = x25519.X25519PrivateKey.from_private_bytes(priv)
        pub = k.public_key().public_bytes_raw()
        if pub == ctx.client_pub:
            peer = ctx.server_pub
        elif pub == ctx.server_pub:
            peer = ctx.client_pub
        else:
            raise KexError("the escrowed X25519 key belongs to neither endpoint of this key exchange")
        try:
            return k.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
        except ValueError as exc:
            raise KexError(f"X25519 exchange failed: {exc}") from None
    if fam == "ecdh":
        curve = {"nistp256": ec.SECP256R1(), "nistp384": ec.SECP384R1(),
                 "nistp521": ec.SECP521R1()}[ctx.alg.rsplit("-", 1)[1]]
        try:
            k = ec.derive_private_key(int.from_bytes(priv, "big"), curve)
        except ValueError:
            raise KexError("the escrowed ECDH scalar is not valid for this curve") from None
        from cryptography.hazmat.primitives import serialization
        pub = k.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
        if pub == ctx.client_pub:
            peer = ctx.server_pub
        elif pub == ctx.server_pub:
            peer = ctx.client_pub
        else:
            raise KexError("the escrowed ECDH key belongs to neither endpoint of this key exchange")
        return k.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, peer))
    if fam in ("dh", "gex"):
        p, g = _dh_prime(ctx)
        x = int.from_bytes(priv, "big")
        e = int.from_bytes(ctx.client_pub, "big")
        f = int.from_bytes(ctx.server_pub, "big")
        pub = pow(g, x, p)
        if pub == e:
            peer = f
        elif pub == f:
            peer = e
        else:
            raise KexError("the escrowed DH exponent belongs to neither endpoint of this key exchange")
        k = pow(peer, x, p)
        return k.to_bytes((k.bit_length() + 7) // 8, "big")
    if fam == "pq":
        raise KexError(f"{ctx.alg} needs the SHARED_SECRET (a private key alone is not enough)")
    raise KexError(f"key exchange {ctx.alg} is not supported")


def encode_k(ctx: KexContext, k: bytes, encoding: str | None) -> bytes:
    if encoding is None:
        encoding = "string" if kex_family(ctx.alg) == "pq" else "mpint"
    return ssh_string(k) if encoding == "string" else ssh_mpint(k)


def exchange_hash(ctx: KexContext, k_enc: bytes) -> bytes:
    fam = kex_family(ctx.alg)
    parts = [ssh_string(ctx.v_c), ssh_string(ctx.v_s), ssh_string(ctx.i_c), ssh_string(ctx.i_s),
             ssh_string(ctx.host_key)]
    if fam in ("x25519", "ecdh", "pq"):
        parts += [ssh_string(ctx.client_pub), ssh_string(ctx.server_pub)]
    elif fam == "dh":
        parts += [ssh_mpint(ctx.client_pub), ssh_mpint(ctx.server_pub)]
    elif fam == "gex":
        parts += [ctx.gex_req, ssh_mpint(ctx.gex_p), ssh_mpint(ctx.gex_g),
                  ssh_mpint(ctx.client_pub), ssh_mpint(ctx.server_pub)]
    else:
        raise KexError(f"key exchange {ctx.alg} is not supported")
    parts.append(k_enc)
    return kex_hash(ctx.alg)(b"".join(parts)).digest()


def derive(ctx: KexContext, k_enc: bytes, h: bytes, session_id: bytes, letter: bytes,
           size: int) -> bytes:
    """RFC 4253 section 7.2: HASH(K || H || letter || session_id), extended as needed."""
    hf = kex_hash(ctx.alg)
    out = hf(k_enc + h + letter + session_id).digest()
    while len(out) < size:
        out += hf(k_enc + h + out).digest()
    return out[:size]


@dataclass(frozen=True, slots=True)
class KexKeys:
    c2s: DerivedKeys
    s2c: DerivedKeys
    h: bytes | None                  # None when the escrow gave the keys directly


def derive_keys(ctx: KexContext, secret: SSHSecret, session_id: bytes | None,
                sizes_c2s: tuple[int, int, int], sizes_s2c: tuple[int, int, int]) -> KexKeys:
    """Transport keys of this key exchange from one escrowed secret. ``session_id`` is the H
    of the first key exchange of the connection (None while this is the first)."""
    if secret.kind == "derived":
        assert secret.c2s and secret.s2c
        return KexKeys(secret.c2s, secret.s2c, None)
    if secret.kind == "private_key":
        k = shared_secret_from_private(ctx, secret.value)
        k_enc = encode_k(ctx, k, "mpint" if kex_family(ctx.alg) != "pq" else None)
        h = exchange_hash(ctx, k_enc)
    else:
        k_enc = encode_k(ctx, secret.value, secret.k_encoding)
        h = secret.exchange_hash or exchange_hash(ctx, k_enc)
    sid = session_id or h
    out = []
    for letters, (iv_n, key_n, mac_n) in ((b"ACE", sizes_c2s), (b"BDF", sizes_s2c)):
        out.append(DerivedKeys(derive(ctx, k_enc, h, sid, letters[0:1], iv_n) if iv_n else b"",
                               derive(ctx, k_enc, h, sid, letters[1:2], key_n),
                               derive(ctx, k_enc, h, sid, letters[2:3], mac_n) if mac_n else b""))
    return KexKeys(out[0], out[1], h)
