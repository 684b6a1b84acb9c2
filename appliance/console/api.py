"""Every console operation, once: the web pages call these over HTTP like any script would.

Each ``Route`` names its method, path, permission, parameters and body schema; the same table
validates requests (bad input is a 400 with a one-sentence reason, never a 500), dispatches
them, and is written out as the OpenAPI 3 description at ``/api/openapi.json``.

Catalog reads open a read-only connection per request and close it at once: a DuckDB file has
one writer, and a connection held open by the console would keep the importer or the live
sensor out. Recording bytes come only from ``Vault.get(..., actor="console:<user>")``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import duckdb

from appliance.console.access import ALL_ZONES, ROLES, Forbidden, Principal, check_cidrs
from appliance.console.auth import Accounts, AuthError, check_name
from appliance.console.replay import Replays
from appliance.console.videos import Busy, Renders
from appliance.console.store import ConsoleStore
from appliance.home import Home
from appliance.rdp_video import VideoNames, session_time_range, video_names, why_no_video
from reconstruct.activity import MAX_BINS, activity
from reconstruct.seek import CastError, whole
from storage.catalog import Catalog, SessionFilter, parse_time
from storage.recordings import latest_version

SID = r"^[0-9a-f]{16}$"
MAX_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Raw:
    """A non-JSON answer: a recording, a download."""
    data: bytes
    content_type: str
    filename: str | None = None


@dataclass
class Accepted:
    """202: the answer is being made (an RDP video rendering); ask again after ``retry_after`` s."""
    doc: dict[str, Any]
    retry_after: int = 2


@dataclass
class Stream:
    """A server-sent event stream: ``events`` yields ready-to-send ``text/event-stream`` chunks."""
    events: Iterator[bytes]


@dataclass
class Param:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    where: str = "query"  # or "path"


@dataclass
class Ctx:
    principal: Principal | None
    query: dict[str, Any]
    path: dict[str, str]
    body: dict[str, Any]
    ip: str
    web_session: str | None = None  # the cookie token, for sign-out


@dataclass
class Route:
    method: str
    path: str
    handler: Callable[[Ctx], Any]
    summary: str
    params: list[Param] = field(default_factory=list)
    body: dict[str, Any] | None = None
    auth: bool = True
    produces: str = "application/json"
    tag: str = "sessions"
    accepted: bool = False  # may answer 202 (Accepted) while the content is being made

    def __post_init__(self) -> None:
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


# -- validation (the small subset of JSON Schema the routes use) --------------------------------
def _coerce_query(p: Param, raw: str) -> Any:
    t = p.schema.get("type", "string")
    try:
        if t == "integer":
            if not re.fullmatch(r"-?\d{1,12}", raw):
                raise ValueError
            return int(raw)
        if t == "number":
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError
            return v
        if t == "boolean":
            if raw not in ("true", "false"):
                raise ValueError
            return raw == "true"
    except ValueError:
        raise ApiError(400, f"parameter {p.name!r} must be a {t}") from None
    return raw


def check(value: Any, schema: dict[str, Any], name: str) -> Any:
    t = schema.get("type")
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
             "array": list}
    if t and (not isinstance(value, types[t]) or (t in ("integer", "number") and isinstance(value, bool))):
        raise ApiError(400, f"{name} must be a{'n' if t[0] in 'aeiou' else ''} {t}")
    if "enum" in schema and value not in schema["enum"]:
        raise ApiError(400, f"{name} must be one of {', '.join(map(str, schema['enum']))}")
    if t == "string":
        if len(value) > schema.get("maxLength", 10_000) or len(value) < schema.get("minLength", 0):
            raise ApiError(400, f"{name} must be {schema.get('minLength', 0)} to "
                                f"{schema.get('maxLength', 10_000)} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise ApiError(400, f"{name} is not in the expected form")
        if "\x00" in value:
            raise ApiError(400, f"{name} must not contain NUL characters")
    if t in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(400, f"{name} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(400, f"{name} must be at most {schema['maximum']}")
    if t == "array":
        if len(value) > schema.get("maxItems", 1000):
            raise ApiError(400, f"{name} has too many items")
        return [check(v, schema.get("items", {}), f"{name}[]") for v in value]
    if t == "object":
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                raise ApiError(400, f"{name} needs the field {req!r}")
        extra = set(value) - set(props)
        if extra and schema.get("additionalProperties") is False:
            raise ApiError(400, f"{name} has unknown field(s): {', '.join(sorted(extra))}")
        return {k: check(v, props[k], f"{name}.{k}") for k, v in value.items() if k in props}
    return value


def _s(**kw: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": 200, **kw}


def _parts(names: list[str]) -> list[str]:
    """A live session's checkpoint recordings, in order (``terminal.part-N.cast``)."""
    parts = [n for n in names if n.startswith("terminal.part-") and n.endswith(".cast")]
    return sorted(parts, key=lambda n: int(n[len("terminal.part-"):-len(".cast")] or 0)
                  if n[len("terminal.part-"):-len(".cast")].isdigit() else 0)


def _is_live(s: dict[str, Any]) -> bool:
    return s.get("status") == "live" or s.get("end") is None


class CatalogBusy(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "the catalog is being written by an import; retry in a moment", {"Retry-After": "2"})


class CatalogReader:
    """Read-only access to the encrypted catalog for many short requests.

    One in-memory DuckDB instance with OpenSSL loaded once (loading it costs ~0.2 s); the
    catalog file is attached read-only while at least one request uses it and detached when
    the last one finishes, so an import or the live sensor can take the writer's lock
    between requests, and the next request sees what they wrote.
    """

    def __init__(self, path: str, key: str) -> None:
        from storage.vault.catalog_crypto import load_openssl

        self.path = path
        self._key = key
        self._base = duckdb.connect(":memory:")
        load_openssl(self._base)
        # the catalog's IPv6 zone test is a Python function; DuckDB functions belong to the
        # instance, so register it once here rather than once per request's cursor
        registrar = Catalog.__new__(Catalog)
        registrar.con = self._base
        registrar._register_in_net6()
        self._lock = threading.Lock()
        self._users = 0

    def open(self) -> "_Attached":
        with self._lock:
            if self._users == 0:
                quoted = self.path.replace("'", "''")
                for attempt in range(20):
                    try:
                        self._base.execute(f"ATTACH '{quoted}' AS cat (ENCRYPTION_KEY '{self._key}', READ_ONLY)")
                        break
                    except duckdb.IOException as e:  # a writer holds the file lock
                        if "lock" not in str(e).lower() or attempt == 19:
                            if "lock" in str(e).lower():
                                raise CatalogBusy() from None
                            raise
                        time.sleep(0.1)
            self._users += 1
        cur = self._base.cursor()
        cur.execute("USE cat")
        return _Attached(self, cur)

    def _release(self, cur: "duckdb.DuckDBPyConnection") -> None:
        cur.close()
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._base.execute("DETACH cat")


class _Attached(Catalog):
    def __init__(self, reader: CatalogReader, cur: "duckdb.DuckDBPyConnection") -> None:
        self.path = reader.path
        self.con = cur
        self._reader = reader
        self._net6 = True  # registered on the shared instance by the reader

    def close(self) -> None:
        self._reader._release(self.con)


class Api:
    def __init__(self, home: Home, store: ConsoleStore, accounts: Accounts, live_interval: float = 2.0) -> None:
        self.home = home
        self.store = store
        self.accounts = accounts
        self.vault = accounts.vault
        self.live_interval = live_interval
        self.stopping = threading.Event()
        self._reader: CatalogReader | None = None
        self._snaps: dict[tuple[str, ...] | None, tuple[float, dict[str, Any]]] = {}
        self._snap_lock = threading.Lock()
        self.replays = Replays(self.vault, accounts.vault_lock)
        self.renders = Renders(self.vault, accounts.vault_lock)
        self.routes = self._routes()

    # -- plumbing -----------------------------------------------------------------------------
    def catalog(self) -> "_Attached | None":
        """The catalog for one request (read-only), or None before the first import."""
        if not self.home.catalog_path.exists():
            return None
        if self._reader is None:
            with self.accounts.vault_lock:
                if self._reader is None:
                    # the key is asked once per console process (one audit entry) and kept in memory
                    key = self.vault.catalog_key(actor="console")
                    self._reader = CatalogReader(str(self.home.catalog_path), key)
        return self._reader.open()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        allowed = False
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                if r.method == method:
                    return r, m.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, f"{method} is not allowed on {path}")
        return None

    def prepare(self, route: Route, path: dict[str, str], query: dict[str, list[str]], body: bytes | None
                ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        q: dict[str, Any] = {}
        known = {p.name for p in route.params if p.where == "query"}
        for name in query:
            if name not in known:
                raise ApiError(400, f"unknown parameter {name!r}")
        for p in route.params:
            if p.where == "path":
                path[p.name] = check(_coerce_query(p, path[p.name]), p.schema, f"path parameter {p.name!r}")
                continue
            vals = query.get(p.name)
            if not vals:
                if p.required:
                    raise ApiError(400, f"parameter {p.name!r} is required")
                continue
            if len(vals) > 1:
                raise ApiError(400, f"parameter {p.name!r} given more than once")
            q[p.name] = check(_coerce_query(p, vals[0]), p.schema, f"parameter {p.name!r}")
        b: dict[str, Any] = {}
        if route.body is not None:
            try:
                doc = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "the request body is not JSON") from None
            b = check(doc, route.body, "the request body")
        return q, path, b

    # -- the routes ---------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        sid = Param("id", {"type": "string", "pattern": SID}, "session id (16 hex characters)", True, "path")
        session_filters = [
            Param("protocol", {"type": "string", "enum": ["telnet", "ssh", "rdp"]}),
            Param("user", _s(), "user name; * is a wildcard"),
            Param("client", _s(maxLength=64), "client IP"),
            Param("server", _s(maxLength=64), "server IP"),
            Param("status", {"type": "string", "enum": ["complete", "partial", "decode_error", "live"]}),
            Param("tag", _s(maxLength=64), "event tag, e.g. config-change"),
            Param("since", _s(maxLength=40), "ISO 8601 (UTC if no zone) or epoch seconds"),
            Param("until", _s(maxLength=40), "ISO 8601 (UTC if no zone) or epoch seconds"),
            Param("decrypted", {"type": "boolean"}),
            Param("live", {"type": "boolean"}, "true: only sessions still in progress"),
            Param("reviewed", {"type": "boolean"}, "filter on the review mark"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
            Param("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000}),
        ]
        R = Route
        return [
            R("POST", "/api/login", self.login, "Sign in (password + TOTP code); sets the session cookie",
              body={"type": "object", "required": ["user", "password", "code"], "additionalProperties": False,
                    "properties": {"user": _s(maxLength=64), "password": _s(maxLength=1024),
                                   "code": _s(maxLength=12)}}, auth=False, tag="auth"),
            R("POST", "/api/logout", self.logout, "Sign out", tag="auth"),
            R("GET", "/api/me", self.me, "Who is signed in, role, zones, permissions", tag="auth"),
            R("GET", "/api/sessions", self.list_sessions, "Sessions, newest first, filtered and paged",
              params=session_filters),
            R("GET", "/api/sessions/{id}", self.session_detail,
              "One session: metadata; events and commands (analyst, auditor); output (auditor); review, comments",
              params=[sid]),
            R("GET", "/api/sessions/{id}/recording", self.recording,
              "The terminal recording (asciicast v2); audited read", params=[sid], produces="application/x-asciicast"),
            R("GET", "/api/sessions/{id}/replay", self.replay,
              "A window of the terminal recording for the player: an asciicast v2 that starts with the screen "
              "at or before second t, then the recording's events for a few hundred KB; audited once per view "
              "(send back the view id to move in the same view)",
              params=[sid, Param("t", {"type": "number", "minimum": 0, "maximum": 1e9}, "recording second"),
                      Param("view", {"type": "string", "pattern": r"^[A-Za-z0-9_-]{16,64}$"},
                            "the view id a previous window of this session returned")]),
            R("GET", "/api/sessions/{id}/activity", self.activity,
              "The terminal recording's activity strip: keystrokes, output characters and tagged events in "
              "equal slices of its length, for a heatmap beside the player; read in the same view as the "
              "replay windows (audited once per view)",
              params=[sid, Param("bins", {"type": "integer", "minimum": 1, "maximum": MAX_BINS}, "slices (200)"),
                      Param("view", {"type": "string", "pattern": r"^[A-Za-z0-9_-]{16,64}$"},
                            "the view id a window of this session returned")]),
            R("GET", "/api/sessions/{id}/video", self.video,
              "The RDP session's video (MP4), audited. The first request renders it from the session's replay and "
              "seals it in the vault: until then the answer is 202 with the render's state and Retry-After",
              params=[sid], produces="video/mp4", accepted=True),
            R("GET", "/api/sessions/{id}/thumbnails", self.thumbnails,
              "The RDP session's thumbnail strip: small JPEG frames (data: URLs) with their second in the video; "
              "audited. Made with the video (202 while it renders)", params=[sid], accepted=True),
            R("GET", "/api/sessions/{id}/files/{sha256}", self.file_content,
              "A transferred file's content; audited", params=[
                  sid, Param("sha256", {"type": "string", "pattern": r"^[0-9a-f]{64}$"}, "", True, "path")],
              produces="application/octet-stream"),
            R("GET", "/api/sessions/{id}/export", self.export,
              "Export: asciicast, JSON, an evidence bundle (zip), or an RDP session's video (mp4: 202 while it "
              "renders, as /video); audited",
              params=[sid, Param("format", {"type": "string", "enum": ["asciicast", "json", "evidence", "mp4"]}, "",
                                 True)],
              produces="application/octet-stream", accepted=True),
            R("POST", "/api/sessions/{id}/review", self.review, "Mark (or unmark) a session reviewed",
              params=[sid], body={"type": "object", "required": ["reviewed"], "additionalProperties": False,
                                  "properties": {"reviewed": {"type": "boolean"}}}),
            R("POST", "/api/sessions/{id}/comments", self.comment, "Comment on a session", params=[sid],
              body={"type": "object", "required": ["text"], "additionalProperties": False,
                    "properties": {"text": _s(minLength=1, maxLength=4000)}}),
            R("GET", "/api/search", self.search,
              "Full-text search in commands, output, typed text, events and file names; each hit has the second "
              "to open the replay at",
              params=[Param("q", _s(minLength=1), "text (case-insensitive) or regular expression", True),
                      Param("regex", {"type": "boolean"}),
                      Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})]),
            R("GET", "/api/live", self.live, "Server-sent events: sessions in progress and new sessions",
              produces="text/event-stream"),
            R("GET", "/api/audit", self.audit, "The vault's access trail and the console's sign-in trail (admin)",
              params=[Param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000})], tag="admin"),
            R("GET", "/api/users", self.list_users, "Users (admin)", tag="admin"),
            R("POST", "/api/users", self.create_user,
              "Create a user; the answer carries the password and TOTP secret, shown once (admin)",
              body={"type": "object", "required": ["name", "role"], "additionalProperties": False,
                    "properties": {"name": _s(minLength=1, maxLength=64),
                                   "role": {"type": "string", "enum": list(ROLES)},
                                   "zones": {"type": "array", "maxItems": 100, "items": _s(minLength=1, maxLength=64)}}},
              tag="admin"),
            R("PATCH", "/api/users/{name}", self.update_user, "Change a user's role, zones, or lock state (admin)",
              params=[Param("name", _s(minLength=1, maxLength=64), "", True, "path")],
              body={"type": "object", "additionalProperties": False,
                    "properties": {"role": {"type": "string", "enum": list(ROLES)},
                                   "zones": {"type": "array", "maxItems": 100, "items": _s(minLength=1, maxLength=64)},
                                   "disabled": {"type": "boolean"}, "unlock": {"type": "boolean"}}},
              tag="admin"),
            R("POST", "/api/users/{name}/reset", self.reset_user,
              "New password and TOTP secret, shown once; signs the user out, revokes their tokens (admin)",
              params=[Param("name", _s(minLength=1, maxLength=64), "", True, "path")], tag="admin"),
            R("GET", "/api/zones", self.list_zones, "Zones: named lists of server networks (CIDR)", tag="admin"),
            R("PUT", "/api/zones/{name}", self.put_zone, "Create or replace a zone (admin)",
              params=[Param("name", _s(minLength=1, maxLength=64, pattern=r"^[A-Za-z0-9._-]+$"), "", True, "path")],
              body={"type": "object", "required": ["cidrs"], "additionalProperties": False,
                    "properties": {"cidrs": {"type": "array", "maxItems": 1000, "items": _s(maxLength=64)}}},
              tag="admin"),
            R("DELETE", "/api/zones/{name}", self.delete_zone, "Delete a zone (admin)",
              params=[Param("name", _s(minLength=1, maxLength=64), "", True, "path")], tag="admin"),
            R("GET", "/api/tokens", self.list_tokens, "Your API tokens (an admin sees everyone's)", tag="auth"),
            R("POST", "/api/tokens", self.create_token,
              "New API token for scripts (Authorization: Bearer ...); shown once", tag="auth",
              body={"type": "object", "required": ["label"], "additionalProperties": False,
                    "properties": {"label": _s(minLength=1, maxLength=100)}}),
            R("DELETE", "/api/tokens/{tid}", self.delete_token, "Revoke an API token", tag="auth",
              params=[Param("tid", {"type": "integer", "minimum": 1, "maximum": 2**53}, "", True, "path")]),
        ]

    # -- auth ---------------------------------------------------------------------------------
    def login(self, ctx: Ctx) -> dict[str, Any]:
        b = ctx.body
        try:
            p = self.accounts.sign_in(b["user"], b["password"], b["code"], ctx.ip)
        except AuthError as e:
            headers = {"Retry-After": str(e.retry_after)} if hasattr(e, "retry_after") else {}
            raise ApiError(429 if headers else 401, str(e), headers) from None
        return {"user": p.name, "role": p.role}  # the server adds the cookie and the CSRF token

    def logout(self, ctx: Ctx) -> dict[str, Any]:
        if ctx.web_session:
            self.store.drop_web_session(ctx.web_session)
        if ctx.principal is not None:
            self.replays.drop_views_of(ctx.principal.name)
        return {"signed_out": True}

    def me(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        from appliance.console.access import PERMISSIONS
        return {"user": p.name, "role": p.role, "zones": list(p.zones),
                "permissions": sorted(PERMISSIONS.get(p.role, ()))}

    @staticmethod
    def _p(ctx: Ctx) -> Principal:
        if ctx.principal is None:
            raise ApiError(401, "sign in first")
        return ctx.principal

    # -- sessions -----------------------------------------------------------------------------
    def _filter(self, p: Principal, q: dict[str, Any]) -> SessionFilter:
        def t(name: str) -> float | None:
            if name not in q:
                return None
            try:
                return parse_time(q[name])
            except (ValueError, OverflowError):
                raise ApiError(400, f"parameter {name!r} is not an ISO 8601 time or epoch seconds") from None
        # the live sensor writes sessions in progress with status "live" at each checkpoint
        status = "live" if q.get("live") else q.get("status")
        return SessionFilter(protocol=q.get("protocol"), user=q.get("user"), client=q.get("client"),
                             server=q.get("server"), status=status, tag=q.get("tag"),
                             since=t("since"), until=t("until"), decrypted=q.get("decrypted"),
                             server_nets=None if p.nets is None else list(p.nets),
                             newest_first=True)

    def list_sessions(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("metadata")
        q = ctx.query
        flt = self._filter(p, q)
        limit, offset = q.get("limit", 100), q.get("offset", 0)
        cat = self.catalog()
        if cat is None:
            return {"total": 0, "sessions": []}
        if "reviewed" in q:  # the review mark lives in the console store; the catalog filters by id
            marked_ids = self.store.all_reviewed()
            if q["reviewed"]:
                flt.ids = marked_ids
            else:
                flt.not_ids = marked_ids
        with cat:
            total = cat.count_sessions(flt)
            flt.limit, flt.offset = limit, offset
            rows = cat.sessions(flt)
        marked = self.store.reviewed_ids([r["id"] for r in rows])
        for r in rows:
            r["reviewed"] = r["id"] in marked
            r["live"] = _is_live(r)
        return {"total": total, "sessions": rows}

    def _session(self, p: Principal, sid: str) -> dict[str, Any]:
        cat = self.catalog()
        s = None
        if cat is not None:
            with cat:
                s = cat.session(sid)
        if s is None or not p.sees_server(s["server_ip"]):
            raise ApiError(404, f"no session {sid}")
        return s

    def session_detail(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("metadata")
        s = self._session(p, ctx.path["id"])
        if not p.can("events"):
            for k in ("auth_attempts", "commands", "events", "gaps", "files"):
                s.pop(k, None)
        elif not p.can("content"):
            for c in s["commands"]:
                c.pop("output", None)
            for f in s["files"]:
                f["stored"] = None
        if p.can("content"):  # command output is content even though it comes from the catalog
            self.store.log(p.name, "view-session", s["id"], "metadata, commands and output", ctx.ip)
        names = self._names(s["id"])
        video = video_names(names) if s.get("protocol") == "rdp" else None
        no_video = why_no_video(s) if s.get("protocol") == "rdp" else None
        s["replay"] = {
            "terminal": latest_version(names, "terminal.cast") is not None or bool(_parts(names)),
            "video": video is not None and no_video is None,
            "video_ready": video is not None and no_video is None and video.video in names,
            "no_video": no_video,
        } if p.can("content") else None
        s["review"] = self.store.review(s["id"])
        s["comments"] = self.store.comments(s["id"])
        s["live"] = _is_live(s)
        return s

    def _names(self, sid: str) -> list[str]:
        with self.accounts.vault_lock:
            return self.vault.names(sid)

    def _read(self, p: Principal, sid: str, name: str, purpose: str) -> bytes:
        with self.accounts.vault_lock:
            return self.vault.get(sid, name, actor=p.actor, purpose=purpose)

    def recording(self, ctx: Ctx) -> Raw:
        p = self._p(ctx)
        p.require("content")
        s = self._session(p, ctx.path["id"])
        names = self._names(s["id"])
        name = latest_version(names, "terminal.cast")
        if name is not None:
            return Raw(self._read(p, s["id"], name, "replay in the console"), "application/x-asciicast")
        parts = _parts(names)
        if not parts:
            raise ApiError(404, f"session {s['id']} has no terminal recording")
        # in progress: the sensor seals one asciicast per checkpoint; one header, all their events
        lines: list[bytes] = []
        for i, n in enumerate(parts):
            body = self._read(p, s["id"], n, "replay in the console (session in progress)").splitlines()
            lines.extend(body if i == 0 else body[1:])
        return Raw(b"\n".join(lines) + b"\n", "application/x-asciicast")

    def replay(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("content")
        s = self._session(p, ctx.path["id"])
        name = latest_version(self._names(s["id"]), "terminal.cast")
        if name is None:  # a session in progress: its checkpoint parts, whole
            w, view, indexing = whole(self.recording(ctx).data), None, False
        else:
            try:
                w, view, indexing = self.replays.window(p.actor, p.name, s["id"], name, ctx.query.get("t", 0.0),
                                                        ctx.query.get("view"))
            except CastError as e:
                raise ApiError(422, f"the stored recording cannot be replayed: {e}") from None
        return {"cast": w.cast.decode("utf-8", "replace"), "start": w.start, "end": w.end,
                "duration": w.duration, "whole": w.whole, "view": view, "indexing": indexing}

    def activity(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("content")
        s = self._session(p, ctx.path["id"])
        bins = ctx.query.get("bins", 200)
        name = latest_version(self._names(s["id"]), "terminal.cast")
        try:
            if name is None:  # a session in progress: its checkpoint parts, whole
                a, view = activity(self.recording(ctx).data, bins), None
            else:
                a, view = self.replays.activity(p.actor, p.name, s["id"], name, ctx.query.get("view"), bins)
        except CastError as e:
            raise ApiError(422, f"the stored recording cannot be read: {e}") from None
        return {**a.to_json(), "view": view}

    def video(self, ctx: Ctx) -> Raw | Accepted:
        got = self._rendered(ctx, "video", "video replay in the console")
        return got if isinstance(got, Accepted) else Raw(got[0], "video/mp4")

    def thumbnails(self, ctx: Ctx) -> dict[str, Any] | Accepted:
        got = self._rendered(ctx, "thumbnails", "video thumbnails in the console")
        return got if isinstance(got, Accepted) else json.loads(got[0])

    def _rendered(self, ctx: Ctx, part: str, purpose: str) -> tuple[bytes, str] | Accepted:
        """One part (``video``, ``thumbnails``) of the RDP session's sealed render and the session
        id, read for ``purpose``; the render's state (202) while it is being made."""
        p, s, names = self._rdp_video(ctx)
        pending = self._render(p, s, names, ctx.ip)
        if pending is not None:
            return pending
        return self._read(p, s["id"], getattr(names, part), purpose), s["id"]

    def _rdp_video(self, ctx: Ctx) -> tuple[Principal, dict[str, Any], VideoNames]:
        p = self._p(ctx)
        p.require("content")
        s = self._session(p, ctx.path["id"])
        sid = s["id"]
        if s.get("protocol") != "rdp":
            raise ApiError(404, f"session {sid} is a {s.get('protocol')} session: it has no video")
        why = why_no_video(s)
        if why:
            raise ApiError(404, f"no video for session {sid}: {why}")
        names = video_names(self._names(sid))
        if names is None:
            reason = (s.get("metadata") or {}).get("decrypt-reason") or s.get("decrypt_reason") or "not decrypted"
            raise ApiError(404, f"session {sid} has no RDP replay to make a video from ({reason})")
        return p, s, names

    def _render(self, p: Principal, s: dict[str, Any], names: VideoNames, ip: str) -> Accepted | None:
        """None when the video is sealed; else the state of its render (started if need be)."""
        try:
            job, new = self.renders.request(p.actor, s["id"], names, session_time_range(s))
        except Busy:
            raise ApiError(503, "too many videos are being rendered; retry in a minute", {"Retry-After": "30"}) from None
        if job is None:
            return None
        if new:
            self.store.log(p.name, "render-video", s["id"], names.replay, ip)
        if job.state == "failed":
            raise ApiError(422, f"the video could not be rendered: {job.error}")
        return Accepted(job.view())

    def file_content(self, ctx: Ctx) -> Raw:
        p = self._p(ctx)
        p.require("content")
        s = self._session(p, ctx.path["id"])
        f = next((f for f in s["files"] if f["sha256"] == ctx.path["sha256"] and f["stored"]), None)
        if f is None:
            raise ApiError(404, "no stored file with this SHA-256 in this session")
        data = self._read(p, s["id"], f["stored"], f"download transferred file {f['path']}")
        name = os.path.basename(f["path"].rstrip("/")) or f["sha256"]
        return Raw(data, "application/octet-stream", name)

    def export(self, ctx: Ctx) -> Raw | Accepted:
        p = self._p(ctx)
        p.require("export")
        if ctx.query["format"] == "mp4":
            got = self._rendered(ctx, "video", "export MP4 from the console")
            return got if isinstance(got, Accepted) else Raw(got[0], "video/mp4", f"{got[1]}.mp4")
        s = self._session(p, ctx.path["id"])
        sid, fmt = s["id"], ctx.query["format"]
        names = self._names(sid)
        cast_name = latest_version(names, "terminal.cast")
        if fmt == "asciicast":
            if cast_name is None:
                raise ApiError(404, f"session {sid} has no terminal recording to export")
            return Raw(self._read(p, sid, cast_name, "export asciicast from the console"),
                       "application/x-asciicast", f"{sid}.cast")
        if fmt == "json":
            s["review"] = self.store.review(sid)
            s["comments"] = self.store.comments(sid)
            if cast_name is not None:  # the export carries the recording, so it is a read of it
                cast = self._read(p, sid, cast_name, "export JSON from the console")
                s["asciicast"] = cast.decode("utf-8", "replace")
                s["asciicast_sha256"] = hashlib.sha256(cast).hexdigest()
            else:
                self.store.log(p.name, "export-json", sid, "no recording in the vault", ctx.ip)
            return Raw((json.dumps(s, indent=2) + "\n").encode(), "application/json", f"{sid}.json")
        from storage.vault import build_evidence
        if not names:
            raise ApiError(404, f"session {sid} has nothing in the vault to bundle")
        with tempfile.TemporaryDirectory(prefix="sessiontap-evidence-") as tmp:
            out = os.path.join(tmp, f"{sid}-evidence.zip")
            with self.accounts.vault_lock:
                build_evidence(self.vault, sid, s, out, p.actor, purpose="evidence bundle from the console")
            with open(out, "rb") as fh:
                data = fh.read()
        return Raw(data, "application/zip", f"{sid}-evidence.zip")

    def review(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("review")
        s = self._session(p, ctx.path["id"])
        self.store.set_review(s["id"], ctx.body["reviewed"], p.name)
        self.store.log(p.name, "review" if ctx.body["reviewed"] else "unreview", s["id"], "", ctx.ip)
        return {"review": self.store.review(s["id"])}

    def comment(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("review")
        s = self._session(p, ctx.path["id"])
        text = ctx.body["text"].strip()
        if not text:
            raise ApiError(400, "a comment needs some text")
        c = self.store.add_comment(s["id"], p.name, text)
        self.store.log(p.name, "comment", s["id"], "", ctx.ip)
        return c

    def search(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("events")
        q = ctx.query
        limit = q.get("limit", 200)
        cat = self.catalog()
        if cat is None:
            return {"hits": []}
        with cat:
            try:
                hits = cat.search(q["q"], regex=q.get("regex", False), limit=limit,
                                  server_nets=None if p.nets is None else list(p.nets))
            except duckdb.InvalidInputException as e:
                if q.get("regex"):  # RE2 refused the pattern
                    raise ApiError(400, f"the regular expression does not compile ({str(e).split(': ', 1)[-1]})") from None
                raise
        if not p.can("content"):
            hits = [h for h in hits if h["kind"] != "output"]
        return {"hits": hits}

    def live(self, ctx: Ctx) -> Stream:
        p = self._p(ctx)
        p.require("metadata")

        def events() -> Iterator[bytes]:
            last = None
            beat = time.monotonic()
            yield b"retry: 3000\n\n"
            while not self.stopping.is_set():
                if self.accounts.principal(p.name) != p:
                    return  # disabled, or role or zones changed since: the stream ends with them
                try:
                    snap = self._live_snapshot(p)
                except ApiError:
                    snap = None  # busy catalog: try again next tick
                if snap is not None and snap != last:
                    last = snap
                    yield b"event: sessions\ndata: " + json.dumps(snap).encode() + b"\n\n"
                    beat = time.monotonic()
                elif time.monotonic() - beat > 15:
                    yield b": keep-alive\n\n"
                    beat = time.monotonic()
                self.stopping.wait(self.live_interval)
        return Stream(events())

    def _live_snapshot(self, p: Principal) -> dict[str, Any]:
        # every open page polls; pages with the same scope share one catalog read per interval,
        # so ten auditors watching cost the importer's lock no more than one
        key = p.nets
        with self._snap_lock:
            hit = self._snaps.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.live_interval * 0.9:
                return hit[1]
        snap = self._read_snapshot(p)
        with self._snap_lock:
            if len(self._snaps) > 256:
                self._snaps.clear()
            self._snaps[key] = (time.monotonic(), snap)
        return snap

    def _read_snapshot(self, p: Principal) -> dict[str, Any]:
        cat = self.catalog()
        if cat is None:
            return {"total": 0, "live": [], "newest": []}
        flt = self._filter(p, {})
        with cat:
            total = cat.count_sessions(flt)
            flt.status = "live"
            flt.limit = 200
            live = cat.sessions(flt)
            flt.status = None
            flt.limit = 20
            newest = cat.sessions(flt)
        for r in live + newest:
            r["live"] = _is_live(r)
        return {"total": total, "live": live, "newest": newest}

    # -- admin --------------------------------------------------------------------------------
    def audit(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("audit")
        limit = ctx.query.get("limit", 200)
        with self.accounts.vault_lock:
            entries = self.vault.audit_entries()
        return {"vault": entries[-limit:][::-1], "console": self.store.trail(limit)}

    @staticmethod
    def _user_view(u: dict[str, Any]) -> dict[str, Any]:
        return {"name": u["name"], "role": u["role"], "zones": u["zones"], "disabled": u["disabled"],
                "locked": u["locked_until"] > time.time(), "failures": u["failures"], "created": u["created"]}

    def list_users(self, ctx: Ctx) -> dict[str, Any]:
        self._p(ctx).require("manage")
        return {"users": [self._user_view(u) for u in self.store.users()]}

    def _check_zones(self, zones: list[str]) -> list[str]:
        known = self.store.zones()
        for z in zones:
            if z != ALL_ZONES and z not in known:
                raise ApiError(400, f"no zone named {z!r} (define it first, or use * for every server)")
        return zones

    def create_user(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("manage")
        b = ctx.body
        zones = self._check_zones(b.get("zones") or [ALL_ZONES])
        try:
            check_name(b["name"])
            nu = self.accounts.create(b["name"], b["role"], zones, actor=p.actor)
        except ValueError as e:
            raise ApiError(409 if "exists" in str(e) else 400, str(e)) from None
        return {"name": nu.name, "role": nu.role, "zones": nu.zones, "password": nu.password,
                "totp_secret": nu.totp_secret, "totp_uri": nu.totp_uri}

    def _enabled_admins(self) -> list[str]:
        return [u["name"] for u in self.store.users() if u["role"] == "admin" and not u["disabled"]]

    def update_user(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("manage")
        name = ctx.path["name"]
        u = self.store.user(name)
        if u is None:
            raise ApiError(404, f"no user {name!r}")
        b = ctx.body
        fields: dict[str, Any] = {}
        if "role" in b:
            fields["role"] = b["role"]
        if "zones" in b:
            fields["zones"] = self._check_zones(b["zones"])
        if "disabled" in b:
            fields["disabled"] = b["disabled"]
        if b.get("unlock"):
            fields.update(failures=0, locked_until=0)
        demoted = u["role"] == "admin" and (fields.get("role", "admin") != "admin" or fields.get("disabled"))
        if demoted and self._enabled_admins() == [name]:
            raise ApiError(409, "this is the last enabled admin; make another admin first")
        self.store.update_user(name, **fields)
        if fields.get("disabled") or "role" in fields or "zones" in fields:
            self.store.drop_web_sessions_of(name)  # new rights take effect at the next sign-in
            self.replays.drop_views_of(name)
        self.store.log(p.name, "user-update", name, json.dumps(b, sort_keys=True), ctx.ip)
        nu = self.store.user(name)
        assert nu is not None
        return self._user_view(nu)

    def reset_user(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("manage")
        try:
            nu = self.accounts.reset(ctx.path["name"], actor=p.actor)
        except LookupError as e:
            raise ApiError(404, str(e)) from None
        return {"name": nu.name, "password": nu.password, "totp_secret": nu.totp_secret, "totp_uri": nu.totp_uri}

    def list_zones(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        zones = self.store.zones()
        if not p.can("manage"):
            zones = {k: v for k, v in zones.items() if k in p.zones}
        return {"zones": zones}

    def put_zone(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("manage")
        try:
            cidrs = check_cidrs(ctx.body["cidrs"])
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        self.store.set_zone(ctx.path["name"], cidrs)
        self.store.log(p.name, "zone-set", ctx.path["name"], ",".join(cidrs), ctx.ip)
        return {"name": ctx.path["name"], "cidrs": cidrs}

    def delete_zone(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        p.require("manage")
        if not self.store.drop_zone(ctx.path["name"]):
            raise ApiError(404, f"no zone {ctx.path['name']!r}")
        self.store.log(p.name, "zone-delete", ctx.path["name"], "", ctx.ip)
        return {"deleted": ctx.path["name"]}

    def list_tokens(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        return {"tokens": self.store.tokens(None if p.can("manage") else p.name)}

    def create_token(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        tid, token = self.accounts.new_token(p.name, ctx.body["label"])
        return {"id": tid, "token": token, "label": ctx.body["label"]}

    def delete_token(self, ctx: Ctx) -> dict[str, Any]:
        p = self._p(ctx)
        tid = int(ctx.path["tid"])
        if not self.store.drop_token(tid, None if p.can("manage") else p.name):
            raise ApiError(404, f"no token {tid}")
        self.store.log(p.name, "token-revoke", str(tid), "", ctx.ip)
        return {"revoked": tid}

    # -- OpenAPI ------------------------------------------------------------------------------
    def openapi(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        err = {"description": "error", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
        for r in self.routes:
            op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag],
                                  "operationId": r.handler.__name__}
            params = []
            for prm in r.params:
                params.append({"name": prm.name, "in": prm.where, "required": prm.required or prm.where == "path",
                               "description": prm.description, "schema": prm.schema})
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body}}}
            ok = {"description": "success", "content": {r.produces: {"schema": {"type": "object"}
                                                                     if r.produces == "application/json"
                                                                     else {"type": "string", "format": "binary"}}}}
            op["responses"] = {"200": ok, "400": err, "401": err, "403": err, "404": err}
            if r.accepted:
                op["responses"]["202"] = {"description": "being made: the render's state; ask again after Retry-After",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}
                op["responses"]["422"] = err
            if not r.auth:
                op["security"] = []
                op["responses"]["429"] = err
            paths.setdefault(r.path, {})[r.method.lower()] = op
        return {
            "openapi": "3.0.3",
            "info": {"title": "sessiontap console API", "version": "1",
                     "description": "Find, replay, review and export recorded admin sessions. Scripts use an API "
                                    "token (Authorization: Bearer st_...); the web pages use a session cookie plus "
                                    "an X-CSRF-Token header on changes. Every read of recording content is in the "
                                    "vault's audit trail under the caller's name."},
            "servers": [{"url": "/"}],
            "components": {"securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "API token from POST /api/tokens"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "st_session"}}},
            "security": [{"token": []}, {"cookie": []}],
            "paths": paths,
        }


__all__ = ["Api", "ApiError", "Accepted", "Raw", "Stream", "Ctx", "Route", "Forbidden"]
