"""Accounts and sign-in: argon2id passwords, TOTP second factor, lockout, rate limits,
API tokens.

A sign-in needs user, password and a current TOTP code in one request, so there is no
half-signed-in state to attack. Failures are counted per user (``LOCK_AFTER`` in a row lock
the account for ``LOCK_SECONDS``; an admin can unlock) and per client address (a sliding
window; past it, 429 with Retry-After). An unknown user costs the same argon2 work as a known
one, and every failure gives the same message, so neither timing nor wording tells which
accounts exist. TOTP secrets are sealed in the vault (``console/totp/<user>``); each opening
is in the vault's trail.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.console import totp
from appliance.console.access import ALL_ZONES, ROLES, Principal, principal
from appliance.console.store import ConsoleStore

LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
IP_WINDOW = 60.0
IP_MAX_ATTEMPTS = 20  # failed sign-ins per address per IP_WINDOW
MIN_PASSWORD = 12
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults of argon2-cffi
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(Exception):
    """Sign-in refused; the message is safe to show (it never says which factor failed)."""


class RateLimited(AuthError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many sign-in attempts from this address; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class NewUser:
    name: str
    role: str
    zones: list[str]
    password: str
    totp_secret: str

    @property
    def totp_uri(self) -> str:
        return totp.uri(self.totp_secret, self.name)


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise ValueError("a user name is 1 to 64 letters, digits or . _ - @")
    return name


class Accounts:
    def __init__(self, store: ConsoleStore, vault, lock_after: int = LOCK_AFTER,
                 lock_seconds: float = LOCK_SECONDS, ip_max_attempts: int = IP_MAX_ATTEMPTS) -> None:
        self.store = store
        self.vault = vault
        self.vault_lock = threading.Lock()  # the vault object keeps in-memory indexes
        self.lock_after = lock_after
        self.lock_seconds = lock_seconds
        self.ip_max_attempts = ip_max_attempts
        self._attempts: dict[str, deque[float]] = {}
        self._attempts_lock = threading.Lock()

    # -- accounts -----------------------------------------------------------------------------
    def create(self, name: str, role: str, zones: list[str] | None = None, password: str | None = None,
               actor: str = "appliance") -> NewUser:
        check_name(name)
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if self.store.user(name) is not None:
            raise ValueError(f"user {name!r} exists already")
        zones = list(zones or [ALL_ZONES])
        password = password or secrets.token_urlsafe(15)
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        secret = totp.new_secret()
        with self.vault_lock:
            self.vault.seal_secret(self._totp_name(name), secret.encode(), actor=actor)
        self.store.add_user(name, role, zones, _hasher.hash(password))
        self.store.log(actor, "user-create", name, f"role={role} zones={','.join(zones)}")
        return NewUser(name, role, zones, password, secret)

    def reset(self, name: str, actor: str = "appliance", password: str | None = None) -> NewUser:
        """New password and new TOTP secret; signs the user out everywhere, drops their tokens."""
        u = self.store.user(name)
        if u is None:
            raise LookupError(f"no user {name!r}")
        password = password or secrets.token_urlsafe(15)
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        secret = totp.new_secret()
        with self.vault_lock:
            self.vault.seal_secret(self._totp_name(name), secret.encode(), actor=actor)
        self.store.update_user(name, pw_hash=_hasher.hash(password), failures=0, locked_until=0, totp_step=0)
        self.store.drop_web_sessions_of(name)
        self.store.drop_tokens_of(name)
        self.store.log(actor, "user-reset", name)
        return NewUser(name, u["role"], u["zones"], password, secret)

    @staticmethod
    def _totp_name(name: str) -> str:
        return f"console/totp/{name}"

    def principal(self, name: str) -> Principal | None:
        u = self.store.user(name)
        if u is None or u["disabled"]:
            return None
        return principal(u["name"], u["role"], u["zones"], self.store.zones())

    # -- sign-in ------------------------------------------------------------------------------
    def _ip_check(self, ip: str) -> None:
        now = time.monotonic()
        with self._attempts_lock:
            q = self._attempts.setdefault(ip, deque())
            while q and q[0] < now - IP_WINDOW:
                q.popleft()
            if len(q) >= self.ip_max_attempts:
                raise RateLimited(int(q[0] + IP_WINDOW - now) + 1)

    def _ip_failed(self, ip: str) -> None:
        # only failures count: many good sign-ins from one address (a NAT, a jump host) are fine
        with self._attempts_lock:
            self._attempts.setdefault(ip, deque()).append(time.monotonic())
            if len(self._attempts) > 10_000:  # bounded: forget the addresses quiet the longest
                by_age = sorted(self._attempts, key=lambda k: self._attempts[k][-1] if self._attempts[k] else 0)
                for k in by_age[:5_000]:
                    del self._attempts[k]

    def sign_in(self, name: str, password: str, code: str, ip: str) -> Principal:
        self._ip_check(ip)
        fail = AuthError("wrong user name, password or code")
        u = self.store.user(name) if isinstance(name, str) and name else None
        if u is None:
            try:
                _hasher.verify(_DUMMY_HASH, password or "")
            except VerificationError:
                pass
            self.store.log(str(name)[:64], "sign-in-failed", str(name)[:64], "unknown user", ip)
            self._ip_failed(ip)
            raise fail
        now = time.time()
        if u["locked_until"] > now:
            self.store.log(name, "sign-in-refused", name, "account locked", ip)
            self._ip_failed(ip)
            raise AuthError(f"this account is locked after {self.lock_after} failed sign-ins; "
                            f"try again later or ask an admin to unlock it")
        try:
            ok = _hasher.verify(u["pw_hash"], password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        step = None
        if ok:
            with self.vault_lock:
                secret = self.vault.open_secret(self._totp_name(name), actor=f"console:{name}",
                                                purpose="second factor at sign-in").decode()
            step = totp.verify(secret, code)
            if step is not None and not self.store.claim_totp_step(name, step):
                step = None  # a code already used: replay
        if not ok or step is None or u["disabled"]:
            failures = u["failures"] + 1
            locked = now + self.lock_seconds if failures >= self.lock_after else 0
            self.store.update_user(name, failures=failures, locked_until=locked)
            self.store.log(name, "sign-in-failed", name, "password" if not ok else "code", ip)
            if locked:
                self.store.log(name, "locked", name, f"{failures} failures", ip)
            self._ip_failed(ip)
            raise fail
        if _hasher.check_needs_rehash(u["pw_hash"]):
            self.store.update_user(name, pw_hash=_hasher.hash(password))
        self.store.update_user(name, failures=0, locked_until=0)
        self.store.log(name, "sign-in", name, "", ip)
        p = self.principal(name)
        assert p is not None
        return p

    # -- API tokens ---------------------------------------------------------------------------
    def new_token(self, user: str, label: str) -> tuple[int, str]:
        token = "st_" + secrets.token_urlsafe(32)
        tid = self.store.add_token(token, user, label)
        self.store.log(user, "token-create", str(tid), label)
        return tid, token

    def token_principal(self, token: str) -> Principal | None:
        user = self.store.token_user(token)
        return self.principal(user) if user else None
