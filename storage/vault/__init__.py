"""The evidence vault: recordings encrypted at rest, signed, hash-chained, retained and audited.

``Vault`` implements ``storage.recordings.RecordingStore``; ``build_evidence`` makes a
self-verifying evidence bundle of one session.
"""
from .errors import NotFoundError, RefusedError, VaultError, WrongKeyError
from .timestamp import NoTimestamp, Timestamper
from .vault import MIN_RETENTION_DAYS, Problem, Shredded, Vault, VaultStatus, VerifyReport

__all__ = ["Vault", "VaultError", "WrongKeyError", "NotFoundError", "RefusedError", "Problem",
           "VerifyReport", "VaultStatus", "Shredded", "Timestamper", "NoTimestamp",
           "MIN_RETENTION_DAYS", "build_evidence"]


def __getattr__(name: str):
    if name == "build_evidence":
        from .evidence import build_evidence
        return build_evidence
    raise AttributeError(name)
