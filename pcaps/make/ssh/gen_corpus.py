#!/usr/bin/env python3
"""Generate escrowed SSH captures (run via gen.sh, as root).

For every session in SESSIONS:
  tcpdump -i lo (full snaplen) on the session's port  ->  $OUT/pcaps/<name>.pcap
  setup a: escrow_server.py (asyncssh) on 127.0.0.1:$PORT_A, real OpenSSH client
  setup b: escrow_client.py (asyncssh) -> real OpenSSH sshd on 127.0.0.1:$PORT_B
           ($PORT_B_RSA for the RSA-only sshd)
  escrow  -> pcaps/<name>.escrow.jsonl, .keylog (Wireshark 4.0 format),
             .ss.keylog (SHARED_SECRET format)
  the same pcap with both key logs embedded (pcapng DSB) -> dsb/<name>.dsb.pcapng
  client terminal transcript -> pcaps/<name>.transcript.txt
  what was run (run record, not an expected-results manifest)
                             -> pcaps/<name>.meta.json, and sessions.json

Environment (all optional; gen.sh sets the first three):
  OUT          output directory (default: ./out next to this file)
  CORPUS_WORK  scratch directory (default: a new temp dir)
  CORPUS_PY    python of the venv with asyncssh (default: this interpreter)
  MARK         tag put into every typed/executed marker command and the upload file (default: demo)
  SSH_USER_A / SSH_PASS_A   virtual user of the setup-a escrow server (default demo / generated)
  SSH_WRONG_PASS_A / SSH_WRONG_PASS_B  wrong passwords of the auth-failure sessions (generated)
  PORT_A / PORT_B / PORT_B_RSA         loopback ports (default 2222 / 2223 / 2224)
"""

import hashlib
import json
import shlex
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
OUT = os.path.abspath(os.environ.get('OUT') or os.path.join(TOOLS, 'out'))
PCAPS = os.path.join(OUT, 'pcaps')
WORK = os.environ.get('CORPUS_WORK') or tempfile.mkdtemp(prefix='ssh-capture-')
VENV_PY = os.environ.get('CORPUS_PY') or sys.executable
PORT_A = int(os.environ.get('PORT_A', 2222))
PORT_B = int(os.environ.get('PORT_B', 2223))
PORT_B_RSA = int(os.environ.get('PORT_B_RSA', 2224))  # second sshd with an RSA-only host key (see b09)


def _gen_pw():
    return 'Pw-' + secrets.token_urlsafe(9)


MARK = os.environ.get('MARK') or 'demo'
if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_-]*', MARK):
    sys.exit('MARK may contain only letters, digits, _ and -')
USER_A = os.environ.get('SSH_USER_A') or 'demo'
# fixed values (not _gen_pw()) so the manifest and the tests stay stable across runs; they
# exist only inside the throwaway servers this script starts
PASS_A = os.environ.get('SSH_PASS_A') or 'Pw-q7Rk2vXe9LmZt'
WRONG_PASS_A = os.environ.get('SSH_WRONG_PASS_A') or 'Pw-w0ngT4ZpQ1xsN'
USER_B = 'root'
WRONG_PASS_B = os.environ.get('SSH_WRONG_PASS_B') or 'Pw-b4dK9sLe2RvyH'

UPLOAD_NAME = 'upload-%s.txt' % MARK
UPLOAD_LOCAL = os.path.join(WORK, 'upload', UPLOAD_NAME)


def _upload_content(n=60000):
    # deterministic, incompressible (a SHA-256 counter stream) so hashes are stable across runs
    head = ('%s-upload first line of the test upload file\n' % MARK).encode()
    body = b''.join(hashlib.sha256(b'sessiontap-upload-%d' % i).digest() for i in range(n // 32 + 1))
    return head + body[:n - len(head)]


# benchmarks/ssh_decrypt.py asks for a large upload with UPLOAD_BYTES (the corpus keeps 60 kB)
UPLOAD_CONTENT = _upload_content(int(os.environ.get('UPLOAD_BYTES') or 60000))
SFTP_B_DIR = os.path.join(WORK, 'sftp-b')
SFTP_B_REMOTE = os.path.join(WORK, 'sftp-b-' + UPLOAD_NAME)

EXEC_CMD = 'uname -a; echo %s-exec' % MARK
REKEY_CMD = 'for i in $(seq 1 1500); do echo %s-rekey-line-$i; done' % MARK
FWD_CMD = 'echo %s-fwd' % MARK
ZLIB_CMD = ('for i in $(seq 1 40); do echo "%s-zlib line $i '
            'repetitive text repetitive text repetitive text"; done' % MARK)
# must match what shell_session.exp types
SHELL_TYPED = [
    ('echo %s-shell\r' % MARK, 'marker echo'),
    ('id\r', 'id'),
    ('ecoh\x7f\x7fho %s-bs-ok\r' % MARK,
     'typo "ecoh" fixed with 2x DEL(0x7f) -> echo %s-bs-ok' % MARK),
    ('sleep 30\r', 'long command'),
    ('\x03', 'Ctrl-C interrupts sleep'),
    ('exit\r', 'logout (exit status of the shell = status of the interrupted sleep, 130)'),
]

# keys: which escrow form is committed beside the capture (the decoder must read all of them):
#   keylog      Wireshark 4.0 "<cookie> <private-key>"       (curve25519 / DH kex only)
#   pk.keylog   "<cookie> PRIVATE_KEY <private-key>"          (also ecdh-nistp: our extension)
#   ss.keylog   "<cookie> SHARED_SECRET <K>"                  (any kex, PQ hybrids included)
#   kh.jsonl    our JSON lines, cookies + K + H only
#   keys.jsonl  our JSON lines, cookies + the six derived keys only
#   escrow.jsonl our JSON lines, the full deposit
# oracle: tshark 4.0 can decrypt it (no strict kex, no -etm/zlib/nistp/PQ, RSA keys) -> oracle test
SESSIONS = [
    # ---------------- setup a: OpenSSH 9.2 client -> escrowing asyncssh server
    dict(name='a01_shell_curve25519_aes128ctr', setup='a', kex='curve25519-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='shell', keys='keylog'),
    dict(name='a02_exec_dh14_aes256gcm', setup='a', kex='diffie-hellman-group14-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='none', action='exec', keys='ss.keylog'),
    dict(name='a03_exec_nistp256_chacha20', setup='a', kex='ecdh-sha2-nistp256',
         cipher='chacha20-poly1305@openssh.com', mac=None, comp='none', action='exec',
         keys='pk.keylog'),
    dict(name='a04_exec_sntrup761_aes256ctr_sha512etm', setup='a',
         kex='sntrup761x25519-sha512@openssh.com', cipher='aes256-ctr',
         mac='hmac-sha2-512-etm@openssh.com', comp='none', action='exec', keys='ss.keylog'),
    dict(name='a05_exec_zlib_libssh_aes128ctr_sha1', setup='a', kex='curve25519-sha256@libssh.org',
         cipher='aes128-ctr', mac='hmac-sha1', comp='zlib@openssh.com', action='exec_zlib',
         keys='pk.keylog'),
    dict(name='a06_scp_dh16_aes192ctr_sha256etm', setup='a', kex='diffie-hellman-group16-sha512',
         cipher='aes192-ctr', mac='hmac-sha2-256-etm@openssh.com', comp='none', action='scp',
         keys='keylog'),
    dict(name='a07_authfail_curve25519_aes256gcm', setup='a', kex='curve25519-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='none', action='authfail', keys='keylog'),
    dict(name='a08_exec_nistp384_aes128gcm', setup='a', kex='ecdh-sha2-nistp384',
         cipher='aes128-gcm@openssh.com', mac=None, comp='none', action='exec', keys='keys.jsonl'),
    dict(name='a09_exec_curve25519_aes128ctr_nostrict', setup='a', kex='curve25519-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='exec', no_strict=True,
         keys='keylog', oracle=True),
    dict(name='a10_scp_legacy_curve25519_aes128gcm', setup='a', kex='curve25519-sha256',
         cipher='aes128-gcm@openssh.com', mac=None, comp='none', action='scp_legacy',
         keys='keylog'),
    dict(name='a11_exec_nistp521_aes256cbc_sha512', setup='a', kex='ecdh-sha2-nistp521',
         cipher='aes256-cbc', mac='hmac-sha2-512', comp='none', action='exec', keys='kh.jsonl'),
    dict(name='a12_exec_dh18_3descbc_sha1etm', setup='a', kex='diffie-hellman-group18-sha512',
         cipher='3des-cbc', mac='hmac-sha1-etm@openssh.com', comp='none', action='exec',
         keys='escrow.jsonl'),
    dict(name='a13_exec_gex_aes128cbc_nostrict', setup='a',
         kex='diffie-hellman-group-exchange-sha256', cipher='aes128-cbc', mac='hmac-sha2-256',
         comp='none', action='exec', no_strict=True, keys='keylog'),   # tshark 4.0: no gex/CBC
    dict(name='a14_exec_rekey_curve25519_chacha20', setup='a', kex='curve25519-sha256',
         cipher='chacha20-poly1305@openssh.com', mac=None, comp='none', action='exec_rekey',
         keys='ss.keylog'),
    dict(name='a15_exec_forwarding_requests', setup='a', kex='curve25519-sha256',
         cipher='aes256-ctr', mac='hmac-sha2-512', comp='none', action='exec_forward',
         keys='pk.keylog'),
    dict(name='a16_stdio_forward_directtcpip', setup='a', kex='curve25519-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='stdio_forward',
         keys='keylog'),
    dict(name='a17_scp_legacy_download_dh14', setup='a', kex='diffie-hellman-group14-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='none', action='scp_legacy_get',
         keys='ss.keylog'),
    # ---------------- setup b: escrowing asyncssh client -> OpenSSH 9.2 sshd
    dict(name='b01_shell_curve25519_aes128ctr', setup='b', kex='curve25519-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='shell', keys='ss.keylog'),
    dict(name='b02_exec_dh14_chacha20', setup='b', kex='diffie-hellman-group14-sha256',
         cipher='chacha20-poly1305@openssh.com', mac=None, comp='none', action='exec',
         keys='keylog'),
    dict(name='b03_sftp_tour_curve25519_aes256gcm', setup='b', kex='curve25519-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='none', action='sftp_tour',
         keys='escrow.jsonl'),
    dict(name='b04_authfail_dh14_aes128ctr', setup='b', kex='diffie-hellman-group14-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='authfail',
         keys='keylog'),
    dict(name='b05_exec_zlib_dh14_aes256gcm', setup='b', kex='diffie-hellman-group14-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='zlib@openssh.com', action='exec_zlib',
         keys='kh.jsonl'),
    dict(name='b06_shell_rsakeys_nostrict', setup='b', kex='curve25519-sha256',
         cipher='aes128-ctr', mac='hmac-sha2-256', comp='none', action='shell', sshd='rsa',
         no_strict=True, keys='keylog', oracle=True),
    dict(name='b07_exec_nistp256_aes256ctr_sha512etm', setup='b', kex='ecdh-sha2-nistp256',
         cipher='aes256-ctr', mac='hmac-sha2-512-etm@openssh.com', comp='none', action='exec',
         keys='keys.jsonl'),
    # ---------------- setup c: asyncssh client -> escrowing asyncssh server (what OpenSSH 9.2
    # cannot do: ML-KEM hybrid kex, pre-auth "zlib" compression)
    dict(name='c01_exec_mlkem768_zlib_aes256gcm', setup='c', kex='mlkem768x25519-sha256',
         cipher='aes256-gcm@openssh.com', mac=None, comp='zlib', action='exec_zlib',
         keys='ss.keylog'),
    dict(name='c02_sftp_put_sntrup_chacha20', setup='c', kex='sntrup761x25519-sha512@openssh.com',
         cipher='chacha20-poly1305@openssh.com', mac=None, comp='none', action='sftp',
         keys='kh.jsonl'),
]

# not part of the committed corpus: run only when named (benchmarks/ssh_decrypt.py, with
# UPLOAD_BYTES=200000000); Wireshark-4.0-friendly so tshark can be timed on the same file
BENCH_SESSIONS = [
    dict(name='z01_bench_sftp_put', setup='b', kex='curve25519-sha256', cipher='aes128-ctr',
         mac='hmac-sha2-256', comp='none', action='sftp', sshd='rsa', no_strict=True,
         keys='keylog', oracle=True),
]


SSH_VERSION = subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip() \
    if shutil.which('ssh') else 'OpenSSH'


def log(msg):
    sys.stderr.write('[gen] %s\n' % msg)
    sys.stderr.flush()


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, 'rb') as fh:
        for blk in iter(lambda: fh.read(1 << 16), b''):
            h.update(blk)
    return h.hexdigest()


def wait_for(pred, timeout=15, step=0.1):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        time.sleep(step)
    return False


def stop(proc, sig=signal.SIGTERM, timeout=10):
    """Stop one process we started, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def port_listening(port):
    out = subprocess.run(['ss', '-Hltn', 'sport = :%d' % port],
                         capture_output=True, text=True).stdout
    return '127.0.0.1:%d' % port in out


def start_tcpdump(pcap, port):
    errf = open(pcap + '.tcpdump.log', 'w')
    # -B: a 128 MiB kernel buffer, so a fast bulk transfer (benchmark) loses no packet
    p = subprocess.Popen(['tcpdump', '-i', 'lo', '-s', '0', '-B', '131072', '-U', '-n', '-Z', 'root',
                          '-w', pcap, 'tcp port %d' % port],
                         stdout=subprocess.DEVNULL, stderr=errf)
    ok = wait_for(lambda: 'listening on' in open(pcap + '.tcpdump.log').read(), 10)
    if not ok:
        raise RuntimeError('tcpdump did not start')
    time.sleep(0.3)
    return p


def start_sshd(cfgname='sshd_config', port=PORT_B):
    d = os.path.join(WORK, 'sshd')
    run = os.path.join(WORK, 'run')
    os.makedirs(run, exist_ok=True)
    cfg = os.path.join(d, cfgname)
    logf = open(os.path.join(d, cfgname + '.log'), 'a')
    # sshd (as root) insists on its privilege-separation directory /run/sshd.
    # Rather than creating it on the host we give sshd a private mount
    # namespace whose /run is a bind mount of $WORK/run.
    if os.path.isdir('/run/sshd'):
        cmd = ['/usr/sbin/sshd', '-D', '-e', '-f', cfg]
    else:
        cmd = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
               'mount --bind %s /run && mkdir -p /run/sshd && chmod 755 /run/sshd && '
               'exec /usr/sbin/sshd -D -e -f %s' % (run, cfg)]
    p = subprocess.Popen(cmd, stdout=logf, stderr=logf)
    if not wait_for(lambda: port_listening(port), 15):
        raise RuntimeError('sshd did not start, see %s' % logf.name)
    return p


def start_server(prefix, name, no_strict=False):
    ready = os.path.join(WORK, 'server-a.ready')
    if os.path.exists(ready):
        os.unlink(ready)
    cmd = [VENV_PY, os.path.join(TOOLS, 'escrow_server.py'),
           '--port', str(PORT_A), '--out-prefix', prefix, '--label', name,
           '--host-key', os.path.join(WORK, 'hostkey_a'),
           '--user', USER_A, '--password', PASS_A,
           '--ps1', '%s@sshdemo:\\w\\$ ' % USER_A,
           '--home', os.path.join(WORK, 'home-a'),
           '--sftp-root', os.path.join(WORK, 'sftp-root-a'),
           '--ready-file', ready]
    if no_strict:
        cmd.append('--no-strict-kex')
    logf = open(prefix + '.server.log', 'w')
    p = subprocess.Popen(cmd, stdout=logf, stderr=logf)
    if not wait_for(lambda: os.path.exists(ready) and port_listening(PORT_A), 20):
        raise RuntimeError('escrow server did not start')
    return p


def ssh_opts(s, port_flag='-p'):
    o = ['-F', '/dev/null', port_flag, str(PORT_A),
         '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
         '-o', 'LogLevel=ERROR', '-o', 'PubkeyAuthentication=no',
         '-o', 'PreferredAuthentications=password',
         '-o', 'HostKeyAlgorithms=ssh-ed25519',
         '-o', 'KexAlgorithms=' + s['kex'], '-o', 'Ciphers=' + s['cipher']]
    if s['mac']:
        o += ['-o', 'MACs=' + s['mac']]
    if s['comp'] != 'none':
        o += ['-C']
    return o


def client_cmd_c(s, prefix):
    """setup c: a plain (non-escrowing) asyncssh client against the escrowing server."""
    c = [VENV_PY, os.path.join(TOOLS, 'escrow_client.py'), '--no-escrow',
         '--port', str(PORT_A), '--user', USER_A, '--password', PASS_A,
         '--kex', s['kex'], '--cipher', s['cipher'], '--mac', s['mac'] or 'hmac-sha2-256',
         '--compression', s['comp'], '--out-prefix', prefix, '--label', s['name']]
    return c


def client_cmd_b(s, prefix):
    rsa = s.get('sshd') == 'rsa'
    c = [VENV_PY, os.path.join(TOOLS, 'escrow_client.py'),
         '--port', str(PORT_B_RSA if rsa else PORT_B), '--user', USER_B,
         '--kex', s['kex'], '--cipher', s['cipher'],
         '--mac', s['mac'] or 'hmac-sha2-256',
         '--compression', s['comp'],
         '--out-prefix', prefix, '--label', s['name']]
    if s.get('no_strict'):
        c.append('--no-strict-kex')
    if s['action'] == 'authfail':
        c += ['--password', WRONG_PASS_B]
    else:
        c += ['--identity', os.path.join(WORK, 'sshd', 'client_rsa' if rsa else 'client_ed25519')]
    return c


def run_session(s):
    name = s['name']
    prefix = os.path.join(PCAPS, name)
    for ext in ('.pcap', '.keylog', '.ss.keylog', '.pk.keylog', '.escrow.jsonl', '.transcript.txt',
                '.typed.tsv', '.meta.json', '.server.log', '.pcap.tcpdump.log'):
        if os.path.exists(prefix + ext):
            os.unlink(prefix + ext)
    port = PORT_A if s['setup'] in 'ac' else (PORT_B_RSA if s.get('sshd') == 'rsa' else PORT_B)
    pcap = prefix + '.pcap'
    env = dict(os.environ, TERM='xterm', LANG='C.UTF-8')
    env.pop('SSH_AUTH_SOCK', None)
    meta = dict(s)
    meta['port'] = port
    meta['strict_kex_requested'] = not s.get('no_strict', False)
    upload_targets = {'a': os.path.join(WORK, 'sftp-root-a', UPLOAD_NAME),
                      'c': os.path.join(WORK, 'sftp-root-a', UPLOAD_NAME),
                      'b': SFTP_B_REMOTE}
    up_target = upload_targets[s['setup']]
    if s['action'] in ('scp', 'scp_legacy', 'sftp') and os.path.exists(up_target):
        os.unlink(up_target)
    server = agent = None
    tcpd = start_tcpdump(pcap, port)
    try:
        if s['setup'] == 'a':
            server = start_server(prefix, name, s.get('no_strict', False))
            meta.update(client='%s (ssh/scp)' % SSH_VERSION,
                        server='AsyncSSH escrow_server.py (escrowing)',
                        user=USER_A, auth='password', password=PASS_A)
            env.update(SSH_ASKPASS=os.path.join(WORK, 'askpass.sh'),
                       SSH_ASKPASS_REQUIRE='force', CORPUS_PASSWORD=PASS_A)
            target = '%s@127.0.0.1' % USER_A
            a = s['action']
            if a == 'shell':
                cmd = ['expect', os.path.join(TOOLS, 'shell_session.exp'), 'ssh'] + \
                    ssh_opts(s) + ['-tt', target]
                env['CORPUS_TYPING_LOG'] = prefix + '.typed.tsv'
                env['CORPUS_MARK'] = MARK
                # no askpass: expect types the password at ssh's tty prompt
                env.pop('SSH_ASKPASS', None)
                env.pop('SSH_ASKPASS_REQUIRE', None)
                meta['password_typed_at_prompt'] = PASS_A
            elif a in ('exec', 'exec_zlib'):
                c = EXEC_CMD if a == 'exec' else ZLIB_CMD
                cmd = ['ssh'] + ssh_opts(s) + [target, c]
                meta['command'] = c
            elif a in ('scp', 'scp_legacy'):
                cmd = ['scp'] + (['-O'] if a == 'scp_legacy' else []) + \
                    ssh_opts(s, '-P') + [UPLOAD_LOCAL, target + ':' + UPLOAD_NAME]
                meta['upload'] = dict(local=UPLOAD_LOCAL, remote=UPLOAD_NAME,
                                      protocol='scp/rcp (-O)' if a == 'scp_legacy'
                                      else 'sftp (OpenSSH 9 scp default)',
                                      size=len(UPLOAD_CONTENT),
                                      sha256=hashlib.sha256(UPLOAD_CONTENT).hexdigest())
            elif a == 'exec_rekey':
                cmd = ['ssh'] + ssh_opts(s) + ['-o', 'RekeyLimit=4K', target, REKEY_CMD]
                meta['command'] = REKEY_CMD
            elif a == 'exec_forward':
                # agent, X11 and remote-forward requests; the server refuses the forward.
                # -A needs a running agent (ssh-agent -D: foreground, stopped by PID below);
                # -v puts the requests the client made into the transcript (manifest truth)
                env['DISPLAY'] = '127.0.0.1:99'
                sock = os.path.join(WORK, 'agent.sock')
                if os.path.exists(sock):
                    os.unlink(sock)
                agent = subprocess.Popen(['ssh-agent', '-D', '-a', sock],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda: os.path.exists(sock), 10)
                env['SSH_AUTH_SOCK'] = sock
                cmd = ['ssh', '-v'] + ssh_opts(s) + ['-A', '-X', '-o', 'ExitOnForwardFailure=no',
                                               '-R', '127.0.0.1:0:127.0.0.1:9', target, FWD_CMD]
                meta['command'] = FWD_CMD
            elif a == 'stdio_forward':
                # ssh -W opens a direct-tcpip channel right after auth (refused by the server)
                cmd = ['ssh'] + ssh_opts(s) + ['-W', '127.0.0.1:9', target]
            elif a == 'scp_legacy_get':
                os.makedirs(os.path.join(WORK, 'sftp-root-a'), exist_ok=True)
                shutil.copy(UPLOAD_LOCAL, os.path.join(WORK, 'sftp-root-a', 'dl-' + UPLOAD_NAME))
                dl = os.path.join(WORK, 'download-' + UPLOAD_NAME)
                cmd = ['scp', '-O'] + ssh_opts(s, '-P') + [target + ':dl-' + UPLOAD_NAME, dl]
                meta['download'] = dict(remote='dl-' + UPLOAD_NAME, size=len(UPLOAD_CONTENT),
                                        sha256=hashlib.sha256(UPLOAD_CONTENT).hexdigest())
            elif a == 'authfail':
                env['CORPUS_PASSWORD'] = WRONG_PASS_A
                cmd = ['ssh'] + ssh_opts(s) + ['-o', 'NumberOfPasswordPrompts=2',
                                               target, 'echo %s-not-run' % MARK]
                meta['password_sent'] = [WRONG_PASS_A, WRONG_PASS_A]
            else:
                raise ValueError(a)
        elif s['setup'] == 'c':
            server = start_server(prefix, name, s.get('no_strict', False))
            meta.update(client='AsyncSSH escrow_client.py --no-escrow',
                        server='AsyncSSH escrow_server.py (escrowing)',
                        user=USER_A, auth='password', password=PASS_A)
            cmd = client_cmd_c(s, prefix)
            a = s['action']
            if a in ('exec', 'exec_zlib'):
                c = EXEC_CMD if a == 'exec' else ZLIB_CMD
                cmd += ['--exec', c]
                meta['command'] = c
            elif a == 'sftp':
                cmd += ['--sftp-put', UPLOAD_LOCAL, UPLOAD_NAME]
                meta['upload'] = dict(local=UPLOAD_LOCAL, remote=UPLOAD_NAME, protocol='sftp v3',
                                      size=len(UPLOAD_CONTENT),
                                      sha256=hashlib.sha256(UPLOAD_CONTENT).hexdigest())
            else:
                raise ValueError(a)
        else:
            meta.update(client='AsyncSSH escrow_client.py (escrowing)',
                        server='%s sshd' % SSH_VERSION,
                        user=USER_B,
                        auth='password (wrong)' if s['action'] == 'authfail'
                        else ('publickey rsa-sha2-512 (RSA-3072), sshd RSA host key only'
                              if s.get('sshd') == 'rsa' else 'publickey ssh-ed25519'))
            cmd = client_cmd_b(s, prefix)
            a = s['action']
            if a == 'shell':
                cmd = ['expect', os.path.join(TOOLS, 'shell_session.exp')] + cmd + ['--shell']
                env['CORPUS_TYPING_LOG'] = prefix + '.typed.tsv'
                env['CORPUS_MARK'] = MARK
            elif a in ('exec', 'exec_zlib'):
                c = EXEC_CMD if a == 'exec' else ZLIB_CMD
                cmd += ['--exec', c]
                meta['command'] = c
            elif a == 'sftp':
                cmd += ['--sftp-put', UPLOAD_LOCAL, SFTP_B_REMOTE]
                meta['upload'] = dict(local=UPLOAD_LOCAL,
                                      remote=SFTP_B_REMOTE,
                                      protocol='sftp v3', size=len(UPLOAD_CONTENT),
                                      sha256=hashlib.sha256(UPLOAD_CONTENT).hexdigest())
            elif a == 'sftp_tour':
                back = os.path.join(WORK, 'sftp-back-' + UPLOAD_NAME)
                cmd += ['--sftp-tour', UPLOAD_LOCAL, '', back]
                meta['sftp_tour'] = dict(dir='', name=UPLOAD_NAME, size=len(UPLOAD_CONTENT),
                                         sha256=hashlib.sha256(UPLOAD_CONTENT).hexdigest())
            elif a == 'authfail':
                cmd += ['--exec', 'echo %s-not-run' % MARK]
                meta['password_sent'] = [WRONG_PASS_B]
            else:
                raise ValueError(a)
        meta['client_cmdline'] = cmd
        t0 = time.time()
        with open(prefix + '.transcript.txt', 'wb') as tf:
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=tf,
                               stderr=subprocess.STDOUT, timeout=180)
        meta['client_rc'] = r.returncode
        meta['duration_s'] = round(time.time() - t0, 2)
        time.sleep(0.8)
    finally:
        stop(server)
        stop(agent)
        time.sleep(0.3)
        stop(tcpd, signal.SIGINT)
    # what was sent (facts of this run; expected results are for the project's own manifests)
    if s['action'] == 'shell':
        meta['typed'] = [dict(bytes=t, note=n) for t, n in SHELL_TYPED]
    elif s['action'] == 'authfail':
        meta['auth_attempt'] = 'wrong password'
    # escrow summary
    recs = []
    if os.path.exists(prefix + '.escrow.jsonl'):
        recs = [json.loads(l) for l in open(prefix + '.escrow.jsonl') if l.strip()]
    meta['escrow_records'] = len(recs)
    if recs:
        r0 = recs[0]
        meta['negotiated'] = dict(kex=r0['kex_alg'], c2s=r0['c2s']['cipher'],
                                  c2s_mac=r0['c2s']['mac'], s2c=r0['s2c']['cipher'],
                                  s2c_mac=r0['s2c']['mac'],
                                  comp_c2s=r0['c2s']['compression'],
                                  comp_s2c=r0['s2c']['compression'],
                                  strict_kex=r0['strict_kex'],
                                  client_version=r0['client_version'],
                                  server_version=r0['server_version'],
                                  client_cookie=r0['client_cookie'],
                                  server_cookie=r0['server_cookie'])
    if 'upload' in meta:
        ok = os.path.exists(up_target) and \
            hashlib.sha256(open(up_target, 'rb').read()).hexdigest() == meta['upload']['sha256']
        meta['upload']['verified_on_server'] = ok
    meta['client_cmdline_str'] = ' '.join(shlex.quote(c) for c in meta['client_cmdline'])
    meta['pcap_size'] = os.path.getsize(pcap)
    meta['pcap_sha256'] = sha256_file(pcap)
    for ext in ('.server.log', '.pcap.tcpdump.log'):
        if os.path.exists(prefix + ext):
            # keep the server log (auth attempts) but drop tcpdump chatter
            if ext == '.pcap.tcpdump.log':
                os.unlink(prefix + ext)
    with open(prefix + '.meta.json', 'w') as fh:
        json.dump(meta, fh, indent=2)
    log('%-45s rc=%s size=%d escrow=%d' % (name, meta['client_rc'], meta['pcap_size'],
                                           len(recs)))
    return meta


def prepare():
    os.makedirs(PCAPS, exist_ok=True)
    os.makedirs(os.path.join(WORK, 'upload'), exist_ok=True)
    os.makedirs(os.path.join(WORK, 'sshd'), exist_ok=True)
    with open(UPLOAD_LOCAL, 'wb') as fh:
        fh.write(UPLOAD_CONTENT)
    os.makedirs(SFTP_B_DIR, exist_ok=True)
    os.chmod(WORK, 0o755)        # shells of setup a run as 'nobody' with their cwd below WORK
    up_dir = os.path.join(OUT, 'upload')
    os.makedirs(up_dir, exist_ok=True)
    shutil.copy(UPLOAD_LOCAL, os.path.join(up_dir, UPLOAD_NAME))
    askpass = os.path.join(WORK, 'askpass.sh')
    with open(askpass, 'w') as fh:
        fh.write('#!/bin/sh\nprintf \'%s\\n\' "${CORPUS_PASSWORD}"\n')
    os.chmod(askpass, 0o755)
    d = os.path.join(WORK, 'sshd')
    if not os.path.exists(os.path.join(d, 'ssh_host_ed25519_key')):
        subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C',
                               'capture-sshd', '-f', os.path.join(d, 'ssh_host_ed25519_key')])
    if not os.path.exists(os.path.join(d, 'client_ed25519')):
        subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C',
                               'capture-client-b', '-f', os.path.join(d, 'client_ed25519')])
    for kf, args in (('ssh_host_rsa_key', ['-t', 'rsa', '-b', '3072', '-C', 'capture-sshd-rsa']),
                     ('client_rsa', ['-t', 'rsa', '-b', '3072', '-C', 'capture-client-b-rsa'])):
        if not os.path.exists(os.path.join(d, kf)):
            subprocess.check_call(['ssh-keygen', '-q', '-N', ''] + args + ['-f', os.path.join(d, kf)])
    shutil.copy(os.path.join(d, 'client_ed25519.pub'), os.path.join(d, 'authorized_keys'))
    shutil.copy(os.path.join(d, 'client_rsa.pub'), os.path.join(d, 'authorized_keys_rsa'))
    tmpl = open(os.path.join(TOOLS, 'sshd_config.template')).read()
    with open(os.path.join(d, 'sshd_config'), 'w') as fh:
        fh.write(tmpl.replace('@WORK@', WORK).replace('@PORT@', str(PORT_B)))
    rsa = tmpl.replace('ssh_host_ed25519_key', 'ssh_host_rsa_key') \
              .replace('sshd.pid', 'sshd-rsa.pid') \
              .replace('authorized_keys', 'authorized_keys_rsa')
    with open(os.path.join(d, 'sshd_config_rsa'), 'w') as fh:
        fh.write(rsa.replace('@WORK@', WORK).replace('@PORT@', str(PORT_B_RSA)))


def main():
    only = set(sys.argv[1:])
    if os.geteuid() != 0:
        sys.exit('run as root (tcpdump on lo, sshd, run-as nobody)')
    prepare()
    sshd = sshd_rsa = None
    metas = []
    try:
        todo = [s for s in SESSIONS if not only or s['name'] in only or s['setup'] in only]
        todo += [s for s in BENCH_SESSIONS if s['name'] in only]
        if any(s['setup'] == 'b' and not s.get('sshd') for s in todo):
            sshd = start_sshd()
        if any(s.get('sshd') == 'rsa' for s in todo):
            sshd_rsa = start_sshd('sshd_config_rsa', PORT_B_RSA)
        for s in todo:
            metas.append(run_session(s))
    finally:
        stop(sshd)
        stop(sshd_rsa)
    # merge with the existing run records (when only a subset was regenerated)
    runs_path = os.path.join(OUT, 'sessions.json')
    records = {}
    if os.path.exists(runs_path):
        records = {m["name"]: m for m in json.load(open(runs_path))}
    for m in metas:
        records[m["name"]] = m
    order = [s['name'] for s in SESSIONS + BENCH_SESSIONS]
    with open(runs_path, "w") as fh:
        json.dump([records[n] for n in order if n in records], fh, indent=2)
    # combined key logs
    with open(os.path.join(PCAPS, 'all.keylog'), 'w') as out:
        for n in order:
            p = os.path.join(PCAPS, n + '.keylog')
            if os.path.exists(p):
                out.write(open(p).read())
    with open(os.path.join(PCAPS, 'all.ss.keylog'), 'w') as out:
        for n in order:
            p = os.path.join(PCAPS, n + '.ss.keylog')
            if os.path.exists(p):
                out.write(open(p).read())
    params = ['MARK=' + MARK, 'SSH_USER_A=' + USER_A, 'SSH_PASS_A=' + PASS_A,
              'SSH_WRONG_PASS_A=' + WRONG_PASS_A, 'SSH_USER_B=' + USER_B,
              'SSH_WRONG_PASS_B=' + WRONG_PASS_B, 'PORT_A=%d' % PORT_A, 'PORT_B=%d' % PORT_B,
              'PORT_B_RSA=%d' % PORT_B_RSA, 'UPLOAD=upload/' + UPLOAD_NAME]
    with open(os.path.join(OUT, 'params.txt'), 'w') as fh:
        fh.write('# values used for the last run (typed/executed content: gen_corpus.py, shell_session.exp)\n')
        fh.write('\n'.join(params) + '\n')
    log('%d session(s) in %s' % (len(metas), PCAPS))
    log('parameters (also in %s):' % os.path.join(OUT, 'params.txt'))
    for p in params:
        log('  ' + p)


if __name__ == '__main__':
    main()
