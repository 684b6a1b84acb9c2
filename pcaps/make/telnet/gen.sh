#!/bin/bash
# sessiontap Telnet corpus: real telnetd servers, real telnet clients driven by expect at human pace,
# one tcpdump capture per scenario.  Run as root on Debian 12, inside a private network namespace so
# no other loopback traffic lands in the captures (install the packages first: the namespace has no
# route to the package mirrors):
#
#   apt-get install --no-upgrade inetutils-telnetd inetutils-telnet inetutils-inetd expect tcpdump \
#       tshark vim-tiny sudo procps iproute2 python3
#   apt-get download busybox-static && dpkg-deb -x busybox-static_*.deb bbx   # -> bbx/bin/busybox
#   BUSYBOX_STATIC=$PWD/bbx/bin/busybox unshare -n sh -c 'ip link set lo up && exec bash pcaps/make/telnet/gen.sh'
#
#   bash gen.sh [OUTDIR]          # default OUTDIR: pcaps/telnet of this repository
#
# Parameters (environment; all optional; the defaults are the values the committed corpus and its
# manifest were made with, so keep them unless you also regenerate the manifest):
#   OUT             output directory (or first argument)
#   MARK            tag put into every typed marker command (default: st; [A-Za-z0-9_-] only)
#   TN_USER/TN_PASS       main test account (default tndemo / fixed throwaway password)
#   TN_USER2/TN_PASS2     second account, used by the concurrent-sessions scenario (tndemo2 / fixed)
#   TN_BAD_USER/TN_BAD_PASS  non-existent account tried first in the failed-login scenario
#   TN_WRONG_PASS   wrong password tried for TN_USER in the failed-login scenario
#   TN_SLEEP        N of the "sleep N" command interrupted by Ctrl-C (default 5)
#   TN_HOST         address the servers listen on and the clients connect to (default 127.0.0.1)
#   P_INETUTILS     inetutils telnetd port (default 2323);  P_BUSYBOX busybox telnetd port (default 2324)
#   BUSYBOX_STATIC  path of a busybox-static binary to use (default: fetched with apt-get download)
#   WORK            scratch directory (default: mktemp -d, removed after a successful run)
#   KEEP_WORK=1     keep the scratch directory (client terminal logs, params.txt, tcpdump logs)
#
# What it does (everything stays on TN_HOST, the two ports only):
#   * installs the Debian packages above if missing (works only outside a fresh namespace)
#   * extracts busybox-static (has telnetd + telnet) into the scratch dir; the system busybox is untouched
#   * creates the two test users (or resets their passwords): throwaway accounts, never real ones
#   * runs inetutils telnetd via a private inetutils-inetd on TN_HOST:P_INETUTILS
#     and busybox telnetd -F -b TN_HOST:P_BUSYBOX -l /bin/login
#   * drives the real clients with expect (scripts/*.exp), one tcpdump -i lo -s 0 capture per scenario
#   * derives damaged copies t5a/t5b/t5c from t1 (scripts/alter.py: editcap + mergecap) and the
#     picked-up session t6 from t2 (scripts/cut_pickup.py), recording exactly what was changed in
#     alterations.json
#   * writes manifest.json (scripts/make_manifest.py: from the parameters and alterations.json only)
# Captures are real and therefore not byte-identical between runs (timestamps, ports, ISNs, uid,
# hostname, kernel version, top output differ).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-${OUT:-$HERE/../../telnet}}
SCR=$HERE/scripts

[ "$(id -u)" = 0 ] || { echo "run as root (tcpdump on lo, telnetd, useradd)" >&2; exit 1; }

export MARK=${MARK:-st}
[[ $MARK =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || { echo "MARK may contain only letters, digits, _ and -" >&2; exit 1; }
# Fixed throwaway passwords (generated once): tests and the manifest rely on them, and the accounts
# exist only on the generating machine, created by this script.
export TN_USER=${TN_USER:-tndemo}       TN_PASS=${TN_PASS:-Pw-k7Qm2xR9vL}
export TN_USER2=${TN_USER2:-tndemo2}    TN_PASS2=${TN_PASS2:-Pw-h3Zt8nWq5Y}
export TN_BAD_USER=${TN_BAD_USER:-nosuchuser} TN_BAD_PASS=${TN_BAD_PASS:-Pw-b4Ns6jXc1U}
export TN_WRONG_PASS=${TN_WRONG_PASS:-Pw-w9Ep3fKr7H}
export TN_SLEEP=${TN_SLEEP:-5}
export TN_HOST=${TN_HOST:-127.0.0.1}
export P_INETUTILS=${P_INETUTILS:-2323} P_BUSYBOX=${P_BUSYBOX:-2324}
export TN_PORT=$P_INETUTILS TN_BB_PORT=$P_BUSYBOX
for u in "$TN_USER" "$TN_USER2" "$TN_BAD_USER"; do
  [[ $u =~ ^[a-z_][a-z0-9_-]*$ ]] || { echo "bad user name '$u'" >&2; exit 1; }
done
id "$TN_BAD_USER" >/dev/null 2>&1 && { echo "TN_BAD_USER '$TN_BAD_USER' exists; it must not" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${WORK:-}" ]; then mkdir -p "$WORK"; else WORK=$(mktemp -d); fi
chmod 1777 "$WORK"              # apt-get download runs as _apt

# ---------------------------------------------------------------- dependencies
need=()
for pair in telnetd:inetutils-telnetd telnet:inetutils-telnet inetutils-inetd:inetutils-inetd \
            expect:expect tcpdump:tcpdump tshark:tshark editcap:wireshark-common mergecap:wireshark-common \
            vi:vim-tiny sudo:sudo python3:python3 top:procps ss:iproute2 login:login; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-upgrade "${need[@]}"
fi
BB=${BUSYBOX_STATIC:-$WORK/busybox-static}
# busybox-static (it has telnetd; Debian's plain busybox does not). Extracted only, not installed,
# so the system busybox package stays as it is.
if [ ! -x "$BB" ]; then
  BB=$WORK/busybox-static
  ( cd "$WORK" \
    && { apt-get download busybox-static >/dev/null 2>&1 \
         || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get download busybox-static >/dev/null 2>&1; }; } \
    && dpkg-deb -x busybox-static_*.deb bbx && cp bbx/bin/busybox "$BB" && rm -rf bbx busybox-static_*.deb )
fi
"$BB" --list | grep -qx telnetd || { echo "busybox-static has no telnetd" >&2; exit 1; }

# ---------------------------------------------------------------- users
for u in "$TN_USER" "$TN_USER2"; do id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"; done
printf '%s:%s\n%s:%s\n' "$TN_USER" "$TN_PASS" "$TN_USER2" "$TN_PASS2" | chpasswd

# ---------------------------------------------------------------- servers
for p in $P_INETUTILS $P_BUSYBOX; do
  if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p is busy" >&2; exit 1; fi
done
PIDS=()
OK=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$OK" = 1 ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "scratch kept in $WORK" >&2; fi
}
trap cleanup EXIT
echo "$TN_HOST:$P_INETUTILS stream tcp nowait root /usr/sbin/telnetd telnetd" > "$WORK/inetd.conf"
/usr/sbin/inetutils-inetd -d --pidfile="$WORK/inetd.pid" "$WORK/inetd.conf" > "$WORK/inetd.log" 2>&1 &
PIDS+=($!)
"$BB" telnetd -F -b "$TN_HOST:$P_BUSYBOX" -l /bin/login > "$WORK/bbtelnetd.log" 2>&1 &
PIDS+=($!)
for i in $(seq 50); do
  ss -Hltn "sport = :$P_INETUTILS" | grep -q . && ss -Hltn "sport = :$P_BUSYBOX" | grep -q . && break; sleep 0.1
done

# ---------------------------------------------------------------- capture helper
# cap NAME EXPECT-SCRIPT [extra expect args]  -> $OUT/NAME.pcap + $OUT/NAME.client.log
cap() {
  local name=$1 exp=$2; shift 2
  local pcap=$OUT/$name.pcap err=$WORK/$name.tcpdump.err
  tcpdump -i lo -s 0 -U -Z root -w "$pcap" \
    "tcp and host $TN_HOST and (port $P_INETUTILS or port $P_BUSYBOX)" 2>"$err" &
  local tp=$!
  for i in $(seq 100); do grep -q listening "$err" && break; sleep 0.1; done
  sleep 0.5
  echo "== $name"
  TERM=xterm expect "$SCR/$exp" "$WORK/$name.client.log" "$@" > "$WORK/$name.expect.out" 2>&1 || {
    echo "expect failed for $name (see $WORK/$name.expect.out)" >&2; kill -INT $tp; exit 1; }
  sleep 1.5                       # let FIN/ACK and last echoes land
  kill -INT $tp; wait $tp || true
  grep -E 'captured|dropped' "$err" | tr '\n' ' '; echo
}

cap t1_inetutils_full_session          t1_full.exp
cap t2_failed_then_success             t2_failed_login.exp
cap t3a_inetutils_linemode             t3a_linemode.exp
cap t3b_busybox_server                 t3b_busybox_server.exp
cap t3c_busybox_client_env_user        t3c_busybox_client.exp "$BB"
cap t4_two_concurrent_sessions         t4_concurrent.exp

# ---------------------------------------------------------------- damaged copies of t1, picked-up t6
# t5b swaps the last two keys of the first marker command; t5c duplicates the segment that carries
# the output line of the backspace-corrected command (see scripts/t1_full.exp).
python3 "$SCR/alter.py" "$OUT/t1_inetutils_full_session.pcap" "$P_INETUTILS" "$OUT" \
  "echo $MARK-t1-first" "$MARK-t1-bs-ok" > "$WORK/alter.t5.json"
# t6: t2 without its handshake and first failed login (starts at the second "login: " prompt)
python3 "$SCR/cut_pickup.py" "$OUT/t2_failed_then_success.pcap" "$P_INETUTILS" \
  "$OUT/t6_pickup_without_syn.pcap" > "$WORK/alter.t6.json"
python3 - "$WORK/alter.t5.json" "$WORK/alter.t6.json" > "$OUT/alterations.json" <<'PY'
import json, sys
merged = {}
for p in sys.argv[1:]:
    merged.update(json.load(open(p)))
merged.pop("source", None)
print(json.dumps(merged, indent=2))
PY

# ---------------------------------------------------------------- sanity: markers visible in the raw streams
check() {  # check FILE STRING...: each STRING in one direction of stream 0 or 1 (tshark follow, raw)
  python3 - "$OUT/$1" "${@:2}" <<'PY' || exit 1
import re, subprocess, sys
path, needles = sys.argv[1], sys.argv[2:]
out = subprocess.run(["tshark", "-r", path, "-q", "-z", "follow,tcp,raw,0", "-z", "follow,tcp,raw,1"],
                     capture_output=True, text=True).stdout
dirs = {0: b"", 1: b""}
for line in out.splitlines():
    if re.fullmatch(r"\t?(?:[0-9a-f]{2})+", line):      # data rows; a leading tab marks node 1
        dirs[line.startswith("\t")] += bytes.fromhex(line.strip())
for n in needles:
    if not any(n.encode() in d for d in dirs.values()):
        sys.exit(f"MISSING {n!r} in {path.rsplit('/', 1)[-1]}")
PY
}
M=$MARK
check t1_inetutils_full_session.pcap "$M-t1-first" "$M-t1-bs-ok" 'uid=' GNU/Linux 'PID USER' "$M-t1-vi.txt"
check t2_failed_then_success.pcap 'Login incorrect' "$M-t2-after-fail" 'Permission denied' 'sudo:'
check t3a_inetutils_linemode.pcap "echo $M-t3a-line" "echo $M-t3a-bs-ok"
check t3b_busybox_server.pcap "$M-t3b-bbserver" "$M-t3b-bs-ok"
check t3c_busybox_client_env_user.pcap "$M-t3c-bbclient" "$M-t3c-bs-ok"
check t4_two_concurrent_sessions.pcap "$M-t4-a-one" "$M-t4-b-two"
check t6_pickup_without_syn.pcap "$M-t2-after-fail"

# ---------------------------------------------------------------- manifest (from parameters + alterations only)
python3 "$SCR/make_manifest.py" "$OUT/alterations.json" > "$OUT/manifest.json"
( cd "$OUT" && sha256sum ./*.pcap > SHA256SUMS )

cat > "$WORK/params.txt" <<EOF
# values used for this run (the typed content of each scenario is in scripts/t*.exp)
MARK=$MARK
TN_HOST=$TN_HOST
P_INETUTILS=$P_INETUTILS
P_BUSYBOX=$P_BUSYBOX
TN_USER=$TN_USER
TN_PASS=$TN_PASS
TN_USER2=$TN_USER2
TN_PASS2=$TN_PASS2
TN_BAD_USER=$TN_BAD_USER
TN_BAD_PASS=$TN_BAD_PASS
TN_WRONG_PASS=$TN_WRONG_PASS
TN_SLEEP=$TN_SLEEP
EOF
OK=1
echo "done: $(ls "$OUT"/*.pcap | wc -l) pcaps, $(du -cb "$OUT"/*.pcap | tail -1 | cut -f1) bytes in $OUT"
grep -v '^#' "$WORK/params.txt" | sed 's/^/  /'
