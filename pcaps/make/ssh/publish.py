#!/usr/bin/env python3
"""Copy the SSH captures and ONE escrow file per capture into pcaps/ssh/ and write manifest.json.

usage: publish.py OUT DEST

The expected results come from the scenario definitions (gen_corpus.SESSIONS, what was typed or
run) and from the run records the generator wrote (client exit codes, what the escrowing server
logged: auth attempts, the scp command line, sftp paths). Nothing here decodes the capture.

Which escrow form each capture carries is chosen in gen_corpus.SESSIONS['keys'] so that every
form the decoder reads is exercised:
  keylog      Wireshark 4.0 "<cookie> <private-key-hex>"
  pk.keylog   "<cookie> PRIVATE_KEY <hex>"  (newer Wireshark; we also accept ecdh-nistp scalars)
  ss.keylog   "<cookie> SHARED_SECRET <hex>"
  kh.jsonl    sessiontap escrow JSON lines with the cookies, K and H only
  keys.jsonl  sessiontap escrow JSON lines with the cookies and the six derived keys only
  escrow.jsonl the full deposit of the escrowing endpoint
"""
import hashlib
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('CORPUS_WORK', '/nonexistent')       # gen_corpus reads it at import
import gen_corpus as G  # noqa: E402

KH_FIELDS = ('record', 'label', 'role', 'kex_index', 'client_cookie', 'server_cookie', 'kex_alg',
             'K_encoding', 'K', 'H', 'session_id')


def reduce_records(recs, form):
    out = []
    for r in recs:
        if form == 'kh.jsonl':
            out.append({k: r[k] for k in KH_FIELDS if k in r})
        elif form == 'keys.jsonl':
            d = {k: r[k] for k in ('record', 'label', 'role', 'kex_index', 'client_cookie',
                                   'server_cookie', 'session_id')}
            for side in ('c2s', 's2c'):
                d[side] = {k: r[side][k] for k in ('cipher', 'mac', 'compression', 'iv',
                                                   'enc_key', 'mac_key')}
            out.append(d)
        else:
            out.append(r)
    return out


def transcript(pcaps, name):
    p = os.path.join(pcaps, name + '.transcript.txt')
    return open(p, errors='replace').read() if os.path.exists(p) else ''


def server_log(pcaps, name):
    p = os.path.join(pcaps, name + '.server.log')
    return open(p).read() if os.path.exists(p) else ''


def expected(s, meta, slog, transcript=''):
    """One manifest session from the scenario definition and the run record."""
    M = G.MARK
    a = s['action']
    up = dict(size=len(G.UPLOAD_CONTENT), sha256=hashlib.sha256(G.UPLOAD_CONTENT).hexdigest())
    user = G.USER_B if s['setup'] == 'b' else G.USER_A
    sess = dict(protocol='ssh', server_port=meta['port'], user=user, auth='success',
                auth_attempts=[], commands=[], not_commands=[], output_contains=[], tags=[],
                gaps=[], conflicts=0, picked_up=False, decrypted=True, status='complete',
                files=[], secrets=[],
                kex=s['kex'], cipher=s['cipher'], mac=s['mac'] or '<implicit>',
                compression=s['comp'], strict_kex=not s.get('no_strict', False),
                kex_count=meta.get('escrow_records', 1))
    method = 'password'
    if s['setup'] == 'b' and a != 'authfail':
        method = 'publickey'
    if s['setup'] in 'ac':
        sess['secrets'] = [G.PASS_A]
    if a == 'authfail':
        sess['auth'] = 'failure'
        wrong = G.WRONG_PASS_A if s['setup'] == 'a' else G.WRONG_PASS_B
        n = len(re.findall(r'-> FAIL', slog)) if s['setup'] == 'a' else 1
        sess['auth_attempts'] = [dict(user=user, method='password', result='failure')] * n
        sess['not_commands'] = ['echo %s-not-run' % M]
        sess['secrets'] = [wrong]
    else:
        sess['auth_attempts'] = [dict(user=user, method=method, result='success')]
    if a == 'shell':
        sess['commands'] = ['echo %s-shell' % M, 'id', 'echo %s-bs-ok' % M, 'sleep 30', 'exit']
        sess['output_contains'] = ['%s-shell' % M, '%s-bs-ok' % M, 'uid=']
        sess['not_commands'] = ['ecoh']
        sess['exit_status'] = 130
        sess['pty'] = dict(term='xterm', cols=80, rows=24)
    elif a in ('exec', 'exec_zlib', 'exec_rekey', 'exec_forward'):
        sess['commands'] = [meta['command']]
        sess['output_contains'] = {
            'exec': ['%s-exec' % M, 'Linux'],
            'exec_zlib': ['%s-zlib line 40 repetitive' % M],
            'exec_rekey': ['%s-rekey-line-1\n' % M, '%s-rekey-line-1500\n' % M],
            'exec_forward': ['%s-fwd' % M]}[a]
        sess['exit_status'] = 0
        if a == 'exec_forward':
            # what the client says (ssh -v) it requested
            said = transcript
            sess['tags'] = ['tunnel']
            sess['requests'] = [req for req, line in (
                ('auth-agent-req@openssh.com', 'Requesting authentication agent forwarding'),
                ('x11-req', 'Requesting X11 forwarding'),
                ('tcpip-forward', 'Remote connections from')) if line in said]
    elif a == 'stdio_forward':
        sess['tags'] = ['tunnel']
        sess['requests'] = ['direct-tcpip']
        sess['direct_tcpip'] = '127.0.0.1:9'
    elif a in ('scp', 'sftp'):
        paths = re.findall(r"sftp open path=b'([^']*)'", slog)
        path = paths[0] if paths else G.UPLOAD_NAME
        sess['files'] = [dict(direction='upload', path=path, method='sftp', **up)]
    elif a in ('scp_legacy', 'scp_legacy_get'):
        cmds = re.findall(r"scp command='([^']*)'", slog)
        sess['commands'] = cmds
        if a == 'scp_legacy':
            sess['files'] = [dict(direction='upload', path=G.UPLOAD_NAME, method='scp', **up)]
        else:
            sess['files'] = [dict(direction='download', path='dl-' + G.UPLOAD_NAME, method='scp',
                                  **up)]
    elif a == 'sftp_tour':
        sess['files'] = [dict(direction='upload', path=G.UPLOAD_NAME, method='sftp', **up),
                         dict(direction='download', path='sub/' + G.UPLOAD_NAME, method='sftp',
                              **up)]
        sess['sftp_ops'] = ['mkdir sub', 'write ' + G.UPLOAD_NAME,
                            'rename %s -> sub/%s' % (G.UPLOAD_NAME, G.UPLOAD_NAME),
                            'read sub/' + G.UPLOAD_NAME, 'remove sub/' + G.UPLOAD_NAME,
                            'rmdir sub']
    return sess


def main():
    out, dest = sys.argv[1], sys.argv[2]
    pcaps = os.path.join(out, 'pcaps')
    os.makedirs(dest, exist_ok=True)
    runs = {m['name']: m for m in json.load(open(os.path.join(out, 'sessions.json')))}
    man_path = os.path.join(dest, 'manifest.json')
    manifest = json.load(open(man_path)) if os.path.exists(man_path) else {}
    for s in G.SESSIONS + G.BENCH_SESSIONS:
        name = s['name']
        if name not in runs:
            continue
        meta = runs[name]
        form = s['keys']
        for old in os.listdir(dest):
            if old.startswith(name + '.'):
                os.unlink(os.path.join(dest, old))
        shutil.copy(os.path.join(pcaps, name + '.pcap'), os.path.join(dest, name + '.pcap'))
        keyfile = name + '.' + form
        if form.endswith('.jsonl'):
            recs = [json.loads(l) for l in open(os.path.join(pcaps, name + '.escrow.jsonl'))
                    if l.strip()]
            with open(os.path.join(dest, keyfile), 'w') as fh:
                for r in reduce_records(recs, form):
                    fh.write(json.dumps(r) + '\n')
        else:
            shutil.copy(os.path.join(pcaps, name + '.' + form), os.path.join(dest, keyfile))
        made_by = 'pcaps/make/ssh/gen.sh ' + name
        manifest[name + '.pcap'] = dict(
            description='%s: setup %s (%s -> %s), %s, kex %s, %s/%s, compression %s, strict kex %s'
                        % (name, s['setup'], meta.get('client', '').split(' (')[0],
                           meta.get('server', '').split(' (')[0], s['action'], s['kex'],
                           s['cipher'], s['mac'] or 'AEAD', s['comp'],
                           'off' if s.get('no_strict') else 'on'),
            made_by=made_by, oracle=True, tshark_decrypts=bool(s.get('oracle')),
            keys=keyfile, key_format=form, expect_error=None, client_rc=meta['client_rc'],
            sessions=[expected(s, meta, server_log(pcaps, name), transcript(pcaps, name))])
    with open(man_path, 'w') as fh:
        json.dump(dict(sorted(manifest.items())), fh, indent=1)
        fh.write('\n')
    print('manifest: %d captures' % len(manifest))


if __name__ == '__main__':
    main()
