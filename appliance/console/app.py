"""Wiring: data directory -> console store, accounts, API, HTTP server."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from appliance.console.api import Api
from appliance.console.auth import Accounts, NewUser
from appliance.console.server import ConsoleServer, self_signed, tls_context
from appliance.console.store import ConsoleStore
from appliance.home import Home


def console_dir(home: Home) -> Path:
    return home.path / "console"


def open_accounts(home: Home) -> Accounts:
    store = ConsoleStore(console_dir(home) / "console.db")
    return Accounts(store, home.vault())


def first_admin(accounts: Accounts, name: str = "admin") -> NewUser | None:
    """The first admin account, made when there is no user at all (its password and TOTP
    secret are returned once, to be printed once)."""
    if accounts.store.count_users():
        return None
    return accounts.create(name, "admin", ["*"], actor="appliance")


@dataclass
class Console:
    server: ConsoleServer
    api: Api
    accounts: Accounts

    @property
    def url(self) -> str:
        return self.server.url

    def serve_forever(self) -> None:
        try:
            self.server.serve_forever(poll_interval=0.5)
        finally:
            self.server.server_close()

    def close(self) -> None:
        self.api.replays.stopping.set()
        self.api.renders.close()
        self.server.shutdown()
        self.server.server_close()
        self.accounts.store.close()


def build(home: Home, host: str = "127.0.0.1", port: int = 8443, tls: bool = True,
          cert: str | None = None, key: str | None = None, insecure_http: bool = False,
          live_interval: float = 2.0) -> Console:
    """A console ready to ``serve_forever``. Plain HTTP only on a loopback address unless
    ``insecure_http``: passwords and session cookies must not cross a network in clear."""
    if not tls and not insecure_http and not _loopback(host):
        raise ValueError(f"plain HTTP on {host} would send passwords in clear: use TLS (the default), "
                         f"bind to 127.0.0.1, or pass --insecure-http")
    accounts = open_accounts(home)
    api = Api(home, accounts.store, accounts, live_interval=live_interval)
    ctx = None
    if tls:
        if cert and key:
            ctx = tls_context(Path(cert), Path(key))
        else:
            names = sorted({host, "localhost", "127.0.0.1"} - {"0.0.0.0", "::"})
            c, k = self_signed(console_dir(home), names)
            ctx = tls_context(c, k)
    server = ConsoleServer((host, port), api, ctx)
    return Console(server, api, accounts)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
