"""Import speed and memory on a ~1 GB mirror-port mix, next to tshark and tcpflow.

    python benchmarks/import_mix.py [--pcap FILE] [--bg-mb 930] [--sessions 1600]

Without --pcap it builds the mix with benchmarks/make_mix.sh (root; bulk HTTP background +
replayed real Telnet sessions) into $MIX_DIR (default: a folder under the temp directory)
and reuses it on later runs. Each tool runs as a child of this process, one after the
other, on the same file (read once beforehand so all three find it in the page cache);
wall time and peak RSS come from wait4() of that child.

Targets (issue 2): sessiontap faster than tcpflow and >= 50x faster than tshark, peak RSS < 500 MB.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of one child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    out_chunks = []
    assert p.stdout is not None
    for chunk in iter(lambda: p.stdout.read(65536), b""):
        out_chunks.append(chunk)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err[-2000:]}")
    return secs, ru.ru_maxrss / 1024.0, b"".join(out_chunks).decode(errors="replace")


def ensure_mix(args: argparse.Namespace) -> Path:
    if args.pcap:
        return Path(args.pcap)
    out = Path(os.environ.get("MIX_DIR") or Path(tempfile.gettempdir()) / "sessiontap-mix")
    pcap = out / "big.pcap"
    if not pcap.exists():
        print(f"building the mix into {out} (BG_MB={args.bg_mb}, SESSIONS={args.sessions}) ...", file=sys.stderr)
        env = dict(os.environ, BG_MB=str(args.bg_mb), SESSIONS=str(args.sessions))
        subprocess.run(["bash", str(HERE / "make_mix.sh"), str(out)], check=True, env=env)
    return pcap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pcap")
    ap.add_argument("--bg-mb", type=int, default=930)
    ap.add_argument("--sessions", type=int, default=1600)
    ap.add_argument("--jobs", type=int, default=0, help="sessiontap import --jobs (0: one per core)")
    args = ap.parse_args()
    missing = [t for t in ("tshark", "capinfos", "tcpflow") if shutil.which(t) is None]
    if missing:  # said before the long runs, not after them
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install tshark tcpflow")
    pcap = ensure_mix(args)
    size = pcap.stat().st_size
    with open(pcap, "rb") as f:  # warm the page cache so no tool pays for the first read
        while f.read(1 << 24):
            pass

    home = Path(tempfile.mkdtemp(prefix="st-bench-home-"))
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    cmd = [sys.executable, "-m", "appliance.cli", "import", "--json", str(pcap)]
    if args.jobs != 1:
        cmd += ["--jobs", str(args.jobs)]
    st_secs, st_rss, st_out = run(cmd, env=env, cwd=str(ROOT))
    sessions = sum(1 for line in st_out.splitlines() if line.startswith("{"))
    shutil.rmtree(home, ignore_errors=True)
    print(f"sessiontap import: {st_secs:.2f} s, peak RSS {st_rss:.0f} MB, {sessions} sessions "
          "(tshark and tcpflow next)", file=sys.stderr, flush=True)

    ts_secs, ts_rss, ts_out = run(["tshark", "-q", "-z", "conv,tcp", "-r", str(pcap)])
    packets = 0
    for line in ts_out.splitlines():
        m = re.search(r"(\d+)\s+\d+\s*(?:bytes|kB|MB|GB)?\s+\d+\s+\d+\s*(?:bytes|kB|MB|GB)?\s+(\d+)\s", line)
        if m:
            packets += int(m.group(2))
    cap = subprocess.run(["capinfos", "-c", "-M", str(pcap)], capture_output=True, text=True).stdout
    m = re.search(r"Number of packets:\s+(\d+)", cap)
    packets = int(m.group(1)) if m else packets

    tf_dir = Path(tempfile.mkdtemp(prefix="st-bench-tcpflow-"))
    tf_secs, tf_rss, _ = run(["tcpflow", "-r", str(pcap), "-o", str(tf_dir)])
    shutil.rmtree(tf_dir, ignore_errors=True)

    mb = size / 1e6
    rows = [("sessiontap import", st_secs, st_rss), ("tshark -q -z conv,tcp", ts_secs, ts_rss),
            ("tcpflow", tf_secs, tf_rss)]
    print(f"capture: {pcap.name}, {mb:.0f} MB, {packets} packets; sessiontap found {sessions} sessions")
    print(f"{'tool':<24}{'seconds':>9}{'MB/s':>9}{'kpkt/s':>9}{'peak RSS MB':>13}{'x sessiontap':>14}")
    for name, secs, rss in rows:
        print(f"{name:<24}{secs:>9.2f}{mb / secs:>9.0f}{packets / secs / 1000:>9.0f}{rss:>13.0f}{secs / st_secs:>14.1f}")
    ok_tshark = ts_secs / st_secs >= 50
    ok_tcpflow = tf_secs > st_secs
    ok_rss = st_rss < 500
    print(f"targets: >=50x tshark {'met' if ok_tshark else 'NOT met'}; faster than tcpflow "
          f"{'met' if ok_tcpflow else 'NOT met'}; peak RSS < 500 MB {'met' if ok_rss else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
