#!/bin/bash
# Build a large, realistic "mirror-port" capture for throughput and memory benchmarks.
# The output is big and machine-made: never commit it; build it on demand.
#
#   sudo bash benchmarks/make_mix.sh [OUTDIR]                 # ~1 GB: BG_MB=930 SESSIONS=1600
#   sudo BG_MB=30 SESSIONS=50 bash benchmarks/make_mix.sh /tmp/mix-small
#
# OUTDIR (argument or environment) defaults to ${TMPDIR:-/tmp}/sessiontap-mix; it gets big.pcap and
# big.capinfos.txt (plus work/, the intermediate files: about 2.5 x BG_MB in all).
#
# Needs root (unshare -n -p -f, tcpdump) and the Debian packages tcpdump tshark (editcap, mergecap,
# capinfos) tcpreplay (tcprewrite, tcpprep) curl python3 iproute2 util-linux.
#
# 1. Background bulk TCP: python3 http.server on 127.0.0.1:8080/8081 + curl clients, captured with
#    tcpdump inside a private network + PID namespace whose loopback has MTU 1500 and GSO off, so
#    frames are <= 1514 bytes as on a real mirror port (the host's lo is not touched).  Mix: 4
#    rate-limited bulk downloaders (10-100 MB objects) + 2 loops of short fetches (1 KB-1 MB, one
#    connection per request) until the capture reaches BG_MB.  Checksums are then fixed
#    (tcprewrite --fixcsum), as a mirror port would show them.
# 2. Interactive sessions: the project's real Telnet captures (TELNET_DIR, default pcaps/telnet of
#    this repository; TELNET_GLOB picks which, default the clean ones t1-t4) are replayed SESSIONS
#    times: server port -> 23, client port -> unique, client IP -> unique 127.x.y.z, server IP ->
#    127.0.0.23 (127.0.0.24 for the busybox server), TCP ISNs re-randomised (tcprewrite), and each
#    copy time-shifted (editcap -t) to a random start inside the background capture window.
#    TELNET_PORTS lists the telnet server ports used in those captures (default 2323,2324).
# 3. mergecap (chronological) of everything -> big.pcap (classic pcap, Ethernet, usec).
#
# Parameters: OUTDIR, TELNET_DIR, TELNET_GLOB, TELNET_PORTS, BG_MB (930), SESSIONS (1600),
# SEED (42: start-time offsets), BULK_RATE (1500K per bulk downloader).
# Replayed copies carry the same typed content: tell sessions apart by 4-tuple, not by content.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUTDIR=${1:-${OUTDIR:-${TMPDIR:-/tmp}/sessiontap-mix}}
TELNET_DIR=${TELNET_DIR:-$HERE/../pcaps/telnet}
TELNET_GLOB=${TELNET_GLOB:-t[1-4]*.pcap}
TELNET_PORTS=${TELNET_PORTS:-2323,2324}
BG_MB=${BG_MB:-930}          # size of the background capture (MB, 10^6)
SESSIONS=${SESSIONS:-1600}   # number of replayed interactive captures
SEED=${SEED:-42}
BULK_RATE=${BULK_RATE:-1500K}  # per bulk downloader (curl --limit-rate)
[ "$(id -u)" = 0 ] || { echo "run as root (unshare, tcpdump)" >&2; exit 1; }
# shellcheck disable=SC2086
ls "$TELNET_DIR"/$TELNET_GLOB >/dev/null 2>&1 || { echo "no telnet captures $TELNET_GLOB in $TELNET_DIR (set TELNET_DIR)" >&2; exit 1; }
PORTMAP=$(sed 's/,/:23,/g; s/$/:23/' <<<"$TELNET_PORTS")
W=$OUTDIR/work
mkdir -p "$OUTDIR" "$W"
for t in tcpdump tshark editcap mergecap capinfos tcprewrite tcpprep curl python3 unshare ip; do
  command -v $t >/dev/null || { echo "missing $t (apt-get install tcpdump tshark tcpreplay curl python3 iproute2)" >&2; exit 1; }
done

# ------------------------------------------------------------------ 1. background bulk traffic
WWW=$W/www; mkdir -p "$WWW"
for s in 1K:1024 10K:10240 100K:102400 1M:1048576 10M:10485760 50M:52428800 100M:104857600; do
  f=$WWW/obj_${s%%:*}.bin; [ -s "$f" ] || head -c "${s#*:}" /dev/urandom > "$f"
done
# small HTML-ish text objects too (compressible, realistic page fetches)
for i in $(seq 1 20); do f=$WWW/page_$i.html; [ -s "$f" ] || { for j in $(seq 1 $((i*40))); do echo "<p>row $j of page $i: lorem ipsum dolor sit amet</p>"; done > "$f"; }; done

cat > "$W/bg_inner.sh" <<'EOS'
#!/bin/bash
# runs under `unshare -n -p -f`: private loopback, private PID namespace (all children die with it)
set -u
W=$1; BG_MB=$2; BULK_RATE=$3; SEED=$4
ip link set lo up
ip link set lo mtu 1500
ip link set lo gso_max_segs 1 2>/dev/null || true
ip link set lo gso_max_size 1500 2>/dev/null || true
python3 -m http.server 8080 --bind 127.0.0.1 --directory "$W/www" >/dev/null 2>&1 & S1=$!
python3 -m http.server 8081 --bind 127.0.0.1 --directory "$W/www" >/dev/null 2>&1 & S2=$!
rm -f "$W/bg.pcap" "$W/stop"
tcpdump -i lo -s 0 -B 262144 -Z root -w "$W/bg.pcap" 'tcp and (port 8080 or port 8081)' 2>"$W/bg.tcpdump.err" & TP=$!
for i in $(seq 100); do grep -q listening "$W/bg.tcpdump.err" 2>/dev/null && break; sleep 0.1; done
sleep 1
PIDS=()
bulk() {  # bulk downloader n
  local n=$1 k=0; local objs=(obj_100M.bin obj_10M.bin obj_50M.bin obj_10M.bin obj_100M.bin obj_1M.bin)
  while [ ! -e "$W/stop" ] && [ $k -lt 200 ]; do
    curl -s -o /dev/null --limit-rate "$BULK_RATE" "http://127.0.0.1:$((8080 + n % 2))/${objs[$(( (k + n) % 6 ))]}" &
    echo $! > "$W/curl.bulk$n.pid"; wait $! || true
    k=$((k+1))
  done
}
small() { # many short connections
  local n=$1 k=0; RANDOM=$((SEED + n))
  local objs=(obj_1K.bin obj_10K.bin obj_100K.bin obj_1M.bin page_1.html page_5.html page_10.html page_20.html)
  while [ ! -e "$W/stop" ] && [ $k -lt 100000 ]; do
    curl -s -o /dev/null "http://127.0.0.1:$((8080 + k % 2))/${objs[$((RANDOM % 8))]}" || true
    sleep 0.0$((RANDOM % 10)); k=$((k+1))
  done
}
for n in 0 1 2 3; do bulk $n & PIDS+=($!); sleep 0.3; done
for n in 0 1; do small $n & PIDS+=($!); done
limit=$((BG_MB * 1000000)); t0=$(date +%s)
while :; do
  sz=$(stat -c %s "$W/bg.pcap" 2>/dev/null || echo 0)
  [ "$sz" -ge "$limit" ] && break
  [ $(( $(date +%s) - t0 )) -ge 900 ] && { echo "background: time cap reached at $sz bytes" >&2; break; }
  sleep 0.5
done
touch "$W/stop"
sleep 2                        # let in-flight small fetches finish; bulk ones are cut (capture window end)
kill -INT $TP; wait $TP 2>/dev/null
for n in 0 1 2 3; do kill "$(cat "$W/curl.bulk$n.pid" 2>/dev/null)" 2>/dev/null; done   # cut running bulk downloads
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done; rm -f "$W"/curl.bulk*.pid
kill $S1 $S2 2>/dev/null
wait 2>/dev/null
cat "$W/bg.tcpdump.err" | grep -E 'captured|dropped'
EOS
chmod +x "$W/bg_inner.sh"
echo "[1/3] background bulk capture (target ${BG_MB} MB) ..."
unshare -n -p -f bash "$W/bg_inner.sh" "$W" "$BG_MB" "$BULK_RATE" "$SEED"
# loopback frames carry offloaded (invalid) TCP checksums; a mirror port would show valid ones
tcprewrite --fixcsum -i "$W/bg.pcap" -o "$W/bg.fix.pcap" && mv "$W/bg.fix.pcap" "$W/bg.pcap"
read -r BG_START BG_END < <(capinfos -T -r -S -a -e "$W/bg.pcap" | awk -F'\t' '{print $2, $3}')
echo "    bg.pcap: $(stat -c %s "$W/bg.pcap") bytes, $BG_START .. $BG_END"

# ------------------------------------------------------------------ 2. replayed interactive sessions
echo "[2/3] replaying $SESSIONS telnet sessions ..."
SRC=$W/src; CP=$W/copies; rm -rf "$SRC" "$CP"; mkdir -p "$SRC" "$CP"
srcs=()
for p in "$TELNET_DIR"/$TELNET_GLOB; do  # shellcheck disable=SC2086
  n=$(basename "$p" .pcap)
  tcprewrite --portmap="$PORTMAP" -i "$p" -o "$SRC/$n.pcap"
  tcpprep --port --pcap="$SRC/$n.pcap" --cachefile="$SRC/$n.cache"
  tshark -r "$SRC/$n.pcap" -T fields -e tcp.srcport -e tcp.dstport 2>/dev/null | tr '\t' '\n' | grep -vx 23 | sort -un > "$SRC/$n.cports"
  read -r s e < <(capinfos -T -r -S -a -e "$SRC/$n.pcap" | awk -F'\t' '{print $2, $3}')
  echo "$s $e" > "$SRC/$n.times"
  tshark -r "$SRC/$n.pcap" -q -z conv,tcp 2>/dev/null | grep -c '<->' > "$SRC/$n.nconn"
  srcs+=("$n")
done
nsrc=${#srcs[@]}
# deterministic pseudo-random start offsets (awk srand)
awk -v n="$SESSIONS" -v seed="$SEED" 'BEGIN{srand(seed); for(i=0;i<n;i++) printf "%.6f\n", rand()}' > "$W/rand.txt"
i=0
while read -r r; do
  n=${srcs[$((i % nsrc))]}
  read -r s e < "$SRC/$n.times"
  server=127.0.0.23; [[ $n == *busybox_server* ]] && server=127.0.0.24
  client=127.$((10 + i / 62500)).$(( (i / 250) % 250 )).$(( i % 250 + 1 ))
  pm=""; k=0
  while read -r cp; do pm+="${pm:+,}$cp:$(( 20000 + (i * 2 + k) % 40000 ))"; k=$((k+1)); done < "$SRC/$n.cports"
  tcprewrite --cachefile="$SRC/$n.cache" --endpoints="$client:$server" --portmap="$pm" \
    --tcp-sequence=$((i + 1)) --fixcsum -i "$SRC/$n.pcap" -o "$CP/tmp.pcap"
  off=$(awk -v r="$r" -v bs="$BG_START" -v be="$BG_END" -v s="$s" -v e="$e" \
        'BEGIN{d=e-s; span=be-bs-d; if(span<0)span=0; printf "%.6f", bs + r*span - s}')
  editcap -F pcap -t "$off" "$CP/tmp.pcap" "$CP/c$(printf %05d $i).pcap"
  EXPECT_CONN=$(( ${EXPECT_CONN:-0} + $(cat "$SRC/$n.nconn") ))
  i=$((i+1))
done < "$W/rand.txt"
rm -f "$CP/tmp.pcap"
# merge copies in batches (fd limits), then everything
( cd "$CP" && ls c*.pcap | split -l 200 - batch_ )
for b in "$CP"/batch_*; do mergecap -F pcap -w "$b.pcap" $(sed "s#^#$CP/#" "$b"); done
echo "[3/3] merging ..."
mergecap -F pcap -w "$OUTDIR/big.pcap" "$W/bg.pcap" "$CP"/batch_*.pcap
rm -rf "$CP" "$SRC"
capinfos -c -s -d -u -y -i -M "$OUTDIR/big.pcap" | tee "$OUTDIR/big.capinfos.txt"
tshark -r "$OUTDIR/big.pcap" -q -z conv,tcp 2>/dev/null | grep '<->' > "$W/conv.txt" || true
{
  echo "tcp conversations: $(wc -l < "$W/conv.txt")"
  echo "telnet connections (port 23): $(grep -c ':23 ' "$W/conv.txt") (expected $EXPECT_CONN from $SESSIONS replayed captures)"
} | tee -a "$OUTDIR/big.capinfos.txt"
