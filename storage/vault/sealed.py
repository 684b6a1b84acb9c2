"""The sealed-recording format: zstd-compressed plaintext cut into fixed-size AES-256-GCM chunks.

Layout (all integers big-endian)::

    header   16 bytes   b"STSEAL01" | version u8 = 1 | compression u8 (1 = zstd) | 0 u16 | chunk_size u32
    chunk i  12-byte random nonce | ciphertext of min(chunk_size, rest) bytes | 16-byte tag

Every chunk's associated data is ``header | recording id (16 raw bytes) | i (u64) | final (u8)``.
So a chunk authenticates only at its own position, in its own recording, with the header it was
written under; dropping the tail fails because the last chunk left is not flagged final; a
chunk taken from another recording fails because that recording's id (and key) differ.

This module is pure: it turns bytes and a key into bytes and verdicts. Who may call it is
decided in ``vault.py``.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"STSEAL01"
HEADER = struct.Struct(">8sBBHI")
HEADER_SIZE = HEADER.size
NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG
COMPRESSION_ZSTD = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
# how far verify looks for the true place of a misplaced chunk before calling it foreign
_MAX_PLACE_SEARCH = 64


def make_header(chunk_size: int) -> bytes:
    return HEADER.pack(MAGIC, 1, COMPRESSION_ZSTD, 0, chunk_size)


def _aad(header: bytes, rid: bytes, index: int, final: bool) -> bytes:
    return header + rid + struct.pack(">QB", index, 1 if final else 0)


def seal(key: bytes, rid: bytes, payload: bytes | memoryview, chunk_size: int) -> Iterator[bytes]:
    """Yield the sealed file piece by piece (header, then one chunk at a time)."""
    header = make_header(chunk_size)
    yield header
    aead = AESGCM(key)
    view = memoryview(payload)
    n = max(1, -(-len(view) // chunk_size))
    for i in range(n):
        piece = view[i * chunk_size:(i + 1) * chunk_size]
        nonce = os.urandom(NONCE)
        yield nonce + aead.encrypt(nonce, bytes(piece), _aad(header, rid, i, i == n - 1))


@dataclass(frozen=True, slots=True)
class ChunkFault:
    """Why the sealed data does not open; ``index`` is the chunk position (None = whole file)."""
    index: int | None
    reason: str


def parse_header(blob: bytes | memoryview) -> tuple[bytes, int]:
    if len(blob) < HEADER_SIZE:
        raise ValueError(f"sealed file is {len(blob)} bytes, shorter than its header")
    magic, version, comp, _, chunk_size = HEADER.unpack_from(blob, 0)
    if magic != MAGIC or version != 1 or comp != COMPRESSION_ZSTD:
        raise ValueError("sealed file header is not a sessiontap sealed-recording header")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"sealed file header has an impossible chunk size {chunk_size}")
    return bytes(blob[:HEADER_SIZE]), chunk_size


def chunk_spans(total: int, chunk_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each chunk in a file of ``total`` bytes, as the writer laid them out."""
    body = total - HEADER_SIZE
    stride = chunk_size + OVERHEAD
    spans = []
    off = HEADER_SIZE
    while body > 0:
        length = min(stride, body)
        spans.append((off, length))
        off += length
        body -= length
    return spans


def open_chunks(key: bytes, rid: bytes, blob: bytes | memoryview,
                faults: list[ChunkFault] | None = None) -> Iterator[memoryview | bytes]:
    """Yield the plaintext of each chunk in order.

    With ``faults`` None the first bad chunk raises ValueError; otherwise every problem found
    is appended to ``faults`` (naming the chunk and what is wrong) and the walk goes on, so
    verify can say *exactly* what was altered rather than stop at the first sign.
    """
    def fail(index: int | None, reason: str) -> None:
        if faults is None:
            raise ValueError(f"chunk {index}: {reason}" if index is not None else reason)
        faults.append(ChunkFault(index, reason))

    view = memoryview(blob)
    try:
        header, chunk_size = parse_header(view)
    except ValueError as err:
        fail(None, str(err))
        return
    spans = chunk_spans(len(view), chunk_size)
    if not spans:
        fail(None, "sealed file holds no chunk at all (truncated after its header)")
        return
    aead = AESGCM(key)
    last = len(spans) - 1
    for i, (off, length) in enumerate(spans):
        if length <= OVERHEAD:
            fail(i, f"only {length} bytes left where a chunk should be (file truncated)")
            continue
        nonce = bytes(view[off:off + NONCE])
        body = bytes(view[off + NONCE:off + length])
        try:
            yield aead.decrypt(nonce, body, _aad(header, rid, i, i == last))
            continue
        except InvalidTag:
            pass
        fail(i, _diagnose(aead, header, rid, nonce, body, i, last, len(spans)))


def _diagnose(aead: AESGCM, header: bytes, rid: bytes, nonce: bytes, body: bytes,
              i: int, last: int, count: int) -> str:
    """Name what happened to a chunk that does not authenticate where it stands."""
    def opens(index: int, final: bool) -> bool:
        try:
            aead.decrypt(nonce, body, _aad(header, rid, index, final))
            return True
        except InvalidTag:
            return False

    if i == last and opens(i, False):
        return ("is not the final chunk: the recording was truncated after it "
                "(later chunks removed)")
    if i != last and opens(i, True):
        return "is the final chunk but more data follows it (bytes appended)"
    lo, hi = max(0, i - _MAX_PLACE_SEARCH), min(count + _MAX_PLACE_SEARCH, i + _MAX_PLACE_SEARCH)
    for j in range(lo, hi):
        if j != i and (opens(j, False) or opens(j, True)):
            return f"is chunk {j} of this recording moved to position {i} (chunks reordered or swapped)"
    return "fails authentication: its bytes were altered or it comes from another recording"
