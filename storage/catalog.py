"""The DuckDB catalog: sessions, login attempts, commands, timeline events, gaps, files, imports.

One file (``catalog.duckdb`` in the data directory). The schema carries a version and is
migrated forward on open. Writes of one session are one transaction: a crash leaves either
the whole session or none of it. Session ids are stable (see ``reconstruct.session``), so a
re-import replaces rather than duplicates.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import duckdb
import numpy as np

from reconstruct.session import SessionRecord

SCHEMA_VERSION = 2

# The search index: which words each searched column of each session holds. A word is a run
# of [a-z0-9] in lower(text), split exactly as DuckDB's regexp splits it; ``src`` names the
# column (1 command text, 2 command output, 3 event text, 4 file path).
_SEARCH_TEXT = {"commands": (("text", 1), ("output", 2)), "events": (("text", 3),), "files": (("path", 4),)}
_WORDS = "unnest(regexp_split_to_array(lower({col}), '[^a-z0-9]+'))"


def _words_sql(source: str, table: str) -> str:
    return " UNION ALL ".join(f"SELECT session_id, {src}::UTINYINT AS src, {_WORDS.format(col=c)} AS term "
                              f"FROM {source}" for c, src in _SEARCH_TEXT[table])


_SEARCH_FILL = [
    # sorted by word, so that DuckDB's per-row-group min/max skips all but a few row groups
    "INSERT INTO search_terms SELECT DISTINCT term, src, session_id FROM ("
    + " UNION ALL ".join(_words_sql(t, t) for t in _SEARCH_TEXT) + ") WHERE term <> '' ORDER BY term, src",
    "INSERT INTO search_vocab SELECT DISTINCT term FROM search_terms",
    "INSERT INTO search_index SELECT count(*) FROM search_terms",
]
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS imports (
            id BIGINT PRIMARY KEY, source VARCHAR, sha256 VARCHAR, size BIGINT,
            started DOUBLE, finished DOUBLE, packets BIGINT, sessions INTEGER,
            problems VARCHAR, status VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS sessions (
            id VARCHAR PRIMARY KEY, protocol VARCHAR, client_ip VARCHAR, client_port INTEGER,
            server_ip VARCHAR, server_port INTEGER, "user" VARCHAR, auth VARCHAR,
            start_ts DOUBLE, end_ts DOUBLE, end_reason VARCHAR, status VARCHAR, status_reason VARCHAR,
            decrypted BOOLEAN, decrypt_reason VARCHAR, picked_up BOOLEAN,
            c2s_bytes BIGINT, s2c_bytes BIGINT, n_commands INTEGER, n_events INTEGER,
            tags VARCHAR[], metadata JSON, recordings VARCHAR[], import_id BIGINT, source VARCHAR,
            truncated BOOLEAN)""",
        """CREATE TABLE IF NOT EXISTS auth_attempts (
            session_id VARCHAR, seq INTEGER, ts DOUBLE, "user" VARCHAR, method VARCHAR,
            result VARCHAR, detail VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS commands (
            session_id VARCHAR, idx INTEGER, ts DOUBLE, text VARCHAR, source VARCHAR,
            output VARCHAR, output_ts DOUBLE, tags VARCHAR[])""",
        """CREATE TABLE IF NOT EXISTS events (
            session_id VARCHAR, seq INTEGER, ts DOUBLE, kind VARCHAR, text VARCHAR,
            tags VARCHAR[], severity VARCHAR, ref INTEGER)""",
        """CREATE TABLE IF NOT EXISTS gaps (
            session_id VARCHAR, ts DOUBLE, direction VARCHAR, nbytes BIGINT)""",
        """CREATE TABLE IF NOT EXISTS files (
            session_id VARCHAR, ts DOUBLE, direction VARCHAR, path VARCHAR, size BIGINT,
            sha256 VARCHAR, method VARCHAR, complete BOOLEAN, stored VARCHAR)""",
        "CREATE INDEX IF NOT EXISTS commands_sid ON commands(session_id)",
        "CREATE INDEX IF NOT EXISTS events_sid ON events(session_id)",
    ],
    2: [
        "CREATE TABLE IF NOT EXISTS search_terms (term VARCHAR, src UTINYINT, session_id VARCHAR)",
        "CREATE TABLE IF NOT EXISTS search_vocab (term VARCHAR)",
        "CREATE TABLE IF NOT EXISTS search_index (sorted_rows BIGINT)",
        *_SEARCH_FILL,
    ],
}
SEARCH_FEW_SESSIONS = 4        # a column whose text can only be in this many sessions is read for them only
SEARCH_MAX_TERMS = 5000        # a query word matching more index words than this narrows nothing
SEARCH_RESORT_ROWS = 1_000_000  # unsorted index rows tolerated at the end before a re-sort (and a quarter)



_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("id", "protocol", "client_ip", "client_port", "server_ip", "server_port", "user", "auth",
                 "start_ts", "end_ts", "end_reason", "status", "status_reason", "decrypted", "decrypt_reason",
                 "picked_up", "c2s_bytes", "s2c_bytes", "n_commands", "n_events", "tags", "metadata",
                 "recordings", "import_id", "source", "truncated"),
    "auth_attempts": ("session_id", "seq", "ts", "user", "method", "result", "detail"),
    "commands": ("session_id", "idx", "ts", "text", "source", "output", "output_ts", "tags"),
    "events": ("session_id", "seq", "ts", "kind", "text", "tags", "severity", "ref"),
    "gaps": ("session_id", "ts", "direction", "nbytes"),
    "files": ("session_id", "ts", "direction", "path", "size", "sha256", "method", "complete", "stored"),
}


def _column(values: list) -> np.ndarray:
    """An object array of exactly these values (np.array would turn equal-length lists into 2-D)."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


def _caseless(text: str) -> bool:
    """True for ASCII text without letters (digits, addresses, paths, punctuation): lower()
    leaves such characters as they are and never makes them from other characters, so
    ``contains(lower(col), text)`` and ``contains(col, text)`` are the same test."""
    return text.isascii() and not re.search("[A-Za-z]", text)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """ISO 8601 (naive means UTC) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@dataclass
class SessionFilter:
    protocol: str | None = None
    user: str | None = None
    client: str | None = None
    server: str | None = None
    status: str | None = None
    tag: str | None = None
    since: float | None = None
    until: float | None = None
    decrypted: bool | None = None
    limit: int | None = None
    # the console's needs: zone scoping, paging, newest first, sessions still open (live)
    server_nets: list[str] | None = None   # CIDRs the server address must fall in (empty list: none)
    offset: int | None = None
    newest_first: bool = False
    open: bool | None = None               # True: no end yet (in progress); False: ended
    ids: list[str] | None = None           # only these sessions (e.g. the ones marked reviewed)
    not_ids: list[str] | None = None       # none of these


class Catalog:
    def __init__(self, path: str, encryption_key: str | None = None, read_only: bool = False) -> None:
        self.path = path
        if encryption_key:
            # the whole file is AES-GCM encrypted by DuckDB; the key comes from the vault
            from storage.vault.catalog_crypto import load_openssl
            self.con = duckdb.connect(":memory:")
            load_openssl(self.con)
            quoted = path.replace("'", "''")
            mode = ", READ_ONLY" if read_only else ""
            self.con.execute(f"ATTACH '{quoted}' AS cat (ENCRYPTION_KEY '{encryption_key}'{mode})")
            self.con.execute("USE cat")
        else:
            self.con = duckdb.connect(path, read_only=read_only)
        if not read_only:
            self._migrate()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------
    def _migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] if row and row[0] is not None else 0
        for v in sorted(_MIGRATIONS):
            if v > current:
                con.execute("BEGIN")
                for stmt in _MIGRATIONS[v]:
                    con.execute(stmt)
                con.execute("INSERT INTO schema_version VALUES (?)", [v])
                con.execute("COMMIT")

    def schema_version(self) -> int:
        return self.con.execute("SELECT max(version) FROM schema_version").fetchone()[0]

    # -- imports ------------------------------------------------------------------------------
    def begin_import(self, source: str, sha256: str, size: int) -> int:
        row = self.con.execute("SELECT coalesce(max(id), 0) + 1 FROM imports").fetchone()
        iid = int(row[0])
        self.con.execute("INSERT INTO imports VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, 'running')",
                         [iid, source, sha256, size, time.time()])
        return iid

    def finish_import(self, iid: int, packets: int, sessions: int, problems: list[str], status: str) -> None:
        self.con.execute("UPDATE imports SET finished = ?, packets = ?, sessions = ?, problems = ?, status = ? WHERE id = ?",
                         [time.time(), packets, sessions, json.dumps(problems), status, iid])

    def imports(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM imports ORDER BY id")

    # -- sessions -----------------------------------------------------------------------------
    def has_session(self, sid: str) -> bool:
        return self.con.execute("SELECT 1 FROM sessions WHERE id = ?", [sid]).fetchone() is not None

    def session_states(self) -> dict[str, bool | None]:
        """Every session id with its ``decrypted`` flag (what an import must not redo)."""
        return dict(self.con.execute("SELECT id, decrypted FROM sessions").fetchall())

    def write_session(self, rec: SessionRecord, import_id: int | None, source: str,
                      recordings: list[str]) -> None:
        self.write_sessions([(rec, import_id, source, recordings)])

    def write_sessions(self, items: list[tuple[SessionRecord, int | None, str, list[str]]]) -> None:
        """Write (or replace) sessions with all their rows, in one transaction.

        Rows go in as columns (numpy object arrays registered with DuckDB): a bulk import
        writes thousands of sessions, and DuckDB's per-row parameter binding would cost more
        than the reconstruction itself."""
        if not items:
            return
        t: dict[str, dict[str, list]] = {name: {} for name in _TABLE_COLUMNS}

        def add(table: str, row: tuple) -> None:
            cols = t[table]
            for name, value in zip(_TABLE_COLUMNS[table], row):
                cols.setdefault(name, []).append(value)

        for rec, import_id, source, recordings in items:
            tags = sorted({tag for e in rec.timeline for tag in e.tags})
            add("sessions", (rec.id, rec.protocol, rec.client_ip, rec.client_port, rec.server_ip, rec.server_port,
                             rec.user, rec.auth, rec.start, rec.end, rec.end_reason, rec.status, rec.status_reason,
                             rec.decrypted, rec.decrypt_reason, rec.picked_up, rec.c2s_bytes, rec.s2c_bytes,
                             len(rec.commands), len(rec.timeline), tags, json.dumps(rec.metadata), list(recordings),
                             import_id, source, rec.truncated))
            for i, a in enumerate(rec.auth_attempts):
                add("auth_attempts", (rec.id, i, a.ts, a.user, a.method, a.result, a.detail))
            for c in rec.commands:
                add("commands", (rec.id, c.index, c.ts, c.text, c.source, c.output, c.output_ts, list(c.tags)))
            for i, e in enumerate(rec.timeline):
                add("events", (rec.id, i, e.ts, e.kind, e.text, list(e.tags), e.severity, e.ref))
            for g in rec.gaps:
                add("gaps", (rec.id, g.ts, g.direction, g.nbytes))
            for f in rec.files:
                add("files", (rec.id, f.ts, f.direction, f.path, f.size, f.sha256, f.method, f.complete,
                              f"files/{f.sha256}" if f.content is not None else None))
        con = self.con
        ids = _column([rec.id for rec, *_ in items])
        con.execute("BEGIN")
        try:
            con.register("_ids", {"id": ids})
            replacing = con.execute("SELECT count(*) FROM sessions WHERE id IN (SELECT id FROM _ids)").fetchone()[0]
            con.execute("CREATE TEMP TABLE IF NOT EXISTS _search_new (session_id VARCHAR, src UTINYINT, term VARCHAR)")
            for table in ("auth_attempts", "commands", "events", "gaps", "files"):
                con.execute(f"DELETE FROM {table} WHERE session_id IN (SELECT id FROM _ids)")
            con.execute("DELETE FROM sessions WHERE id IN (SELECT id FROM _ids)")
            for table, cols in t.items():
                if not cols:
                    continue
                names = _TABLE_COLUMNS[table]
                con.register("_rows", {n: _column(cols[n]) for n in names})
                quoted = ", ".join(f'"{n}"' for n in names)
                con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM _rows")
                if table in _SEARCH_TEXT:
                    con.execute(f"INSERT INTO _search_new {_words_sql('_rows', table)}")
                con.unregister("_rows")
            self._index_words(replacing > 0)
            con.unregister("_ids")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _index_words(self, replacing: bool) -> None:
        """The words of the sessions being written (``_search_new``) into the search index.
        New rows go at the end, each batch sorted; once the unsorted tail is a quarter of the
        index the whole index is sorted again (amortised: each row is re-sorted a few times)."""
        con = self.con
        if replacing:  # a re-import or a live checkpoint: its old words go
            con.execute("DELETE FROM search_terms WHERE session_id IN (SELECT id FROM _ids)")
        con.execute("INSERT INTO search_terms SELECT DISTINCT term, src, session_id FROM _search_new "
                    "WHERE term <> '' ORDER BY term, src")
        con.execute("INSERT INTO search_vocab SELECT DISTINCT term FROM _search_new WHERE term <> '' "
                    "AND term NOT IN (SELECT term FROM search_vocab)")
        con.execute("DELETE FROM _search_new")
        total = con.execute("SELECT count(*) FROM search_terms").fetchone()[0]
        row = con.execute("SELECT max(sorted_rows) FROM search_index").fetchone()
        done = row[0] if row and row[0] is not None else 0
        if total - done > max(SEARCH_RESORT_ROWS, done // 4):
            self._resort_search_index()

    def _resort_search_index(self) -> None:
        """The whole word index sorted again (inside the caller's transaction)."""
        con = self.con
        con.execute("CREATE OR REPLACE TABLE search_terms AS SELECT * FROM search_terms ORDER BY term, src")
        con.execute("DELETE FROM search_index")
        con.execute("INSERT INTO search_index SELECT count(*) FROM search_terms")

    def rebuild_search_index(self) -> None:
        """The search index from the rows as they are (for rows written by other means than
        ``write_sessions``, e.g. a benchmark's bulk SQL)."""
        con = self.con
        con.execute("BEGIN")
        for table in ("search_terms", "search_vocab", "search_index"):
            con.execute(f"DELETE FROM {table}")
        for stmt in _SEARCH_FILL:
            con.execute(stmt)
        con.execute("COMMIT")

    def close_interrupted(self, sid: str, status: str, reason: str, end_ts: float | None, end_reason: str,
                          recordings: list[str]) -> None:
        """A session whose writer stopped mid-way (the live sensor was killed): keep what was
        checkpointed, say why it stops there. (Used by appliance/sensor_daemon.py.)"""
        self.con.execute("UPDATE sessions SET status = ?, status_reason = ?, end_ts = coalesce(end_ts, ?), "
                         "end_reason = ?, recordings = ? WHERE id = ?",
                         [status, reason, end_ts, end_reason, recordings, sid])

    def sessions(self, flt: SessionFilter | None = None) -> list[dict[str, Any]]:
        flt = flt or SessionFilter()
        where, args = self._where(flt)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ts DESC, id DESC" if flt.newest_first else " ORDER BY start_ts, id"
        if flt.limit:
            sql += f" LIMIT {int(flt.limit)}"
        if flt.offset:
            sql += f" OFFSET {int(flt.offset)}"
        return [_session_view(r) for r in self._dicts(sql, args)]

    def count_sessions(self, flt: SessionFilter | None = None) -> int:
        where, args = self._where(flt or SessionFilter())
        sql = "SELECT count(*) FROM sessions" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.con.execute(sql, args).fetchone()[0])

    def _where(self, flt: SessionFilter) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if flt.protocol:
            where.append("protocol = ?"); args.append(flt.protocol)
        if flt.user:
            where.append('"user" ILIKE ?'); args.append(flt.user.replace("*", "%"))
        if flt.client:
            where.append("client_ip = ?"); args.append(flt.client)
        if flt.server:
            where.append("server_ip = ?"); args.append(flt.server)
        if flt.status:
            where.append("status = ?"); args.append(flt.status)
        if flt.tag:
            where.append("list_contains(tags, ?)"); args.append(flt.tag)
        if flt.since is not None:
            where.append("coalesce(end_ts, start_ts) >= ?"); args.append(flt.since)
        if flt.until is not None:
            where.append("start_ts <= ?"); args.append(flt.until)
        if flt.decrypted is not None:
            where.append("decrypted = ?"); args.append(flt.decrypted)
        if flt.open is not None:
            where.append("end_ts IS NULL" if flt.open else "end_ts IS NOT NULL")
        if flt.server_nets is not None:
            cond, nargs = self._net_condition("server_ip", flt.server_nets)
            where.append(cond); args.extend(nargs)
        if flt.ids is not None:
            where.append("list_contains(?::VARCHAR[], id)"); args.append(list(flt.ids))
        if flt.not_ids:
            where.append("NOT list_contains(?::VARCHAR[], id)"); args.append(list(flt.not_ids))
        return where, args

    def find_session(self, prefix: str) -> str | None:
        """Full id from a unique prefix (like git's short hashes)."""
        rows = self.con.execute("SELECT id FROM sessions WHERE id LIKE ? LIMIT 2", [prefix + "%"]).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            raise LookupError(f"session id prefix {prefix!r} is ambiguous; give more characters")
        return None

    def session(self, sid: str) -> dict[str, Any] | None:
        rows = self._dicts("SELECT * FROM sessions WHERE id = ?", [sid])
        if not rows:
            return None
        s = _session_view(rows[0])
        s["auth_attempts"] = [
            {"ts": iso(r["ts"]), "user": r["user"], "method": r["method"], "result": r["result"], "detail": r["detail"]}
            for r in self._dicts("SELECT * FROM auth_attempts WHERE session_id = ? ORDER BY seq", [sid])]
        s["commands"] = [
            {"index": r["idx"], "ts": iso(r["ts"]), "offset": round(r["ts"] - rows[0]["start_ts"], 3),
             "text": r["text"], "source": r["source"], "output": r["output"], "tags": r["tags"] or []}
            for r in self._dicts("SELECT * FROM commands WHERE session_id = ? ORDER BY idx", [sid])]
        s["events"] = [
            {"ts": iso(r["ts"]), "offset": round(r["ts"] - rows[0]["start_ts"], 3), "kind": r["kind"],
             "text": r["text"], "tags": r["tags"] or [], "severity": r["severity"]}
            for r in self._dicts("SELECT * FROM events WHERE session_id = ? ORDER BY seq", [sid])]
        s["gaps"] = [{"ts": iso(r["ts"]), "direction": r["direction"], "nbytes": r["nbytes"]}
                     for r in self._dicts("SELECT * FROM gaps WHERE session_id = ? ORDER BY ts", [sid])]
        s["files"] = [{"ts": iso(r["ts"]), "direction": r["direction"], "path": r["path"], "size": r["size"],
                       "sha256": r["sha256"], "method": r["method"], "complete": r["complete"], "stored": r["stored"]}
                      for r in self._dicts("SELECT * FROM files WHERE session_id = ? ORDER BY ts", [sid])]
        return s

    def search(self, text: str, regex: bool = False, limit: int = 200,
               server_nets: list[str] | None = None, use_index: bool = True) -> list[dict[str, Any]]:
        """Commands, their output, timeline text and file names matching ``text``
        (case-insensitive substring, or a regular expression); ``server_nets`` keeps only
        sessions whose server is in one of these CIDRs.

        A substring search first asks the word index which columns, and when they are very few
        which sessions, can hold the text (``search_candidates``): a column that cannot is not
        read at all. The hits are the same as reading everything (``use_index=False``)."""
        if regex:
            cond, cargs = "regexp_matches({col}, ?)", [text]
        else:
            # contains(lower(..)) scans about twice as fast as ILIKE '%..%' and needs no escaping
            cond, cargs = "contains(lower({col}), ?)", [text.lower()]
            if _caseless(text):  # lower() changes none of these characters, nor makes them: skip it
                cond = "contains({col}, ?)"
        c = cond.format
        where: dict[int, list[str] | None] = {1: None, 2: None, 3: None, 4: None}
        if use_index and not regex:
            found = self.search_candidates(text.lower())
            if found is not None:
                where = found
        selects = {  # (select, number of text arguments)
            1: (f"SELECT session_id, ts, 'command' AS kind, text, tags FROM commands WHERE {c(col='text')}", 1),
            2: (f"SELECT session_id, coalesce(output_ts, ts) AS ts, 'output' AS kind, text, tags FROM commands "
                f"WHERE {c(col='output')} AND NOT ({c(col='text')})", 2),
            3: (f"SELECT session_id, ts, kind, text, tags FROM events "
                f"WHERE kind NOT IN ('command', 'tag', 'session-start') AND {c(col='text')}", 1),
            4: (f"SELECT session_id, ts, 'file' AS kind, path AS text, []::VARCHAR[] AS tags FROM files "
                f"WHERE {c(col='path')}", 1),
        }
        parts: list[str] = []
        nargs = 0
        for src, (select, n) in selects.items():
            if src not in where:
                continue  # no word of the text in this column: nothing to read
            ids = where[src]
            if ids is not None:
                select += " AND session_id IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"
            parts.append(select)
            nargs += n
        if not parts:
            return []
        sql = f"""
        SELECT h.session_id, h.ts, h.kind, h.text, h.tags, s.start_ts, s.protocol, s."user", s.server_ip
        FROM ({" UNION ALL ".join(parts)}) h JOIN sessions s ON s.id = h.session_id
        {{scope}}
        ORDER BY h.ts, h.session_id, h.kind, h.text LIMIT {int(limit)}"""
        args: list[Any] = cargs * nargs
        if server_nets is not None:
            cond, netargs = self._net_condition("s.server_ip", server_nets)
            sql = sql.replace("{scope}", "WHERE " + cond)
            args += netargs
        else:
            sql = sql.replace("{scope}", "")
        rows = self.con.execute(sql, args).fetchall()
        return [{"id": r[0], "ts": iso(r[1]), "offset": round(r[1] - r[5], 3), "kind": r[2], "text": r[3],
                 "tags": r[4] or [], "protocol": r[6], "user": r[7], "server_ip": r[8]} for r in rows]

    def search_candidates(self, q: str) -> dict[int, list[str] | None] | None:
        """Which searched columns (1 command text, 2 command output, 3 event text, 4 file path)
        can contain the lower-case string ``q``, from the word index: a column left out cannot;
        a column mapped to a list can only in those (few) sessions; to None, in any. None when
        the index cannot tell (no index yet, no word in ``q``, non-ASCII text).

        Exact, not heuristic: where ``q`` holds a word with a non-word character on both sides,
        any text containing ``q`` holds that whole word; a word at the start of ``q`` may be the
        end of a longer word of the text, one at its end the start of one, and a ``q`` that is
        all one word may be inside any word. So a text holding ``q`` holds, for each word of
        ``q``, an index word that equals / ends with / starts with / contains it."""
        if not q.isascii() or not self._has_search_index():
            return None
        con = self.con
        conds: list[tuple[str, list[Any]]] = []
        for m in re.finditer("[a-z0-9]+", q):
            word, left_open, right_open = m.group(), m.start() == 0, m.end() == len(q)
            if left_open:  # any word ending with (or containing) it: ask the vocabulary
                test = "contains(term, ?)" if right_open else "ends_with(term, ?)"
                terms = [r[0] for r in con.execute(f"SELECT term FROM search_vocab WHERE {test} "
                                                   f"LIMIT {SEARCH_MAX_TERMS + 1}", [word]).fetchall()]
                if not terms:
                    return {}
                if len(terms) > SEARCH_MAX_TERMS:
                    continue  # matches nearly everything: narrows nothing
                conds.append(("term IN (SELECT unnest(?::VARCHAR[]))", [terms]))
            elif right_open:  # words starting with it: a range of the sorted index
                conds.append(("term >= ? AND term < ?", [word, word + "{"]))
            else:
                conds.append(("term = ?", [word]))
        if not conds:
            return None
        # per column, the number of (word, session) pairs each word of q has there
        counts: dict[int, list[int]] = {src: [] for src in (1, 2, 3, 4)}
        for cond, args in conds:
            got = dict(con.execute(f"SELECT src, count(*) FROM search_terms WHERE {cond} GROUP BY src",
                                   args).fetchall())
            for src in counts:
                counts[src].append(int(got.get(src, 0)))
        out: dict[int, list[str] | None] = {}
        for src, ns in counts.items():
            if min(ns) == 0:
                continue  # some word of q is nowhere in this column
            out[src] = None
            if min(ns) <= SEARCH_FEW_SESSIONS:
                sql = " INTERSECT ".join(f"SELECT session_id FROM search_terms WHERE src = {src} AND {cond}"
                                         for cond, _ in conds)
                out[src] = [r[0] for r in con.execute(sql, [a for _, args in conds for a in args]).fetchall()]
                if not out[src]:
                    del out[src]
        return out

    def _has_search_index(self) -> bool:
        if getattr(self, "_search_index", None) is None:
            try:
                self.con.execute("SELECT 1 FROM search_index LIMIT 1")
                self._search_index = True
            except duckdb.CatalogException:  # a catalog of schema 1 opened read-only: scan
                self._search_index = False
        return bool(self._search_index)

    def _net_condition(self, column: str, cidrs: list[str]) -> tuple[str, list[Any]]:
        """SQL condition "``column`` (an IP address as text) is in one of ``cidrs``", with its
        arguments; no CIDRs means no session. IPv4 is compared as the number built from the
        dotted quad (plain SQL, no DuckDB extension to download); IPv6 networks go through a
        small Python function registered on this connection (rare on OT networks)."""
        import ipaddress

        parts: list[str] = []
        args: list[Any] = []
        q = [f"TRY_CAST(split_part({column}, '.', {i}) AS BIGINT)" for i in (1, 2, 3, 4)]
        v4 = f"({q[0]} * 16777216 + {q[1]} * 65536 + {q[2]} * 256 + {q[3]})"
        for text in cidrs:
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 4:
                parts.append(f"({column} NOT LIKE '%:%' AND {v4} BETWEEN ? AND ?)")
                args += [int(net.network_address), int(net.broadcast_address)]
            else:
                self._register_in_net6()
                parts.append(f"({column} LIKE '%:%' AND st_in_net6({column}, ?))")
                args.append(str(net))
        if not parts:
            return "FALSE", []
        return "(" + " OR ".join(parts) + ")", args

    def _register_in_net6(self) -> None:
        if getattr(self, "_net6", False):
            return
        import ipaddress

        def in_net6(ip: str, net: str) -> bool:
            try:
                return ipaddress.ip_address(ip) in ipaddress.ip_network(net, strict=False)
            except ValueError:
                return False

        try:
            self.con.create_function("st_in_net6", in_net6, ["VARCHAR", "VARCHAR"], "BOOLEAN",
                                     null_handling="special")
        except duckdb.CatalogException as e:  # functions belong to the DuckDB instance, shared by cursors
            if "already exists" not in str(e):
                raise
        self._net6 = True

    def _dicts(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, list(args))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def _session_view(r: dict[str, Any]) -> dict[str, Any]:
    """The stable, documented shape of a session (``sessions --json``)."""
    status = r["status"]
    return {
        "id": r["id"], "protocol": r["protocol"],
        "client_ip": r["client_ip"], "client_port": r["client_port"],
        "server_ip": r["server_ip"], "server_port": r["server_port"],
        "user": r["user"], "auth": r["auth"],
        "start": iso(r["start_ts"]), "end": iso(r["end_ts"]),
        "duration": round(r["end_ts"] - r["start_ts"], 3) if r["end_ts"] is not None else None,
        "status": status, "status_reason": r["status_reason"] or None,
        "decrypted": r["decrypted"], "decrypt_reason": r["decrypt_reason"] or None,
        "picked_up": r["picked_up"], "end_reason": r["end_reason"],
        "bytes_c2s": r["c2s_bytes"], "bytes_s2c": r["s2c_bytes"],
        "commands": r["n_commands"], "tags": r["tags"] or [],
        "metadata": json.loads(r["metadata"]) if r["metadata"] else {},
        "recordings": r["recordings"] or [], "source": r["source"],
    }
