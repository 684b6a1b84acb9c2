"""Errors of the vault. Every message is one sentence a user can act on, and never holds a key."""
from __future__ import annotations


class VaultError(Exception):
    """Anything that stops a vault operation; ``str(err)`` is the one-line reason."""


class WrongKeyError(VaultError):
    """The passphrase or key file does not unwrap the master key."""


class NotFoundError(VaultError, KeyError):
    """No such session or artefact in the vault."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "not found"


class RefusedError(VaultError):
    """The operation is forbidden by policy (legal hold, retention minimum, duplicate put)."""
