"""Who may do what: roles and zone scoping.

* ``admin``: users, zones, API tokens, the access trails; session metadata, never content.
* ``auditor``: replay, search inside recordings, exports, file downloads, review, comments.
* ``analyst``: session metadata and the event timeline; no recording, no output, no export.

Zones scope what a user sees by the *server* address of a session (the OT cell a session went
into): a user's zones name CIDR lists kept in the console store; ``*`` means every server.
A session outside a user's zones does not exist for that user (404, never 403: an id alone
must not tell an outsider that a session is there).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

ROLES = ("admin", "auditor", "analyst")
ALL_ZONES = "*"

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"metadata", "manage", "audit"}),
    "auditor": frozenset({"metadata", "events", "content", "export", "review"}),
    "analyst": frozenset({"metadata", "events"}),
}


class Forbidden(Exception):
    """The signed-in user's role does not allow this."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    zones: tuple[str, ...]
    nets: tuple[str, ...] | None = field(default=None)  # None: every server

    @property
    def actor(self) -> str:
        """The name the vault's audit trail records for this user's reads."""
        return f"console:{self.name}"

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise Forbidden(f"the {self.role} role does not allow this ({permission})")

    def sees_server(self, ip: str) -> bool:
        if self.nets is None:
            return True
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in ipaddress.ip_network(n, strict=False) for n in self.nets)


def principal(name: str, role: str, zones: list[str], zone_defs: dict[str, list[str]]) -> Principal:
    """A user's effective scope: the union of the CIDRs of their zones (unknown zone names
    grant nothing, so deleting a zone narrows access rather than widening it)."""
    if ALL_ZONES in zones:
        return Principal(name, role, tuple(zones), None)
    nets: list[str] = []
    for z in zones:
        nets.extend(zone_defs.get(z, []))
    return Principal(name, role, tuple(zones), tuple(nets))


def check_cidrs(cidrs: list[str]) -> list[str]:
    """Normalised CIDRs, or ValueError naming the bad one."""
    out = []
    for c in cidrs:
        try:
            out.append(str(ipaddress.ip_network(str(c).strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{c!r} is not an IP network (e.g. 10.1.2.0/24)") from None
    return out
