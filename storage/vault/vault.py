"""The evidence vault: encrypted, signed, hash-chained storage of recordings.

On disk (one data directory, ``SESSIONTAP_HOME``)::

    vault.json                    format, vault id, chunk size, compression level (not secret)
    keys/keyring.json             master keys wrapped by the KEK; signing key and catalog root
                                  wrapped by the master key
    keys/master.key               default key file (mode 0600) when no passphrase is used
    keys/data/<rid>.key           the recording's data key, wrapped by the master key
    recordings/<rid:2>/<rid>.sealed   compressed + chunked AES-256-GCM (see sealed.py)
    keys/data/<gid>.keys          a group commit's data keys, one wrapped key per line
    recordings/packs/<gid>.pack   a group commit's sealed recordings, back to back; each
                                  manifest names its pack and offset
    ledger/00000001.json ...      signed manifests and retention decisions, hash-chained
    ledger/00000002.jsonl         a group commit's manifests, one signed entry per line
    ledger/HEAD                   signed pointer to the last ledger entry
    audit/log.jsonl, audit/HEAD   signed, hash-chained access log
    secrets/<sha256(name)>.sealed escrowed SSH/TLS keys
    pending/<rid or gid>          intent marker of a write in progress (crash recovery)

Why packs: a bulk import seals thousands of small recordings, and on the appliance's file
systems creating a file costs more CPU than compressing and encrypting a recording (measured
0.3-0.8 ms per create here). A group commit therefore writes three files (keys, pack,
ledger segment) instead of four per recording. Each recording keeps its own data key, so
retention still crypto-shreds one recording at a time: its key line is removed from the
group's key file, and the pack itself is removed once none of its recordings is left.

Write order for ``put`` (each step durable before the next): pending marker, wrapped data
key, sealed data, manifest (ledger entry), head, marker removed. A recording is visible only
once its manifest is in the ledger, so a crash at any point leaves nothing half-visible, and
the next ``open`` removes what the interrupted write left behind.

Every read of recording content goes through ``Vault._access``: it writes the audit entry
durably and only then hands out a ``_Door``, the one object that can decrypt recordings.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconstruct.events import Notice

from . import sealed
from .chain import FileChain, LineChain, Link, b64, canonical, entry_hash, unb64
from .errors import NotFoundError, RefusedError, VaultError
from .fsutil import TMP_SUFFIX, atomic_write, create_marker, group_commit, locked, remove_durable
from .keyring import Keyring, Keys, create_key_file, hkdf, read_key_file, unwrap, wrap
from .timestamp import NoTimestamp, Timestamper

FORMAT = 1
MIN_RETENTION_DAYS = 90
DEFAULT_RETENTION_DAYS = 90
DEFAULT_ZSTD_LEVEL = 1  # measured: level 3 costs ~3x more CPU for ~10 % less disk (benchmarks/vault.py)
CAPACITY_THRESHOLDS = ((95, "critical"), (85, "high"), (70, "medium"))
RATE_WINDOW_DAYS = 7
MAX_NAME = 512
_RID = re.compile(r"^[0-9a-f]{32}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing ``verify`` found wrong, named so a human knows what was altered."""
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    scope: str
    recordings_checked: int = 0
    bytes_checked: int = 0
    ledger_entries: int = 0
    audit_entries: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Shredded:
    session_id: str
    name: str
    rid: str
    created: str


@dataclass(slots=True)
class VaultStatus:
    recordings: int
    sessions: int
    stored_bytes: int           # ciphertext of live recordings
    home_bytes: int             # everything under the data directory
    fs_total: int
    fs_used: int
    fs_free: int
    used_pct: float
    rate_bytes_per_day: float
    headroom_days: float | None  # None: no recent writes to extrapolate from
    retention_days: int
    holds: list[str]
    thresholds: tuple[int, ...]
    events: list[Notice]


class Vault:
    """``storage.recordings.RecordingStore`` with encryption, signatures and an audit trail."""

    def __init__(self, home: Path, keyring: Keyring, keys: Keys, kek: bytes, config: dict,
                 timestamper: Timestamper) -> None:
        self.home = home
        self._keyring = keyring
        self._keys = keys
        self._kek = kek
        self._config = config
        self._ts = timestamper
        self._pub: Ed25519PublicKey = keys.signing.public_key()
        self._ledger = FileChain(home / "ledger")
        self._audit = LineChain(home / "audit")
        self._lock_path = home / ".lock"
        self._reset_index()

    # ================================================================ opening and creating
    @classmethod
    def init(cls, home: str | os.PathLike, passphrase: str | None = None,
             key_file: str | os.PathLike | None = None, *, chunk_size: int = sealed.DEFAULT_CHUNK_SIZE,
             zstd_level: int = DEFAULT_ZSTD_LEVEL, sensor_id: str | None = None,
             actor: str = "system", timestamper: Timestamper | None = None) -> "Vault":
        """Create a vault in ``home``. Without passphrase or key file, a key file is created at
        ``home/keys/master.key`` (mode 0600) so that the vault opens unattended."""
        home = Path(home)
        if (home / "keys" / "keyring.json").exists():
            raise RefusedError(f"{home} already holds a vault; refusing to create a second one over it")
        if not 0 < chunk_size <= sealed.MAX_CHUNK_SIZE:
            raise VaultError(f"chunk size must be between 1 byte and {sealed.MAX_CHUNK_SIZE} bytes")
        for sub in ("keys/data", "recordings", "ledger", "audit", "secrets", "pending"):
            (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        key_bytes = None
        if passphrase is None:
            kf = Path(key_file) if key_file is not None else home / "keys" / "master.key"
            key_bytes = read_key_file(kf) if kf.exists() else create_key_file(kf)
        vault_id = secrets.token_hex(16)
        config = {"format": FORMAT, "vault_id": vault_id, "created": iso(utcnow()),
                  "chunk_size": chunk_size, "zstd_level": zstd_level,
                  "sensor_id": sensor_id or socket.gethostname(),
                  "key_source": "passphrase" if passphrase is not None else "keyfile",
                  "key_file": None if key_file is None or passphrase is not None else str(key_file)}
        keyring = Keyring(home / "keys" / "keyring.json")
        keys = keyring.create(vault_id, passphrase=passphrase, key_file_bytes=key_bytes)
        _, kek = keyring.unlock(passphrase=passphrase, key_file_bytes=key_bytes)
        # config last: its presence is what says "a complete vault lives here"
        atomic_write(home / "vault.json", json.dumps(config, indent=1).encode() + b"\n",
                     mode=0o644, what="vault.json")
        vault = cls(home, keyring, keys, kek, config, timestamper or NoTimestamp())
        with locked(vault._lock_path):
            vault._audit_write(actor, "init", "vault", "created the vault")
        return vault

    @classmethod
    def open(cls, home: str | os.PathLike, passphrase: str | None = None,
             key_file: str | os.PathLike | None = None, *,
             timestamper: Timestamper | None = None) -> "Vault":
        """Open an existing vault. The passphrase defaults to ``$SESSIONTAP_PASSPHRASE``; the key
        file to ``$SESSIONTAP_KEY_FILE``, then the path given at init, then ``home/keys/master.key``."""
        home = Path(home)
        try:
            config = json.loads((home / "vault.json").read_bytes())
        except FileNotFoundError:
            raise VaultError(f"no vault in {home} (run `sessiontap init` first)") from None
        except ValueError:
            raise VaultError(f"{home}/vault.json is corrupted") from None
        if config.get("format") != FORMAT:
            raise VaultError(f"vault format {config.get('format')} is not supported by this version")
        keyring = Keyring(home / "keys" / "keyring.json")
        source = keyring.source()
        key_bytes = None
        if source == "passphrase":
            if passphrase is None:
                passphrase = os.environ.get("SESSIONTAP_PASSPHRASE")
        else:
            kf = key_file or os.environ.get("SESSIONTAP_KEY_FILE") or config.get("key_file") \
                or home / "keys" / "master.key"
            key_bytes = read_key_file(Path(kf))
        keys, kek = keyring.unlock(passphrase=passphrase, key_file_bytes=key_bytes)
        if keys.vault_id != config.get("vault_id"):
            raise VaultError("vault.json and keys/keyring.json belong to different vaults")
        vault = cls(home, keyring, keys, kek, config, timestamper or NoTimestamp())
        with locked(vault._lock_path):
            vault._recover()
            vault._refresh()
        return vault

    # ================================================================ the index (from the ledger)
    def _reset_index(self) -> None:
        self._tip = (0, "")
        self._recs: dict[str, dict] = {}
        self._by_session: dict[str, dict[str, str]] = {}
        self._pack_of: dict[str, str] = {}          # rid -> gid, kept after deletion
        self._pack_live: dict[str, set[str]] = {}   # gid -> rids not deleted
        self._pack_keys: tuple[str, int, dict[str, dict]] | None = None   # (gid, mtime, rid -> wrapped)
        self._deleted: dict[str, dict] = {}
        self._holds: set[str] = set()
        self._retention_days = DEFAULT_RETENTION_DAYS

    def _apply(self, entry: dict) -> None:
        kind = entry.get("type")
        if kind == "recording":
            self._recs[entry["rid"]] = entry
            if isinstance(entry.get("pack"), str):
                self._pack_of[entry["rid"]] = entry["pack"]
                self._pack_live.setdefault(entry["pack"], set()).add(entry["rid"])
            self._by_session.setdefault(entry["session_id"], {})[entry["name"]] = entry["rid"]
        elif kind == "deletion":
            rec = self._recs.pop(entry["rid"], None)
            gid = self._pack_of.get(entry["rid"])
            if gid is not None:
                self._pack_live.get(gid, set()).discard(entry["rid"])
            self._deleted[entry["rid"]] = entry
            if rec is not None:
                names = self._by_session.get(rec["session_id"], {})
                names.pop(rec["name"], None)
                if not names:
                    self._by_session.pop(rec["session_id"], None)
        elif kind == "hold":
            self._holds.add(entry["session_id"])
        elif kind == "release":
            self._holds.discard(entry["session_id"])
        elif kind == "policy":
            self._retention_days = int(entry["days"])
        self._tip = (entry["seq"], entry_hash(entry))

    def _refresh(self) -> None:
        """Catch up with entries another process (daemon, CLI) appended since we last looked."""
        head = self._ledger.tip()
        if head == self._tip:
            return
        if head[0] < self._tip[0]:
            self._reset_index()
        for entry in self._ledger._entries_after(self._tip[0]):
            if entry.get("seq", 0) > head[0]:
                break
            self._apply(entry)

    def _append_ledger(self, body: dict, write_head: bool = True) -> dict:
        entry, h = self._ledger.append(self._keys.signing, self._tip, body, write_head=write_head)
        token = self._ts.stamp(bytes.fromhex(h))
        if token:
            atomic_write(self.home / "ledger" / f"{entry['seq']:08d}.tsr", token,
                         what="a timestamp token")
        self._apply(entry)
        return entry

    # ================================================================ audit: the one door
    def _audit_write(self, actor: str, action: str, target: str, purpose: str, **extra: object) -> dict:
        """Append a durable, signed audit entry. Caller holds the lock."""
        if not actor:
            raise VaultError("an audited action needs an actor (who is doing it)")
        entry, _ = self._audit.append(
            self._keys.signing, self._audit.tip(),
            {"ts": iso(utcnow()), "actor": actor, "action": action, "target": target,
             "purpose": purpose, **extra})
        return entry

    def _access(self, actor: str, purpose: str, action: str, rids: Iterable[str], target: str) -> "_Door":
        """The only way to recording plaintext: audit first (durable), then a door for ``rids``."""
        rids = list(rids)
        with locked(self._lock_path):
            self._audit_write(actor, action, target, purpose)
        return _Door(self, frozenset(rids))

    # ================================================================ RecordingStore
    def put(self, session_id: str, name: str, data: bytes, *, time_range: tuple[float, float] | None = None,
            source: str | None = None, sensor_id: str | None = None, clock: str | None = None) -> str:
        return self.put_many([(session_id, name, data,
                               {"time_range": time_range, "source": source, "sensor_id": sensor_id,
                                "clock": clock})])[0]

    def put_many(self, items: list[tuple[str, str, bytes, dict]]) -> list[str]:
        """Seal several artefacts as one group commit: (session_id, name, data, meta) each, meta
        holding ``time_range``/``source``/``sensor_id``/``clock``. Returns their digests.
        Data and keys of the whole group are made durable first, then the group's ledger
        entries: two syncs for the group instead of eight fsyncs per artefact."""
        # the CPU work (hash, compress, encrypt) happens before taking the lock, so several
        # importer threads or processes overlap it; only the durable writes are serialised
        prepared = []
        digests: list[str] = []
        for session_id, name, data, meta in items:
            _check_ids(session_id, name)
            digest = hashlib.sha256(data).hexdigest()
            digests.append(digest)
            if self.exists(session_id, name):
                self._same_or_refuse(session_id, name, digest)
                continue
            prepared.append((session_id, name, digest, *self._seal(session_id, name, data, digest, **meta)))
        if not prepared:
            return digests
        with locked(self._lock_path):
            self._refresh()
            todo = []
            for session_id, name, digest, rid, dk, pieces, manifest in prepared:
                if name in self._by_session.get(session_id, {}):
                    self._same_or_refuse(session_id, name, digest)
                else:
                    todo.append((rid, dk, pieces, manifest))
            self._store_group(todo)
        return digests

    def _seal(self, session_id: str, name: str, data: bytes, digest: str, *,
              time_range: tuple[float, float] | None = None, source: str | None = None,
              sensor_id: str | None = None, clock: str | None = None) -> tuple[str, bytes, list[bytes], dict]:
        rid = secrets.token_hex(16)
        dk = secrets.token_bytes(32)
        level = int(self._config.get("zstd_level", DEFAULT_ZSTD_LEVEL))
        compressed = zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)
        chunk_size = int(self._config["chunk_size"])
        pieces = list(sealed.seal(dk, bytes.fromhex(rid), compressed, chunk_size))
        ct_hash = hashlib.sha256()
        for piece in pieces:
            ct_hash.update(piece)
        manifest = {
            "type": "recording", "vault_id": self._keys.vault_id, "rid": rid,
            "session_id": session_id, "name": name,
            "plaintext_sha256": digest, "plaintext_size": len(data),
            "compression": "zstd", "compressed_size": len(compressed),
            "cipher": "AES-256-GCM", "chunk_size": chunk_size,
            "chunks": len(pieces) - 1,
            "ciphertext_sha256": ct_hash.hexdigest(), "ciphertext_size": sum(map(len, pieces)),
            "time_range": list(time_range) if time_range else None,
            "source": source, "sensor_id": sensor_id or self._config.get("sensor_id"),
            "clock": clock or "unknown",
        }
        return rid, dk, pieces, manifest

    def _same_or_refuse(self, session_id: str, name: str, digest: str) -> str:
        if self._recs[self._by_session[session_id][name]]["plaintext_sha256"] == digest:
            return digest
        raise RefusedError(f"{session_id}/{name} is already stored with other content; "
                           "recordings are never replaced")

    def _store_group(self, todo: list[tuple[str, bytes, list[bytes], dict]]) -> None:
        """The durable part of ``put_many``: one key file, one pack and one ledger segment for
        the whole group. Caller holds the lock."""
        if len(todo) == 1:
            self._store(*todo[0])
            return
        gid = secrets.token_hex(16)
        marker = self.home / "pending" / gid
        offset = 0
        manifests = []
        keylines = []
        for rid, dk, pieces, manifest in todo:
            manifests.append({**manifest, "pack": gid, "offset": offset})
            offset += manifest["ciphertext_size"]
            keylines.append(canonical({"rid": rid, "master": self._keys.active,
                                       **wrap(self._keys.master, dk, self._dk_aad(rid))}) + b"\n")
        written = False
        try:
            with group_commit():
                create_marker(marker)
                written = True
                atomic_write(self._keys_pack_path(gid), b"".join(keylines),
                             what=f"the data keys of {len(todo)} recordings")
                self._packs_dir().mkdir(exist_ok=True, mode=0o700)
                atomic_write(self._pack_path(gid), (p for *_, pieces, _m in todo for p in pieces),
                             what=f"{len(todo)} recordings")
            with group_commit():
                created = iso(utcnow())
                appended = self._ledger.append_many(self._keys.signing, self._tip,
                                                    [{**m, "created": created} for m in manifests])
                written = False
                for entry, h in appended:
                    token = self._ts.stamp(bytes.fromhex(h))
                    if token:
                        atomic_write(self.home / "ledger" / f"{entry['seq']:08d}.tsr", token,
                                     what="a timestamp token")
                    self._apply(entry)
        except BaseException:
            if written:       # not in the ledger: nothing of it may remain visible
                self._destroy_pack(gid)
            raise
        finally:
            try:
                remove_durable(marker, sync_dir=False)
            except OSError:
                pass

    def _write_recording(self, rid: str, dk: bytes, pieces: list[bytes], manifest: dict) -> None:
        label = f"{manifest['session_id']}/{manifest['name']}"
        atomic_write(self._key_path(rid), canonical(
            {"rid": rid, "master": self._keys.active,
             **wrap(self._keys.master, dk, self._dk_aad(rid))}) + b"\n",
            what=f"the data key of {label}")
        path = self._data_path(rid)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        atomic_write(path, iter(pieces), what=f"the recording {label}")

    def _store(self, rid: str, dk: bytes, pieces: list[bytes], manifest: dict) -> None:
        """The durable part of ``put`` for one artefact. Caller holds the lock."""
        marker = self.home / "pending" / rid
        create_marker(marker)
        try:
            self._write_recording(rid, dk, pieces, manifest)
            self._append_ledger({**manifest, "created": iso(utcnow())})
        except BaseException:
            # nothing of this write may remain visible; the ledger entry is the last step, so
            # if we get here it was not written (or its write failed as a whole)
            for p in (self._data_path(rid), self._key_path(rid)):
                try:
                    os.unlink(p)
                except OSError:
                    pass
            raise
        finally:
            try:
                # not synced: a marker that comes back after a crash is removed by recovery
                remove_durable(marker, sync_dir=False)
            except OSError:
                pass

    def get(self, session_id: str, name: str, *, actor: str, purpose: str) -> bytes:
        rid = self._rid(session_id, name)
        return self._access(actor, purpose, "read", [rid], f"{session_id}/{name}").plaintext(rid)

    def names(self, session_id: str) -> list[str]:
        self._refresh()
        return sorted(self._by_session.get(session_id, {}))

    def exists(self, session_id: str, name: str) -> bool:
        self._refresh()
        return name in self._by_session.get(session_id, {})

    def sessions(self) -> list[str]:
        self._refresh()
        return sorted(self._by_session)

    def find_session(self, prefix: str) -> str:
        """The full id of the one stored session whose id starts with ``prefix``."""
        self._refresh()
        if prefix in self._by_session:
            return prefix
        found = [s for s in self._by_session if s.startswith(prefix)] if prefix else []
        if len(found) == 1:
            return found[0]
        if found:
            raise NotFoundError(f"{prefix!r} matches {len(found)} sessions in the vault; give more of the id")
        raise NotFoundError(f"no session {prefix!r} in the vault")

    def manifest(self, session_id: str, name: str) -> dict:
        """The signed manifest of one artefact (metadata only, not audited)."""
        return dict(self._recs[self._rid(session_id, name)])

    def _rid(self, session_id: str, name: str) -> str:
        self._refresh()
        rid = self._by_session.get(session_id, {}).get(name)
        if rid is None:
            raise NotFoundError(f"no artefact {name!r} for session {session_id!r} in the vault")
        return rid

    # ================================================================ paths
    def _key_path(self, rid: str) -> Path:
        return self.home / "keys" / "data" / f"{rid}.key"

    def _data_path(self, rid: str) -> Path:
        return self.home / "recordings" / rid[:2] / f"{rid}.sealed"

    def _packs_dir(self) -> Path:
        return self.home / "recordings" / "packs"

    def _pack_path(self, gid: str) -> Path:
        return self._packs_dir() / f"{gid}.pack"

    def _keys_pack_path(self, gid: str) -> Path:
        return self.home / "keys" / "data" / f"{gid}.keys"

    def _pack_key_lines(self, gid: str) -> dict[str, dict]:
        """rid -> wrapped key of one group's key file (the last one read is kept: reads of a
        group's recordings come together)."""
        path = self._keys_pack_path(gid)
        mtime = os.stat(path).st_mtime_ns
        if self._pack_keys is not None and self._pack_keys[:2] == (gid, mtime):
            return self._pack_keys[2]
        blobs: dict[str, dict] = {}
        for line in path.read_bytes().splitlines():
            blob = json.loads(line)
            blobs[blob["rid"]] = blob
        self._pack_keys = (gid, mtime, blobs)
        return blobs

    def sealed_blob(self, rid: str, manifest: dict) -> bytes:
        """The sealed bytes of one recording, wherever they live (its own file or a pack)."""
        gid = manifest.get("pack")
        if not isinstance(gid, str):
            return self._data_path(rid).read_bytes()
        with open(self._pack_path(gid), "rb") as fh:
            fh.seek(int(manifest.get("offset", 0)))
            return fh.read(int(manifest.get("ciphertext_size", 0)))

    def _dk_aad(self, rid: str) -> bytes:
        return b"data key " + self._keys.vault_id.encode() + b" " + rid.encode()

    def _unwrap_dk(self, rid: str) -> bytes:
        gid = self._pack_of.get(rid)
        try:
            if gid is None:
                blob = json.loads(self._key_path(rid).read_bytes())
            else:
                blob = self._pack_key_lines(gid).get(rid)
                if blob is None:
                    raise FileNotFoundError
        except FileNotFoundError:
            raise VaultError("its data key is missing (destroyed outside retention)") from None
        except (ValueError, KeyError, TypeError):
            raise VaultError("its data key file is corrupted") from None
        master = self._keys.masters.get(blob.get("master"))
        if master is None:
            raise VaultError(f"its data key is wrapped by unknown master key {blob.get('master')!r}")
        try:
            return unwrap(master, blob, self._dk_aad(rid))
        except (InvalidTag, KeyError, ValueError):
            raise VaultError("its data key does not unwrap (key file altered or from another recording)") from None

    # ================================================================ verify
    def verify(self, target: str | None = None, *, actor: str) -> VerifyReport:
        """Check signatures, both hash chains, and every chunk of the recordings in scope.

        ``target`` is a session id or a recording id (rid); None checks everything, including
        data left in the vault without a manifest. Problems are named, never raised.
        """
        self._refresh()
        report = VerifyReport(scope=target or "all")
        links: list[Link] = []
        entries = self._ledger.load(self._pub, links)
        report.ledger_entries = len(entries)
        report.problems += [Problem("ledger", l.message) for l in links]
        # the ledger on disk is the truth for verify (the in-memory index may be older)
        recs: dict[str, dict] = {}
        deleted: dict[str, dict] = {}
        for e in entries:
            if e.get("type") == "recording" and isinstance(e.get("rid"), str):
                recs[e["rid"]] = e
            elif e.get("type") == "deletion" and isinstance(e.get("rid"), str):
                deleted[e["rid"]] = e
        if target is None:
            scope = [r for r in recs if r not in deleted]
        elif target in recs:
            scope = [target] if target not in deleted else []
        else:
            scope = [r for r, e in recs.items() if e.get("session_id") == target and r not in deleted]
            if not scope and not any(e.get("session_id") == target for e in recs.values()):
                raise NotFoundError(f"nothing named {target!r} in the vault (neither a session nor a recording id)")
        door = self._access(actor, "integrity check", "verify", scope, target or "all")
        for rid in sorted(scope, key=lambda r: recs[r]["seq"]):
            m = recs[rid]
            where = f"recording {m.get('session_id')}/{m.get('name')} (ledger entry {m['seq']}, id {rid})"
            faults = door.check(rid, m)
            report.recordings_checked += 1
            report.bytes_checked += int(m.get("ciphertext_size", 0))
            report.problems += [Problem(where, f) for f in faults]
        if target is None:
            report.problems += self._stray_data(recs, deleted)
            alinks: list[Link] = []
            report.audit_entries = len(self._audit.load(self._pub, alinks))
            report.problems += [Problem("audit log", l.message) for l in alinks]
        return report

    def _stray_data(self, recs: dict[str, dict], deleted: dict[str, dict]) -> list[Problem]:
        pending = set(os.listdir(self.home / "pending"))
        out = []
        for rid, path in self._data_files():
            if rid in pending:
                continue
            if rid in deleted:
                out.append(Problem(f"recording id {rid}", "was deleted by retention but its sealed data is still there (interrupted deletion; reopening the vault finishes it)"))
            elif rid not in recs:
                out.append(Problem(f"recording id {rid}", f"sealed data {path.relative_to(self.home)} has no manifest in the ledger (its manifest was removed)"))
        packs_dir = self._packs_dir()
        alive = {m.get("pack") for rid, m in recs.items() if rid not in deleted}
        gone = {m.get("pack") for rid, m in recs.items() if rid in deleted}
        for name in sorted(os.listdir(packs_dir)) if packs_dir.is_dir() else []:
            gid = name[:-5]
            if not name.endswith(".pack") or gid in pending or gid in alive:
                continue
            if gid in gone:
                out.append(Problem(f"pack {gid}", "every recording in it was deleted by retention but the pack is still there (interrupted deletion; reopening the vault finishes it)"))
            else:
                out.append(Problem(f"pack {gid}", f"sealed data recordings/packs/{name} has no manifest in the ledger (its manifests were removed)"))
        return out

    def _data_files(self) -> Iterator[tuple[str, Path]]:
        root = self.home / "recordings"
        for sub in sorted(os.listdir(root)):
            d = root / sub
            if not d.is_dir():
                continue
            for name in sorted(os.listdir(d)):
                if name.endswith(".sealed") and _RID.match(name[:-7]):
                    yield name[:-7], d / name

    # ================================================================ retention
    @property
    def retention_days(self) -> int:
        self._refresh()
        return self._retention_days

    def set_retention(self, days: int, *, actor: str, force: bool = False) -> None:
        if days < 1:
            raise RefusedError("retention must be at least one day")
        if days < MIN_RETENTION_DAYS and not force:
            raise RefusedError(f"refusing a retention of {days} days: the minimum is "
                               f"{MIN_RETENTION_DAYS} days (use --force to override)")
        with locked(self._lock_path):
            self._refresh()
            self._audit_write(actor, "retention", "policy", f"retention set to {days} days")
            self._append_ledger({"type": "policy", "days": int(days), "actor": actor, "ts": iso(utcnow())})

    def holds(self) -> list[str]:
        self._refresh()
        return sorted(self._holds)

    def hold(self, session_id: str, *, actor: str, reason: str = "") -> None:
        """Legal hold: the session's recordings outlive the retention period until released."""
        with locked(self._lock_path):
            self._refresh()
            if session_id not in self._by_session:
                raise NotFoundError(f"no session {session_id!r} in the vault")
            if session_id in self._holds:
                return
            self._audit_write(actor, "hold", session_id, reason or "legal hold")
            self._append_ledger({"type": "hold", "session_id": session_id, "actor": actor,
                                 "reason": reason, "ts": iso(utcnow())})

    def release(self, session_id: str, *, actor: str, reason: str = "") -> None:
        with locked(self._lock_path):
            self._refresh()
            if session_id not in self._holds:
                raise NotFoundError(f"session {session_id!r} is not on legal hold")
            self._audit_write(actor, "release", session_id, reason or "legal hold released")
            self._append_ledger({"type": "release", "session_id": session_id, "actor": actor,
                                 "reason": reason, "ts": iso(utcnow())})

    def expired(self, now: datetime | None = None) -> list[dict]:
        """Manifests past the retention period and not on hold (what ``apply_retention`` would shred)."""
        self._refresh()
        limit = (now or utcnow()) - timedelta(days=self._retention_days)
        return [m for m in self._recs.values()
                if m["session_id"] not in self._holds and datetime.fromisoformat(m["created"]) < limit]

    def apply_retention(self, *, actor: str, now: datetime | None = None) -> list[Shredded]:
        """Crypto-shred every expired recording: audit entry, tombstone, data key destroyed, chunks removed."""
        done = []
        with locked(self._lock_path):
            for m in sorted(self.expired(now), key=lambda m: m["seq"]):
                self._shred(m, actor, f"retention of {self._retention_days} days expired")
                done.append(Shredded(m["session_id"], m["name"], m["rid"], m["created"]))
        return done

    def _shred(self, m: dict, actor: str, reason: str) -> None:
        rid = m["rid"]
        self._audit_write(actor, "shred", f"{m['session_id']}/{m['name']}", reason, rid=rid)
        self._append_ledger({"type": "deletion", "rid": rid, "session_id": m["session_id"],
                             "name": m["name"], "manifest_seq": m["seq"],
                             "manifest_hash": entry_hash(m), "reason": reason, "actor": actor,
                             "ts": iso(utcnow())})
        self._destroy_files(rid)

    def _destroy_files(self, rid: str) -> None:
        # the key first: once it is gone the chunks are noise, even if their removal is interrupted
        gid = self._pack_of.get(rid)
        if gid is None:
            remove_durable(self._key_path(rid))
            remove_durable(self._data_path(rid))
            return
        path = self._keys_pack_path(gid)
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        keep = [l for l in lines if l.strip() and json.loads(l).get("rid") != rid]
        if len(keep) != len(lines):
            if keep:
                atomic_write(path, b"".join(l + b"\n" for l in keep), what="a group's data keys")
            else:
                remove_durable(path)
        self._pack_keys = None
        if not self._pack_live.get(gid):
            remove_durable(self._pack_path(gid))

    def _pack_key_rids(self, gid: str) -> set[str]:
        try:
            return set(self._pack_key_lines(gid))
        except (OSError, ValueError, KeyError):
            return set()

    def _destroy_pack(self, gid: str) -> None:
        """A group write that never reached the ledger: its key file and pack go."""
        remove_durable(self._keys_pack_path(gid))
        remove_durable(self._pack_path(gid))
        self._pack_keys = None

    # ================================================================ capacity
    def status(self, *, now: datetime | None = None,
               thresholds: tuple[int, ...] = tuple(t for t, _ in CAPACITY_THRESHOLDS)) -> VaultStatus:
        """Capacity, growth rate and headroom; ``events`` holds the alerts the appliance forwards."""
        self._refresh()
        now = now or utcnow()
        usage = shutil.disk_usage(self.home)
        # as df counts it: blocks reserved for root are not headroom for us
        used_pct = 100.0 * usage.used / (usage.used + usage.free) if usage.total else 0.0
        since = now - timedelta(days=RATE_WINDOW_DAYS)
        recent = [m for m in self._recs.values() if datetime.fromisoformat(m["created"]) >= since]
        if recent:
            first = min(datetime.fromisoformat(m["created"]) for m in recent)
            span_days = max((now - first).total_seconds() / 86400, 1.0)
            rate = sum(m["ciphertext_size"] for m in recent) / span_days
        else:
            rate = 0.0
        headroom = usage.free / rate if rate > 0 else None
        events: list[Notice] = []
        ts = now.timestamp()
        severities = dict(CAPACITY_THRESHOLDS)
        for t in sorted(thresholds, reverse=True):
            if used_pct >= t:
                events.append(Notice(ts, "vault-capacity",
                                     f"vault disk {used_pct:.1f} % full (threshold {t} %)",
                                     ("capacity", "iec62443-sr2.9"), severities.get(t, "medium")))
                break
        if headroom is not None and headroom < self._retention_days:
            events.append(Notice(ts, "vault-headroom",
                                 f"at {rate / 1e6:.1f} MB/day the disk is full in {headroom:.0f} days, "
                                 f"before the {self._retention_days}-day retention frees space",
                                 ("capacity", "iec62443-sr2.9"), "high"))
        return VaultStatus(
            recordings=len(self._recs), sessions=len(self._by_session),
            stored_bytes=sum(m["ciphertext_size"] for m in self._recs.values()),
            home_bytes=_du(self.home), fs_total=usage.total, fs_used=usage.used, fs_free=usage.free,
            used_pct=used_pct, rate_bytes_per_day=rate, headroom_days=headroom,
            retention_days=self._retention_days, holds=sorted(self._holds),
            thresholds=tuple(thresholds), events=events)

    # ================================================================ audit log (reading)
    def audit_entries(self) -> list[dict]:
        return self._audit.load()

    # ================================================================ secrets and keys
    def _secret_path(self, name: str) -> Path:
        return self.home / "secrets" / (hashlib.sha256(name.encode()).hexdigest() + ".sealed")

    def _secret_aad(self, name_sha256: str) -> bytes:
        # bound to the name's hash, which the sealed file keeps, so rotation can rewrap it
        return b"secret " + self._keys.vault_id.encode() + b" " + name_sha256.encode()

    def seal_secret(self, name: str, data: bytes, *, actor: str = "appliance") -> None:
        """Store an escrowed key (SSH host/session key, TLS key log ...) sealed like a recording:
        a fresh data key wrapped by the master key. Replaces a secret of the same name."""
        if not name or len(name) > MAX_NAME:
            raise VaultError("a secret needs a name of 1 to 512 characters")
        dk = secrets.token_bytes(32)
        nonce = os.urandom(12)
        hname = hashlib.sha256(name.encode()).hexdigest()
        aad = self._secret_aad(hname)
        doc = {"name_sha256": hname, "master": self._keys.active, "key": wrap(self._keys.master, dk, aad),
               "nonce": b64(nonce), "ct": b64(AESGCM(dk).encrypt(nonce, bytes(data), aad))}
        with locked(self._lock_path):
            self._audit_write(actor, "seal-secret", name, "escrow")
            atomic_write(self._secret_path(name), canonical(doc) + b"\n", what=f"secret {name!r}")

    def open_secret(self, name: str, *, actor: str = "appliance", purpose: str = "decryption") -> bytes:
        path = self._secret_path(name)
        if not path.exists():
            raise NotFoundError(f"no secret named {name!r} in the vault")
        with locked(self._lock_path):
            self._audit_write(actor, "open-secret", name, purpose)
        try:
            doc = json.loads(path.read_bytes())
            aad = self._secret_aad(hashlib.sha256(name.encode()).hexdigest())
            dk = unwrap(self._keys.masters[doc["master"]], doc["key"], aad)
            return AESGCM(dk).decrypt(unb64(doc["nonce"]), unb64(doc["ct"]), aad)
        except (InvalidTag, KeyError, ValueError):
            raise VaultError(f"secret {name!r} does not open (altered or not from this vault)") from None

    def secret_names_count(self) -> int:
        return sum(1 for n in os.listdir(self.home / "secrets") if n.endswith(".sealed"))

    def catalog_key(self, *, actor: str = "appliance") -> str:
        """Hex key for DuckDB's ``ATTACH ... (ENCRYPTION_KEY '...')`` of the catalog.

        Derived with HKDF from a random catalog root that is wrapped by the master key (not
        from the master key itself), so rotating the master key does not lock the catalog out.
        Never written anywhere in clear; each use is audited.
        """
        with locked(self._lock_path):
            self._audit_write(actor, "catalog-key", "catalog", "open the encrypted catalog")
        return hkdf(self._keys.catalog_root, b"sessiontap duckdb catalog v1").hex()

    def public_key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return self._pub.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def fingerprint(self) -> str:
        """SHA-256 of the raw Ed25519 public key: what an auditor compares an evidence bundle against."""
        return hashlib.sha256(self._pub.public_bytes_raw()).hexdigest()

    def rotate_master_key(self, *, actor: str) -> int:
        """New master key; every data key and secret is rewrapped (recordings are untouched).
        Returns the number of keys rewrapped. Safe to interrupt: reopening finishes the job."""
        with locked(self._lock_path):
            self._audit_write(actor, "rotate-master-key", "keyring", "master key rotation")
            n = max(int(m[1:]) for m in self._keys.masters) + 1
            new_id = f"m{n}"
            self._keys.masters[new_id] = secrets.token_bytes(32)
            self._keys.active = new_id
            self._keyring.save(self._keys, self._kek)
            return self._finish_rotation()

    def _finish_rotation(self) -> int:
        active, master = self._keys.active, self._keys.master
        count = 0
        for path in sorted((self.home / "keys" / "data").glob("*.key")):
            blob = json.loads(path.read_bytes())
            if blob.get("master") == active:
                continue
            rid = blob["rid"]
            dk = unwrap(self._keys.masters[blob["master"]], blob, self._dk_aad(rid))
            atomic_write(path, canonical({"rid": rid, "master": active,
                                          **wrap(master, dk, self._dk_aad(rid))}) + b"\n",
                         what="a rewrapped data key")
            count += 1
        for path in sorted((self.home / "keys" / "data").glob("*.keys")):
            lines = [json.loads(l) for l in path.read_bytes().splitlines() if l.strip()]
            if all(b.get("master") == active for b in lines):
                continue
            out = []
            for blob in lines:
                if blob.get("master") != active:
                    rid = blob["rid"]
                    dk = unwrap(self._keys.masters[blob["master"]], blob, self._dk_aad(rid))
                    blob = {"rid": rid, "master": active, **wrap(master, dk, self._dk_aad(rid))}
                    count += 1
                out.append(canonical(blob) + b"\n")
            atomic_write(path, b"".join(out), what="a group's rewrapped data keys")
            self._pack_keys = None
        for path in sorted((self.home / "secrets").glob("*.sealed")):
            doc = json.loads(path.read_bytes())
            if doc.get("master") == active:
                continue
            aad = self._secret_aad(doc["name_sha256"])
            dk = unwrap(self._keys.masters[doc["master"]], doc["key"], aad)
            doc["key"] = wrap(master, dk, aad)
            doc["master"] = active
            atomic_write(path, canonical(doc) + b"\n", what="a rewrapped secret")
            count += 1
        if len(self._keys.masters) > 1:
            self._keys.masters = {active: master}
            self._keyring.save(self._keys, self._kek)
        return count

    def change_passphrase(self, *, actor: str, passphrase: str | None = None,
                          key_file: str | os.PathLike | None = None) -> None:
        """Protect the master key with a new passphrase, or with a new key file (created if absent)."""
        key_bytes = None
        if passphrase is None:
            kf = Path(key_file) if key_file is not None else self.home / "keys" / "master.key"
            key_bytes = read_key_file(kf) if kf.exists() else create_key_file(kf)
        with locked(self._lock_path):
            self._audit_write(actor, "rekey", "keyring", "master key protection changed")
            self._kek = self._keyring.rekey(self._keys, passphrase=passphrase, key_file_bytes=key_bytes)
            self._config["key_source"] = "passphrase" if passphrase is not None else "keyfile"
            self._config["key_file"] = None if passphrase is not None or key_file is None else str(key_file)
            atomic_write(self.home / "vault.json", json.dumps(self._config, indent=1).encode() + b"\n",
                         mode=0o644, what="vault.json")

    # ================================================================ crash recovery
    def _recover(self) -> None:
        """Bring the vault back to a consistent state after an interrupted write. Caller holds the lock.

        Only what an interrupted write of *ours* can leave is touched: temp files, entries past
        a head that link to it with our signature, and data of writes marked pending. Anything
        else that looks wrong is left for ``verify`` to report.
        """
        for d in (self.home / "ledger", self.home / "audit", self.home / "keys",
                  self.home / "keys" / "data", self.home / "secrets", self.home / "pending", self.home):
            for name in os.listdir(d):
                if name.endswith(TMP_SUFFIX):
                    os.unlink(d / name)
        for sub in os.listdir(self.home / "recordings"):
            d = self.home / "recordings" / sub
            if d.is_dir():
                for name in os.listdir(d):
                    if name.endswith(TMP_SUFFIX):
                        os.unlink(d / name)
        self._audit.drop_partial_tail()
        self._audit.roll_forward(self._keys.signing, self._pub)
        self._ledger.roll_forward(self._keys.signing, self._pub)
        self._reset_index()
        self._refresh()
        packs = set(self._pack_of.values())
        for rid in os.listdir(self.home / "pending"):
            if _RID.match(rid) and rid not in self._recs and rid not in self._deleted:
                if rid in packs:
                    pass            # a group whose ledger segment made it: it is whole
                else:
                    self._destroy_files(rid)
                    self._destroy_pack(rid)
            remove_durable(self.home / "pending" / rid)
        for rid in self._deleted:
            gid = self._pack_of.get(rid)
            if gid is not None:
                if rid in self._pack_key_rids(gid) or (
                        not self._pack_live.get(gid) and self._pack_path(gid).exists()):
                    self._destroy_files(rid)
            elif self._key_path(rid).exists() or self._data_path(rid).exists():
                self._destroy_files(rid)
        if len(self._keys.masters) > 1:
            self._finish_rotation()


class _Door:
    """Decrypts recordings. Only ``Vault._access`` makes one, after the audit entry is durable,
    and it opens only the recordings that entry names."""

    def __init__(self, vault: Vault, rids: frozenset[str]) -> None:
        self._vault = vault
        self._rids = rids

    def _load(self, rid: str, m: dict | None = None) -> tuple[bytes, bytes]:
        if rid not in self._rids:
            raise VaultError("internal error: recording read without its audit entry")
        v = self._vault
        dk = v._unwrap_dk(rid)
        try:
            blob = v.sealed_blob(rid, m if m is not None else v._recs.get(rid, {}))
        except FileNotFoundError:
            raise VaultError("its sealed data is missing (deleted outside retention)") from None
        return dk, blob

    def plaintext(self, rid: str) -> bytes:
        m = self._vault._recs[rid]
        label = f"{m['session_id']}/{m['name']}"
        try:
            dk, blob = self._load(rid)
            comp = b"".join(sealed.open_chunks(dk, bytes.fromhex(rid), blob))
            data = zstandard.ZstdDecompressor().decompress(comp, max_output_size=m["plaintext_size"])
        except (ValueError, zstandard.ZstdError) as err:
            raise VaultError(f"recording {label} fails verification ({err}); run `sessiontap verify`") from None
        except VaultError as err:
            raise VaultError(f"recording {label} cannot be read: {err}") from None
        if hashlib.sha256(data).hexdigest() != m["plaintext_sha256"]:
            raise VaultError(f"recording {label} does not match its manifest's plaintext hash")
        return data

    def check(self, rid: str, m: dict) -> list[str]:
        """Every fault of one recording, in words. Plaintext is hashed and dropped here."""
        out: list[str] = []
        try:
            dk, blob = self._load(rid, m)
        except VaultError as err:
            return [str(err)]
        if len(blob) != m.get("ciphertext_size"):
            out.append(f"sealed data is {len(blob)} bytes, the manifest says {m.get('ciphertext_size')} "
                       f"({'truncated' if len(blob) < m.get('ciphertext_size', 0) else 'bytes added'})")
        if hashlib.sha256(blob).hexdigest() != m.get("ciphertext_sha256"):
            out.append("sealed data does not match the manifest's ciphertext hash")
        faults: list[sealed.ChunkFault] = []
        pieces = list(sealed.open_chunks(dk, bytes.fromhex(rid), blob, faults))
        for f in faults:
            out.append(f"chunk {f.index} {f.reason}" if f.index is not None else f.reason)
        if faults:
            return out
        try:
            data = zstandard.ZstdDecompressor().decompress(b"".join(pieces),
                                                           max_output_size=m["plaintext_size"])
        except zstandard.ZstdError as err:
            return out + [f"decrypted data does not decompress ({err})"]
        if len(data) != m.get("plaintext_size") or hashlib.sha256(data).hexdigest() != m.get("plaintext_sha256"):
            out.append("plaintext does not match the manifest's hash (recording replaced)")
        return out


def _check_ids(session_id: str, name: str) -> None:
    for label, value in (("session id", session_id), ("artefact name", name)):
        if not isinstance(value, str) or not value or len(value) > MAX_NAME or "\x00" in value:
            raise VaultError(f"the {label} must be a non-empty string of at most {MAX_NAME} characters")


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
