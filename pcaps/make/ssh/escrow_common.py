"""Key-escrow hooks for asyncssh (test-corpus tooling).

install_escrow() monkeypatches asyncssh so that every completed key exchange
(initial kex and any re-key) of every connection made by this process is
"deposited": one JSON line in the escrow file plus Wireshark key-log lines.

Recorded per key exchange:
  * both KEXINIT cookies, version strings, negotiated kex / host-key / cipher /
    MAC / compression algorithms per direction, strict-kex flag
  * this endpoint's ephemeral private key (DH x/y, X25519 scalar, ECDH d,
    sntrup761 secret key) and both public values (e/f, Q_C/Q_S)
  * the shared secret K (raw value and exact hash encoding), exchange hash H,
    session id
  * the six derived values (IV/key/integrity key, both directions) computed
    with the negotiated sizes, i.e. exactly what the transport installs.

Wireshark formats written (see ../RECIPES.md for what each Wireshark version reads):
  <prefix>.keylog         "<cookie> <private-key-hex>"  (2 fields; the only
                          format Wireshark 4.0.x parses; newer versions read it
                          as PRIVATE_KEY).  Written only for curve25519* and
                          diffie-hellman-group* kex, the only ones whose private
                          key Wireshark can use.  The cookie is THIS endpoint's
                          KEXINIT cookie (server cookie on the server side,
                          client cookie on the client side).
  <prefix>.ss.keylog      "<cookie> SHARED_SECRET <K-hex>" (3 fields; Wireshark
                          >= 4.2-ish / master only).  K is the unsigned
                          big-endian value without mpint length/sign byte for
                          classic kex, and the 32/64-byte hash string contents
                          for PQ hybrids.
"""

import binascii
import json
import os
import time

import asyncssh
from asyncssh import connection as _connection
from asyncssh import kex as _kex
from asyncssh.encryption import get_encryption_params
from asyncssh.packet import SSHPacket

_STATE = {
    'escrow_path': None,
    'keylog_path': None,
    'ss_keylog_path': None,
    'label': '',
    'setup': '',
}


def _hex(b):
    if b is None:
        return None
    if isinstance(b, int):
        return _int_hex(b)
    return binascii.hexlify(bytes(b)).decode()


def _int_hex(n):
    if n == 0:
        return '00'
    h = '%x' % n
    if len(h) % 2:
        h = '0' + h
    return h


def _parse_kexinit(payload):
    """payload: full KEXINIT message incl. type byte -> dict"""
    pkt = SSHPacket(payload[1:])
    cookie = pkt.get_bytes(16)
    names = ['kex', 'hostkey', 'enc_cs', 'enc_sc', 'mac_cs', 'mac_sc',
             'cmp_cs', 'cmp_sc', 'lang_cs', 'lang_sc']
    d = {'cookie': _hex(cookie)}
    for n in names:
        d[n] = [x.decode() for x in pkt.get_namelist()]
    d['first_kex_follows'] = pkt.get_boolean()
    return d


def _decode_k(k):
    """k is the exact hash input: mpint or string. Return (kind, raw bytes)."""
    pkt = SSHPacket(k)
    n = pkt.get_uint32()
    body = k[4:4 + n]
    # mpint: positive, minimal; a leading 0x00 only if the next byte >= 0x80
    return body


def _private_material(kexobj, is_client):
    """Return dict with this endpoint's ephemeral private key material."""
    out = {}
    dh = getattr(kexobj, '_dh', None)
    if dh is not None:
        nums = dh._priv_key.private_numbers()
        out['type'] = 'dh'
        out['dh_x'] = _int_hex(nums.x)
        out['dh_p_bits'] = dh._priv_key.key_size
    priv = getattr(kexobj, '_priv', None)
    if priv is not None:
        pk = priv._priv_key
        clsname = type(priv).__name__
        if clsname == 'Curve25519DH':
            from cryptography.hazmat.primitives import serialization
            raw = pk.private_bytes(serialization.Encoding.Raw,
                                   serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
            out['type'] = 'x25519'
            out['x25519_private'] = _hex(raw)
        elif clsname == 'ECDH':
            d = pk.private_numbers().private_value
            size = (pk.curve.key_size + 7) // 8
            out['type'] = 'ecdh-' + pk.curve.name
            out['ecdh_d'] = _hex(d.to_bytes(size, 'big'))
        else:
            out['type'] = clsname
    pq = getattr(kexobj, '_pq', None)
    if pq is not None:
        out['pq_alg'] = getattr(pq, 'alg_name', '')
        if is_client:
            out['pq_secret_key'] = _hex(getattr(pq, 'sk', b''))
        out['pq_shared_secret'] = _hex(getattr(pq, 'last_secret', b''))
        out['pq_ciphertext'] = _hex(getattr(pq, 'last_ciphertext', b''))
    return out


def _public_values(kexobj):
    out = {}
    if hasattr(kexobj, '_client_pub') and getattr(kexobj, '_client_pub', None):
        out['Q_C'] = _hex(kexobj._client_pub)
    if hasattr(kexobj, '_server_pub') and getattr(kexobj, '_server_pub', None):
        out['Q_S'] = _hex(kexobj._server_pub)
    if getattr(kexobj, '_e', 0):
        out['e'] = _int_hex(kexobj._e)
    if getattr(kexobj, '_f', 0):
        out['f'] = _int_hex(kexobj._f)
    return out


def _host_key_alg(conn):
    """Negotiated server host key (signature) algorithm, if known."""
    hk = getattr(conn, '_server_host_key', None)
    alg = getattr(hk, 'algorithm', None) if hk is not None else None
    if isinstance(alg, bytes):
        return alg.decode()
    return alg


def _append(path, line):
    if not path:
        return
    with open(path, 'a') as fh:
        fh.write(line + '\n')
        fh.flush()
        os.fsync(fh.fileno())


_orig_send_newkeys = _connection.SSHConnection.send_newkeys


def _escrow_send_newkeys(self, k, h):
    try:
        _deposit(self, k, h)
    except Exception as exc:  # never break the connection because of escrow
        _append(_STATE['escrow_path'],
                json.dumps({'label': _STATE['label'], 'escrow_error': repr(exc)}))
    return _orig_send_newkeys(self, k, h)


def _deposit(conn, k, h):
    kexobj = conn._kex
    is_client = conn.is_client()
    session_id = conn._session_id or h     # first kex: H becomes session id
    ci = _parse_kexinit(conn._client_kexinit)
    si = _parse_kexinit(conn._server_kexinit)
    kex_alg = kexobj.algorithm.decode()

    dirs = {}
    for d, enc, mac, cmp_ in (('c2s', conn._enc_alg_cs, conn._mac_alg_cs, conn._cmp_alg_cs),
                              ('s2c', conn._enc_alg_sc, conn._mac_alg_sc, conn._cmp_alg_sc)):
        keysize, ivsize, blocksize, mackeysize, machashsize, etm = \
            get_encryption_params(enc, mac)
        letters = ('A', 'C', 'E') if d == 'c2s' else ('B', 'D', 'F')
        iv = kexobj.compute_key(k, h, letters[0].encode(), session_id, ivsize)
        key = kexobj.compute_key(k, h, letters[1].encode(), session_id, keysize)
        mkey = kexobj.compute_key(k, h, letters[2].encode(), session_id, mackeysize)
        dirs[d] = {
            'cipher': enc.decode(),
            'mac': (mac.decode() if mac else '<implicit>'),
            'compression': cmp_.decode(),
            'etm': bool(etm),
            'iv': _hex(iv), 'enc_key': _hex(key), 'mac_key': _hex(mkey),
            'iv_len': ivsize, 'enc_key_len': keysize, 'mac_key_len': mackeysize,
            'mac_len': machashsize, 'block_size': blocksize,
        }

    k_body = _decode_k(k)
    pq_kex = kex_alg.startswith(('sntrup', 'mlkem'))
    if pq_kex:
        k_value = k_body          # K is an SSH string (hash output)
        k_encoding = 'string'
    else:
        k_value = k_body.lstrip(b'\x00') or b'\x00'   # mpint magnitude
        k_encoding = 'mpint'

    sock = conn._transport.get_extra_info('sockname') if conn._transport else None
    peer = conn._transport.get_extra_info('peername') if conn._transport else None
    own_cookie = ci['cookie'] if is_client else si['cookie']
    priv = _private_material(kexobj, is_client)

    rec = {
        'record': 'kex',
        'time': time.time(),
        'label': _STATE['label'],
        'setup': _STATE['setup'],
        'role': 'client' if is_client else 'server',
        'local': '%s:%d' % sock[:2] if sock else None,
        'peer': '%s:%d' % peer[:2] if peer else None,
        'client_version': conn._client_version.decode(errors='replace'),
        'server_version': conn._server_version.decode(errors='replace'),
        'kex_index': getattr(conn, '_escrow_kex_count', 0) + 1,
        'strict_kex': bool(getattr(conn, '_strict_kex', False)),
        'client_cookie': ci['cookie'],
        'server_cookie': si['cookie'],
        'client_kexinit': _hex(conn._client_kexinit),
        'server_kexinit': _hex(conn._server_kexinit),
        'kex_alg': kex_alg,
        'kex_hash': kexobj._hash_alg().name,
        'host_key_alg': _host_key_alg(conn),
        'ephemeral_private': priv,
        'public_values': _public_values(kexobj),
        'K_encoding': k_encoding,
        'K': _hex(k_value),
        'K_hash_input': _hex(k),
        'H': _hex(h),
        'session_id': _hex(session_id),
        'c2s': dirs['c2s'],
        's2c': dirs['s2c'],
    }
    conn._escrow_kex_count = rec['kex_index']
    _append(_STATE['escrow_path'], json.dumps(rec, sort_keys=False))

    # Wireshark key log lines
    if kex_alg.startswith('curve25519') and 'x25519_private' in priv:
        _append(_STATE['keylog_path'], '%s %s' % (own_cookie, priv['x25519_private']))
    elif kex_alg.startswith('diffie-hellman-group') and 'dh_x' in priv:
        _append(_STATE['keylog_path'], '%s %s' % (own_cookie, priv['dh_x']))
    _append(_STATE['ss_keylog_path'], '%s SHARED_SECRET %s' % (own_cookie, rec['K']))
    # newer Wireshark three-field private-key line; for ecdh-sha2-nistp* too (Wireshark cannot
    # use it, a recorder that knows the curve from KEXINIT can)
    pk = priv.get('x25519_private') or priv.get('dh_x') or priv.get('ecdh_d')
    if pk and not kex_alg.startswith(('sntrup', 'mlkem')):
        _append(_STATE['pk_keylog_path'], '%s PRIVATE_KEY %s' % (own_cookie, pk))


def install_escrow(prefix, label='', setup=''):
    """prefix: path prefix; writes prefix.escrow.jsonl, prefix.keylog,
    prefix.ss.keylog (appending)."""
    _STATE['escrow_path'] = prefix + '.escrow.jsonl'
    _STATE['keylog_path'] = prefix + '.keylog'
    _STATE['ss_keylog_path'] = prefix + '.ss.keylog'
    _STATE['pk_keylog_path'] = prefix + '.pk.keylog'
    _STATE['label'] = label
    _STATE['setup'] = setup
    for p in (_STATE['keylog_path'], _STATE['ss_keylog_path'], _STATE['pk_keylog_path']):
        if not os.path.exists(p):
            open(p, 'a').close()
    _connection.SSHConnection.send_newkeys = _escrow_send_newkeys
    register_sntrup()


# ---------------------------------------------------------------- sntrup761

class SntrupKEM:
    """asyncssh PQKey-compatible wrapper around the pure-Python sntrup761."""

    pubkey_bytes = 1158
    privkey_bytes = 1763
    ciphertext_bytes = 1039
    secret_bytes = 32

    def __init__(self, alg_name):
        import sntrup761
        self._impl = sntrup761
        self.alg_name = alg_name.decode() if isinstance(alg_name, bytes) else alg_name
        self._pk = None
        self.sk = b''
        self.last_secret = b''
        self.last_ciphertext = b''

    def get_public(self):
        if self._pk is None:
            self._pk, self.sk = self._impl.keypair()
        return self._pk

    def encaps(self, peer_public):
        ct, k = self._impl.enc(peer_public)
        self.last_secret, self.last_ciphertext = k, ct
        return k, ct

    def decaps(self, ciphertext):
        k = self._impl.dec(ciphertext, self.sk)
        self.last_secret, self.last_ciphertext = k, ciphertext
        return k


_SNTRUP_REGISTERED = []


def register_sntrup():
    if _SNTRUP_REGISTERED:
        return
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from asyncssh.kex_dh import _KexHybridECDH
    from asyncssh.crypto import Curve25519DH
    from hashlib import sha512
    for name in (b'sntrup761x25519-sha512@openssh.com', b'sntrup761x25519-sha512'):
        if name not in _kex._kex_handlers:
            _kex.register_kex_alg(name, _KexHybridECDH, sha512,
                                  (SntrupKEM, b'sntrup761', Curve25519DH), False)
    _SNTRUP_REGISTERED.append(True)


def disable_strict_kex():
    """Stop advertising kex-strict-*-v00@openssh.com (Terrapin countermeasure)
    and never enable it, so that both peers keep counting packet sequence
    numbers across NEWKEYS (pre-OpenSSH-9.6 behaviour).  asyncssh would
    otherwise switch strict mode on as soon as the *peer* advertises it."""
    from asyncssh.constants import MSG_KEXINIT

    def _extra(self):
        return [b'ext-info-c'] if self.is_client() else [b'ext-info-s']
    _connection.SSHConnection._get_extra_kex_algs = _extra

    orig = _connection.SSHConnection._packet_handlers[MSG_KEXINIT]

    async def _kexinit_nostrict(self, pkttype, pktid, packet):
        await orig(self, pkttype, pktid, packet)
        self._strict_kex = False
    handlers = dict(_connection.SSHConnection._packet_handlers)
    handlers[MSG_KEXINIT] = _kexinit_nostrict
    _connection.SSHConnection._packet_handlers = handlers
