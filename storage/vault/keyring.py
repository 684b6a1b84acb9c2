"""Key hierarchy: key-encryption key (from a passphrase or a key file) -> master key -> data keys.

- The KEK is never stored: Argon2id (RFC 9106 second recommended profile, 64 MiB) over a
  passphrase, or HKDF over the 32 random bytes of a key file.
- Master keys (AES-256) are stored wrapped by the KEK in ``keys/keyring.json``. Rotating the
  master key rewraps the small per-recording data keys, never the recordings.
- Each recording and each sealed secret has its own random data key, wrapped by the active
  master key; destroying that wrapped key is the crypto-shredding of the recording.
- The Ed25519 signing key and the catalog root secret are wrapped by the master key too.
Every wrap binds what it protects (vault id, key id, recording id) as associated data, so a
wrapped key copied to another place does not open.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .chain import b64, canonical, unb64
from .errors import VaultError, WrongKeyError
from .fsutil import atomic_write

KEY_FILE_BYTES = 32
ARGON2 = {"kdf": "argon2id", "iterations": 3, "lanes": 4, "memory_kib": 65536}
SCRYPT = {"kdf": "scrypt", "n": 2 ** 15, "r": 8, "p": 1}


def hkdf(ikm: bytes, info: bytes, salt: bytes | None = None, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def wrap(key: bytes, secret: bytes, aad: bytes) -> dict:
    nonce = os.urandom(12)
    return {"nonce": b64(nonce), "wrapped": b64(AESGCM(key).encrypt(nonce, secret, aad))}


def unwrap(key: bytes, blob: dict, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(unb64(blob["nonce"]), unb64(blob["wrapped"]), aad)


def derive_kek_from_passphrase(passphrase: str, params: dict, salt: bytes) -> bytes:
    secret = passphrase.encode("utf-8")
    if params["kdf"] == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        return Argon2id(salt=salt, length=32, iterations=params["iterations"], lanes=params["lanes"],
                        memory_cost=params["memory_kib"]).derive(secret)
    if params["kdf"] == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
        return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(secret)
    raise VaultError(f"unknown key derivation {params['kdf']!r} in the keyring")


def default_passphrase_kdf() -> dict:
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: F401  (cryptography >= 44)
        return dict(ARGON2)
    except ImportError:
        return dict(SCRYPT)


def read_key_file(path: Path) -> bytes:
    try:
        st = path.stat()
        text = path.read_text().strip()
    except FileNotFoundError:
        raise VaultError(f"master key file {path} is missing: restore it from its backup, "
                         "or give the right --key-file / SESSIONTAP_PASSPHRASE") from None
    except OSError as err:
        raise VaultError(f"cannot read master key file {path}: {err.strerror}") from None
    if st.st_mode & 0o077:
        raise VaultError(f"master key file {path} is readable by other users "
                         f"(mode {st.st_mode & 0o777:o}); chmod 600 it first")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != KEY_FILE_BYTES:
        raise WrongKeyError(f"master key file {path} is not a sessiontap key file "
                            f"({KEY_FILE_BYTES} random bytes in base64)")
    return raw


def create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        raise VaultError(f"key file {path} already exists; refusing to overwrite a master key")
    raw = secrets.token_bytes(KEY_FILE_BYTES)
    atomic_write(path, base64.b64encode(raw) + b"\n", mode=0o600, what="the master key file")
    return raw


@dataclass
class Keys:
    """The unwrapped keys of an open vault (kept in memory only)."""
    vault_id: str
    masters: dict[str, bytes]
    active: str
    signing: Ed25519PrivateKey
    catalog_root: bytes

    @property
    def master(self) -> bytes:
        return self.masters[self.active]


class Keyring:
    """``keys/keyring.json``: the wrapped master keys, signing key and catalog root."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def load_doc(self) -> dict:
        try:
            return json.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise VaultError(f"no vault here: {self.path.parent.parent} has no keys/keyring.json "
                             "(run `sessiontap init` first)") from None
        except ValueError:
            raise VaultError("keys/keyring.json is corrupted; restore it from backup") from None

    def save_doc(self, doc: dict) -> None:
        atomic_write(self.path, canonical(doc) + b"\n", what="the keyring")

    # -- creation --------------------------------------------------------------------------
    def create(self, vault_id: str, *, passphrase: str | None, key_file_bytes: bytes | None) -> Keys:
        kek_doc, kek = self._new_kek(vault_id, passphrase, key_file_bytes)
        master_id = "m1"
        master = secrets.token_bytes(32)
        keys = Keys(vault_id, {master_id: master}, master_id, Ed25519PrivateKey.generate(),
                    secrets.token_bytes(32))
        self.save_doc(self._doc(kek_doc, kek, keys))
        return keys

    @staticmethod
    def _new_kek(vault_id: str, passphrase: str | None, key_file_bytes: bytes | None) -> tuple[dict, bytes]:
        salt = secrets.token_bytes(16)
        if passphrase is not None:
            if not passphrase:
                raise VaultError("an empty passphrase protects nothing; give a real one or use a key file")
            params = default_passphrase_kdf()
            return {"source": "passphrase", "salt": b64(salt), **params}, \
                derive_kek_from_passphrase(passphrase, params, salt)
        assert key_file_bytes is not None
        return {"source": "keyfile", "salt": b64(salt)}, \
            hkdf(key_file_bytes, b"sessiontap kek v1 " + vault_id.encode(), salt)

    def _doc(self, kek_doc: dict, kek: bytes, keys: Keys) -> dict:
        vid = keys.vault_id.encode()
        sk = keys.signing.private_bytes_raw()
        return {
            "format": 1,
            "vault_id": keys.vault_id,
            "kek": kek_doc,
            "check": wrap(kek, b"sessiontap", b"kek check " + vid),
            "masters": {mid: wrap(kek, m, b"master " + vid + b" " + mid.encode())
                        for mid, m in keys.masters.items()},
            "active": keys.active,
            "signing": {"public": b64(keys.signing.public_key().public_bytes_raw()),
                        **wrap(keys.master, sk, b"signing " + vid)},
            "catalog_root": wrap(keys.master, keys.catalog_root, b"catalog " + vid),
        }

    # -- opening ---------------------------------------------------------------------------
    def source(self) -> str:
        return self.load_doc()["kek"]["source"]

    def unlock(self, *, passphrase: str | None, key_file_bytes: bytes | None) -> tuple[Keys, bytes]:
        doc = self.load_doc()
        vid = doc["vault_id"]
        kek = self._kek(doc, passphrase, key_file_bytes)
        try:
            unwrap(kek, doc["check"], b"kek check " + vid.encode())
        except InvalidTag:
            what = "passphrase" if doc["kek"]["source"] == "passphrase" else "key file"
            raise WrongKeyError(f"wrong {what}: it does not unlock this vault's master key") from None
        try:
            masters = {mid: unwrap(kek, blob, b"master " + vid.encode() + b" " + mid.encode())
                       for mid, blob in doc["masters"].items()}
            active = doc["active"]
            master = masters[active]
            sk = unwrap(master, doc["signing"], b"signing " + vid.encode())
            root = unwrap(master, doc["catalog_root"], b"catalog " + vid.encode())
        except (InvalidTag, KeyError):
            raise VaultError("keys/keyring.json was altered: a wrapped key does not open") from None
        signing = Ed25519PrivateKey.from_private_bytes(sk)
        if b64(signing.public_key().public_bytes_raw()) != doc["signing"]["public"]:
            raise VaultError("keys/keyring.json was altered: the signing key does not match its public key")
        return Keys(vid, masters, active, signing, root), kek

    def _kek(self, doc: dict, passphrase: str | None, key_file_bytes: bytes | None) -> bytes:
        kek_doc = doc["kek"]
        salt = unb64(kek_doc["salt"])
        if kek_doc["source"] == "passphrase":
            if passphrase is None:
                raise VaultError("this vault is protected by a passphrase: set SESSIONTAP_PASSPHRASE "
                                 "or answer the prompt")
            return derive_kek_from_passphrase(passphrase, kek_doc, salt)
        if key_file_bytes is None:
            raise VaultError("this vault is protected by a key file: give --key-file or restore "
                             "keys/master.key")
        return hkdf(key_file_bytes, b"sessiontap kek v1 " + doc["vault_id"].encode(), salt)

    # -- changes ---------------------------------------------------------------------------
    def save(self, keys: Keys, kek: bytes) -> None:
        self.save_doc(self._doc(self.load_doc()["kek"], kek, keys))

    def rekey(self, keys: Keys, *, passphrase: str | None, key_file_bytes: bytes | None) -> bytes:
        """Change what protects the master keys (new passphrase or key file); returns the new KEK."""
        kek_doc, kek = self._new_kek(keys.vault_id, passphrase, key_file_bytes)
        self.save_doc(self._doc(kek_doc, kek, keys))
        return kek
