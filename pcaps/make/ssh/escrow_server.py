#!/usr/bin/env python3
"""Setup (a): key-escrowing SSH server (asyncssh) for the real OpenSSH client.

Listens on 127.0.0.1:<port> (default 2222).  Password auth for one virtual
user; shell / exec sessions run a real bash (in a real pty when the client
asks for one) as an unprivileged OS account; the sftp subsystem (used by
OpenSSH >= 9.0 scp and by sftp) is served from a chroot directory.

Every key exchange is escrowed (see escrow_common.py) into
<out-prefix>.escrow.jsonl / .keylog / .ss.keylog.

Test-capture tooling only: do not expose beyond loopback.
"""

import argparse
import asyncio
import fcntl
import os
import pty
import pwd
import secrets
import signal
import struct
import sys
import tempfile
import termios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import asyncssh                      # noqa: E402
import escrow_common                 # noqa: E402

ARGS = None


def _drop_privs_fn(run_as):
    pw = pwd.getpwnam(run_as) if run_as else None

    def _fn(make_ctty_fd=None):
        os.setsid()
        if make_ctty_fd is not None:
            fcntl.ioctl(make_ctty_fd, termios.TIOCSCTTY, 0)
        if pw and os.getuid() == 0:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
    return _fn


def _child_env(username, term=None):
    env = {
        'PATH': '/usr/local/bin:/usr/bin:/bin',
        'HOME': ARGS.home,
        'USER': username,
        'LOGNAME': username,
        'SHELL': '/bin/bash',
        'LANG': 'C.UTF-8',
        'PS1': ARGS.ps1,
        'HISTFILE': '/dev/null',
    }
    if term:
        env['TERM'] = term
    return env


async def run_pty_shell(process):
    username = process.get_extra_info('username')
    master, slave = pty.openpty()
    cols, rows, _, _ = process.get_terminal_size()
    if cols and rows:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    drop = _drop_privs_fn(ARGS.run_as)
    cmd = ['/bin/bash', '--norc', '--noprofile', '-i']
    if process.command:                       # ssh -t host cmd
        cmd = ['/bin/bash', '--norc', '--noprofile', '-c', process.command]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=slave, stdout=slave, stderr=slave, cwd=ARGS.home,
        env=_child_env(username, process.get_terminal_type()),
        preexec_fn=lambda: drop(0), close_fds=True)
    os.close(slave)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def _on_master_readable():
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b''
        if not data:
            loop.remove_reader(master)
            done.set()
            return
        process.stdout.write(data)

    loop.add_reader(master, _on_master_readable)

    async def _pump_in():
        try:
            while True:
                data = await process.stdin.read(4096)
                if not data:
                    break
                os.write(master, data)
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged) as exc:
            if isinstance(exc, asyncssh.TerminalSizeChanged):
                fcntl.ioctl(master, termios.TIOCSWINSZ,
                            struct.pack('HHHH', exc.height, exc.width, 0, 0))
                return await _pump_in()
        except Exception:
            pass

    pump = asyncio.ensure_future(_pump_in())
    rc = await proc.wait()
    await asyncio.wait_for(done.wait(), 2) if not done.is_set() else None
    try:
        loop.remove_reader(master)
    except Exception:
        pass
    pump.cancel()
    os.close(master)
    process.exit(rc)


async def run_exec(process, command):
    username = process.get_extra_info('username')
    drop = _drop_privs_fn(ARGS.run_as)
    proc = await asyncio.create_subprocess_exec(
        '/bin/bash', '--norc', '--noprofile', '-c', command,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ARGS.home,
        env=_child_env(username), preexec_fn=drop, close_fds=True)

    async def _copy(reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)

    async def _stdin():
        try:
            while True:
                data = await process.stdin.read(65536)
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
        except Exception:
            pass
        finally:
            try:
                proc.stdin.close()
            except Exception:
                pass

    tin = asyncio.ensure_future(_stdin())
    await asyncio.gather(_copy(proc.stdout, process.stdout),
                         _copy(proc.stderr, process.stderr))
    rc = await proc.wait()
    tin.cancel()
    process.exit(rc)


async def handle_process(process):
    try:
        if process.subsystem:
            process.exit(1)
            return
        if process.get_terminal_type():
            await run_pty_shell(process)          # shell or ssh -t cmd
        elif process.command is None:
            await run_exec(process, 'exec /bin/bash --norc --noprofile')
        else:
            await run_exec(process, process.command)
    except Exception as exc:  # pragma: no cover
        sys.stderr.write('session error: %r\n' % (exc,))
        process.exit(255)


class Server(asyncssh.SSHServer):
    def connection_made(self, conn):
        self._conn = conn

    def begin_auth(self, username):
        return True                   # always require authentication

    def password_auth_supported(self):
        return True

    def validate_password(self, username, password):
        ok = (username == ARGS.user and password == ARGS.password)
        sys.stderr.write('auth user=%r password=%r -> %s\n'
                         % (username, password, 'OK' if ok else 'FAIL'))
        return ok

    def public_key_auth_supported(self):
        return False

    def kbdint_auth_supported(self):
        return False


def _patch_sftp_exit_status():
    """asyncssh closes an sftp subsystem channel without exit-status, which
    makes OpenSSH's scp/sftp report 'Exit status -1' (rc 1).  Send
    exit-status 0 first, as OpenSSH's sftp-server does."""
    from asyncssh import sftp as _sftp
    orig = _sftp.SFTPServerHandler._cleanup

    async def _cleanup(self, exc):
        try:
            if self._writer is not None:
                self._writer.channel.exit(0)
        except Exception:
            pass
        await orig(self, exc)
    _sftp.SFTPServerHandler._cleanup = _cleanup


class ChrootSFTP(asyncssh.SFTPServer):
    def __init__(self, chan):
        os.makedirs(ARGS.sftp_root, exist_ok=True)
        super().__init__(chan, chroot=ARGS.sftp_root.encode())

    def open(self, path, pflags, attrs):
        # the path exactly as the client sent it: ground truth for the corpus manifest
        sys.stderr.write('sftp open path=%r pflags=%d\n' % (path, pflags))
        return super().open(path, pflags, attrs)


def _patch_scp_logging():
    """Log the scp command line the client sent (ground truth for the corpus manifest)."""
    from asyncssh import stream as _stream
    orig = _stream.run_scp_server

    def _logged(sftp_server, command, *args, **kw):
        sys.stderr.write('scp command=%r\n' % (command,))
        return orig(sftp_server, command, *args, **kw)
    _stream.run_scp_server = _logged


async def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=2222)
    ap.add_argument('--out-prefix', required=True,
                    help='escrow/keylog path prefix (per session)')
    ap.add_argument('--label', default='')
    ap.add_argument('--host-key', required=True)
    ap.add_argument('--user', default='demo')
    ap.add_argument('--password', default=None,
                    help='password of --user (default: generated and printed on stderr)')
    ap.add_argument('--run-as', default='nobody',
                    help='OS account that runs shells/commands')
    ap.add_argument('--home', default=None,
                    help='working directory of shells/commands (default: a new temp dir)')
    ap.add_argument('--sftp-root', default=None,
                    help='chroot of the sftp subsystem (default: a new temp dir)')
    ap.add_argument('--ps1', default=None,
                    help='bash prompt (default: <user>@sshdemo:<cwd>$ )')
    ap.add_argument('--ready-file', default='')
    ap.add_argument('--kex', default='', help='comma list to offer (default: all)')
    ap.add_argument('--no-strict-kex', action='store_true',
                    help='do not negotiate kex-strict (pre-Terrapin-fix behaviour)')
    ARGS = ap.parse_args()
    if ARGS.password is None:
        ARGS.password = secrets.token_urlsafe(12)
        sys.stderr.write('generated password for %s: %s\n' % (ARGS.user, ARGS.password))
    if ARGS.home is None:
        ARGS.home = tempfile.mkdtemp(prefix='escrow-home-')
        os.chmod(ARGS.home, 0o755)
    if ARGS.sftp_root is None:
        ARGS.sftp_root = tempfile.mkdtemp(prefix='escrow-sftp-')
    if ARGS.ps1 is None:
        ARGS.ps1 = '%s@sshdemo:\\w\\$ ' % ARGS.user

    escrow_common.install_escrow(ARGS.out_prefix, label=ARGS.label, setup='a')
    _patch_sftp_exit_status()
    _patch_scp_logging()
    if ARGS.no_strict_kex:
        escrow_common.disable_strict_kex()
    os.makedirs(ARGS.home, exist_ok=True)
    if ARGS.run_as and os.getuid() == 0:
        pw = pwd.getpwnam(ARGS.run_as)
        os.chown(ARGS.home, pw.pw_uid, pw.pw_gid)

    if not os.path.exists(ARGS.host_key):
        key = asyncssh.generate_private_key('ssh-ed25519')
        key.write_private_key(ARGS.host_key)
        key.write_public_key(ARGS.host_key + '.pub')

    from asyncssh.kex import get_kex_algs
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.mac import get_mac_algs
    from asyncssh.compression import get_compression_algs
    kex_algs = [a.decode() for a in get_kex_algs() if not a.startswith(b'gss-')]
    if ARGS.kex:
        kex_algs = ARGS.kex.split(',')

    server = await asyncssh.create_server(
        Server, ARGS.host, ARGS.port,
        server_host_keys=[ARGS.host_key],
        process_factory=handle_process,
        sftp_factory=ChrootSFTP,
        allow_scp=True,
        line_editor=False,
        encoding=None,
        kex_algs=kex_algs,
        encryption_algs=[a.decode() for a in get_encryption_algs()],
        mac_algs=[a.decode() for a in get_mac_algs()],
        compression_algs=[a.decode() for a in get_compression_algs()],
        login_timeout=30)
    if ARGS.ready_file:
        with open(ARGS.ready_file, 'w') as fh:
            fh.write('%d\n' % os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    server.close()


if __name__ == '__main__':
    asyncio.run(main())
