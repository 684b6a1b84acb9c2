"""RDPDecoder: one RDP connection's bytes in, sessiontap events out (sans-I/O).

Layers, outermost first, each in its own module:

    X.224 negotiation (x224)      clear: cookie, offered and selected security protocol
    transport security            TLS (tls, secrets from keylog or the server key)
                                  or Standard RDP Security (stdsec, the server key)
    CredSSP / NLA (credssp)       skipped; user/domain from NTLM AUTHENTICATE
    TPKT / fast-path framing      (x224.pdu_length)
    MCS + GCC (mcs)               client/server data, channel map, Send-Data
    RDP PDUs (pyrdp_bridge)       Client Info, input, slow path, clipboard -> events + replay

A framing or crypto failure ends decoding of this connection with one DecodeError; what was
already found (metadata, events) stands. Nothing is read from or written to disk; the PyRDP
replay is built in memory (``replay()``).
"""
from __future__ import annotations

import functools
import os
import struct
from typing import Sequence

from cryptography.hazmat.primitives.asymmetric import rsa

from reconstruct.decoder import KeyLookup, NoKeys
from reconstruct.events import (AuthAttempt, ClipboardCopy, CommandEntered, DecodeError, Event, FileTransfer,
                                Metadata, Notice)
from reconstruct.rdp import credssp, mcs, mppc, stdsec, x224
from reconstruct.rdp.cliprdr_files import ClipboardFileError, ClipboardFiles
from reconstruct.rdp.layout import Keyboard, LineEditor, layout_for
from reconstruct.rdp.pyrdp_bridge import (Click, Clipboard, DriveRedirection, InputReader, Key, ReplayWriter, Sync,
                                          Unicode, client_info, confirm_active_resolution, slowpath)
from reconstruct.rdp.tls import TLSDecryptor, TLSError, load_rsa_private_key

SEC_EXCHANGE_PKT, SEC_ENCRYPT, SEC_INFO_PKT, SEC_LICENSE_PKT = 0x0001, 0x0008, 0x0040, 0x0080
SEC_SECURE_CHECKSUM = 0x0800
CHANNEL_FLAG_FIRST, CHANNEL_FLAG_LAST, CHANNEL_PACKET_COMPRESSED = 0x1, 0x2, 0x00200000
CB_FILECONTENTS_REQUEST, CB_FILECONTENTS_RESPONSE, CB_LOCK_CLIPDATA, CB_UNLOCK_CLIPDATA = 0x8, 0x9, 0xA, 0xB
PDUTYPE_DEMAND_ACTIVE, PDUTYPE_CONFIRM_ACTIVE, PDUTYPE_DATA = 0x1, 0x3, 0x7
PDUTYPE2_INPUT, PDUTYPE2_SAVE_SESSION_INFO, PDUTYPE2_SET_ERROR_INFO = 0x1C, 0x26, 0x2F
FASTPATH_UPDATETYPE_BITMAP, FASTPATH_UPDATETYPE_SURFCMDS = 0x1, 0x4
LOGON_TYPES = {0: "logon (long)", 1: "logon (long)", 2: "logon (extended)", 3: "logon (plain notify)"}
ERRINFO = {0x1: "RPC initiated disconnect", 0x2: "RPC initiated logoff", 0x3: "idle timeout",
           0x4: "logon timeout", 0x5: "disconnected by another connection", 0xB: "disconnected by admin",
           0xC: "logoff by user", 0x0: "none"}

MAX_PDU_BUFFER = 0x10000 + 16          # one TPKT/fast-path PDU at most
MAX_CHANNEL_MESSAGE = 8 * 1024 * 1024  # one reassembled virtual channel message
MAX_LINE = 4096                        # one typed line
MAX_FILE = 16 * 1024 * 1024            # one redirected-drive file kept in memory (beyond: hash-less, incomplete)
DEFAULT_REPLAY_LIMIT = 64 * 1024 * 1024


class _Fatal(Exception):
    pass


def _starts_a_pdu(chunk: bytes) -> bool:
    """Does this decrypted TLS record begin with an RDP PDU (TPKT, or fast-path filling it)?"""
    if len(chunk) >= 4 and chunk[0] == 0x03 and chunk[1] == 0x00:
        return True
    try:
        n = x224.pdu_length(chunk)
    except x224.X224Error:
        return False
    return n is not None and n <= len(chunk)


def _fp_length(n_body: int) -> bytes:
    """Fast-path length field for a PDU of one header byte + this length field + n_body bytes."""
    n = 1 + n_body + (2 if n_body + 2 > 0x7F else 1)
    return bytes([0x80 | (n >> 8), n & 0xFF]) if n > 0x7F else bytes([n])


def load_server_key(key: rsa.RSAPrivateKey | str | os.PathLike) -> rsa.RSAPrivateKey:
    """A key object as is; a path (what ``--rdp-server-key`` gives) is read once per process.

    Reading happens here, when the importer builds the decoder, never while decoding."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    return _load_key_file(os.fspath(key))


@functools.lru_cache(maxsize=32)
def _load_key_file(path: str) -> rsa.RSAPrivateKey:
    with open(path, "rb") as f:
        return load_rsa_private_key(f.read())


class RDPDecoder:
    """``reconstruct.decoder.Decoder`` for RDP (protocol "rdp").

    ``keys``: TLS secrets (``tls-client-random`` lookups, e.g. ``KeyLogLookup``).
    ``server_keys``: RSA private keys of RDP servers (``tls.load_rsa_private_key``): TLS 1.2 RSA
    key exchange and Standard RDP Security; the right one is chosen by the server's certificate.
    """

    protocol = "rdp"

    def __init__(self, keys: KeyLookup | None = None,
                 server_keys: Sequence[rsa.RSAPrivateKey | str | os.PathLike] = (), *,
                 record_replay: bool = True, replay_limit: int = DEFAULT_REPLAY_LIMIT) -> None:
        self.keys = keys or NoKeys()
        self.server_keys = [load_server_key(k) for k in server_keys]
        self._secrets_given = bool(self.server_keys) or not isinstance(self.keys, NoKeys)
        self._out: list[Event] = []
        self._ts = 0.0
        self.state = "x224"             # x224 -> rdp (-> failed)
        self._raw = {"c2s": bytearray(), "s2c": bytearray()}   # before/around X.224 and TLS
        self._pdu = {"c2s": bytearray(), "s2c": bytearray()}   # plaintext RDP PDUs
        self.request: x224.ConnectionRequest | None = None
        self.confirm: x224.ConnectionConfirm | None = None
        self.tls: TLSDecryptor | None = None
        self._tls_meta_done = False
        self._undecrypted = {"c2s": 0, "s2c": 0}
        self._nla = {"c2s": False, "s2c": False}
        self._eua_pending = False
        self.client: mcs.ClientData | None = None
        self.server: mcs.ServerData | None = None
        self.channels: dict[int, str] = {}
        self.stdsec: stdsec.StdSecSession | None = None
        self.licensing_done = False
        self.info = None                # pyrdp_bridge.ClientInfo (holds the password: never emitted)
        self.user: str | None = None
        self._auth_emitted = False
        self._info_ts: float | None = None
        self._ntlm = None                        # (ts, NTLMAuthenticate) awaiting the verdict
        self._logon_seen = False
        self.keyboard = Keyboard()
        self.line = LineEditor()
        self.commands = 0
        self.inputs = InputReader()
        self.clipboard = Clipboard()
        self.clipfiles = ClipboardFiles(MAX_FILE)
        self.drives = DriveRedirection(MAX_FILE)
        self._vc: dict[tuple[str, int], bytearray] = {}
        self._replay = ReplayWriter(replay_limit) if record_replay else None
        self.graphics = {"updates": 0, "compressed": 0, "surface": 0, "slowpath_compressed": 0,
                         "decompressed": 0, "too_large": 0, "lost_after_gap": 0}
        self._mppc = {"c2s": mppc.BulkDecompressor(), "s2c": mppc.BulkDecompressor()}
        self._mppc_failed: str | None = None
        self._mppc_broken = {"c2s": False, "s2c": False}
        self._frag: bytearray | None = None       # a fragmented fast-path update being put together
        self._realign = {"c2s": False, "s2c": False}
        self._gap_bytes = {"c2s": 0, "s2c": 0}
        self._line_gap = False
        self._resyncs_seen = 0
        self.gfx_channel = False
        self.resolution: tuple[int, int] | None = None
        self._warned: set[str] = set()
        self._said: set[str] = set()            # metadata keys already emitted
        self._plain_seen = False                 # any decrypted RDP byte yet
        self.failed: str | None = None

    # ------------------------------------------------------------------ public API ----
    def feed(self, direction: str, data: bytes, ts: float) -> list[Event]:
        self._ts = ts
        if self.failed or not data:
            return self._flush()
        try:
            if self.state == "x224":
                self._feed_x224(direction, bytes(data))
            else:
                self._feed_transport(direction, bytes(data))
        except _Fatal as e:
            self._fail(str(e))
        except (TLSError, stdsec.StdSecError) as e:
            if "decrypted" not in self._said:
                self._meta("decrypted", "false")
                self._meta("decrypt-reason", str(e))
            self._fail(str(e))
        except (x224.X224Error, mcs.MCSError, credssp.CredSSPError) as e:
            self._fail(str(e))
        return self._flush()

    def gap(self, direction: str, nbytes: int, ts: float) -> list[Event]:
        self._ts = ts
        # the Gap event itself is recorded by the session layer (reconstruct.session), which
        # sees every gap of every protocol; here we only say what it costs RDP decoding
        if not self.failed and self.tls is not None and self.tls.decrypting and self.state == "rdp":
            try:
                self.tls.gap(direction)
            except TLSError as e:
                self._fail(f"{nbytes} bytes missing from the capture ({direction}): {e}")
                return self._flush()
            self._after_gap(direction, nbytes)
            return self._flush()
        if not self.failed:
            where = "TLS" if self.tls is not None else ("Standard RDP Security" if self.stdsec else "RDP framing")
            self._fail(f"{nbytes} bytes missing from the capture ({direction}): {where} cannot be followed past a gap")
        return self._flush()

    def close(self, ts: float, reason: str) -> list[Event]:
        self._ts = ts
        if not self.failed:
            if self.state == "x224":
                if self._raw["c2s"] or self._raw["s2c"]:
                    self._fail("the capture ends inside the X.224 connection negotiation")
            elif self.tls is not None and not self._plain_seen and self.tls.no_secret_reason is None:
                seen = "no ServerHello seen" if self.tls.server_random is None else "no application data"
                if "decrypted" not in self._said:
                    self._meta("decrypted", "false")
                    self._meta("decrypt-reason", "the TLS handshake is incomplete")
                self._fail(f"the capture ends inside the TLS handshake ({seen})")
        if self.line.text:
            self._out.append(Notice(ts, "typed-unfinished", self._redact(self.line.take())))
        self._out += self.clipfiles.close(ts)
        self._emit_auth(final=True)
        self._video_verdict()
        if self._replay is not None:
            self._replay.close(self._ms(ts))
        return self._flush()

    def _after_gap(self, direction: str, nbytes: int) -> None:
        """TLS will find its next record; everything above it starts clean at a PDU boundary."""
        self._pdu[direction].clear()
        self._raw[direction].clear()
        for key in [k for k in self._vc if k[0] == direction]:
            del self._vc[key]
        self._realign[direction] = True
        self._mppc_broken[direction] = True      # the compressor's history is gone until it flushes
        self.clipfiles.gap()
        self._gap_bytes[direction] += nbytes
        if direction == "c2s":
            self._line_gap = True

    def replay(self) -> bytes | None:
        """The PyRDP replay of this session (opens in pyrdp-player), or None if not recorded."""
        if self._replay is None or not self._replay.content:
            return None
        return self._replay.getvalue()

    # -------------------------------------------------------------------- helpers ----
    def _flush(self) -> list[Event]:
        out, self._out = self._out, []
        return out

    def _fail(self, reason: str) -> None:
        self.failed = reason
        self.state = "failed"
        self._out.append(DecodeError(self._ts, reason))

    def _undecryptable(self, reason: str) -> None:
        """No secret for this session. Given no secrets at all, that is the expected state of an
        encrypted session (metadata only, decrypt later with ``keys add``), not an error; given
        secrets of which none fits, the analyst must hear it: a DecodeError."""
        if self._secrets_given:
            self._fail(reason)
        else:
            self.failed = reason
            self.state = "failed"

    def _meta(self, key: str, value: object) -> None:
        self._said.add(key)
        self._out.append(Metadata(self._ts, key, str(value)))

    def _warn(self, kind: str, text: str) -> None:
        if kind not in self._warned:          # one notice per kind: a broken channel is not a flood
            self._warned.add(kind)
            self._out.append(Notice(self._ts, "decode-warning", text, severity="low"))

    def _ms(self, ts: float | None = None) -> int:
        return int(round((self._ts if ts is None else ts) * 1000))

    def _redact(self, text: str) -> str:
        pw = self.info.password if self.info else ""
        if pw and pw in text:
            text = text.replace(pw, "********")
        return text

    # ------------------------------------------------------------------- X.224 ----
    def _feed_x224(self, direction: str, data: bytes) -> None:
        buf = self._raw[direction]
        if not buf and self.request is None and len(data) >= 3 and data[0] in (0x14, 0x15, 0x16, 0x17) \
                and data[1] == 0x03:
            # TLS records before any X.224 request: the capture began mid-connection
            self._meta("decrypted", "false")
            self._meta("decrypt-reason", "the capture began after the TLS handshake")
            self._undecryptable("the capture began after the X.224 negotiation and the TLS handshake: "
                                "nothing of this connection can be decrypted")
            return
        buf += data
        if len(buf) > MAX_PDU_BUFFER:
            raise _Fatal("more than 64 KiB before the X.224 negotiation finished: not RDP")
        if direction == "c2s" and self.request is None:
            n = x224.pdu_length(buf)
            if n is None or len(buf) < n:
                return
            self.request = x224.parse_connection_request(bytes(buf[:n]))
            del buf[:n]
            r = self.request
            if r.cookie:
                self._meta("cookie", r.cookie)
            self._meta("requested_protocols", x224.protocols_text(r.requested_protocols))
        if direction == "s2c" and self.confirm is None:
            n = x224.pdu_length(buf)
            if n is None or len(buf) < n:
                return
            self.confirm = x224.parse_connection_confirm(bytes(buf[:n]))
            del buf[:n]
            c = self.confirm
            if c.failure:
                self._meta("security", f"refused: {c.failure}")
                self.state = "refused"
                return
            sel = c.selected_protocol
            self._meta("selected_protocol", x224.protocols_text(sel))
            if sel != x224.PROTOCOL_RDP:
                self.tls = TLSDecryptor(self.keys, self.server_keys)
                self._nla = {"c2s": bool(sel & 0xA), "s2c": bool(sel & 0xA)}
                self._eua_pending = bool(sel & x224.PROTOCOL_HYBRID_EX)
            self.state = "rdp"
        if self.state == "rdp":
            # bytes that followed the X.224 PDUs in the same segments belong to the next layer
            for d in ("c2s", "s2c"):
                rest = bytes(self._raw[d])
                self._raw[d].clear()
                if rest:
                    self._feed_transport(d, rest)
        elif self.state == "refused":
            self._raw["c2s"].clear()
            self._raw["s2c"].clear()

    # --------------------------------------------------------------- transport ----
    def _feed_transport(self, direction: str, data: bytes) -> None:
        if self.state == "refused":
            return
        if self.tls is None:
            self._feed_pdus(direction, data)
            return
        plain = self.tls.feed(direction, data)
        if not self._tls_meta_done and self.tls.suite_id is not None:
            self._tls_meta_done = True
            suite = self.tls.suite
            self._meta("tls_version", self.tls.version)
            self._meta("tls_cipher", suite.name if suite else f"{self.tls.suite_id:#06x}")
        if self.tls.decrypting:
            if self.tls.resyncs != self._resyncs_seen:
                self._resyncs_seen = self.tls.resyncs
                self._out.append(Notice(self._ts, "resync",
                                        f"decryption resumed after bytes missing from the capture ({direction}, "
                                        f"{self.tls.skipped_records[direction]} TLS records lost so far)",
                                        ("capture-gap",), "low"))
            for chunk in plain:
                self._plain_seen = True
                if self._realign[direction]:
                    if not _starts_a_pdu(chunk):
                        continue                   # the rest of a PDU cut by the gap
                    self._realign[direction] = False
                self._feed_plain(direction, chunk)
        elif self.tls.version is not None and (self.tls.no_secret_reason and
                                               (self.tls._encrypted[direction] or self.tls.version == "TLS 1.3")):
            self._undecrypted[direction] += len(data)
            if self.tls.no_secret_reason and "undecrypted" not in self._warned:
                self._warned.add("undecrypted")
                self._meta("decrypted", "false")
                self._meta("decrypt-reason", self.tls.no_secret_reason)
                self._undecryptable(f"TLS traffic not decrypted: {self.tls.no_secret_reason}")

    def _feed_plain(self, direction: str, data: bytes) -> None:
        if not self._nla[direction] and not (direction == "s2c" and self._eua_pending and not self._nla["c2s"]):
            self._feed_pdus(direction, data)
            return
        buf = self._raw[direction]
        buf += data
        while buf:
            if self._nla[direction]:
                if buf[0] != 0x30:
                    self._nla[direction] = False     # CredSSP is over: RDP PDUs follow
                    continue
                n = credssp.der_length(buf)
                if n is None or len(buf) < n:
                    return
                msg = bytes(buf[:n])
                del buf[:n]
                auth = credssp.find_ntlm_authenticate(msg) if direction == "c2s" else None
                if auth is not None:
                    self._meta("nla", "CredSSP/NTLM")
                    if auth.domain:
                        self._meta("domain", auth.domain)
                    self.user = auth.user or self.user
                    # the verdict comes later: RDP PDUs after CredSSP mean the server accepted it
                    self._ntlm = (self._ts, auth)
                continue
            if direction == "s2c" and self._eua_pending:
                if len(buf) < 4:
                    return
                result = struct.unpack_from("<I", buf, 0)[0]
                del buf[:4]
                self._eua_pending = False
                self._meta("early_user_authorization", "success" if result == 0 else f"denied ({result:#x})")
                continue
            rest = bytes(buf)
            buf.clear()
            self._feed_pdus(direction, rest)
            return

    # ------------------------------------------------------------ RDP framing ----
    def _feed_pdus(self, direction: str, data: bytes) -> None:
        buf = self._pdu[direction]
        buf += data
        while True:
            n = x224.pdu_length(buf)
            if n is None or len(buf) < n:
                if len(buf) > MAX_PDU_BUFFER:
                    raise _Fatal("an RDP PDU is longer than 64 KiB")
                return
            pdu = bytes(buf[:n])
            del buf[:n]
            if self._ntlm is not None and direction == "c2s":
                self._ntlm_verdict("success")        # the client went on to RDP: NLA succeeded
            if pdu[0] == 0x03:
                self._tpkt(direction, pdu)
            else:
                self._fastpath(direction, pdu)
            if self.failed:
                return

    def _tpkt(self, direction: str, pdu: bytes) -> None:
        code, payload = x224.x224_payload(pdu)
        if code != x224.X224_DT:
            if code == x224.X224_DR:
                self._meta("disconnect", "X.224 disconnect request")
            return
        kind = mcs.connect_pdu_type(payload)
        if kind == mcs.MCS_CONNECT_INITIAL and direction == "c2s":
            self._client_data(payload)
            return
        if kind == mcs.MCS_CONNECT_RESPONSE and direction == "s2c":
            self._server_data(payload)
            return
        dkind, channel, data = mcs.domain_pdu(payload)
        if dkind in (mcs.DOMAIN_SEND_DATA_REQUEST, mcs.DOMAIN_SEND_DATA_INDICATION):
            self._channel_data(direction, channel, data)
        elif dkind == mcs.DOMAIN_DISCONNECT_ULTIMATUM:
            self._meta("disconnect", "MCS disconnect provider ultimatum")

    def _client_data(self, payload: bytes) -> None:
        cd = self.client = mcs.parse_client_data(payload)
        layout = layout_for(cd.keyboard_layout)
        self.keyboard = Keyboard(layout)
        self._meta("client_name", cd.client_name)
        self._meta("client_build", cd.client_build)
        if layout.lcid == cd.keyboard_layout & 0xFFFF:
            how = layout.name
        elif layout.lcid != 0x409:
            how = f"read as {layout.name}"
        else:
            how = "unknown, read as US"
        self._meta("keyboard_layout", f"{cd.keyboard_layout:#06x} ({how})")
        self._meta("resolution", f"{cd.width}x{cd.height}")
        self.resolution = (cd.width, cd.height)
        self._meta("color_depth", cd.high_color_depth or cd.color_depth)
        self._meta("client_version", f"{cd.version:#x}")
        if cd.dig_product_id:
            self._meta("client_dig_product_id", cd.dig_product_id)
        self._meta("channels", ",".join(cd.channels))
        if cd.early_capability_flags & mcs.RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL:
            self._meta("client_gfx_support", "yes")
        if self._replay is not None:
            i = payload.find(b"Duca")
            n, j = (payload[i + 4] & 0x3F) << 8 | payload[i + 5], i + 6
            if not payload[i + 4] & 0x80:
                n, j = payload[i + 4], i + 5
            self._replay.client_data(self._ms(), payload[j:j + n])

    def _server_data(self, payload: bytes) -> None:
        sd = self.server = mcs.parse_server_data(payload)
        names = self.client.channels if self.client else []
        self.channels = {sd.io_channel: "I/O"}
        self.channels.update({cid: name for cid, name in zip(sd.channel_ids, names)})
        method = mcs.ENCRYPTION_METHODS.get(sd.encryption_method, hex(sd.encryption_method))
        self._meta("encryption_method", method)
        self._meta("encryption_level", mcs.ENCRYPTION_LEVELS.get(sd.encryption_level, sd.encryption_level))
        if self.tls is None:
            self._meta("security", f"Standard RDP Security ({method})" if sd.encryption_method else "none")
            if len(sd.certificate) >= 8:
                raw = struct.unpack_from("<I", sd.certificate, 0)[0]
                version = raw & 0x7FFFFFFF
                self._meta("cert_type", {1: "proprietary", 2: "X.509"}.get(version, str(version)))
                self._meta("cert_permanent", "false" if raw & 0x80000000 else "true")   # Zeek rdp.log
                count = struct.unpack_from("<I", sd.certificate, 4)[0] if version == 2 else 1
                self._meta("cert_count", count)
        else:
            self._meta("security", f"{x224.protocols_text(self.confirm.selected_protocol)} "
                                   f"({self.tls.version}, {self.tls.suite.name if self.tls.suite else '?'})")
            self._meta("decrypted", "true")

    # --------------------------------------------------------- security layer ----
    def _channel_data(self, direction: str, channel: int, data: bytes) -> None:
        sd = self.server
        name = self.channels.get(channel, f"channel-{channel}")
        flags = 0
        encrypted_mode = sd is not None and sd.encryption_method != 0 and self.tls is None
        if encrypted_mode:
            low_s2c = sd.encryption_level == 1 and direction == "s2c" and self.licensing_done
            if not low_s2c:
                if len(data) < 4:
                    raise _Fatal("a security header is truncated")
                flags = struct.unpack_from("<H", data, 0)[0]
                if flags & SEC_EXCHANGE_PKT and direction == "c2s":
                    self._security_exchange(data[4:])
                    return
                if flags & SEC_ENCRYPT:
                    if self.stdsec is None:
                        raise _Fatal("encrypted data before the Security Exchange: cannot decrypt this session")
                    data = self.stdsec.decrypt(direction, data[4:12], data[12:], bool(flags & SEC_SECURE_CHECKSUM))
                else:
                    data = data[4:]
        elif name == "I/O" and not self.licensing_done:
            if len(data) < 4:
                raise _Fatal("a security header is truncated")
            flags = struct.unpack_from("<H", data, 0)[0]
            data = data[4:]
        if name == "I/O":
            if flags & SEC_INFO_PKT:
                self._client_info(data)
            elif flags & SEC_LICENSE_PKT:
                self._licensing(direction, data)
            else:
                self._slowpath(direction, data)
        else:
            self._virtual_channel(direction, channel, name, data)

    def _security_exchange(self, body: bytes) -> None:
        if not self.server_keys:
            reason = "Standard RDP Security and no server key given (--rdp-server-key)"
            self._meta("decrypted", "false")
            self._meta("decrypt-reason", reason)
            self._undecryptable(f"not decrypted: {reason}")
            return
        n = struct.unpack_from("<I", body, 0)[0] if len(body) >= 4 else 0
        enc = body[4:4 + n]
        key = self._stdsec_key()
        cr = stdsec.decrypt_client_random(enc, key)
        self.stdsec = stdsec.StdSecSession(cr, self.server.server_random, self.server.encryption_method)
        self._meta("decrypted", "true")

    def _stdsec_key(self) -> rsa.RSAPrivateKey:
        modulus = mcs.server_public_modulus(self.server.certificate) if self.server else None
        for k in self.server_keys:
            if modulus is None or k.public_key().public_numbers().n == modulus:
                return k
        raise stdsec.StdSecError("none of the given RDP server keys matches the server's Standard RDP Security certificate")

    def _client_info(self, data: bytes) -> None:
        try:
            info = client_info(data)
        except Exception as e:
            raise _Fatal(f"the Client Info PDU could not be parsed ({type(e).__name__})") from None
        self.info = info
        self._info_ts = self._ts
        self.user = info.user or self.user
        if info.user:
            self._meta("user", info.user)
        if info.domain:
            self._meta("domain", info.domain)
        if info.client_address:
            self._meta("client_address", info.client_address)
        if info.alternate_shell:
            self._meta("alternate_shell", info.alternate_shell)
        self._meta("autologon", "yes (password in Client Info, not kept)" if info.flags & 0x8 else "no")
        if info.flags & 0x80:                     # INFO_COMPRESSION
            kind = (info.flags >> 9) & 0xF
            self._meta("client_compression", {0: "MPPC 8K (RDP 4.0)", 1: "MPPC 64K (RDP 5.0)", 2: "NCRUSH (RDP 6.0)",
                                              3: "XCRUSH (RDP 6.1)"}.get(kind, f"type {kind}"))
        if self._replay is not None:
            self._replay.client_info(self._ms(), info.redacted_pdu)

    def _licensing(self, direction: str, data: bytes) -> None:
        if direction != "s2c" or not data:
            return
        msg_type = data[0]
        if msg_type == 0xFF and len(data) >= 8:          # ERROR_ALERT
            code = struct.unpack_from("<I", data, 4)[0]
            if code == 0x07:                              # STATUS_VALID_CLIENT
                self.licensing_done = True
        elif msg_type in (0x03, 0x04):                    # NEW_LICENSE / UPGRADE_LICENSE
            self.licensing_done = True

    # --------------------------------------------------------------- slow path ----
    def _slowpath(self, direction: str, data: bytes) -> None:
        i = 0
        while i + 6 <= len(data):
            total = struct.unpack_from("<H", data, i)[0]
            if total == 0x8000:                           # flow control PDU
                i += 8
                continue
            if total < 6 or i + total > len(data):
                self._warn("slowpath", "a slow-path PDU has an impossible length; skipped")
                return
            pdu = data[i:i + total]
            i += total
            ptype = struct.unpack_from("<H", pdu, 2)[0] & 0xF
            if ptype == PDUTYPE_DEMAND_ACTIVE:
                self.licensing_done = True
            elif ptype == PDUTYPE_CONFIRM_ACTIVE and direction == "c2s":
                self.licensing_done = True
                self._confirm_active(pdu)
            elif ptype == PDUTYPE_DATA and len(pdu) >= 18:
                self._data_pdu(direction, pdu)

    def _confirm_active(self, pdu: bytes) -> None:
        try:
            res = confirm_active_resolution(slowpath(pdu))
        except Exception:
            self._warn("confirm-active", "the Confirm Active PDU could not be parsed; resolution from client data")
            res = None
        if self._replay is not None:
            self._replay.slow_path(self._ms(), pdu)
        if res and res != self.resolution:
            self.resolution = res
            self._meta("resolution", f"{res[0]}x{res[1]}")

    def _data_pdu(self, direction: str, pdu: bytes) -> None:
        ptype2, ctype = pdu[14], pdu[15]
        if ctype:                                         # bulk compression flags (MPPC)
            if ctype & mppc.PACKET_COMPRESSED:
                self.graphics["slowpath_compressed"] += 1
            data = self._decompress(direction, pdu[18:], ctype)
            if data is None:
                return
            # the same PDU, uncompressed: totalLength, uncompressedLength, compressedType/Length
            pdu = (struct.pack("<H", 18 + len(data)) + pdu[2:12] + struct.pack("<H", len(data) + 18)
                   + bytes([ptype2, 0]) + b"\0\0" + data)
            ctype = 0
        if ptype2 == PDUTYPE2_INPUT and direction == "c2s":
            try:
                evs = InputReader.slowpath_events(slowpath(pdu))
            except Exception:
                self._warn("slow-input", "a slow-path input PDU could not be parsed; skipped")
                return
            if self._replay is not None:
                self._replay.slow_path(self._ms(), pdu)
            self._input(evs)
        elif ptype2 == PDUTYPE2_SAVE_SESSION_INFO and direction == "s2c":
            info_type = struct.unpack_from("<I", pdu, 18)[0] if len(pdu) >= 22 else -1
            if info_type in (0, 1, 2):
                self._logon_seen = True
                self._meta("logon", LOGON_TYPES.get(info_type, str(info_type)))
                self._emit_auth()
        elif ptype2 == PDUTYPE2_SET_ERROR_INFO and direction == "s2c" and len(pdu) >= 22:
            code = struct.unpack_from("<I", pdu, 18)[0]
            if code:
                self._meta("error_info", f"{code:#x} {ERRINFO.get(code, '')}".strip())
        elif direction == "s2c" and ptype2 == 0x02:       # slow-path graphics update
            self.graphics["updates"] += 1
            if self._replay is not None:
                self._replay.slow_path(self._ms(), pdu)

    def _ntlm_verdict(self, result: str, detail: str = "") -> None:
        ts, auth = self._ntlm
        self._ntlm = None
        self._auth_emitted = True               # with NLA, the Client Info is not another attempt
        text = f"domain={auth.domain}" + (f"; {detail}" if detail else "")
        self._out.append(AuthAttempt(ts, auth.user or None, "ntlm", result, detail=text))

    def _emit_auth(self, final: bool = False) -> None:
        if self._ntlm is not None and final:
            self._ntlm_verdict("failure", "the connection ended during CredSSP")
            return
        if self._auth_emitted or (self.info is None and not self.user):
            return
        if not (self._logon_seen or final):
            return
        self._auth_emitted = True
        result = "success" if self._logon_seen else "unknown"
        method = "client-info" + (" (autologon)" if self.info and self.info.flags & 0x8 else "")
        # the attempt happened when the credentials were sent; the result may come much later
        self._out.append(AuthAttempt(self._info_ts or self._ts, self.user or None, method, result))

    # --------------------------------------------------------------- fast path ----
    def _fastpath(self, direction: str, pdu: bytes) -> None:
        header = pdu[0]
        hl = 3 if pdu[1] & 0x80 else 2
        body = pdu[hl:]
        sec = header >> 6
        if sec & 0x2:                                     # encrypted (Standard RDP Security)
            if self.stdsec is None:
                raise _Fatal("an encrypted fast-path PDU before the Security Exchange")
            body = self.stdsec.decrypt(direction, body[:8], body[8:], bool(sec & 0x1))
        if direction == "c2s":
            plain = bytes([header & 0x3F]) + _fp_length(len(body)) + body
            try:
                evs = self.inputs.fastpath(plain)
            except Exception:
                self._warn("fast-input", "a fast-path input PDU could not be parsed; skipped")
                return
            if self._replay is not None:
                self._replay.fast_path_input(self._ms(), plain)
            self._input(evs)
        else:
            for kind, update in self._fastpath_output(body):
                if self._replay is None:
                    continue
                if kind == "fast":
                    self._replay.fast_path_output(self._ms(), bytes([header & 0x3F]) + _fp_length(len(update)) + update)
                else:
                    self._replay.slow_path(self._ms(), update)

    def _fastpath_output(self, body: bytes) -> list[tuple[str, bytes]]:
        """The updates of one server fast-path PDU, bulk-decompressed, reassembled when
        fragmented, and re-framed without compression so PyRDP can render them: ("fast", update)
        for a fast-path update, ("slow", PDU) for a bitmap update too big for fast-path framing
        (a slow-path Update PDU carries the same TS_UPDATE_BITMAP_DATA). Others are left out."""
        out: list[tuple[str, bytes]] = []
        i = 0
        while i < len(body):
            uh = body[i]
            code, frag, comp = uh & 0xF, (uh >> 4) & 0x3, (uh >> 6) & 0x3
            i += 1
            cflags = 0
            if comp == 2:
                cflags = body[i] if i < len(body) else 0
                i += 1
            if i + 2 > len(body):
                break
            size = struct.unpack_from("<H", body, i)[0]
            data = body[i + 2:i + 2 + size]
            i += 2 + size
            self.graphics["updates"] += 1
            if code == FASTPATH_UPDATETYPE_SURFCMDS:
                self.graphics["surface"] += 1
            if cflags:
                if cflags & mppc.PACKET_COMPRESSED:
                    self.graphics["compressed"] += 1
                data = self._decompress("s2c", data, cflags)
                if data is None:
                    continue
            if frag:                              # 2 first, 3 next, 1 last
                if frag == 2:
                    self._frag = bytearray(data)
                elif self._frag is not None and len(self._frag) + len(data) <= 0xFFFF - 18:
                    self._frag += data
                else:
                    self._frag = None             # a piece went missing or it is too big
                if frag != 1 or self._frag is None:
                    continue
                data, self._frag = bytes(self._frag), None
            if len(data) + 6 <= 0x7FFF:
                out.append(("fast", bytes([code]) + struct.pack("<H", len(data)) + data))
            elif code == FASTPATH_UPDATETYPE_BITMAP and len(data) + 18 <= 0xFFFF:
                n = 18 + len(data)
                out.append(("slow", struct.pack("<HHHIBBH", n, 0x17, 1002, 0x103EA, 0, 1, n)
                            + bytes([0x02, 0]) + b"\0\0" + data))
            else:
                self.graphics["too_large"] += 1
        return out

    def _decompress(self, direction: str, data: bytes, flags: int) -> bytes | None:
        """Bulk decompression in this direction's I/O context; None once it has failed."""
        if self._mppc_failed:
            return None
        if self._mppc_broken[direction]:
            if not flags & mppc.PACKET_FLUSHED:
                self.graphics["lost_after_gap"] += 1
                return None
            self._mppc_broken[direction] = False
        try:
            out = self._mppc[direction].decompress(data, flags)
        except mppc.MPPCError as e:
            self._mppc_failed = str(e)
            self._warn("mppc", f"bulk decompression stopped: {e}")
            return None
        if flags & mppc.PACKET_COMPRESSED:
            self.graphics["decompressed"] += 1
        return out

    # ------------------------------------------------------------------- input ----
    def _input(self, events: list[object]) -> None:
        for ev in events:
            if isinstance(ev, Key):
                r = self.keyboard.key(ev.scancode, ev.extended, ev.released)
                if isinstance(r, str):
                    if len(self.line.buf) < MAX_LINE:
                        self.line.insert(r)
                elif isinstance(r, tuple):
                    self._line_action(r[0])
            elif isinstance(ev, Unicode):
                if not ev.released:
                    if ev.char in "\r\n":
                        self._line_action("enter")
                    elif ev.char == "\b":
                        self._line_action("backspace")
                    elif len(self.line.buf) < MAX_LINE:
                        self.line.insert(ev.char)
            elif isinstance(ev, Click):
                self._out.append(Notice(self._ts, "click", f"{ev.button} click at ({ev.x}, {ev.y})"))
            elif isinstance(ev, Sync):
                self.keyboard.sync(ev.caps, ev.numlock)

    def _line_action(self, name: str) -> None:
        end = self.line.action(name)
        if end == "enter":
            text = self.line.take()
            if text.strip():
                self._out.append(CommandEntered(self._ts, self.commands, self._redact(text), source="typed"))
                if self._line_gap:
                    self._out.append(Notice(self._ts, "typed-gap", f"command {self.commands} may miss keystrokes "
                                            "lost in a capture gap", ("capture-gap",), "low"))
                self.commands += 1
            self._line_gap = False
        elif end == "interrupt":
            text = self.line.take()
            if text.strip():
                self._out.append(Notice(self._ts, "typed-cancelled", self._redact(text)))

    # -------------------------------------------------------- virtual channels ----
    def _virtual_channel(self, direction: str, channel: int, name: str, data: bytes) -> None:
        if len(data) < 8:
            return
        if name not in ("cliprdr", "rdpdr", "drdynvc"):
            return                              # sound, RAIL, ...: nothing we read, nothing buffered
        total, flags = struct.unpack_from("<II", data, 0)
        chunk = data[8:]
        if flags & CHANNEL_PACKET_COMPRESSED:
            self._warn(f"vc-compressed-{name}", f"compressed {name} channel data was skipped (no bulk decompression)")
            return
        key = (direction, channel)
        if flags & CHANNEL_FLAG_FIRST:
            self._vc[key] = bytearray()
        buf = self._vc.get(key)
        if buf is None:
            return
        if len(buf) + len(chunk) > min(total, MAX_CHANNEL_MESSAGE):
            self._vc.pop(key, None)
            self._warn(f"vc-size-{name}", f"a {name} channel message is larger than announced or our bound; skipped")
            return
        buf += chunk
        if not flags & CHANNEL_FLAG_LAST:
            return
        msg = bytes(self._vc.pop(key))
        if name == "cliprdr":
            self._cliprdr(direction, msg)
        elif name == "rdpdr":
            self._rdpdr(direction, msg)
        elif name == "drdynvc":
            if b"Microsoft::Windows::RDS::Graphics" in msg:
                self.gfx_channel = True

    def _cliprdr(self, direction: str, msg: bytes) -> None:
        if len(msg) < 8:
            return
        msg_type, msg_flags, n = struct.unpack_from("<HHI", msg, 0)
        if msg_type in (CB_FILECONTENTS_REQUEST, CB_FILECONTENTS_RESPONSE, CB_LOCK_CLIPDATA, CB_UNLOCK_CLIPDATA):
            body = msg[8:8 + n]
            try:
                if msg_type == CB_FILECONTENTS_REQUEST:
                    self.clipfiles.request(direction, body)
                elif msg_type == CB_FILECONTENTS_RESPONSE:
                    self._out += self.clipfiles.response(direction, msg_flags, body, self._ts)
                elif msg_type == CB_LOCK_CLIPDATA:
                    self.clipfiles.lock(direction, body)
                else:
                    self._out += self.clipfiles.unlock(direction, body, self._ts)
            except ClipboardFileError as e:
                self._warn("cliprdr-files", f"clipboard file transfer: {e}; skipped")
            return
        try:
            r = self.clipboard.message(direction, msg)
        except Exception:
            self._warn("cliprdr", "a clipboard message could not be parsed; skipped")
            return
        if r is None:
            return
        kind, value = r
        if kind == "formats":
            self._out += self.clipfiles.format_list(direction, self._ts)
        elif kind == "files":
            try:
                self._out += self.clipfiles.file_list(direction, value, self._ts)
            except ClipboardFileError as e:
                self._warn("cliprdr-files", f"clipboard file transfer: {e}; skipped")
        elif kind == "text":
            text = self._redact(value)
            self._out.append(ClipboardCopy(self._ts, direction, text))
            if direction == "c2s":
                self.line.fill_paste(text)
            if self._replay is not None:
                self._replay.clipboard(self._ms(), msg)
        elif kind == "binary":
            fmt, raw = value
            import hashlib
            self._out.append(FileTransfer(self._ts, "upload" if direction == "c2s" else "download",
                                          f"clipboard:{fmt}", len(raw), hashlib.sha256(raw).hexdigest(),
                                          "clipboard", content=None))

    def _rdpdr(self, direction: str, msg: bytes) -> None:
        try:
            results = self.drives.message(direction, msg)
        except Exception:
            self._warn("rdpdr", "a device redirection message could not be parsed; skipped")
            return
        for kind, value in results:
            if kind == "devices":
                self._meta("redirected_devices", ",".join(value) or "none")
            elif kind == "file":
                import hashlib
                self._out.append(FileTransfer(self._ts, value.direction, value.path, len(value.data),
                                              hashlib.sha256(value.data).hexdigest(), "rdpdr",
                                              content=value.data if value.complete else None,
                                              complete=value.complete))
                how = ("read by the server from the client's drive" if value.direction == "upload"
                       else "written by the server to the client's drive")
                self._out.append(Notice(self._ts, "drive-file-copy", f"{value.path} ({len(value.data)} bytes) {how}"
                                        + ("" if value.complete else " (incomplete)"), ("file-copy",), "medium"))

    # ------------------------------------------------------------------- video ----
    def _video_verdict(self) -> None:
        g = self.graphics
        if self.failed and not g["updates"]:
            return
        if self.gfx_channel:
            self._meta("video", "not reconstructed: the server used the RDPGFX graphics pipeline")
        elif self._mppc_failed:
            self._meta("video", f"not reconstructed: bulk decompression failed ({self._mppc_failed})")
        elif g["surface"]:
            self._meta("video", f"not reconstructed: surface commands (RemoteFX/NSCodec) in {g['surface']} updates")
        elif self._replay is not None and self._replay.truncated:
            self._meta("video", "partial: the replay reached its size bound")
        elif g["updates"]:
            dropped = f", {g['too_large']} oversized updates left out" if g["too_large"] else ""
            if g["lost_after_gap"]:
                dropped += f", {g['lost_after_gap']} updates lost after a capture gap"
            packed = f", {g['decompressed']} bulk-decompressed PDUs" if g["decompressed"] else ""
            self._meta("video", f"replay{packed}{dropped}")
