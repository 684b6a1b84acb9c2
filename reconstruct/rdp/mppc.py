"""MPPC bulk decompression (RFC 2118; RDP 4.0 8K and RDP 5.0 64K histories, MS-RDPBCGR 3.1.8.4).

Servers that compress (xrdp with bulk_compression=true does, with the 64K variant) make every
graphics update and most slow-path server PDUs unreadable to PyRDP, which has no decompressor.
One ``MPPCDecompressor`` per direction and context: its history carries over from packet to
packet, so packets must be fed in order and a lost one breaks the ones after it (until the
sender flushes). NCRUSH (RDP 6.0) and XCRUSH (RDP 6.1) are not implemented: ``MPPCError``.
"""
from __future__ import annotations

PACKET_COMPRESSED, PACKET_AT_FRONT, PACKET_FLUSHED = 0x20, 0x40, 0x80
TYPE_8K, TYPE_64K = 0x0, 0x1


class MPPCError(ValueError):
    pass


class MPPCDecompressor:
    def __init__(self) -> None:
        self.kind: int | None = None
        self.history = bytearray(65536)
        self.size = 65536
        self.pos = 0

    def decompress(self, data: bytes, flags: int) -> bytes:
        kind = flags & 0x0F
        if kind not in (TYPE_8K, TYPE_64K):
            raise MPPCError(f"bulk compression type {kind} (RDP 6.x NCRUSH/XCRUSH) is not supported")
        if self.kind != kind:
            self.kind = kind
            self.size = 8192 if kind == TYPE_8K else 65536
            self.history = bytearray(self.size)
            self.pos = 0
        if flags & PACKET_FLUSHED:
            self.history = bytearray(self.size)
            self.pos = 0
        if flags & PACKET_AT_FRONT:
            self.pos = 0
        if not flags & PACKET_COMPRESSED:
            return bytes(data)
        return self._decode(data)

    def _decode(self, data: bytes) -> bytes:
        # A 128-bit window, refilled when fewer bits are left in it than the longest token (a
        # 64K copy with the longest length: 52 bits), so one refill serves about seven tokens;
        # each token is decoded inline. (A function call per bit field was 70 % of the time of
        # importing xrdp sessions.)
        hist, start = self.history, self.pos
        pos = start
        size = self.size
        big = self.kind == TYPE_64K
        buf = bytes(data) + bytes(16)                    # a window never runs off the end
        nbits = len(data) * 8
        i = 0                                            # bits consumed
        M = (1 << 128) - 1
        LIT_HIGH, COPY = 1 << 127, 3 << 126              # 10xxxxxxx / 11...
        from_bytes = int.from_bytes
        w, avail = 0, 0                                  # window (top-aligned) and its valid bits
        while nbits - i >= 8:
            if avail < 52:
                b = i >> 3
                w = (from_bytes(buf[b:b + 16], "big") << (i & 7)) & M
                avail = 128 - (i & 7)
            if w < LIT_HIGH:                             # 0xxxxxxx: literal < 0x80
                if pos >= size:
                    raise MPPCError("MPPC output overflows the history buffer")
                hist[pos] = w >> 120
                pos += 1
                i += 8
                avail -= 8
                w = (w << 8) & M
                continue
            if w < COPY:                                 # 10xxxxxxx: literal >= 0x80
                if nbits - i < 9:
                    break
                if pos >= size:
                    raise MPPCError("MPPC output overflows the history buffer")
                hist[pos] = 0x80 | ((w >> 119) & 0x7F)
                pos += 1
                i += 9
                avail -= 9
                w = (w << 9) & M
                continue
            # copy offset (prefix after the leading "11")
            top = w >> 123                               # first five bits
            if big:
                if top == 0b11111:
                    offset, used = (w >> 117) & 0x3F, 11
                elif top == 0b11110:
                    offset, used = ((w >> 115) & 0xFF) + 64, 13
                elif top >> 1 == 0b1110:
                    offset, used = ((w >> 113) & 0x7FF) + 320, 15
                else:                                    # 110
                    offset, used = ((w >> 109) & 0xFFFF) + 2368, 19
            else:
                if top >> 1 == 0b1111:
                    offset, used = (w >> 118) & 0x3F, 10
                elif top >> 1 == 0b1110:
                    offset, used = ((w >> 116) & 0xFF) + 64, 12
                else:                                    # 110
                    offset, used = ((w >> 112) & 0x1FFF) + 320, 16
            # length of match: 0 -> 3; k ones then a zero, then k+1 bits -> 2^(k+1) + v
            r = (w << used) & M
            k = 128 - ((~r) & M).bit_length()            # leading ones
            if k > 15:
                raise MPPCError("an MPPC match length is out of range")
            if k == 0:
                length = 3
                used += 1
            else:
                length = (1 << (k + 1)) + ((r >> (128 - 2 * k - 2)) & ((1 << (k + 1)) - 1))
                used += 2 * k + 2
            if i + used > nbits:
                break                                    # the rest is padding
            i += used
            avail -= used
            w = (w << used) & M
            src = pos - offset
            if offset == 0 or src < 0:
                raise MPPCError("an MPPC copy points before the history start (lost or damaged data)")
            if pos + length > size:
                raise MPPCError("MPPC output overflows the history buffer")
            if offset >= length:
                hist[pos:pos + length] = hist[src:src + length]
            else:                                        # overlapping copy repeats the pattern
                hist[pos:pos + length] = (hist[src:pos] * (length // offset + 1))[:length]
            pos += length
        self.pos = pos
        return bytes(hist[start:pos])


# ------------------------------------------------------------------- RDP 6.1 (XCRUSH) ----
L1_COMPRESSED, L1_NO_COMPRESSION, L1_PACKET_AT_FRONT, L1_INNER_COMPRESSION = 0x01, 0x02, 0x04, 0x10
TYPE_RDP61 = 0x3
XCRUSH_HISTORY = 2_000_000


class XCrushDecompressor:
    """RDP 6.1 bulk decompression (MS-RDPEGDI 2.2.2.4.1, 3.1.8.2): an optional inner MPPC 64K
    (level 2) pass, then level-1 matches (length, output offset, history offset) into a
    2,000,000-byte history, with the literals filling the gaps between matches."""

    def __init__(self) -> None:
        self.level2 = MPPCDecompressor()
        self.history = bytearray(XCRUSH_HISTORY)
        self.pos = 0

    def decompress(self, data: bytes, flags: int) -> bytes:
        if not flags & PACKET_COMPRESSED:
            return bytes(data)
        if len(data) < 2:
            raise MPPCError("an RDP 6.1 compressed block is shorter than its flags")
        l1, l2 = data[0], data[1]
        body = data[2:]
        if l1 & L1_INNER_COMPRESSION:
            body = self.level2.decompress(body, (l2 & 0xF0) | TYPE_64K)
        if l1 & L1_PACKET_AT_FRONT:
            self.history = bytearray(XCRUSH_HISTORY)
            self.pos = 0
        if l1 & L1_NO_COMPRESSION or not l1 & L1_COMPRESSED:
            return self._append(body)
        if len(body) < 2:
            raise MPPCError("an RDP 6.1 block has no match count")
        count = int.from_bytes(body[0:2], "little")
        lit = 2 + 8 * count
        if lit > len(body):
            raise MPPCError("RDP 6.1 match details run past the block")
        hist, start = self.history, self.pos
        out = start                                    # write position in the history
        for k in range(count):
            i = 2 + 8 * k
            length = int.from_bytes(body[i:i + 2], "little")
            out_off = int.from_bytes(body[i + 2:i + 4], "little")
            hist_off = int.from_bytes(body[i + 4:i + 8], "little")
            need = start + out_off - out               # literals before this match
            if need < 0 or lit + need > len(body) or start + out_off + length > XCRUSH_HISTORY \
                    or hist_off + length > XCRUSH_HISTORY:
                raise MPPCError("an RDP 6.1 match is out of bounds (lost or damaged data)")
            hist[out:out + need] = body[lit:lit + need]
            lit += need
            out += need
            if hist_off + length <= out or hist_off >= out + length:
                hist[out:out + length] = hist[hist_off:hist_off + length]
            else:                                      # overlaps what it writes: byte by byte
                for j in range(length):
                    hist[out + j] = hist[hist_off + j]
            out += length
        rest = body[lit:]
        if out + len(rest) > XCRUSH_HISTORY:
            raise MPPCError("an RDP 6.1 block overflows the history")
        hist[out:out + len(rest)] = rest
        out += len(rest)
        self.pos = out
        return bytes(hist[start:out])

    def _append(self, data: bytes) -> bytes:
        if self.pos + len(data) > XCRUSH_HISTORY:
            raise MPPCError("an RDP 6.1 block overflows the history")
        self.history[self.pos:self.pos + len(data)] = data
        self.pos += len(data)
        return bytes(data)


class BulkDecompressor:
    """One direction's bulk decompression, whatever type each packet announces."""

    def __init__(self) -> None:
        self.mppc = MPPCDecompressor()
        self.xcrush: XCrushDecompressor | None = None

    def decompress(self, data: bytes, flags: int) -> bytes:
        kind = flags & 0x0F
        if kind == TYPE_RDP61:
            if self.xcrush is None:
                self.xcrush = XCrushDecompressor()
            if flags & PACKET_FLUSHED:
                self.xcrush = XCrushDecompressor()
            return self.xcrush.decompress(data, flags)
        return self.mppc.decompress(data, flags)
