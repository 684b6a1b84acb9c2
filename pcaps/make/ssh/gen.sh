#!/usr/bin/env bash
# Escrowed SSH captures for sessiontap's test corpus (pcaps/ssh/), on Debian 12, as root.
# Real OpenSSH client/server on one side, an escrowing asyncssh endpoint on the other; every
# session runs inside a private network namespace so no other loopback traffic is captured.
#
#   pcaps/make/ssh/gen.sh                    # all sessions -> pcaps/ssh/ (+ manifest.json)
#   pcaps/make/ssh/gen.sh a01_shell_curve25519_aes128ctr b   # only some (names / setup letters)
#
# Environment (optional): OUT (run records, scratch output; default: a temp dir), DEST (default:
# pcaps/ssh of this repository), MARK (default demo), VENV (python venv with the pinned asyncssh;
# default: pcaps/make/ssh/.venv), PORT_A/PORT_B/PORT_B_RSA (2222/2223/2224), KEEP_WORK=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
export DEST="${DEST:-$REPO/pcaps/ssh}"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

if [ -z "${SSHGEN_IN_NETNS:-}" ]; then
    # --- outside the namespace: everything that needs the package mirrors
    missing=0
    for c in ssh scp tshark editcap tcpdump expect unshare ss python3 ip; do
        command -v "$c" >/dev/null 2>&1 || missing=1
    done
    [ -x /usr/sbin/sshd ] || missing=1
    if [ "$missing" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-upgrade \
            openssh-client openssh-server tshark tcpdump expect python3-venv iproute2 util-linux
    fi
    VENV="${VENV:-$HERE/.venv}"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    # asyncssh internals are monkeypatched (escrow hook): keep the tested version pinned
    "$VENV/bin/python" -m pip install -q 'asyncssh==2.24.1' 'cryptography==50.0.2' 'numpy>=1.26'
    export VENV
    export OUT="${OUT:-$(mktemp -d)}"
    exec unshare -n env SSHGEN_IN_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi

# --- inside the private network namespace
export CORPUS_PY="$VENV/bin/python"
mkdir -p "$OUT" "$DEST"
if [ -z "${CORPUS_WORK:-}" ]; then CORPUS_WORK="$(mktemp -d)"; CLEAN_WORK=1; else CLEAN_WORK=; fi
export CORPUS_WORK

echo "== versions"
ssh -V 2>&1
tshark --version 2>/dev/null | head -1
"$CORPUS_PY" -c 'import asyncssh, cryptography; print("asyncssh", asyncssh.__version__, "cryptography", cryptography.__version__)'
echo "== sntrup761 self-test"
"$CORPUS_PY" "$HERE/sntrup761.py"

echo "== capturing sessions"
"$CORPUS_PY" "$HERE/gen_corpus.py" "$@"
echo "== publishing captures, key files and manifest into $DEST"
"$CORPUS_PY" "$HERE/publish.py" "$OUT" "$DEST"

if [ -n "$CLEAN_WORK" ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$CORPUS_WORK"; else echo "scratch kept in $CORPUS_WORK"; fi
echo "== done: $DEST (run records in $OUT)"
