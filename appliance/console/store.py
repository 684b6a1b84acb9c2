"""Console state in its own small SQLite file (``console/console.db`` in the data directory).

Users (argon2id password hashes, role, zones, lockout counters; TOTP secrets are *not* here:
they are sealed in the vault), sign-in sessions and API tokens (only their SHA-256 is kept,
so a copy of this file lets nobody in), reviews, comments, zone definitions, and the
console's own trail (sign-ins, failures, lockouts, user changes). Recording access is audited
by the vault, not here.

SQLite rather than the catalog: the catalog belongs to the importer and is opened read-only by
the console (a DuckDB file has one writer), while this state is written on every sign-in.
One connection, serialised by a lock: the console's write rate is tiny.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, zones TEXT NOT NULL, pw_hash TEXT NOT NULL,
    totp_step INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL,
    last_seen REAL NOT NULL, ip TEXT);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash TEXT UNIQUE NOT NULL, user TEXT NOT NULL,
    label TEXT NOT NULL, created REAL NOT NULL, last_used REAL);
CREATE TABLE IF NOT EXISTS reviews (
    session_id TEXT PRIMARY KEY, reviewed INTEGER NOT NULL, user TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, user TEXT NOT NULL,
    ts REAL NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS comments_sid ON comments(session_id);
CREATE TABLE IF NOT EXISTS zones (name TEXT PRIMARY KEY, cidrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trail (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', ip TEXT);
"""

MAX_TRAIL = 100_000  # oldest rows go first: the vault's trail is the durable record of content access


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleStore:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        self._con = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        with self._lock:
            self._con.executescript(SCHEMA)
            self._con.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _rows(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._con.execute(sql, args)
            cols = [d[0] for d in cur.description] if cur.description else []
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _exec(self, sql: str, args: tuple | list = ()) -> int:
        with self._lock:
            cur = self._con.execute(sql, args)
            return cur.rowcount if cur.rowcount is not None else 0

    # -- users --------------------------------------------------------------------------------
    def user(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM users WHERE name = ?", (name,))
        if not rows:
            return None
        u = rows[0]
        u["zones"] = json.loads(u["zones"])
        u["disabled"] = bool(u["disabled"])
        return u

    def users(self) -> list[dict[str, Any]]:
        out = []
        for u in self._rows("SELECT * FROM users ORDER BY name"):
            u["zones"] = json.loads(u["zones"])
            u["disabled"] = bool(u["disabled"])
            out.append(u)
        return out

    def count_users(self) -> int:
        return self._rows("SELECT count(*) AS n FROM users")[0]["n"]

    def add_user(self, name: str, role: str, zones: list[str], pw_hash: str) -> None:
        self._exec("INSERT INTO users (name, role, zones, pw_hash, created) VALUES (?, ?, ?, ?, ?)",
                   (name, role, json.dumps(zones), pw_hash, time.time()))

    def update_user(self, name: str, **fields: Any) -> None:
        allowed = {"role", "zones", "pw_hash", "totp_step", "failures", "locked_until", "disabled"}
        sets, args = [], []
        for k, v in fields.items():
            if k not in allowed:
                raise KeyError(k)
            sets.append(f"{k} = ?")
            args.append(json.dumps(v) if k == "zones" else (int(v) if k == "disabled" else v))
        if sets:
            self._exec(f"UPDATE users SET {', '.join(sets)} WHERE name = ?", (*args, name))

    def claim_totp_step(self, name: str, step: int) -> bool:
        """Record ``step`` as used; False when it (or a later one) was used already."""
        return self._exec("UPDATE users SET totp_step = ? WHERE name = ? AND totp_step < ?", (step, name, step)) == 1

    # -- sign-in sessions ---------------------------------------------------------------------
    def add_web_session(self, token: str, user: str, csrf: str, ip: str) -> None:
        now = time.time()
        self._exec("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?)", (token_hash(token), user, csrf, now, now, ip))

    def web_session(self, token: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM web_sessions WHERE token_hash = ?", (token_hash(token),))
        return rows[0] if rows else None

    def touch_web_session(self, token: str) -> None:
        self._exec("UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?", (time.time(), token_hash(token)))

    def drop_web_session(self, token: str) -> None:
        self._exec("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash(token),))

    def drop_web_sessions_of(self, user: str) -> None:
        self._exec("DELETE FROM web_sessions WHERE user = ?", (user,))

    def expire_web_sessions(self, idle: float, absolute: float) -> None:
        now = time.time()
        self._exec("DELETE FROM web_sessions WHERE last_seen < ? OR created < ?", (now - idle, now - absolute))

    # -- API tokens ---------------------------------------------------------------------------
    def add_token(self, token: str, user: str, label: str) -> int:
        with self._lock:
            cur = self._con.execute("INSERT INTO api_tokens (token_hash, user, label, created) VALUES (?, ?, ?, ?)",
                                    (token_hash(token), user, label, time.time()))
            return int(cur.lastrowid or 0)

    def token_user(self, token: str) -> str | None:
        rows = self._rows("SELECT id, user FROM api_tokens WHERE token_hash = ?", (token_hash(token),))
        if not rows:
            return None
        self._exec("UPDATE api_tokens SET last_used = ? WHERE id = ?", (time.time(), rows[0]["id"]))
        return rows[0]["user"]

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        if user is None:
            return self._rows("SELECT id, user, label, created, last_used FROM api_tokens ORDER BY id")
        return self._rows("SELECT id, user, label, created, last_used FROM api_tokens WHERE user = ? ORDER BY id",
                          (user,))

    def drop_token(self, token_id: int, user: str | None = None) -> bool:
        if user is None:
            return self._exec("DELETE FROM api_tokens WHERE id = ?", (token_id,)) == 1
        return self._exec("DELETE FROM api_tokens WHERE id = ? AND user = ?", (token_id, user)) == 1

    def drop_tokens_of(self, user: str) -> None:
        self._exec("DELETE FROM api_tokens WHERE user = ?", (user,))

    # -- reviews and comments -----------------------------------------------------------------
    def set_review(self, session_id: str, reviewed: bool, user: str) -> None:
        self._exec("INSERT INTO reviews VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                   "reviewed = excluded.reviewed, user = excluded.user, ts = excluded.ts",
                   (session_id, int(reviewed), user, time.time()))

    def review(self, session_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM reviews WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        return {"reviewed": bool(rows[0]["reviewed"]), "by": rows[0]["user"], "ts": rows[0]["ts"]}

    def all_reviewed(self) -> list[str]:
        return [r["session_id"] for r in self._rows("SELECT session_id FROM reviews WHERE reviewed = 1")]

    def reviewed_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            out |= {r["session_id"] for r in self._rows(
                f"SELECT session_id FROM reviews WHERE reviewed = 1 AND session_id IN ({q})", chunk)}
        return out

    def add_comment(self, session_id: str, user: str, text: str) -> dict[str, Any]:
        ts = time.time()
        with self._lock:
            cur = self._con.execute("INSERT INTO comments (session_id, user, ts, text) VALUES (?, ?, ?, ?)",
                                    (session_id, user, ts, text))
            cid = int(cur.lastrowid or 0)
        return {"id": cid, "user": user, "ts": ts, "text": text}

    def comments(self, session_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT id, user, ts, text FROM comments WHERE session_id = ? ORDER BY id", (session_id,))

    # -- zones --------------------------------------------------------------------------------
    def zones(self) -> dict[str, list[str]]:
        return {r["name"]: json.loads(r["cidrs"]) for r in self._rows("SELECT * FROM zones ORDER BY name")}

    def set_zone(self, name: str, cidrs: list[str]) -> None:
        self._exec("INSERT INTO zones VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET cidrs = excluded.cidrs",
                   (name, json.dumps(cidrs)))

    def drop_zone(self, name: str) -> bool:
        return self._exec("DELETE FROM zones WHERE name = ?", (name,)) == 1

    # -- the console's own trail --------------------------------------------------------------
    def log(self, actor: str, action: str, target: str = "", detail: str = "", ip: str | None = None) -> None:
        self._exec("INSERT INTO trail (ts, actor, action, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), actor, action, target, detail, ip))
        self._exec("DELETE FROM trail WHERE id <= (SELECT max(id) FROM trail) - ?", (MAX_TRAIL,))

    def trail(self, limit: int = 200) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM trail ORDER BY id DESC LIMIT ?", (int(limit),))
