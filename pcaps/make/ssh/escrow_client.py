#!/usr/bin/env python3
"""Setup (b): key-escrowing SSH client (asyncssh) for a real OpenSSH sshd.

Modes (exactly one):
  --shell           interactive pty shell; the local terminal is put in raw
                    mode and every keystroke is forwarded immediately (drive it
                    with expect exactly like /usr/bin/ssh)
  --exec CMD        run CMD without pty, copy stdout/stderr, exit with its status
  --sftp-put L R    upload local file L to remote path R over the sftp subsystem

The client offers ONLY the algorithms given with --kex/--cipher/--mac/
--compression so the negotiated suite is deterministic.  Every key exchange
is escrowed into <out-prefix>.escrow.jsonl / .keylog / .ss.keylog.

Test-capture tooling only.
"""

import argparse
import asyncio
import os
import signal
import sys
import termios
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncssh            # noqa: E402
import escrow_common       # noqa: E402


class _Relay(asyncssh.SSHClientSession):
    def __init__(self):
        self.done = asyncio.get_event_loop().create_future()
        self.exit_status = None

    def data_received(self, data, datatype):
        os.write(sys.stdout.fileno(), data)

    def exit_status_received(self, status):
        self.exit_status = status

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


async def run_shell(conn):
    stdin_fd = sys.stdin.fileno()
    term = os.environ.get('TERM', 'xterm')
    try:
        cols, rows = os.get_terminal_size(stdin_fd)
    except OSError:
        cols, rows = 0, 0
    if not cols or not rows:
        cols, rows = 80, 24
    chan, relay = await conn.create_session(
        _Relay, term_type=term, term_size=(cols, rows), encoding=None)
    loop = asyncio.get_running_loop()
    old = None
    if os.isatty(stdin_fd):
        old = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)

    def _on_stdin():
        try:
            data = os.read(stdin_fd, 1024)
        except OSError:
            data = b''
        if not data:
            loop.remove_reader(stdin_fd)
            chan.write_eof()
            return
        chan.write(data)

    loop.add_reader(stdin_fd, _on_stdin)
    try:
        await relay.done
    finally:
        loop.remove_reader(stdin_fd)
        if old is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, old)
    return relay.exit_status if relay.exit_status is not None else 0


async def run_exec(conn, cmd):
    res = await conn.run(cmd, encoding=None, check=False)
    sys.stdout.buffer.write(res.stdout or b'')
    sys.stdout.flush()
    sys.stderr.buffer.write(res.stderr or b'')
    sys.stderr.flush()
    return res.exit_status if res.exit_status is not None else 255


async def run_sftp_put(conn, local, remote):
    async with conn.start_sftp_client() as sftp:
        await sftp.put(local, remote)
        attrs = await sftp.stat(remote)
        print('uploaded %s -> %s (%d bytes)' % (local, remote, attrs.size))
    return 0


async def run_sftp_tour(conn, local, remote_dir, local_back):
    """put, mkdir, rename, get, remove, rmdir: every SFTP verb the recorder reports."""
    name = os.path.basename(local)
    pre = remote_dir + '/' if remote_dir else ''     # '' = relative to the sftp start directory
    async with conn.start_sftp_client() as sftp:
        await sftp.mkdir(pre + 'sub')
        await sftp.put(local, pre + name)
        await sftp.rename(pre + name, pre + 'sub/' + name)
        await sftp.get(pre + 'sub/' + name, local_back)
        await sftp.remove(pre + 'sub/' + name)
        await sftp.rmdir(pre + 'sub')
        print('sftp tour done: %s' % name)
    return 0


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=2223)
    ap.add_argument('--user', required=True)
    ap.add_argument('--identity', default='', help='private key file')
    ap.add_argument('--password', default=None)
    ap.add_argument('--kex', required=True)
    ap.add_argument('--cipher', required=True)
    ap.add_argument('--mac', default='hmac-sha2-256')
    ap.add_argument('--compression', default='none')
    ap.add_argument('--no-strict-kex', action='store_true',
                    help='do not negotiate kex-strict (pre-Terrapin-fix behaviour)')
    ap.add_argument('--out-prefix', required=True)
    ap.add_argument('--label', default='')
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--shell', action='store_true')
    g.add_argument('--exec', dest='command')
    g.add_argument('--sftp-put', nargs=2, metavar=('LOCAL', 'REMOTE'))
    g.add_argument('--sftp-tour', nargs=3, metavar=('LOCAL', 'REMOTE_DIR', 'LOCAL_BACK'))
    ap.add_argument('--no-escrow', action='store_true',
                    help='the server side escrows (setup c): deposit nothing here')
    ap.add_argument('--rekey-bytes', type=int, default=0,
                    help='re-key after this many bytes (0: asyncssh default)')
    a = ap.parse_args()

    if not a.no_escrow:
        escrow_common.install_escrow(a.out_prefix, label=a.label, setup='b')
    else:
        escrow_common.register_sntrup()
    if a.no_strict_kex:
        escrow_common.disable_strict_kex()

    kw = dict(port=a.port, username=a.user, known_hosts=None,
              kex_algs=a.kex.split(','), encryption_algs=a.cipher.split(','),
              mac_algs=a.mac.split(','), compression_algs=a.compression.split(','),
              agent_path=None, config=None, x509_trusted_certs=None,
              preferred_auth=[], keepalive_interval=0)
    if a.rekey_bytes:
        kw['rekey_bytes'] = a.rekey_bytes
    if a.identity:
        kw['client_keys'] = [a.identity]
        kw['preferred_auth'].append('publickey')
    else:
        kw['client_keys'] = None
    if a.password is not None:
        kw['password'] = a.password
        kw['preferred_auth'].append('password')
    kw['preferred_auth'] = ','.join(kw['preferred_auth'])

    try:
        async with asyncssh.connect(a.host, **kw) as conn:
            if a.shell:
                rc = await run_shell(conn)
            elif a.command is not None:
                rc = await run_exec(conn, a.command)
            elif a.sftp_tour:
                rc = await run_sftp_tour(conn, *a.sftp_tour)
            else:
                rc = await run_sftp_put(conn, *a.sftp_put)
    except asyncssh.PermissionDenied as exc:
        sys.stderr.write('Permission denied: %s\n' % exc)
        return 255
    return rc


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(asyncio.run(main()))
