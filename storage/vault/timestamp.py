"""Hook for RFC 3161 trusted timestamps over ledger entries.

A passive appliance often has no route to a Time-Stamping Authority, so the default does
nothing. A deployment that has one plugs in an object with ``stamp``; the token it returns is
stored beside the ledger entry (``ledger/<seq>.tsr``) and copied into evidence bundles. The
token covers the entry hash, i.e. the signed manifest including its link to the previous one,
which is what makes a rolled-back ledger detectable by a third party.
"""
from __future__ import annotations

from typing import Protocol


class Timestamper(Protocol):
    def stamp(self, digest: bytes) -> bytes | None:
        """Return a DER TimeStampResp for the SHA-256 ``digest``, or None if none was made."""


class NoTimestamp:
    """The default: no TSA is contacted and no token is stored."""

    def stamp(self, digest: bytes) -> bytes | None:
        return None
