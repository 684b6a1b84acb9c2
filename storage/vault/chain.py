"""Signed hash chains: the ledger of manifests and the access audit log.

Each entry is a JSON object with ``seq`` (1, 2, ...), ``prev`` (hex SHA-256 of the previous
entry, "" for the first) and ``sig`` (Ed25519 over the canonical form of everything else).
The entry's own hash is SHA-256 of its canonical form *with* the signature. A signed ``HEAD``
(``{"seq", "hash"}``) names the last entry, so removing entries from the end is detected too.

Two stores share this logic: the ledger keeps one file per entry (``ledger/00000042.json``,
so a manifest can be read, copied into an evidence bundle and named by a human) or, for a
group commit, one segment file per group (``ledger/00000043.jsonl``: entries 43, 44, ... one
per line, each signed and chained exactly like a single entry; creating one file per entry
cost more than sealing the recording on a bulk import); the audit log keeps one line per
entry (``audit/log.jsonl``, appended on every access).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .fsutil import TMP_SUFFIX, append_durable, atomic_write

SIG_CONTEXT = b"sessiontap-chain-v1\n"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def sign_entry(key: Ed25519PrivateKey, body: dict) -> dict:
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    return {**unsigned, "sig": b64(key.sign(SIG_CONTEXT + canonical(unsigned)))}


def signature_ok(pub: Ed25519PublicKey, entry: dict) -> bool:
    try:
        sig = unb64(entry["sig"])
        pub.verify(sig, SIG_CONTEXT + canonical({k: v for k, v in entry.items() if k != "sig"}))
        return True
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


@dataclass(slots=True)
class Link:
    """One chain problem, for a human: which entry and what is wrong with it."""
    seq: int | None
    message: str


class Chain:
    """Common logic; subclasses say where entries live."""

    label = "chain"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.head_path = directory / "HEAD"

    # -- storage, per subclass -------------------------------------------------------------
    def _store(self, seq: int, entry: dict) -> None:
        raise NotImplementedError

    def raw_entries(self) -> Iterator[tuple[int | None, bytes, str]]:
        """(seq from the storage name or line number, raw bytes, where) in storage order."""
        raise NotImplementedError

    # -- head ------------------------------------------------------------------------------
    def read_head(self) -> dict | None:
        try:
            return json.loads(self.head_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return {"seq": -1, "hash": "", "sig": ""}

    def write_head(self, key: Ed25519PrivateKey, seq: int, hash_: str) -> None:
        head = sign_entry(key, {"kind": f"{self.label}-head", "seq": seq, "hash": hash_})
        atomic_write(self.head_path, canonical(head) + b"\n", what=f"the {self.label} head")

    # -- writing ---------------------------------------------------------------------------
    def append(self, key: Ed25519PrivateKey, tip: tuple[int, str], body: dict,
               write_head: bool = True) -> tuple[dict, str]:
        """Write entry ``tip.seq + 1`` after ``tip``; returns (entry, its hash). Caller holds the lock.
        ``write_head=False`` leaves the signed head to the caller (one head for a group of entries:
        entries past the head are rolled forward or dropped by recovery, as after a crash)."""
        seq, prev = tip
        entry = sign_entry(key, {**body, "seq": seq + 1, "prev": prev})
        self._store(seq + 1, entry)
        h = entry_hash(entry)
        if write_head:
            self.write_head(key, seq + 1, h)
        return entry, h

    def append_many(self, key: Ed25519PrivateKey, tip: tuple[int, str], bodies: list[dict]) -> list[tuple[dict, str]]:
        """Entries ``tip.seq + 1 ...`` for ``bodies``, stored together, then one head."""
        seq, prev = tip
        out: list[tuple[dict, str]] = []
        for body in bodies:
            entry = sign_entry(key, {**body, "seq": seq + 1, "prev": prev})
            seq, prev = seq + 1, entry_hash(entry)
            out.append((entry, prev))
        if out:
            self._store_many([e for e, _ in out])
            self.write_head(key, seq, prev)
        return out

    def _store_many(self, entries: list[dict]) -> None:
        for entry in entries:
            self._store(entry["seq"], entry)

    # -- reading and checking --------------------------------------------------------------
    def load(self, pub: Ed25519PublicKey | None = None,
             problems: list[Link] | None = None) -> list[dict]:
        """All entries in order. With ``problems`` given, check every link and the head."""
        entries: list[dict] = []
        expected_seq, prev_hash = 1, ""
        for seq, raw, where in self.raw_entries():
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                    raise ValueError
            except ValueError:
                if problems is not None:
                    problems.append(Link(seq, f"{where} is not a readable {self.label} entry (edited or corrupted)"))
                expected_seq = (seq or expected_seq) + 1
                prev_hash = None  # the next link cannot be checked against an unreadable entry
                continue
            if problems is not None:
                self._check(entry, seq, where, expected_seq, prev_hash, pub, problems)
            entries.append(entry)
            expected_seq = entry["seq"] + 1
            prev_hash = entry_hash(entry)
        if problems is not None:
            self._check_head(entries, pub, problems)
        return entries

    def _check(self, entry: dict, seq: int | None, where: str, expected: int,
               prev_hash: str | None, pub: Ed25519PublicKey | None, problems: list[Link]) -> None:
        n = entry["seq"]
        if seq is not None and seq != n:
            problems.append(Link(n, f"{where} claims to be entry {n}: entries were renamed or reordered"))
        if n > expected:
            missing = f"entry {expected}" if n == expected + 1 else f"entries {expected}..{n - 1}"
            problems.append(Link(expected, f"{self.label} {missing} missing (removed)"))
        elif n < expected:
            problems.append(Link(n, f"{where} repeats or goes back to entry {n} after entry {expected - 1} (reordered or replayed)"))
        if prev_hash is not None and n == expected and entry.get("prev") != prev_hash:
            problems.append(Link(n, f"{where} does not link to the entry before it (that entry or this one was replaced)"))
        if pub is not None and not signature_ok(pub, entry):
            problems.append(Link(n, f"{where} has an invalid signature (edited or replaced)"))

    def _check_head(self, entries: list[dict], pub: Ed25519PublicKey | None,
                    problems: list[Link]) -> None:
        head = self.read_head()
        last_seq = entries[-1]["seq"] if entries else 0
        last_hash = entry_hash(entries[-1]) if entries else ""
        if head is None:
            if entries:
                problems.append(Link(None, f"the {self.label} head is missing"))
            return
        if pub is not None and not signature_ok(pub, head):
            problems.append(Link(None, f"the {self.label} head has an invalid signature (edited or replaced)"))
        if head.get("seq") != last_seq:
            if isinstance(head.get("seq"), int) and head["seq"] > last_seq:
                problems.append(Link(last_seq + 1, f"the {self.label} head names entry {head['seq']} but the last entry is {last_seq}: entries at the end were removed"))
            else:
                problems.append(Link(last_seq, f"the {self.label} head names entry {head.get('seq')} but the chain goes on to {last_seq}"))
        elif head.get("hash") != last_hash:
            problems.append(Link(last_seq, f"the last {self.label} entry ({last_seq}) is not the one the head names (replaced)"))

    def tip(self) -> tuple[int, str]:
        head = self.read_head()
        if head is None:
            return 0, ""
        return int(head["seq"]), str(head["hash"])

    def roll_forward(self, key: Ed25519PrivateKey, pub: Ed25519PublicKey,
                     on_entry: Callable[[dict], None] | None = None) -> int:
        """After a crash between writing an entry and its head: adopt valid entries past the head.

        Only entries that link to the current head and carry our signature are adopted, so this
        cannot be used to smuggle anything in. Returns how many were adopted.
        """
        seq, h = self.tip()
        adopted = 0
        for entry in self._entries_after(seq):
            if entry.get("seq") != seq + 1 or entry.get("prev") != h or not signature_ok(pub, entry):
                break
            seq, h = entry["seq"], entry_hash(entry)
            adopted += 1
            if on_entry:
                on_entry(entry)
        if adopted:
            self.write_head(key, seq, h)
        return adopted

    def _entries_after(self, seq: int) -> Iterator[dict]:
        raise NotImplementedError


class FileChain(Chain):
    """One file per entry (``<dir>/<seq:08d>.json``) or per group of entries written together
    (``<dir>/<first seq:08d>.jsonl``, one entry per line)."""

    label = "ledger"

    def path(self, seq: int) -> Path:
        return self.dir / f"{seq:08d}.json"

    def segment_path(self, first: int) -> Path:
        return self.dir / f"{first:08d}.jsonl"

    def _store(self, seq: int, entry: dict) -> None:
        # no directory sync here: the head written next lives in the same directory and its
        # sync makes both renames durable; an entry lost with its head is a write that never was
        atomic_write(self.path(seq), canonical(entry) + b"\n", what=f"ledger entry {seq}", sync_dir=False)

    def _store_many(self, entries: list[dict]) -> None:
        if len(entries) == 1:
            self._store(entries[0]["seq"], entries[0])
            return
        first = entries[0]["seq"]
        atomic_write(self.segment_path(first), b"".join(canonical(e) + b"\n" for e in entries),
                     what=f"ledger entries {first}..{entries[-1]['seq']}", sync_dir=False)

    def raw_entries(self) -> Iterator[tuple[int | None, bytes, str]]:
        names = sorted((n for n in os.listdir(self.dir)
                        if (n.endswith(".json") and n[:-5].isdigit())
                        or (n.endswith(".jsonl") and n[:-6].isdigit())),
                       key=lambda n: (int(n.split(".")[0]), n))
        for name in names:
            data = (self.dir / name).read_bytes()
            if name.endswith(".json"):
                yield int(name[:-5]), data, f"ledger entry {name}"
                continue
            first = int(name[:-6])
            for i, line in enumerate(data.splitlines()):
                if line.strip():
                    yield first + i, line, f"ledger entry {first + i} (line {i + 1} of {name})"

    def _entries_after(self, seq: int) -> Iterator[dict]:
        while True:
            try:
                yield json.loads(self.path(seq + 1).read_bytes())
                seq += 1
                continue
            except FileNotFoundError:
                pass
            except ValueError:
                return
            try:
                data = self.segment_path(seq + 1).read_bytes()
            except FileNotFoundError:
                return
            for line in data.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    return
                if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                    return
                yield entry
                seq = entry["seq"]

    def stray_temps(self) -> list[Path]:
        return [self.dir / n for n in os.listdir(self.dir) if n.endswith(TMP_SUFFIX)]


class LineChain(Chain):
    """One JSON line per entry in ``<dir>/log.jsonl``, appended durably."""

    label = "audit log"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.log = directory / "log.jsonl"

    def _store(self, seq: int, entry: dict) -> None:
        append_durable(self.log, canonical(entry) + b"\n", what="the audit log")

    def raw_entries(self) -> Iterator[tuple[int | None, bytes, str]]:
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return
        for lineno, line in enumerate(data.splitlines(), 1):
            if line.strip():
                yield None, line, f"audit log line {lineno}"

    def drop_partial_tail(self) -> bool:
        """Cut a last line that has no newline: a write interrupted before it was acknowledged."""
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return False
        if not data or data.endswith(b"\n"):
            return False
        keep = data.rfind(b"\n") + 1
        with open(self.log, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        return True

    def _entries_after(self, seq: int) -> Iterator[dict]:
        for _, raw, _ in self.raw_entries():
            try:
                entry = json.loads(raw)
            except ValueError:
                return
            if isinstance(entry, dict) and isinstance(entry.get("seq"), int) and entry["seq"] > seq:
                yield entry
