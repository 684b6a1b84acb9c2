#!/bin/bash
# gen.sh - sessiontap's RDP corpus: real xfreerdp 2.11 -> xrdp 0.9.21 + xorgxrdp sessions on
# 127.0.0.1:3389, driven with xdotool, captured with tcpdump -i lo (port filter, so no other
# loopback traffic lands in the capture), plus the secrets needed to decrypt them passively.
# Adapted from the project's shared capture recipes; the outputs are committed in pcaps/rdp/ and
# described (by hand, from this script's parameters) in pcaps/rdp/manifest.json.
#
# Usage (as root, Debian 12, loopback only):
#   rdp/gen.sh setup              apt packages, test user, shims, server cert, helper venv
#   rdp/gen.sh capture ID [ID..]  ID = stdsec | tls12rsa | tls12ecdhe | tls13 | kbdde | kbdfr | video |
#                                      stdsecsalted | stdsecrekey | tls12cbc | tls12cbcmte | tls12chacha |
#                                      tls13chacha | nla | clipfile | drive
#   rdp/gen.sh captures           all sixteen captures
# (stdsecsalted: FreeRDP's default salted MACs, which Debian's xrdp rejects, so the session ends
#  after the Client Info PDU; stdsecrekey: > 4096 encrypted client packets, to cross a re-key)
# (drive: rdesktop, not xfreerdp: FreeRDP 2.11 drops xrdp's early RDPDR User Logged On PDU and
#  then announces no drive; see capture_drive)
# (video: xrdp with bulk_compression=false, so the graphics are renderable by PyRDP; it runs the
#  short layout script with the word "video" on a US keyboard)
# (clipfile: a file copied on the client (text/uri-list on the client display) and pasted on the
#  server, where xrdp-chansrv serves it through its FUSE mount ~/thinclient_drives/.clipboard:
#  reading that file there makes chansrv fetch it with cliprdr File Contents requests)
#   rdp/gen.sh all                setup + captures
#
# Environment overrides:
#   OUT            output directory (default: pcaps/rdp of this repository)
#   MARK           tag put into the typed marker line and the clipboard strings (default: st)
#   RDP_USER       throwaway test account (default: rdpdemo); RDP_PASS its password (default: a
#                  fixed generated-looking value, so the manifest and the tests are stable)
#   CNAME_PREFIX   client name prefix sent in the GCC client core data (default: DEV)
#   WORK           scratch directory (default: $TMPDIR/sessiontap-rdpgen); must be traversable
#                  by the test user; logs and screenshots stay there
#   VENV           python with cryptography + dpkt (default: the repository's .venv if usable,
#                  else a helper venv made in $WORK by setup)
#   CLIENT_DISPLAY Xvfb display for the client (default 19; xrdp sessions use :10 up)
#
# Only processes started here are stopped, always by PID.
set -euo pipefail

case "${1:-}" in setup|capture|captures|all) ;; *) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 2 ;; esac
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$TOOLS/../../.." && pwd)
OUT=${OUT:-$REPO/pcaps/rdp}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=${WORK:-${TMPDIR:-/tmp}/sessiontap-rdpgen}
if [ -z "${VENV:-}" ]; then
    if "$REPO/.venv/bin/python" -c 'import cryptography, dpkt' 2>/dev/null; then VENV=$REPO/.venv; else VENV=$W/venv; fi
fi
LOGS=$W/out-logs
CDISP=${CLIENT_DISPLAY:-19}
MARK=${MARK:-st}
[[ $MARK =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || { echo "MARK may contain only letters, digits, _ and -" >&2; exit 1; }
CNAME_PREFIX=${CNAME_PREFIX:-DEV}
RDP_USER=${RDP_USER:-rdpdemo}
RDP_PASS=${RDP_PASS:-Pw-q7Rt2xKm9Vb}
PORT=3389
TYPE_DELAY=90            # ms between typed characters (xdotool type --delay)

log() { printf '[gen %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- setup ----
do_setup() {
    [ "$(id -u)" = 0 ] || die "run as root"
    export DEBIAN_FRONTEND=noninteractive
    log "apt packages"
    [ -n "${SKIP_APT:-}" ] || apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    # xorgxrdp is the session backend for xrdp's [Xorg] section (Xvnc not needed)
    [ -n "${SKIP_APT:-}" ] || apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-upgrade \
        xrdp xorgxrdp freerdp2-x11 xvfb xdotool xclip xterm x11-xserver-utils \
        x11-utils fonts-dejavu-core tcpdump tshark gcc libc6-dev openssl \
        python3-venv python3-pil freerdp2-shadow-x11 winpr-utils rdesktop
    # On a systemd box the xrdp package starts its own xrdp/xrdp-sesman on 3389/3350
    # with /etc/xrdp config; this script runs private instances instead.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q xrdp 2>/dev/null; then
        log "stopping the packaged xrdp service (it holds port $PORT)"
        systemctl stop xrdp xrdp-sesman || true
    fi
    log "test user $RDP_USER"
    if ! id "$RDP_USER" >/dev/null 2>&1; then
        # -N -g users: Debian ships system *groups* such as 'operator' (gid 37), so a plain
        # `useradd <name>` fails whenever a group of that name already exists.
        useradd -m -s /bin/bash -N -g users -c "RDP capture test user" "$RDP_USER"
    fi
    mkdir -p "$W"/{etc,log,run,keys,clienthome} "$OUT"
    chmod 755 "$W" "$W/etc"
    [ -n "$RDP_PASS" ] || RDP_PASS=$(python3 -c 'import secrets,string; a=string.ascii_letters+string.digits; print("Pw-"+"".join(secrets.choice(a) for _ in range(10)))')
    echo "$RDP_USER:$RDP_PASS" | chpasswd
    ( umask 077; printf 'RDP_USER=%s\nRDP_PASS=%s\n' "$RDP_USER" "$RDP_PASS" > "$W/etc/credentials" )
    log "shims"
    gcc -shared -fPIC -O2 -Wall -o "$W/sslkeylog_shim.so" "$TOOLS/sslkeylog_shim.c" -ldl
    gcc -shared -fPIC -O2 -Wall -o "$W/freerdp_nosalt_shim.so" "$TOOLS/freerdp_nosalt_shim.c" -ldl
    install -m 755 "$TOOLS/session.sh" "$W/etc/session.sh"
    log "TLS server certificate (RSA-2048, self-signed)"
    if [ ! -s "$W/etc/server-key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/etc/server-key.pem" \
            -out "$W/etc/server-cert.pem" -days 3650 -subj "/CN=rdp-test-server" 2>/dev/null
    fi
    # sesman.ini: our own copy (logs in $W, our session script, no user WM,
    # Policy=Separate so a leftover session is never *reconnected*).
    sed -e "s|^LogFile=.*|LogFile=$W/log/sesman.log|" \
        -e 's|^EnableSyslog=.*|EnableSyslog=false|' \
        -e "s|^DefaultWindowManager=.*|DefaultWindowManager=$W/etc/session.sh|" \
        -e 's|^EnableUserWindowManager=.*|EnableUserWindowManager=false|' \
        -e 's|^Policy=.*|Policy=Separate|' \
        -e '/^\[ChansrvLogging\]/,/^\[/ s|^LogLevel=.*|LogLevel=DEBUG|' /etc/xrdp/sesman.ini > "$W/etc/sesman.ini"
    if ! "$VENV/bin/python" -c 'import cryptography, dpkt' 2>/dev/null; then
        log "helper venv at $VENV (rsakeys2pem.py: cryptography, timeline.py: dpkt)"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q 'cryptography>=41' 'dpkt==1.9.8'
    fi
}

# xrdp.ini for one capture: $1=out $2=security_layer $3=crypt_level
# $4=ssl_protocols $5=tls_ciphers (may be empty) $6=bulk_compression (default true)
mk_xrdp_ini() {
    cat > "$1" <<EOF
[Globals]
ini_version=1
fork=true
port=tcp://127.0.0.1:$PORT
use_vsock=false
tcp_nodelay=true
tcp_keepalive=true
security_layer=$2
crypt_level=$3
certificate=$W/etc/server-cert.pem
key_file=$W/etc/server-key.pem
ssl_protocols=$4
${5:+tls_ciphers=$5}
autorun=Xorg
allow_channels=true
allow_multimon=true
bitmap_cache=true
bitmap_compression=true
bulk_compression=${6:-true}
max_bpp=32
new_cursors=true
use_fastpath=both
hidelogwindow=true

[Logging]
LogFile=$W/log/xrdp.log
LogLevel=INFO
EnableSyslog=false

[Channels]
rdpdr=true
rdpsnd=true
drdynvc=true
cliprdr=true
rail=true
xrdpvr=true
tcutils=true

[Xorg]
name=Xorg
lib=libxup.so
username=ask
password=ask
ip=127.0.0.1
port=-1
code=20
EOF
}

# ------------------------------------------------------ process helpers ----
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
stop_pid() { # $1=pid $2=signal; waits up to 10 s, then SIGKILL
    local pid=$1 sig=${2:-TERM} i
    alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for i in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
port_busy() { ss -ltn "sport = :$1" | grep -q LISTEN; }

XVFB_PID= SESMAN_PID= XRDP_PID= TCPDUMP_PID= CLIENT_PID= CLIP_PID=
NLA_SERVER_PID= NLA_XTERM_PID= NLA_XVFB_PID=
cleanup() {
    stop_pid "$NLA_SERVER_PID"; stop_pid "$NLA_XTERM_PID"; stop_pid "$NLA_XVFB_PID"
    stop_pid "$CLIP_PID"; stop_pid "$CLIENT_PID"; stop_pid "$TCPDUMP_PID" INT; stop_pid "$XRDP_PID"
    stop_pid "$SESMAN_PID"; stop_pid "$XVFB_PID"
}

start_infra() {
    sh /usr/share/xrdp/socksetup        # /run/xrdp/sockdir for xrdp<->xorgxrdp sockets
    port_busy $PORT && die "port $PORT already in use"
    port_busy 3350 && die "sesman port 3350 already in use"
    [ -e "/tmp/.X11-unix/X$CDISP" ] && die "display :$CDISP in use"
    Xvfb ":$CDISP" -screen 0 1024x768x24 -nolisten tcp >"$W/log/xvfb.log" 2>&1 &
    XVFB_PID=$!
    xrdp-sesman -n -c "$W/etc/sesman.ini" >"$W/log/sesman.stdout" 2>&1 &
    SESMAN_PID=$!
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$CDISP" ] && port_busy 3350 && break; sleep 0.1; done
    port_busy 3350 || die "sesman did not start"
    log "Xvfb :$CDISP pid $XVFB_PID, sesman pid $SESMAN_PID"
}

# ------------------------------------------------------------- actions ----
ACTLOG=
act() { # act KIND DETAIL CMD... : logs start/end epoch around CMD
    local kind=$1 detail=$2 t0 t1; shift 2
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\n' "$t0" "$t1" "$kind" "$detail" >>"$ACTLOG"
}
xdo() { DISPLAY=":$CDISP" xdotool "$@"; }
type_line() { xdo type --delay $TYPE_DELAY -- "$1"; sleep 0.2; xdo key Return; }
glide() { # glide X0 Y0 X1 Y1 : 10-step mouse path (window-relative coords)
    local i
    for i in $(seq 0 10); do
        xdo mousemove $((WX + $1 + ($3 - $1) * i / 10)) $((WY + $2 + ($4 - $2) * i / 10))
        sleep 0.05
    done
}
click() { xdo click 1; }
snap() { # snap OUT.png : screenshot of the client window (what the user saw)
    DISPLAY=":$CDISP" xwd -root -silent >"$W/run/snap.xwd" &&
        /usr/bin/python3 "$TOOLS/xwd2png.py" "$W/run/snap.xwd" "$1" "$WX,$WY,800,600"
}

run_session_script() { # $1=typed marker  $2=client->server clipboard text  $3=server->client clipboard text
    local m=$1 cin=$2 cout=$3
    act mouse "glide (700,550)->(300,100) over console xterm" glide 700 550 300 100
    act click "left click at (300,100) in console xterm" click
    sleep 0.5
    act type "xterm -T work -geometry 80x16+40+230 &" type_line 'xterm -T work -geometry 80x16+40+230 &'
    sleep 2.5
    act mouse "glide (300,100)->(300,350) into work xterm" glide 300 100 300 350
    act click "left click at (300,350) in work xterm" click
    sleep 0.5
    act type "echo $m && hostname" type_line "echo $m && hostname"
    sleep 1
    act clip-c2s "client clipboard := $cin (xclip on client display)" \
        sh -c "printf '$cin' | DISPLAY=:$CDISP xclip -selection clipboard -loops 5"
    sleep 1
    act type "echo <Shift+Insert pastes $cin> + Enter" \
        sh -c "DISPLAY=:$CDISP xdotool type --delay $TYPE_DELAY -- 'echo '; sleep 0.3; DISPLAY=:$CDISP xdotool key shift+Insert; sleep 0.8; DISPLAY=:$CDISP xdotool key Return"
    sleep 1
    act type "printf $cout | xclip -selection clipboard" \
        type_line "printf $cout | xclip -selection clipboard"
    sleep 1.5
    act clip-s2c "client reads its clipboard (xclip -o) -> server sends $cout" \
        sh -c "DISPLAY=:$CDISP timeout 5 xclip -o -selection clipboard > '$W/run/clipboard-readback.txt' 2>&1 || true"
    sleep 0.5
    act screenshot "client window -> screens/$SNAPNAME.png" snap "$LOGS/screens/$SNAPNAME.png"
    act type "exit (closes work xterm)" type_line 'exit'
    sleep 1
    act mouse "glide (300,350)->(400,120) back to console" glide 300 350 400 120
    sleep 0.3
    act type "exit (ends X session -> server logs client off)" type_line 'exit'
}

# Clipboard file copy, client -> server. The file is made here from MARK (so its name, size and
# SHA-256 are known before the session); on the client display it is put on the CLIPBOARD as
# text/uri-list, which FreeRDP announces as FileGroupDescriptorW. On the server the user lists the
# clipboard's files (chansrv asks for the descriptor and fills ~/thinclient_drives/.clipboard) and
# copies the file out of the FUSE mount (chansrv asks the client for its size and byte ranges).
CLIPFILE_LINES=2600
clipfile_make() { # $1=path [$2=lines [$3=label]]: numbered lines, each with a hash so nothing repeats
    python3 -c 'import hashlib,sys
m,n,what=sys.argv[2],int(sys.argv[3]),sys.argv[4]
open(sys.argv[1],"w").write("".join(f"{m} {what} file line {i:05d} {hashlib.sha256((m+str(i)).encode()).hexdigest()[:16]}\n" for i in range(n)))' \
        "$1" "$MARK" "${2:-$CLIPFILE_LINES}" "${3:-clipboard}"
}
run_clipfile_script() { # $1=client file path
    local f=$1 base; base=$(basename "$1")
    act mouse "glide (700,550)->(300,100) over console xterm" glide 700 550 300 100
    act click "left click at (300,100) in console xterm" click
    sleep 0.5
    DISPLAY=":$CDISP" xclip -quiet -selection clipboard -t text/uri-list <<<"file://$f" >/dev/null 2>&1 &
    CLIP_PID=$!
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" clip-c2s-file \
        "client clipboard := file://$f as text/uri-list (xclip on client display)" >>"$ACTLOG"
    sleep 1.5
    act type "xclip -o -selection clipboard -t text/uri-list" type_line 'xclip -o -selection clipboard -t text/uri-list'
    sleep 2
    act type "cp thinclient_drives/.clipboard/$base . && sha256sum $base" \
        type_line "cp thinclient_drives/.clipboard/$base . && sha256sum $base"
    sleep 3
    act screenshot "client window -> screens/$SNAPNAME.png" snap "$LOGS/screens/$SNAPNAME.png"
    stop_pid "$CLIP_PID"; CLIP_PID=
    act type "exit (ends X session -> server logs client off)" type_line 'exit'
}

# Keyboard-layout sessions: the client's X display keeps its US keymap, so xdotool presses the
# physical keys of a US keyboard; xfreerdp sends those scancodes and announces the layout given
# with /kbd, and the server interprets the scancodes with that layout. `touch <word>` therefore
# creates a file whose name is <word> as the *announced* layout reads those keys (US zyx..
# becomes German yzx..); the script records which file really appeared in the user's home.
run_layout_script() { # $1=word typed on the US keys
    act mouse "glide (700,550)->(300,100) over console xterm" glide 700 550 300 100
    act click "left click at (300,100) in console xterm" click
    sleep 0.5
    act type "touch $1 (US keys)" type_line "touch $1"
    sleep 1
    act type "exit (ends X session -> server logs client off)" type_line 'exit'
}

# Standard RDP Security re-keys every 4096 encrypted packets (MS-RDPBCGR 5.3.7): the mouse
# makes that many fast-path input PDUs, then a line is typed with the updated keys.
REKEY_MOVES=4300
run_rekey_script() {
    act mouse "glide (700,550)->(300,100) over console xterm" glide 700 550 300 100
    act click "left click at (300,100) in console xterm" click
    sleep 0.5
    local args=() i
    for i in $(seq 0 $((REKEY_MOVES - 1))); do
        args+=(mousemove $((WX + 200 + i % 200)) $((WY + 100 + (i / 200) % 2)) sleep 0.004)
    done
    act mouse "$REKEY_MOVES small mouse moves inside the console xterm" xdo "${args[@]}"
    sleep 1
    act type "echo $MARK-after-rekey" type_line "echo $MARK-after-rekey"
    sleep 1
    act type "exit (ends X session -> server logs client off)" type_line 'exit'
}

# ------------------------------------------------------------- capture ----
capture_one() {
    local id=$1 name sec crypt protos ciphers cname cargs=() preload keylog="" kbd=0x409 word="" bulk=true osslconf=""
    case "$id" in
      stdsec)     name=rdp-stdsec;      sec=rdp; crypt=high; protos="TLSv1.2, TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-STDSEC; cargs=(/sec:rdp)
                  preload="$W/freerdp_nosalt_shim.so" ;;
      tls12rsa)   name=rdp-tls12-rsa;   sec=tls; crypt=high; protos="TLSv1.2"; ciphers="AES128-GCM-SHA256"
                  cname=$CNAME_PREFIX-TLS12RSA
                  cargs=(/sec:tls /tls-ciphers:AES128-GCM-SHA256 +enforce-tlsv1_2)
                  preload="$W/sslkeylog_shim.so" ;;
      tls12ecdhe) name=rdp-tls12-ecdhe; sec=tls; crypt=high; protos="TLSv1.2"; ciphers="ECDHE-RSA-AES256-GCM-SHA384"
                  cname=$CNAME_PREFIX-ECDHE; cargs=(/sec:tls +enforce-tlsv1_2)
                  preload="$W/sslkeylog_shim.so" ;;
      tls13)      name=rdp-tls13;       sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-TLS13; cargs=(/sec:tls)
                  preload="$W/sslkeylog_shim.so" ;;
      kbdde)      name=rdp-kbd-de;      sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-KBDDE; cargs=(/sec:tls); kbd=0x407; word=qwzyx
                  preload="$W/sslkeylog_shim.so" ;;
      video)      name=rdp-video;       sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-VIDEO; cargs=(/sec:tls); word=video; bulk=false
                  preload="$W/sslkeylog_shim.so" ;;
      stdsecsalted) name=rdp-stdsec-salted; sec=rdp; crypt=high; protos="TLSv1.2, TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-SALTED; cargs=(/sec:rdp); preload="" ;;
      stdsecrekey) name=rdp-stdsec-rekey; sec=rdp; crypt=high; protos="TLSv1.2, TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-REKEY; cargs=(/sec:rdp)
                  preload="$W/freerdp_nosalt_shim.so" ;;
      tls12cbc)   name=rdp-tls12-cbc;   sec=tls; crypt=high; protos="TLSv1.2"; ciphers="AES256-SHA"
                  cname=$CNAME_PREFIX-CBC; cargs=(/sec:tls /tls-ciphers:AES256-SHA +enforce-tlsv1_2); word=cbc
                  preload="$W/sslkeylog_shim.so" ;;
      tls12cbcmte) name=rdp-tls12-cbc-mte; sec=tls; crypt=high; protos="TLSv1.2"; ciphers="ECDHE-RSA-AES128-SHA256"
                  cname=$CNAME_PREFIX-CBCMTE; cargs=(/sec:tls +enforce-tlsv1_2); word=cbc
                  preload="$W/sslkeylog_shim.so"
                  # classic MAC-then-encrypt: the client turns the encrypt-then-MAC extension off
                  osslconf="$W/etc/openssl-noetm.cnf"
                  printf '%s\n' 'openssl_conf = default_conf' '[default_conf]' 'ssl_conf = ssl_sect' \
                      '[ssl_sect]' 'system_default = system_default_sect' '[system_default_sect]' \
                      'Options = -EncryptThenMac' >"$osslconf" ;;
      tls12chacha) name=rdp-tls12-chacha; sec=tls; crypt=high; protos="TLSv1.2"; ciphers="ECDHE-RSA-CHACHA20-POLY1305"
                  cname=$CNAME_PREFIX-CHACHA12; cargs=(/sec:tls +enforce-tlsv1_2); word=chacha
                  preload="$W/sslkeylog_shim.so" ;;
      tls13chacha) name=rdp-tls13-chacha; sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-CHACHA13; cargs=(/sec:tls); word=chacha
                  preload="$W/sslkeylog_shim.so"
                  # TLS 1.3 suites are not in xrdp.ini / xfreerdp options: OpenSSL config for the client
                  osslconf="$W/etc/openssl-chacha13.cnf"
                  printf '%s\n' 'openssl_conf = default_conf' '[default_conf]' 'ssl_conf = ssl_sect' \
                      '[ssl_sect]' 'system_default = system_default_sect' '[system_default_sect]' \
                      'Ciphersuites = TLS_CHACHA20_POLY1305_SHA256' >"$osslconf" ;;
      clipfile)   name=rdp-clipfile;    sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-CLIPFILE; cargs=(/sec:tls)
                  preload="$W/sslkeylog_shim.so" ;;
      kbdfr)      name=rdp-kbd-fr;      sec=tls; crypt=high; protos="TLSv1.3"; ciphers=""
                  cname=$CNAME_PREFIX-KBDFR; cargs=(/sec:tls); kbd=0x40c; word=qwzyx
                  preload="$W/sslkeylog_shim.so" ;;
      *) die "unknown capture id $id" ;;
    esac
    [ ${#cname} -le 15 ] || die "client name $cname is longer than 15 characters"
    local mtyped="$MARK-$id-typed" mcin="$MARK-$id-clipboard-c2s" mcout="$MARK-$id-clipboard-s2c"
    log "=== capture $id -> $OUT/$name.pcap"
    local ini="$W/etc/xrdp-$id.ini" pcap="$OUT/$name.pcap" logs="$LOGS"
    mkdir -p "$logs" "$LOGS/screens"; SNAPNAME=$name
    mk_xrdp_ini "$ini" "$sec" "$crypt" "$protos" "$ciphers" "$bulk"
    rm -f "$pcap" "$W/keys/$name".*.keylog "$W/log/xrdp.log"
    ACTLOG="$W/run/$name.actions.tsv"; : >"$ACTLOG"

    # xrdp (server) - with the keylog shim as well, as a cross-check of the client log
    if [ "$sec" = tls ]; then
        env LD_PRELOAD="$W/sslkeylog_shim.so" SSLKEYLOGFILE="$W/keys/$name.server.keylog" \
            xrdp -n -c "$ini" >"$W/log/xrdp.stdout" 2>&1 &
    else
        xrdp -n -c "$ini" >"$W/log/xrdp.stdout" 2>&1 &
    fi
    XRDP_PID=$!
    for _ in $(seq 50); do port_busy $PORT && break; sleep 0.1; done
    port_busy $PORT || die "xrdp did not listen"

    # capture: full snaplen, loopback, RDP port only; -Z root so it can write here
: >"$W/log/tcpdump-$id.log"
    tcpdump -i lo -s 0 -U -n -Z root -w "$pcap" "tcp port $PORT" 2>"$W/log/tcpdump-$id.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 50); do grep -q 'listening on' "$W/log/tcpdump-$id.log" && break; sleep 0.1; done
    sleep 0.5
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" capture "tcpdump started" >>"$ACTLOG"

    # client
    [ "$sec" = tls ] && keylog="$W/keys/$name.client.keylog"
    local t0; t0=$(date +%s.%N)
    env DISPLAY=":$CDISP" HOME="$W/clienthome" LD_PRELOAD="$preload" ${keylog:+SSLKEYLOGFILE="$keylog"} \
        ${osslconf:+OPENSSL_CONF="$osslconf"} \
        xfreerdp /v:127.0.0.1:$PORT /u:$RDP_USER /p:$RDP_PASS /size:800x600 /bpp:16 \
        /kbd:$kbd /client-hostname:$cname /cert:ignore +clipboard /log-level:INFO "${cargs[@]}" \
        >"$W/log/xfreerdp-$id.log" 2>&1 &
    CLIENT_PID=$!
    printf '%s\t%s\t%s\t%s\n' "$t0" "$t0" connect "xfreerdp ${cargs[*]} /client-hostname:$cname /u:$RDP_USER" >>"$ACTLOG"

    if [ "$id" = stdsecsalted ]; then
        # Debian's xrdp checks only plain MACs: this session ends right after the salted-MAC
        # Client Info PDU (ERRINFO_LOGOFF_BY_USER). The capture is that real salted-MAC traffic.
        for _ in $(seq 150); do alive "$CLIENT_PID" || break; sleep 0.1; done
        printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=%s\nsalted_mac=yes\n' \
            "$name" "$cname" "$RDP_USER" "$kbd" >"$OUT/$name.params.txt"
    else
    # wait for the X session (xterm of the test user) and the client window
    local ok=0
    for _ in $(seq 200); do
        alive "$CLIENT_PID" || break
        if pgrep -u "$RDP_USER" -x xterm >/dev/null && xdo search --class xfreerdp >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ $ok = 1 ] || { cleanup_capture; die "session did not come up (see $W/log/xfreerdp-$id.log)"; }
    sleep 2.5
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" ready "session desktop with console xterm visible" >>"$ACTLOG"
    eval "$(xdo search --class xfreerdp | head -1 | xargs -I{} env DISPLAY=:$CDISP xdotool getwindowgeometry --shell {})"
    WX=$X WY=$Y
    if [ "$id" = clipfile ]; then
        local home cf="$W/clientfiles/$MARK-clipfile-c2s.txt"
        home=$(getent passwd "$RDP_USER" | cut -d: -f6)
        mkdir -p "$W/clientfiles"; clipfile_make "$cf"; rm -f "$home/$(basename "$cf")"
        run_clipfile_script "$cf"
        sleep 1
        printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=%s\nclipfile_c2s_name=%s\nclipfile_c2s_size=%s\nclipfile_c2s_sha256=%s\nclipfile_c2s_server_copy_sha256=%s\n' \
            "$name" "$cname" "$RDP_USER" "$kbd" "$(basename "$cf")" "$(stat -c %s "$cf")" \
            "$(sha256sum "$cf" | cut -d' ' -f1)" \
            "$(sha256sum "$home/$(basename "$cf")" 2>/dev/null | cut -d' ' -f1)" >"$OUT/$name.params.txt"
    elif [ "$id" = stdsecrekey ]; then
        run_rekey_script
        printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=%s\nmouse_moves=%s\ntyped_after_moves=%s\n' \
            "$name" "$cname" "$RDP_USER" "$kbd" "$REKEY_MOVES" "echo $MARK-after-rekey" >"$OUT/$name.params.txt"
    elif [ -n "$word" ]; then
        local home; home=$(getent passwd "$RDP_USER" | cut -d: -f6)
        find "$home" -maxdepth 1 -type f -newer "$ini" -delete 2>/dev/null || true
        run_layout_script "$word"
        sleep 1
        printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=%s\ntyped_on_us_keys=touch %s\ncreated_files=%s\n' \
            "$name" "$cname" "$RDP_USER" "$kbd" "$word" \
            "$(find "$home" -maxdepth 1 -type f -newer "$ini" -printf '%f ' 2>/dev/null)" >"$OUT/$name.params.txt"
    else
        run_session_script "$mtyped" "$mcin" "$mcout"
        printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=%s\ntyped_marker_line=%s\nclipboard_c2s=%s\nclipboard_s2c=%s\n' \
            "$name" "$cname" "$RDP_USER" "$kbd" "echo $mtyped && hostname" "$mcin" "$mcout" >"$OUT/$name.params.txt"
    fi

    fi
    # wait for server-initiated logoff / client exit
    for _ in $(seq 200); do alive "$CLIENT_PID" || break; sleep 0.1; done
    if alive "$CLIENT_PID"; then log "client still running, stopping it"; stop_pid "$CLIENT_PID"; fi
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" end "xfreerdp exited" >>"$ACTLOG"
    sleep 1
    cleanup_capture
    for _ in $(seq 50); do pgrep -u "$RDP_USER" -x Xorg >/dev/null || break; sleep 0.2; done

    # secrets and side files
    case "$id" in
      stdsec|stdsecsalted|stdsecrekey)
        # Standard RDP Security uses xrdp's RSA key from /etc/xrdp/rsakeys.ini: that path is
        # compiled into xrdp (not settable in xrdp.ini); the Debian package generates the key
        # at install time (xrdp-keygen).
        cp /etc/xrdp/rsakeys.ini "$OUT/$name.rsakeys.ini"
        "$VENV/bin/python" "$TOOLS/rsakeys2pem.py" "$OUT/$name.rsakeys.ini" "$OUT/$name.rsakeys.pem" ;;
      tls12rsa|tls12cbc)
        cp "$W/etc/server-key.pem" "$OUT/$name.server-key.pem"
        cp "$W/etc/server-cert.pem" "$OUT/$name.server-cert.pem"
        cp "$keylog" "$OUT/$name.crosscheck.keylog" ;;
      *)
        cp "$keylog" "$OUT/$name.keylog" ;;
    esac
    if [ -n "$keylog" ]; then
        # (OpenSSL adds an "RSA <enc-pms-prefix> <pms>" line on the RSA-kex client side only)
        if cmp -s <(grep -v '^RSA ' "$keylog" | sort) <(grep -v '^RSA ' "$W/keys/$name.server.keylog" | sort); then
            log "client and server key logs agree ($(wc -l <"$keylog") lines)"
        else
            log "WARNING: client/server key logs differ"
        fi
    fi
    cp "$W/log/xfreerdp-$id.log" "$logs/$name.xfreerdp.log"
    cp "$W/log/xrdp.log" "$logs/$name.xrdp.log"
    cp "$ACTLOG" "$logs/$name.actions-epoch.tsv"
    "$VENV/bin/python" "$TOOLS/timeline.py" "$pcap" "$ACTLOG" "$OUT/$name.timeline.tsv"
    log "clipboard read back on client: $(cat "$W/run/clipboard-readback.txt" 2>/dev/null)"
    ls -la "$pcap"
}

cleanup_capture() {
    stop_pid "$CLIENT_PID"; CLIENT_PID=
    stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=
    stop_pid "$XRDP_PID"; XRDP_PID=
}

# NLA (CredSSP/NTLM): xrdp has none, so this capture uses FreeRDP's shadow server sharing a
# private Xvfb (display CLIENT_DISPLAY+2) that runs one xterm; NTLM accounts come from a SAM file.
# The user and domain travel in the NTLM AUTHENTICATE message; the password never does.
NLA_DOMAIN=PLANT
capture_nla() {
    local name=rdp-nla cname=$CNAME_PREFIX-NLA sdisp=$((CDISP + 2)) pcap="$OUT/rdp-nla.pcap"
    local keylog="$W/keys/rdp-nla.client.keylog" word=nla
    log "=== capture nla -> $pcap"
    command -v freerdp-shadow-cli >/dev/null || die "freerdp-shadow-cli missing (apt-get install freerdp2-shadow-x11 winpr-utils)"
    port_busy $PORT && die "port $PORT already in use"
    [ -e "/tmp/.X11-unix/X$sdisp" ] && die "display :$sdisp in use"
    rm -f "$pcap" "$keylog"; mkdir -p "$W/nla-home" "$W/shadowhome"; rm -f "$W/nla-home/$word"
    ACTLOG="$W/run/$name.actions.tsv"; : >"$ACTLOG"
    printf '%s:%s::%s:::\n' "$RDP_USER" "$NLA_DOMAIN" "$(winpr-hash -u "$RDP_USER" -p "$RDP_PASS")" >"$W/etc/nla.sam"
    Xvfb ":$sdisp" -screen 0 800x600x24 -nolisten tcp >"$W/log/xvfb-nla.log" 2>&1 &
    NLA_XVFB_PID=$!
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$sdisp" ] && break; sleep 0.1; done
    (cd "$W/nla-home" && DISPLAY=":$sdisp" exec xterm -geometry 80x10+10+10 -e bash --norc --noprofile) &
    NLA_XTERM_PID=$!
    DISPLAY=":$sdisp" HOME="$W/shadowhome" freerdp-shadow-cli /port:$PORT /bind-address:127.0.0.1 \
        /sec:nla /sam-file:"$W/etc/nla.sam" >"$W/log/shadow.log" 2>&1 &
    NLA_SERVER_PID=$!
    for _ in $(seq 100); do port_busy $PORT && break; sleep 0.1; done
    port_busy $PORT || die "freerdp-shadow-cli did not listen (see $W/log/shadow.log)"
    : >"$W/log/tcpdump-nla.log"
    tcpdump -i lo -s 0 -U -n -Z root -w "$pcap" "tcp port $PORT" 2>"$W/log/tcpdump-nla.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 50); do grep -q 'listening on' "$W/log/tcpdump-nla.log" && break; sleep 0.1; done
    sleep 0.5
    env DISPLAY=":$CDISP" HOME="$W/clienthome" LD_PRELOAD="$W/sslkeylog_shim.so" SSLKEYLOGFILE="$keylog" \
        xfreerdp /v:127.0.0.1:$PORT /u:$RDP_USER /d:$NLA_DOMAIN /p:$RDP_PASS /size:800x600 /bpp:16 \
        /kbd:0x409 /client-hostname:$cname /cert:ignore /sec:nla -gfx -clipboard /log-level:INFO \
        >"$W/log/xfreerdp-nla.log" 2>&1 &
    CLIENT_PID=$!
    local ok=0
    for _ in $(seq 100); do
        alive "$CLIENT_PID" || break
        xdo search --class xfreerdp >/dev/null 2>&1 && { ok=1; break; }
        sleep 0.1
    done
    [ $ok = 1 ] || { stop_pid "$TCPDUMP_PID" INT; die "nla session did not come up (see $W/log/xfreerdp-nla.log)"; }
    sleep 2.5
    eval "$(xdo search --class xfreerdp | head -1 | xargs -I{} env DISPLAY=:$CDISP xdotool getwindowgeometry --shell {})"
    WX=$X WY=$Y
    act mouse "glide (700,550)->(300,60) over the shadowed xterm" glide 700 550 300 60
    act click "left click at (300,60)" click
    sleep 0.5
    act type "touch $word" type_line "touch $word"
    sleep 1.5
    act end "client disconnects" stop_pid "$CLIENT_PID"
    sleep 0.5
    stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=
    stop_pid "$NLA_SERVER_PID"; stop_pid "$NLA_XTERM_PID"; stop_pid "$NLA_XVFB_PID"
    cp "$keylog" "$OUT/$name.keylog"
    printf 'capture=%s\nclient_name=%s\nuser=%s\ndomain=%s\nkeyboard_layout=0x409\ntyped_on_us_keys=touch %s\ncreated_files=%s\n' \
        "$name" "$cname" "$RDP_USER" "$NLA_DOMAIN" "$word" "$(ls "$W/nla-home" | tr '\n' ' ')" >"$OUT/$name.params.txt"
    "$VENV/bin/python" "$TOOLS/timeline.py" "$pcap" "$ACTLOG" "$OUT/$name.timeline.tsv"
    ls -la "$pcap"
}

# Drive redirection (rdpdr): rdesktop 1.9 shares a client folder with -r disk:share=DIR. (FreeRDP
# 2.11, RDPDR 1.12, announces drives only after the server's User Logged On PDU; xrdp 0.9.21
# sends that PDU before its Server Core Capability Request, FreeRDP drops it as unsupported
# because it has not seen the server's capabilities yet, and announces no device. rdesktop, RDPDR
# 1.5, announces its drives right after the Client ID Confirm.)
# On the server chansrv mounts the share with FUSE at ~/thinclient_drives/share: the user copies
# a file out of it (IRP_MJ_READ, client -> server) and writes one into it (IRP_MJ_WRITE).
# TLS (rdesktop's GnuTLS negotiates TLS 1.3 with xrdp); the key log is xrdp's (the shim), and
# rdesktop's own (GnuTLS honours SSLKEYLOGFILE) is the cross-check.
DRIVE_LINES=1500
capture_drive() {
    local name=rdp-drive cname=$CNAME_PREFIX-DRIVE pcap="$OUT/rdp-drive.pcap" id=drive
    local ini="$W/etc/xrdp-drive.ini" share="$W/clientshare" home
    local fin=$MARK-drive-in.txt fout=$MARK-drive-out.txt
    command -v rdesktop >/dev/null || die "rdesktop missing (apt-get install rdesktop)"
    log "=== capture drive -> $pcap"
    home=$(getent passwd "$RDP_USER" | cut -d: -f6)
    rm -rf "$share"; mkdir -p "$share"; rm -f "$home/$fin"
    clipfile_make "$share/$fin" "$DRIVE_LINES" drive
    ACTLOG="$W/run/$name.actions.tsv"; : >"$ACTLOG"; SNAPNAME=$name
    mk_xrdp_ini "$ini" tls high "TLSv1.2, TLSv1.3" "" true
    rm -f "$pcap" "$W/keys/$name".*.keylog "$W/log/xrdp.log"
    env LD_PRELOAD="$W/sslkeylog_shim.so" SSLKEYLOGFILE="$W/keys/$name.server.keylog" \
        xrdp -n -c "$ini" >"$W/log/xrdp.stdout" 2>&1 &
    XRDP_PID=$!
    for _ in $(seq 50); do port_busy $PORT && break; sleep 0.1; done
    port_busy $PORT || die "xrdp did not listen"
    : >"$W/log/tcpdump-$id.log"
    tcpdump -i lo -s 0 -U -n -Z root -w "$pcap" "tcp port $PORT" 2>"$W/log/tcpdump-$id.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 50); do grep -q 'listening on' "$W/log/tcpdump-$id.log" && break; sleep 0.1; done
    sleep 0.5
    local t0; t0=$(date +%s.%N)
    # rdesktop asks whether to trust an unknown certificate on its terminal: the answer is "yes"
    (yes yes | env DISPLAY=":$CDISP" HOME="$W/clienthome" SSLKEYLOGFILE="$W/keys/$name.client.keylog" \
        rdesktop -u "$RDP_USER" -p "$RDP_PASS" -g 800x600 -a 16 -k en-us -n "$cname" \
        -r "disk:share=$share" 127.0.0.1:$PORT >"$W/log/rdesktop-$id.log" 2>&1) &
    CLIENT_PID=$!
    printf '%s\t%s\t%s\t%s\n' "$t0" "$t0" connect "rdesktop -r disk:share=<client folder> -n $cname -u $RDP_USER" >>"$ACTLOG"
    local ok=0
    for _ in $(seq 200); do
        alive "$CLIENT_PID" || break
        if pgrep -u "$RDP_USER" -x xterm >/dev/null && xdo search --class rdesktop >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ $ok = 1 ] || { cleanup_capture; die "session did not come up (see $W/log/rdesktop-$id.log)"; }
    sleep 2.5
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" ready "session desktop with console xterm visible" >>"$ACTLOG"
    eval "$(xdo search --class rdesktop | head -1 | xargs -I{} env DISPLAY=:$CDISP xdotool getwindowgeometry --shell {})"
    WX=$X WY=$Y
    act mouse "glide (700,550)->(300,100) over console xterm" glide 700 550 300 100
    act click "left click at (300,100) in console xterm" click
    sleep 0.5
    act type "ls thinclient_drives/share" type_line "ls thinclient_drives/share"
    sleep 1.5
    act type "cp thinclient_drives/share/$fin . && sha256sum $fin" type_line "cp thinclient_drives/share/$fin . && sha256sum $fin"
    sleep 2
    act type "seq 1 3000 > thinclient_drives/share/$fout" type_line "seq 1 3000 > thinclient_drives/share/$fout"
    sleep 2
    act screenshot "client window -> screens/$SNAPNAME.png" snap "$LOGS/screens/$SNAPNAME.png"
    act type "exit (ends X session -> server logs client off)" type_line 'exit'
    for _ in $(seq 200); do alive "$CLIENT_PID" || break; sleep 0.1; done
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$(date +%s.%N)" end "rdesktop exited" >>"$ACTLOG"
    sleep 1
    cleanup_capture
    for _ in $(seq 50); do pgrep -u "$RDP_USER" -x Xorg >/dev/null || break; sleep 0.2; done
    cp "$W/keys/$name.server.keylog" "$OUT/$name.keylog"
    if [ -s "$W/keys/$name.client.keylog" ] && cmp -s <(sort "$W/keys/$name.client.keylog") <(sort "$OUT/$name.keylog"); then
        log "client (GnuTLS) and server (OpenSSL) key logs agree"
    else
        log "WARNING: client/server key logs differ or the client wrote none"
    fi
    printf 'capture=%s\nclient_name=%s\nuser=%s\nkeyboard_layout=0x409\ndrive=share\ndrive_read_name=%s\ndrive_read_size=%s\ndrive_read_sha256=%s\ndrive_read_server_copy_sha256=%s\ndrive_write_name=%s\ndrive_write_size=%s\ndrive_write_sha256=%s\n' \
        "$name" "$cname" "$RDP_USER" "$fin" "$(stat -c %s "$share/$fin")" "$(sha256sum "$share/$fin" | cut -d' ' -f1)" \
        "$(sha256sum "$home/$fin" 2>/dev/null | cut -d' ' -f1)" "$fout" "$(stat -c %s "$share/$fout" 2>/dev/null)" \
        "$(sha256sum "$share/$fout" 2>/dev/null | cut -d' ' -f1)" >"$OUT/$name.params.txt"
    # what was negotiated, as tshark reads the ServerHello (rdesktop and xrdp choose it, not this script)
    tshark -r "$pcap" -d tcp.port==$PORT,tls -Y "tls.handshake.type==2" -T fields \
        -e tls.handshake.extensions.supported_version -e tls.handshake.ciphersuite 2>/dev/null |
        head -1 | awk '{print "tshark_tls_version=" $1 "\ntshark_tls_ciphersuite=" $2}' >>"$OUT/$name.params.txt"
    cp "$W/log/rdesktop-$id.log" "$LOGS/$name.rdesktop.log"; cp "$W/log/xrdp.log" "$LOGS/$name.xrdp.log"
    "$VENV/bin/python" "$TOOLS/timeline.py" "$pcap" "$ACTLOG" "$OUT/$name.timeline.tsv"
    ls -la "$pcap"
}

do_captures() {
    [ -x "$W/sslkeylog_shim.so" ] || [ -f "$W/sslkeylog_shim.so" ] || die "run setup first"
    if [ -z "$RDP_PASS" ]; then
        [ -s "$W/etc/credentials" ] || die "no RDP_PASS and no $W/etc/credentials: run setup first"
        RDP_USER=$(sed -n 's/^RDP_USER=//p' "$W/etc/credentials")
        RDP_PASS=$(sed -n 's/^RDP_PASS=//p' "$W/etc/credentials")
    fi
    trap cleanup EXIT
    start_infra
    local id
    for id in "$@"; do
        case "$id" in nla) capture_nla ;; drive) capture_drive ;; *) capture_one "$id" ;; esac
        sleep 2
    done
    cleanup; trap - EXIT
    printf 'MARK=%s\nRDP_USER=%s\nRDP_PASS=%s\nCNAME_PREFIX=%s\nPORT=%s\n' \
        "$MARK" "$RDP_USER" "$RDP_PASS" "$CNAME_PREFIX" "$PORT" >"$OUT/params.txt"
    chmod 644 "$OUT"/rdp-*.* "$OUT"/params.txt   # test secrets: readable on purpose
    log "done; parameters (also in $OUT/params.txt, per capture in $OUT/rdp-*.params.txt):"
    sed 's/^/    /' "$OUT/params.txt" >&2
}

case "${1:-}" in
    setup) do_setup ;;
    capture) shift; do_captures "$@" ;;
    captures) do_captures stdsec tls12rsa tls12ecdhe tls13 kbdde kbdfr video stdsecsalted stdsecrekey \
                          tls12cbc tls12cbcmte tls12chacha tls13chacha nla clipfile drive ;;
    all) do_setup; do_captures stdsec tls12rsa tls12ecdhe tls13 kbdde kbdfr video stdsecsalted stdsecrekey \
                     tls12cbc tls12cbcmte tls12chacha tls13chacha nla clipfile drive ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 2 ;;
esac
