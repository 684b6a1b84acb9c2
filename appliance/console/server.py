"""HTTP for the console: the stdlib's ThreadingHTTPServer, a thread per connection.

Why not a framework: the console is a few dozen JSON routes, four static pages and one
event stream for a handful of auditors on an appliance; ``http.server`` + ``ssl`` does that
with no dependency to track, and the API table in ``api.py`` already does routing and
validation. What this module adds is the web's security plumbing:

* sessions: a random 256-bit cookie (only its SHA-256 is stored), ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` (with ``__Host-`` prefix over TLS), idle and absolute expiry;
* CSRF: every change made with the cookie needs the ``X-CSRF-Token`` header given at sign-in
  and a same-origin ``Origin``; cross-site reads are refused on ``Sec-Fetch-Site``;
  API tokens (``Authorization: Bearer``) are not ambient, so they need neither;
* headers: a Content-Security-Policy with no inline script, no framing, no sniffing, no
  referrer, no caching of API answers;
* bounds: request bodies up to 64 KiB, at most ``MAX_STREAMS`` live event streams.
"""
from __future__ import annotations

import http.server
import ipaddress
import json
import mimetypes
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from appliance.console.access import Forbidden
from appliance.console.api import Accepted, Api, ApiError, Ctx, Raw, Stream

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "sessions.html", "/login": "login.html", "/admin": "admin.html"}
MAX_BODY = 64 * 1024
MAX_STREAMS = 32
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class ConsoleServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], api: Api, tls: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.tls = tls is not None
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        host = addr[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(addr, Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.cookie_name = "__Host-st_session" if self.tls else "st_session"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{port}/"

    def shutdown(self) -> None:
        self.api.stopping.set()
        super().shutdown()


def static_files() -> dict[str, Path]:
    """The only files served from disk: listed once, so no request path reaches the file system."""
    return {"/static/" + p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}


_STATIC = static_files()


class Handler(http.server.BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"
    server_version = "sessiontap-console"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    # quiet: the access trail is in the console store and the vault, not on stderr
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(60)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout):
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._send_error(405, "HEAD is not supported")

    def __getattr__(self, name: str) -> Any:
        # any other method (OPTIONS, TRACE, made-up ones): a clear 405, not http.server's 501 page
        if name.startswith("do_"):
            return lambda: self._send_error(405, f"{name[3:][:20]} is not supported")
        raise AttributeError(name)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- responses ----------------------------------------------------------------------------
    def _common_headers(self, api: bool) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        if self.server.tls:
            self.send_header("Strict-Transport-Security", "max-age=31536000")
        self.send_header("Cache-Control", "no-store" if api else "no-cache")

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              api: bool = True) -> None:
        self.send_response(status)
        self._common_headers(api)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", headers)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": message}, headers)

    # -- identity -----------------------------------------------------------------------------
    def _ip(self) -> str:
        return str(self.client_address[0])

    def _cookie(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            c = SimpleCookie()
            c.load(raw)
        except CookieError:
            return None
        m = c.get(self.server.cookie_name)
        return m.value if m and len(m.value) < 200 else None

    def _web_session(self) -> tuple[str, dict[str, Any]] | None:
        token = self._cookie()
        if not token:
            return None
        store = self.server.api.store
        ws = store.web_session(token)
        now = time.time()
        if ws is None or ws["last_seen"] < now - IDLE_SECONDS or ws["created"] < now - ABSOLUTE_SECONDS:
            if ws is not None:
                store.drop_web_session(token)
            return None
        if now - ws["last_seen"] > 30:  # touch at most twice a minute: fewer writes
            store.touch_web_session(token)
        return token, ws

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:
            return True  # same-origin fetches from older browsers; the CSRF header still has to match
        host = self.headers.get("Host", "")
        return origin in (f"http://{host}", f"https://{host}") and \
            origin.startswith("https://" if self.server.tls else "http://")

    # -- dispatch -----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except ApiError as e:
            self._send_error(e.status, e.message, e.headers)
        except Forbidden as e:
            self._send_error(403, str(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # one request fails, the console goes on; details to stderr only
            traceback.print_exc(file=sys.stderr)
            try:
                self._send_error(500, "internal error (logged by the console)")
            except OSError:
                self.close_connection = True

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        if len(self.path) > 8192:
            raise ApiError(414, "the URL is too long")
        length = self.headers.get("Content-Length")
        body = b""
        if length:
            try:
                n = int(length)
            except ValueError:
                raise ApiError(400, "bad Content-Length") from None
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, f"request bodies are limited to {MAX_BODY} bytes")
            body = self.rfile.read(n)
        elif self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "send a Content-Length")

        if method == "GET" and not path.startswith("/api/"):
            return self._page(path)
        if path == "/api/openapi.json" and method == "GET":
            return self._send_json(200, self.server.api.openapi())
        api = self.server.api
        found = api.match(method, path)
        if found is None:
            raise ApiError(404, f"no such API endpoint: {path}")
        route, raw_args = found
        # matched on the raw path (an encoded / stays inside its segment), decoded afterwards
        try:
            pathargs = {k: unquote(v, errors="strict") for k, v in raw_args.items()}
        except UnicodeDecodeError:
            raise ApiError(400, "the URL path is not valid UTF-8") from None
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=50) if url.query else {}
        except ValueError:
            raise ApiError(400, "too many query parameters") from None

        principal, web_token, ws = None, None, None
        bearer = self.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            principal = api.accounts.token_principal(bearer[7:].strip())
            if principal is None:
                raise ApiError(401, "unknown or revoked API token")
        else:
            got = self._web_session()
            if got is not None:
                web_token, ws = got
                principal = api.accounts.principal(ws["user"])
                if principal is None:  # disabled or deleted since sign-in
                    api.store.drop_web_session(web_token)
                    web_token = None
            # a cookie is ambient authority: changes need the CSRF token, reads must not be cross-site
            if method != "GET" and route.auth:
                if ws is not None and (not secrets.compare_digest(self.headers.get("X-CSRF-Token", ""), ws["csrf"])
                                       or not self._origin_ok()):
                    raise ApiError(403, "missing or wrong CSRF token (reload the page)")
            if method != "GET" and not route.auth and not self._origin_ok():
                raise ApiError(403, "cross-origin sign-in refused")
            site = self.headers.get("Sec-Fetch-Site")
            if ws is not None and site not in (None, "same-origin", "none"):
                raise ApiError(403, "cross-site request refused")
        if route.auth and principal is None:
            raise ApiError(401, "sign in first (or send an API token)")

        q, pargs, b = api.prepare(route, pathargs, query, body if method != "GET" else None)
        ctx = Ctx(principal=principal, query=q, path=pargs, body=b, ip=self._ip(), web_session=web_token)
        result = route.handler(ctx)

        if route.path == "/api/login":
            return self._signed_in(result)
        if route.path == "/api/logout":
            return self._send_json(200, result, {"Set-Cookie": self._cookie_header("", 0)})
        if route.path == "/api/me" and ws is not None:
            result["csrf"] = ws["csrf"]
        if isinstance(result, Raw):
            headers = {}
            if result.filename:
                safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in result.filename)[:120]
                headers["Content-Disposition"] = f'attachment; filename="{safe}"'
            return self._send(200, result.data, result.content_type, headers)
        if isinstance(result, Stream):
            return self._stream(result)
        if isinstance(result, Accepted):
            return self._send_json(202, result.doc, {"Retry-After": str(result.retry_after)})
        self._send_json(200, result)

    def _cookie_header(self, value: str, max_age: int) -> str:
        parts = [f"{self.server.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
        if self.server.tls or _loopback(self.server.server_address[0]):
            parts.append("Secure")  # browsers accept Secure cookies from http://localhost
        return "; ".join(parts)

    def _signed_in(self, result: dict[str, Any]) -> None:
        api = self.server.api
        old = self._cookie()
        if old:
            api.store.drop_web_session(old)  # a new session id at every sign-in (no fixation)
        api.store.expire_web_sessions(IDLE_SECONDS, ABSOLUTE_SECONDS)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        api.store.add_web_session(token, result["user"], csrf, self._ip())
        self._send_json(200, {**result, "csrf": csrf}, {"Set-Cookie": self._cookie_header(token, ABSOLUTE_SECONDS)})

    def _stream(self, stream: Stream) -> None:
        if not self.server.streams.acquire(blocking=False):
            raise ApiError(503, "too many live views open; close one", {"Retry-After": "10"})
        try:
            self.send_response(200)
            self._common_headers(True)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for chunk in stream.events:
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            pass
        finally:
            self.server.streams.release()

    def _page(self, path: str) -> None:
        if path in _STATIC:
            f = _STATIC[path]
            ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            if f.suffix == ".js":
                ctype = "text/javascript"
            return self._send(200, f.read_bytes(), ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""),
                              api=False)
        page = PAGES.get(path)
        if page is None and path.startswith("/sessions/") and path.count("/") == 2:
            page = "session.html"
        if page is None:
            raise ApiError(404, f"no page {path}")
        if page != "login.html" and self._web_session() is None:
            self.send_response(303)
            self._common_headers(False)
            self.send_header("Location", "/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(200, (STATIC / page).read_bytes(), "text/html; charset=utf-8", api=False)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def self_signed(directory: Path, hostnames: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for the console (made once, kept in the data directory)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessiontap console")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
