"""Windows of terminal recordings for the console's player: vault reads, seek indexes, views.

One *view* is one auditor opening one recording in one page. Its first window fetch reads the
recording from the vault (``Vault.get``: the audit entry is written before any byte comes
back); the plaintext is then kept for that view, under a random view id that only the same
user can present for the same session, so jumping around the recording costs no further
vault read and no further audit entry: one entry per view, whatever the auditor does in it.
Views are dropped after ``VIEW_IDLE`` seconds unused, and the oldest go first when the
plaintext kept passes ``MAX_VIEW_BYTES``; a dropped view's next fetch is a new audited read.

The seek index of a recording (``seek.py``) is a derived artefact sealed in the vault next to
it as ``<recording>.seek`` (``terminal.cast.seek``; a new index format is stored as
``terminal.cast.v2.seek``, by the rule of ``storage.recordings``). It names the SHA-256 of the
recording it was built from, and one built for another version is ignored. A recording above
``seek.WHOLE_LIMIT`` opened before its index exists is served whole that time (as before
indexes existed) while a background thread builds the index from the bytes already read, and
seals it; the next view is windowed. ``ensure_index`` builds one ahead of time (the importer
or ``sessiontap seek-index``).
"""
from __future__ import annotations

import hashlib
import queue
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from reconstruct import seek
from reconstruct.activity import Activity, activity
from reconstruct.seek import index_name
from storage.recordings import latest_version, next_version

VIEW_IDLE = 15 * 60
MAX_VIEWS = 64
MAX_VIEW_BYTES = 512 << 20
MAX_INDEXES = 32
PURPOSE = "replay in the console"


def stored_index(names: list[str], cast_name: str) -> str | None:
    return latest_version(names, index_name(cast_name))


@dataclass
class _View:
    user: str
    sid: str
    cast_name: str
    cast: bytes
    index: seek.SeekIndex | None
    used: float = field(default_factory=time.monotonic)


class Replays:
    """Windows for the console's player; ``lock`` serialises vault use with the rest of the console."""

    def __init__(self, vault: Any, lock: threading.Lock, *, build_in_background: bool = True) -> None:
        self.vault = vault
        self.lock = lock
        self._views: OrderedDict[str, _View] = OrderedDict()
        self._indexes: OrderedDict[tuple[str, str, str], seek.SeekIndex] = OrderedDict()
        self._mu = threading.Lock()
        self._background = build_in_background
        self._todo: queue.Queue[tuple[str, str, bytes, str]] = queue.Queue(maxsize=8)
        self._queued: set[tuple[str, str]] = set()
        self._worker: threading.Thread | None = None
        self.stopping = threading.Event()

    # -- one window --------------------------------------------------------------------------
    def window(self, actor: str, user: str, sid: str, cast_name: str, t: float,
               view: str | None) -> tuple[seek.Window, str, bool]:
        """The window at second ``t``; returns it, the view id to send back, and whether the
        recording is being indexed (served whole meanwhile)."""
        v, view, opened = self._view(actor, user, sid, cast_name, view)
        if not opened and v.index is None and len(v.cast) > seek.WHOLE_LIMIT:
            v.index = self._cached_index(sid, cast_name)  # built in the background since
        if v.index is None:
            return seek.whole(v.cast), view, len(v.cast) > seek.WHOLE_LIMIT
        return seek.window(v.cast, v.index, t), view, False

    def activity(self, actor: str, user: str, sid: str, cast_name: str, view: str | None,
                 bins: int) -> tuple[Activity, str]:
        """The recording's activity strip, from the plaintext of the same view as the windows (no
        further vault read or audit entry when ``view`` is this user's view of it)."""
        v, view, _opened = self._view(actor, user, sid, cast_name, view)
        return activity(v.cast, bins), view

    def _view(self, actor: str, user: str, sid: str, cast_name: str,
              view: str | None) -> tuple[_View, str, bool]:
        """The user's view ``view`` of the recording, or a new one (one audited read)."""
        v = self._take_view(view, user, sid, cast_name)
        if v is not None and view is not None:
            return v, view, False
        v = self._open(actor, user, sid, cast_name)
        view = secrets.token_urlsafe(18)
        self._keep(view, v)
        return v, view, True

    def _open(self, actor: str, user: str, sid: str, cast_name: str) -> _View:
        """A new view: the recording, and its seek index when it has one, in one audited read."""
        with self.lock:
            m = self.vault.manifest(sid, cast_name)
            key = (sid, cast_name, m["plaintext_sha256"])
            with self._mu:
                index = self._indexes.get(key)
            name = None
            if index is None and m["plaintext_size"] > seek.WHOLE_LIMIT:
                name = stored_index(self.vault.names(sid), cast_name)
            got = read_audited(self.vault, sid, [cast_name] + ([name] if name else []), actor=actor, purpose=PURPOSE)
        cast = got[0]
        if name is not None:
            try:
                found = seek.SeekIndex.from_bytes(got[1])
            except (ValueError, KeyError, TypeError):
                found = None  # an older format: build the current one
            if found is not None and found.source_sha256 == key[2] and found.size == len(cast):
                index = found
                self._remember(key, index)
        if index is None and len(cast) > seek.WHOLE_LIMIT and self._background:
            self._enqueue(sid, cast_name, cast, key[2])
        return _View(user, sid, cast_name, cast, index)

    # -- views ---------------------------------------------------------------------------------
    def _take_view(self, view: str | None, user: str, sid: str, cast_name: str) -> _View | None:
        if not view:
            return None
        now = time.monotonic()
        with self._mu:
            self._expire(now)
            v = self._views.get(view)
            if v is None or (v.user, v.sid, v.cast_name) != (user, sid, cast_name):
                return None
            v.used = now
            self._views.move_to_end(view)
            return v

    def _keep(self, view: str, v: _View) -> None:
        with self._mu:
            self._views[view] = v
            self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        for k in [k for k, v in self._views.items() if now - v.used > VIEW_IDLE]:
            del self._views[k]
        while len(self._views) > MAX_VIEWS or (
                len(self._views) > 1 and sum(len(v.cast) for v in self._views.values()) > MAX_VIEW_BYTES):
            self._views.popitem(last=False)

    def drop_views_of(self, user: str) -> None:
        """Rights changed or signed out: that user's kept plaintext goes."""
        with self._mu:
            for k in [k for k, v in self._views.items() if v.user == user]:
                del self._views[k]

    # -- indexes -------------------------------------------------------------------------------
    def _digest(self, sid: str, cast_name: str) -> str:
        with self.lock:
            return self.vault.manifest(sid, cast_name)["plaintext_sha256"]

    def _cached_index(self, sid: str, cast_name: str) -> seek.SeekIndex | None:
        key = (sid, cast_name, self._digest(sid, cast_name))
        with self._mu:
            return self._indexes.get(key)

    def _remember(self, key: tuple[str, str, str], index: seek.SeekIndex) -> None:
        with self._mu:
            self._indexes[key] = index
            while len(self._indexes) > MAX_INDEXES:
                self._indexes.popitem(last=False)

    def _enqueue(self, sid: str, cast_name: str, cast: bytes, digest: str) -> None:
        with self._mu:
            if (sid, cast_name) in self._queued:
                return
            try:
                self._todo.put_nowait((sid, cast_name, cast, digest))
            except queue.Full:
                return  # busy: a later view asks again
            self._queued.add((sid, cast_name))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="seek-index", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                sid, cast_name, cast, digest = self._todo.get(timeout=1.0)
            except queue.Empty:
                return
            try:
                index = seek.build_index(cast, digest)
                self._seal(sid, cast_name, index)
                self._remember((sid, cast_name, digest), index)
            except Exception:  # noqa: BLE001 - a recording that does not index stays served whole
                pass
            finally:
                with self._mu:
                    self._queued.discard((sid, cast_name))

    def _seal(self, sid: str, cast_name: str, index: seek.SeekIndex) -> str:
        with self.lock:
            names = self.vault.names(sid)
            current = stored_index(names, cast_name)
            name = index_name(cast_name) if current is None else next_version(names, index_name(cast_name))
            m = self.vault.manifest(sid, cast_name)
            self.vault.put(sid, name, index.to_bytes(), time_range=tuple(m["time_range"]) if m.get("time_range") else None,
                           source=m.get("source"))
        return name


def ensure_index(vault: Any, sid: str, cast_name: str, *, actor: str) -> str | None:
    """Build and seal the seek index of one recording now, if it needs one and has none for its
    current bytes; returns the index's artefact name (None: small enough to be served whole).
    The read of the recording is audited under ``actor``."""
    m = vault.manifest(sid, cast_name)
    if m["plaintext_size"] <= seek.WHOLE_LIMIT:
        return None
    r = Replays(vault, threading.Lock(), build_in_background=False)
    name = stored_index(vault.names(sid), cast_name)
    v = r._open(actor, actor, sid, cast_name)
    if v.index is not None:
        return name
    return r._seal(sid, cast_name, seek.build_index(v.cast, hashlib.sha256(v.cast).hexdigest()))


def read_audited(vault: Any, sid: str, names: list[str], *, actor: str, purpose: str) -> list[bytes]:
    """Several artefacts of one session for one purpose, under one audit entry written first.
    (The vault's public ``get`` audits each artefact; the evidence bundle reads a session's
    artefacts through the same one door, ``Vault._access``, as done here.)"""
    if len(names) == 1 or not hasattr(vault, "_access"):
        return [vault.get(sid, n, actor=actor, purpose=purpose) for n in names]
    rids = [vault._rid(sid, n) for n in names]
    door = vault._access(actor, purpose, "read", rids, f"{sid}/{names[0]}" + "".join(f" +{n}" for n in names[1:]))
    return [door.plaintext(rid) for rid in rids]


def terminal_recording(names: list[str]) -> str | None:
    """The recording the console replays: the newest version of ``terminal.cast``."""
    return latest_version(names, "terminal.cast")


__all__ = ["Replays", "ensure_index", "index_name", "stored_index", "terminal_recording"]
