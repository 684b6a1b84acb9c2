"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), stdlib only.

Six digits, 30-second steps, HMAC-SHA1: what every authenticator app reads from an
``otpauth://`` URI. ``verify`` accepts the step before and after the current one (clock
drift between phone and appliance) and returns the step it matched, so the caller can refuse
a code that was already used (a shoulder-surfed or replayed code is worth nothing).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote

STEP = 30
DIGITS = 6


def new_secret() -> str:
    """A random 160-bit secret in base32 (RFC 4226 recommends 160 bits), no padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret_b32: str) -> bytes:
    s = secret_b32.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F  # dynamic truncation (RFC 4226 section 5.3)
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10 ** digits).zfill(digits)


def totp(secret_b32: str, at: float | None = None, digits: int = DIGITS, digest: str = "sha1") -> str:
    step = int((time.time() if at is None else at) // STEP)
    return hotp(_key(secret_b32), step, digits, digest)


def verify(secret_b32: str, code: str, at: float | None = None, window: int = 1) -> int | None:
    """The time step ``code`` is valid for (within ``window`` steps of now), else None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = _key(secret_b32)
    now = int((time.time() if at is None else at) // STEP)
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def uri(secret_b32: str, account: str, issuer: str = "sessiontap") -> str:
    """``otpauth://`` URI for authenticator apps (Key Uri Format)."""
    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?secret={secret_b32}&issuer={quote(issuer)}&algorithm=SHA1&digits={DIGITS}&period={STEP}"
