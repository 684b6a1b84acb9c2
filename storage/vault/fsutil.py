"""Durable file operations: the only way the vault puts bytes on disk.

A write is visible under its final name only after its content is on stable storage
(temp file + fsync + rename + fsync of the directory), so ``kill -9`` at any instant leaves
either the old state or the new one, plus at most a ``*.tmp`` that recovery removes.
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import VaultError

TMP_SUFFIX = ".tmp"

_deferred = threading.local()


@contextmanager
def group_commit() -> Iterator[None]:
    """Inside this block the per-file fsyncs are left out and one ``os.sync()`` at its end makes
    every write of the block durable at once. For a bulk import that seals hundreds of small
    recordings, eight fsyncs each would cost more than all the decoding. Order across blocks
    is kept (a block's writes are on disk before the next block starts), so callers put what
    must be durable first (data, keys) in one block and what refers to it (the ledger) in the
    next. Within a block, a crash of the process loses nothing (the page cache survives it);
    a power cut may lose the block as a whole, which recovery and ``verify`` see."""
    depth = getattr(_deferred, "depth", 0)
    _deferred.depth = depth + 1
    try:
        yield
    finally:
        _deferred.depth = depth
    if depth == 0:
        os.sync()


def _fsync(fd: int) -> None:
    if not getattr(_deferred, "depth", 0):
        os.fsync(fd)


def fsync_dir(path: Path) -> None:
    if getattr(_deferred, "depth", 0):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _explain(err: OSError, what: str) -> VaultError:
    if err.errno == errno.ENOSPC:
        return VaultError(f"no space left on the device while writing {what}; nothing was stored")
    if err.errno == errno.EDQUOT:
        return VaultError(f"disk quota exceeded while writing {what}; nothing was stored")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return VaultError(f"not allowed to write {what} ({os.strerror(err.errno)})")
    return VaultError(f"cannot write {what}: {os.strerror(err.errno or 0) or err}")


def atomic_write(path: Path, chunks: bytes | Iterator[bytes], *, mode: int = 0o600,
                 what: str | None = None, sync_dir: bool = True) -> int:
    """Write ``chunks`` to ``path`` all-or-nothing; returns the number of bytes written.

    ``sync_dir=False`` leaves the rename's durability to a later ``fsync_dir`` of the same
    directory (the ledger entry is made durable by the fsync that follows its head write)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    label = what or path.name
    total = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            if isinstance(chunks, (bytes, bytearray, memoryview)):
                chunks = iter((chunks,))
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    total += n
            _fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if sync_dir:
            fsync_dir(path.parent)
    except OSError as err:
        _unlink_quietly(tmp)
        raise _explain(err, label) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return total


def append_durable(path: Path, data: bytes, *, what: str) -> None:
    """Append one record and make it durable before returning (the audit log's write)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            before = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                # a half record must not stay behind the last good one
                os.ftruncate(fd, before)
                raise
        finally:
            os.close(fd)
    except OSError as err:
        raise _explain(err, what) from None


def remove_durable(path: Path, *, sync_dir: bool = True) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if sync_dir:
        fsync_dir(path.parent)
    return True


def create_marker(path: Path) -> None:
    """An empty file whose existence (not content) matters: only its directory needs syncing."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        fsync_dir(path.parent)
    except OSError as err:
        raise _explain(err, "a write marker") from None


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock: one writer at a time across processes (daemon, CLI)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
