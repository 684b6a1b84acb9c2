"""The escrow intake: jump hosts deposit SSH/TLS key-log lines over HTTPS as they make them.

    POST /v1/keys            Authorization: Bearer <host token>      body: key-log text
    -> 200 {"accepted": N, "host": "jump-1"}    sealed in the vault, waiting sessions queued
    -> 400 one line saying what is wrong with the text (nothing kept)
    -> 401 unknown token          -> 413 body over 1 MiB          -> 503 sensor busy, retry

Each jump host has its own token; the configuration holds only the token's SHA-256, compared
in constant time. TLS is mandatory: with no certificate configured, a self-signed one is made
in the data directory on first start and its fingerprint logged, for the clients to pin.

The HTTP threads never touch the vault or the catalog: a deposit is handed to the sensor's
main loop (the one writer) and the answer waits until it is sealed, so a 200 means the key
is on disk.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import queue
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1024 * 1024
ANSWER_SECONDS = 15.0


@dataclass
class Deposit:
    host: str
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[int, dict[str, Any]] = (503, {"error": "the sensor did not answer in time; retry"})


def token_digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def ensure_certificate(directory: Path, hostname: str = "sessiontap") -> tuple[Path, Path, str]:
    """A self-signed certificate for the intake (made once); returns (cert, key, sha256 fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_p, key_p = directory / "intake.crt", directory / "intake.key"
    if not cert_p.exists() or not key_p.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        now = datetime.datetime.now(datetime.timezone.utc)
        sans = [x509.DNSName(hostname), x509.DNSName("localhost")]
        import ipaddress
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        key_p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
        key_p.chmod(0o600)
        cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert = x509.load_pem_x509_certificate(cert_p.read_bytes())
    from cryptography.hazmat.primitives import hashes as h
    return cert_p, key_p, cert.fingerprint(h.SHA256()).hex()


class EscrowIntake:
    """HTTPS server; deposits come out of ``self.deposits`` for the main loop to seal."""

    def __init__(self, host: str, port: int, tokens: dict[str, str], cert: Path, key: Path) -> None:
        self.tokens = dict(tokens)              # host name -> sha256 hex of its token
        self.deposits: queue.Queue[Deposit] = queue.Queue(maxsize=64)
        self.accepted = 0
        self.refused = 0
        intake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, code: int, obj: dict[str, Any]) -> None:
                body = (json.dumps(obj) + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/v1/keys":
                    self._answer(404, {"error": "unknown endpoint; POST /v1/keys"})
                    return
                host = intake.authenticate(self.headers.get("Authorization", ""))
                length = int(self.headers.get("Content-Length") or 0)
                if host is None:
                    intake.refused += 1
                    self.close_connection = True
                    self._answer(401, {"error": "unknown or missing token"})
                    return
                if length > MAX_BODY:
                    self.close_connection = True
                    self._answer(413, {"error": f"body over {MAX_BODY} bytes; send the key log in parts"})
                    return
                text = self.rfile.read(length).decode("utf-8", "replace")
                dep = Deposit(host, text)
                try:
                    intake.deposits.put(dep, timeout=5)
                except queue.Full:
                    self._answer(503, {"error": "intake queue full; retry"})
                    return
                dep.done.wait(ANSWER_SECONDS)
                code, obj = dep.result
                if code == 200:
                    intake.accepted += 1
                self._answer(code, obj)

            def log_message(self, *args: Any) -> None:
                pass      # requests carry key material: nothing of them goes to logs

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._t = threading.Thread(target=self.httpd.serve_forever, name="escrow-intake", daemon=True)
        self._t.start()

    def authenticate(self, header: str) -> str | None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        digest = token_digest(token)
        found = None
        for host, want in self.tokens.items():
            if hmac.compare_digest(digest, want):
                found = host
        return found

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["EscrowIntake", "Deposit", "ensure_certificate", "token_digest"]
