"""SSH transport layer, passively: version exchange, KEXINIT negotiation, key exchange
messages, NEWKEYS, re-keys, strict kex, compression -- both directions of one connection.

Sans-I/O: ``feed(direction, data, ts)`` returns a list whose items are either events
(``Metadata``, ``DecodeError``) or ``Message`` objects (decrypted, decompressed payloads of
service messages, type >= 50) for the connection layer. Decoding is a pure function of the
two byte streams and the escrowed secrets, so a session imported before its keys can be
decoded again later from the stored streams.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from reconstruct.decoder import KeyLookup
from reconstruct.events import DecodeError, Direction, Metadata
from reconstruct.ssh import fingerprint
from reconstruct.ssh.ciphers import CIPHERS, MACS, PacketError, PacketOpener, key_sizes, make_opener
from reconstruct.ssh.kex import KexContext, KexError, KexKeys, derive_keys, kex_family
from reconstruct.ssh.keylog import COOKIE_KIND, SSHSecret
from reconstruct.ssh.wire import Reader, WireError

MAX_VERSION_BYTES = 8192            # RFC 4253 4.2: lines before the identification string
MAX_STALL_BYTES = 4 * 1024 * 1024   # bytes held while the other direction finishes the kex
MAX_INFLATE = 512 * 1024            # one decompressed packet (OpenSSH allows 256 KiB)

MSG_DISCONNECT, MSG_IGNORE, MSG_UNIMPLEMENTED, MSG_DEBUG = 1, 2, 3, 4
MSG_EXT_INFO, MSG_KEXINIT, MSG_NEWKEYS = 7, 20, 21
MSG_USERAUTH_SUCCESS = 52

_OTHER = {"c2s": "s2c", "s2c": "c2s"}


@dataclass(frozen=True, slots=True)
class Message:
    """A service-layer message (type >= 50) in clear."""
    direction: Direction
    payload: bytes
    ts: float


@dataclass(slots=True)
class Negotiated:
    kex: str
    hostkey: str
    cipher: dict[str, str]
    mac: dict[str, str | None]
    comp: dict[str, str]


def _namelists(payload: bytes) -> list[list[str]]:
    r = Reader(payload, 17)
    return [r.namelist() for _ in range(10)]


def _first_match(client: list[str], server: list[str], what: str) -> str:
    for a in client:
        if a in server:
            return a
    raise KexError(f"no common {what} algorithm")


class _Dir:
    __slots__ = ("name", "buf", "pos", "phase", "seq", "opener", "candidates", "inflate",
                 "comp_pending", "packets", "bytes", "decrypted", "seen_newkeys", "opaque_chunks",
                 "opaque_bytes")

    def __init__(self, name: str) -> None:
        self.name = name
        self.buf = bytearray()
        self.pos = 0
        self.phase = "version"          # version | packets | stalled | opaque | dead
        self.seq = 0
        self.opener: PacketOpener = PacketOpener()
        self.candidates: list[tuple[PacketOpener, int]] | None = None
        self.inflate = None
        self.comp_pending: str | None = None
        self.packets = 0
        self.bytes = 0
        self.decrypted = False
        self.seen_newkeys = 0
        self.opaque_chunks = 0          # TCP chunks seen after NEWKEYS without a key
        self.opaque_bytes = 0


class Transport:
    def __init__(self, keys: KeyLookup) -> None:
        self._keys = keys
        self.d = {"c2s": _Dir("c2s"), "s2c": _Dir("s2c")}
        self.ctx = KexContext()
        self.neg: Negotiated | None = None
        self.session_id: bytes | None = None
        self.strict = False
        self.kex_count = 0
        self.versions: dict[str, bytes] = {}
        self._kexkeys: list[tuple[KexKeys, SSHSecret]] | None = None
        self._key_problem = ""
        self._winner: int | None = None       # candidate index that verified (both dirs agree)
        self._said_decrypted = False
        self._said_undecryptable = False
        self.failed = False
        self.auth_done = False
        self._wrong_key = False
        self.trace: list[tuple[str, int, int]] | None = None   # (direction, type, length) if set

    # ------------------------------------------------------------------ feeding
    def feed(self, direction: Direction, data: bytes, ts: float) -> list:
        d = self.d[direction]
        d.bytes += len(data)
        if d.phase == "opaque":
            d.opaque_chunks += 1
            d.opaque_bytes += len(data)
            return []
        if d.phase == "dead":
            return []
        d.buf += data
        out: list = []
        self._run(d, ts, out)
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list:
        d = self.d[direction]
        if d.phase in ("dead", "opaque"):
            return []
        d.phase = "dead"
        d.buf = bytearray()
        return [DecodeError(ts, f"{nbytes} bytes of the {direction} stream are missing from the "
                                f"capture; the rest of that direction cannot be decoded",
                            fatal=False)]

    def close(self, ts: float) -> list:
        out: list = []
        for d in self.d.values():
            if d.phase in ("packets", "version") and len(d.buf) - d.pos > 0:
                out.append(DecodeError(
                    ts, f"the {d.name} stream ends inside a packet ({len(d.buf) - d.pos} bytes "
                        f"left over)", fatal=False))
            elif d.phase == "stalled":
                out.append(DecodeError(ts, f"the {d.name} stream stopped at NEWKEYS before the "
                                           f"key exchange was complete"))
        if self._said_undecryptable and not self._said_decrypted:
            out.append(Metadata(ts, "auth_inferred", self.infer_auth()))
        if not self._said_decrypted and not self._said_undecryptable and self.neg:
            out.append(Metadata(ts, "decrypted", "false"))
            out.append(Metadata(ts, "decrypted_reason", self._key_problem or
                                "the capture ends before any encrypted packet"))
        return out

    def infer_auth(self) -> str:
        """Without keys, like Zeek: the user-auth phase is a handful of small packets each way
        (service request/accept, one request/answer per attempt). A server that goes on sending
        many packets, or a client that keeps typing or uploading, is past authentication.
        "success" or "unknown" (a failed login looks like a short session, but so does a
        successful one that did nothing)."""
        c, s = self.d["c2s"], self.d["s2c"]
        if s.opaque_chunks >= 12 or c.opaque_chunks >= 12 or s.opaque_bytes >= 16384 \
                or c.opaque_bytes >= 16384:
            return "success"
        return "unknown"

    def _fail(self, d: _Dir, ts: float, reason: str, out: list) -> None:
        d.phase = "dead"
        d.buf = bytearray()
        d.pos = 0
        self.failed = True
        out.append(DecodeError(ts, reason))

    # ------------------------------------------------------------------ packets
    def _run(self, d: _Dir, ts: float, out: list) -> None:
        if d.phase == "version":
            if not self._version(d, ts, out):
                return
        while d.phase == "packets":
            try:
                if d.candidates is not None:
                    got = self._trial(d, ts, out)
                else:
                    got = d.opener.open(d.buf, d.pos, d.seq)
            except PacketError as exc:
                msg = str(exc)
                if not msg.startswith("wrong key"):
                    msg = f"{msg} on packet {d.packets + 1} of {d.name}"
                    if "check failed" in msg:
                        msg += " (corrupt or altered stream)"
                self._fail(d, ts, msg, out)
                return
            if got is None:
                break
            end, payload = got
            d.pos = end
            d.seq = (d.seq + 1) & 0xFFFFFFFF
            d.packets += 1
            if d.inflate is not None:
                try:
                    payload = d.inflate.decompress(payload, MAX_INFLATE)
                except zlib.error as exc:
                    self._fail(d, ts, f"zlib stream of {d.name} is corrupt ({exc})", out)
                    return
                if d.inflate.unconsumed_tail:
                    self._fail(d, ts, f"a compressed {d.name} packet inflates beyond "
                                      f"{MAX_INFLATE} bytes", out)
                    return
            if not payload:
                continue
            if self.trace is not None:
                self.trace.append((d.name, payload[0], len(payload)))
            try:
                self._message(d, payload, ts, out)
            except (WireError, KexError) as exc:
                self._fail(d, ts, f"malformed {d.name} message type {payload[0]}: {exc}", out)
                return
        if d.pos:
            del d.buf[:d.pos]
            d.pos = 0
        if d.phase == "stalled" and len(d.buf) > MAX_STALL_BYTES:
            self._fail(d, ts, f"{d.name} sent more than {MAX_STALL_BYTES} bytes after NEWKEYS "
                              f"before the key exchange finished", out)

    def _version(self, d: _Dir, ts: float, out: list) -> bool:
        while True:
            nl = d.buf.find(b"\n", d.pos)
            if nl < 0:
                if len(d.buf) > MAX_VERSION_BYTES:
                    self._fail(d, ts, f"no SSH identification line in the first "
                                      f"{MAX_VERSION_BYTES} bytes of {d.name}", out)
                return False
            line = bytes(d.buf[d.pos:nl]).rstrip(b"\r")
            d.pos = nl + 1
            if line.startswith(b"SSH-"):
                break
            if d.name == "c2s" or d.pos > MAX_VERSION_BYTES:
                self._fail(d, ts, f"the {d.name} stream does not start with an SSH "
                                  f"identification line", out)
                return False
        self.versions[d.name] = line
        if d.name == "c2s":
            self.ctx.v_c = line
        else:
            self.ctx.v_s = line
        key = "client_version" if d.name == "c2s" else "server_version"
        out.append(Metadata(ts, key, line.decode("utf-8", "replace")))
        if not line.startswith((b"SSH-2.0-", b"SSH-1.99-")):
            self._fail(d, ts, f"unsupported SSH protocol version {line[:16]!r}", out)
            return False
        d.phase = "packets"
        return True

    def _trial(self, d: _Dir, ts: float, out: list):
        """First packet under new keys: keep the escrowed secret whose MAC/tag verifies."""
        assert d.candidates is not None
        errors = []
        order = d.candidates
        if self._winner is not None:
            order = [c for c in d.candidates if c[1] == self._winner] or d.candidates
        for opener, idx in order:
            try:
                got = opener.open(d.buf, d.pos, d.seq)
            except PacketError as exc:
                errors.append(str(exc))
                continue
            if got is None:
                return None
            d.opener, d.candidates = opener, None
            self._winner = idx
            if not self._said_decrypted:
                self._said_decrypted = True
                out.append(Metadata(ts, "decrypted", "true"))
            return got
        n = len(order)
        for other in self.d.values():            # one error per flow: the other side goes quiet
            if other is not d and other.candidates is not None:
                other.phase, other.buf, other.pos, other.candidates = "opaque", bytearray(), 0, None
        self._wrong_key = True
        if not self._said_undecryptable:
            self._said_undecryptable = True
            out.append(Metadata(ts, "decrypted", "false"))
            out.append(Metadata(ts, "decrypted_reason", "wrong key"))
        raise PacketError(f"wrong key: the first encrypted {d.name} packet fails the integrity "
                          f"check with each of the {n} escrowed secret(s) for this session")

    # ------------------------------------------------------------------ messages
    def _message(self, d: _Dir, payload: bytes, ts: float, out: list) -> None:
        t = payload[0]
        if t >= 50:
            if t == MSG_USERAUTH_SUCCESS and d.name == "s2c":
                self.auth_done = True
                self._start_delayed_compression()
            out.append(Message(d.name, payload, ts))    # type: ignore[arg-type]
            return
        if t == MSG_KEXINIT:
            self._kexinit(d, payload, ts, out)
        elif t == MSG_NEWKEYS:
            self._newkeys(d, ts, out)
        elif 30 <= t <= 49:
            self._kex_message(d, payload, ts, out)
        elif t == MSG_DISCONNECT:
            r = Reader(payload, 1)
            code = r.u32()
            desc = r.string().decode("utf-8", "replace")[:200]
            out.append(Metadata(ts, "disconnect", f"{d.name} code {code}: {desc}"))
        elif t == MSG_EXT_INFO:
            pass
        # IGNORE, DEBUG, UNIMPLEMENTED, SERVICE_REQUEST/ACCEPT (5/6) carry nothing we keep

    def _kexinit(self, d: _Dir, payload: bytes, ts: float, out: list) -> None:
        first = self.kex_count == 0 and not self.ctx.i_c and not self.ctx.i_s
        if (d.name == "c2s" and self.ctx.i_c) or (d.name == "s2c" and self.ctx.i_s):
            # a new key exchange (re-key) starts: keep the versions, forget the rest
            self.ctx = KexContext(v_c=self.ctx.v_c, v_s=self.ctx.v_s)
            self._kexkeys = None
        cookie = payload[1:17].hex()
        lists = _namelists(payload)
        if d.name == "c2s":
            self.ctx.i_c, self.ctx.client_cookie = payload, cookie
            if first or self.kex_count == 0:
                out.append(Metadata(ts, "hassh", fingerprint.hassh(lists)))
                out.append(Metadata(ts, "hassh_algorithms", fingerprint.hassh_string(lists)))
        else:
            self.ctx.i_s, self.ctx.server_cookie = payload, cookie
            if first or self.kex_count == 0:
                out.append(Metadata(ts, "hassh_server", fingerprint.hassh(lists, server=True)))
                out.append(Metadata(ts, "hassh_server_algorithms",
                                    fingerprint.hassh_string(lists, server=True)))
        if self.ctx.i_c and self.ctx.i_s:
            self._negotiate(ts, out)

    def _negotiate(self, ts: float, out: list) -> None:
        c, s = _namelists(self.ctx.i_c), _namelists(self.ctx.i_s)
        pseudo = ("ext-info-", "kex-strict-")
        kex = _first_match([a for a in c[0] if not a.startswith(pseudo)], s[0], "kex")
        neg = Negotiated(
            kex=kex, hostkey=_first_match(c[1], s[1], "host key"),
            cipher={"c2s": _first_match(c[2], s[2], "cipher"),
                    "s2c": _first_match(c[3], s[3], "cipher")},
            mac={"c2s": _first_match(c[4], s[4], "MAC"), "s2c": _first_match(c[5], s[5], "MAC")},
            comp={"c2s": _first_match(c[6], s[6], "compression"),
                  "s2c": _first_match(c[7], s[7], "compression")})
        for side in ("c2s", "s2c"):
            if CIPHERS.get(neg.cipher[side], CIPHERS["none"]).kind in ("gcm", "chacha"):
                neg.mac[side] = None       # AEAD: the MAC list is ignored (RFC 5647 / OpenSSH)
        self.ctx.alg = kex
        if self.kex_count == 0:
            self.strict = ("kex-strict-c-v00@openssh.com" in c[0]
                           and "kex-strict-s-v00@openssh.com" in s[0])
        self.neg = neg
        if self.kex_count == 0:
            out += [Metadata(ts, "kex_alg", kex), Metadata(ts, "host_key_alg", neg.hostkey),
                    Metadata(ts, "cipher_alg", _pair(neg.cipher)),
                    Metadata(ts, "mac_alg", _pair({k: v or "<implicit>" for k, v in neg.mac.items()})),
                    Metadata(ts, "compression_alg", _pair(neg.comp)),
                    Metadata(ts, "strict_kex", "true" if self.strict else "false")]
        for side in ("c2s", "s2c"):
            if neg.cipher[side] not in CIPHERS:
                self._key_problem = f"cipher {neg.cipher[side]} is not supported"
            elif neg.mac[side] and neg.mac[side] not in MACS:
                self._key_problem = f"MAC {neg.mac[side]} is not supported"
        if kex_family(kex) == "unknown":
            self._key_problem = f"key exchange {kex} is not supported"

    def _kex_message(self, d: _Dir, payload: bytes, ts: float, out: list) -> None:
        t = payload[0]
        fam = kex_family(self.ctx.alg)
        r = Reader(payload, 1)
        if fam == "gex":
            if d.name == "c2s" and t == 34:          # GEX_REQUEST min|n|max
                self.ctx.gex_req = payload[1:13]
            elif d.name == "c2s" and t == 30:        # GEX_REQUEST_OLD n
                self.ctx.gex_req = payload[1:5]
            elif d.name == "s2c" and t == 31:        # GEX_GROUP p g
                self.ctx.gex_p = int.from_bytes(r.string(), "big")
                self.ctx.gex_g = int.from_bytes(r.string(), "big")
            elif d.name == "c2s" and t == 32:        # GEX_INIT e
                self.ctx.client_pub = r.string()
            elif d.name == "s2c" and t == 33:        # GEX_REPLY K_S f sig
                self._server_reply(r, ts, out)
            return
        if d.name == "c2s" and t == 30:              # KEXDH_INIT / KEX_ECDH_INIT / hybrid C_INIT
            self.ctx.client_pub = r.string()
        elif d.name == "s2c" and t == 31:            # ... REPLY: K_S, f / Q_S / S_REPLY, signature
            self._server_reply(r, ts, out)

    def _server_reply(self, r: Reader, ts: float, out: list) -> None:
        self.ctx.host_key = r.string()
        self.ctx.server_pub = r.string()
        if self.kex_count == 0:
            ktype, fp = fingerprint.host_key(self.ctx.host_key)
            out += [Metadata(ts, "host_key_type", ktype), Metadata(ts, "host_key_fingerprint", fp)]
        self._prepare_keys()

    def _prepare_keys(self) -> None:
        """Look the escrow up by both cookies and derive every candidate key set."""
        if self._kexkeys is not None or self.neg is None:
            return
        found: list[SSHSecret] = []
        for cookie in (self.ctx.server_cookie, self.ctx.client_cookie):
            for s in self._keys.lookup(COOKIE_KIND, cookie):
                if isinstance(s, SSHSecret) and s not in found:
                    found.append(s)
        self._kexkeys = []
        if not found:
            self._key_problem = self._key_problem or (
                f"no key for this session (KEXINIT cookies {self.ctx.client_cookie}/"
                f"{self.ctx.server_cookie})")
            return
        if self._key_problem:
            return
        neg = self.neg
        problems = []
        for s in found:
            try:
                kk = derive_keys(self.ctx, s, self.session_id,
                                 key_sizes(neg.cipher["c2s"], neg.mac["c2s"]),
                                 key_sizes(neg.cipher["s2c"], neg.mac["s2c"]))
            except KexError as exc:
                problems.append(str(exc))
                continue
            self._kexkeys.append((kk, s))
        if not self._kexkeys:
            self._key_problem = "wrong key: " + "; ".join(dict.fromkeys(problems))

    def _newkeys(self, d: _Dir, ts: float, out: list) -> None:
        if self.neg is None:
            raise KexError("NEWKEYS before KEXINIT")
        d.seen_newkeys += 1
        # strict kex (Terrapin countermeasure): sequence numbers restart after every NEWKEYS
        if self.strict:
            d.seq = 0
        self._prepare_keys()
        both_done = all(x.seen_newkeys > self.kex_count for x in self.d.values())
        side = d.name
        neg = self.neg
        if not self._kexkeys or self._wrong_key:
            # nothing to decrypt with: from here on this direction is opaque
            d.phase = "opaque"
            d.buf = bytearray()
            d.pos = 0
            if not self._said_undecryptable and not self._said_decrypted:
                self._said_undecryptable = True
                out.append(Metadata(ts, "decrypted", "false"))
                reason = self._key_problem or "no key for this session"
                out.append(Metadata(ts, "decrypted_reason",
                                    "wrong key" if reason.startswith("wrong key") else "no key"))
                out.append(Metadata(ts, "decrypted_detail", reason))
                if reason.startswith("wrong key") and not self._wrong_key:
                    self._wrong_key = True
                    self.failed = True
                    out.append(DecodeError(ts, reason))
            if both_done:
                self._finish_kex()
            return
        cands = []
        for idx, (kk, _s) in enumerate(self._kexkeys):
            dk = kk.c2s if side == "c2s" else kk.s2c
            try:
                cands.append((make_opener(neg.cipher[side], neg.mac[side], dk.iv, dk.enc_key,
                                          dk.mac_key), idx))
            except ValueError as exc:
                self._key_problem = str(exc)
        if not cands:
            raise KexError(self._key_problem)
        d.candidates = cands
        comp = neg.comp[side]
        d.inflate = None
        d.comp_pending = None
        if comp == "zlib":
            d.inflate = zlib.decompressobj()
        elif comp == "zlib@openssh.com":
            if self.auth_done:
                d.inflate = zlib.decompressobj()
            else:
                d.comp_pending = comp
        if both_done:
            self._finish_kex()

    def _finish_kex(self) -> None:
        if self.session_id is None and self._kexkeys:
            # the first exchange hash names the session for every later re-key
            pick = self._kexkeys
            if self._winner is not None and self._winner < len(pick):
                pick = [pick[self._winner]] + pick
            for kk, s in pick:
                self.session_id = kk.h or s.session_id
                if self.session_id:
                    break
        self.kex_count += 1
        self._winner = None

    def _start_delayed_compression(self) -> None:
        for d in self.d.values():
            if d.comp_pending:
                d.inflate = zlib.decompressobj()
                d.comp_pending = None


def _pair(v: dict) -> str:
    return v["c2s"] if v["c2s"] == v["s2c"] else f"{v['c2s']} / {v['s2c']}"
