#!/usr/bin/env python3
"""RDP import speed and memory on >= 200 MB of real RDP sessions, next to tshark decrypting them.

    python benchmarks/rdp_import.py [--mb 200] [--jobs N] [--keep DIR]
    python benchmarks/rdp_import.py --decoder [repeats]     # decoder only, per bundled capture

The big capture is built on demand in a temporary directory (never committed) from the four
bundled captures of the four security modes -- Standard RDP Security (rdp-stdsec), TLS 1.2 RSA
key exchange (rdp-tls12-rsa), TLS 1.2 ECDHE + key log (rdp-tls12-ecdhe), TLS 1.3 + key log
(rdp-tls13) -- repeated until the file reaches --mb. Each copy is a distinct session: its client
gets its own address (10.1.x.y), the server is 10.0.0.10, and its packets are shifted in time
(copy k starts 2 s after copy k-1, so about a dozen sessions are open at any moment, as on a
busy jump-host segment) and merged in timestamp order. IPv4 header checksums are recomputed
and TCP checksums updated incrementally (RFC 1624), so they are exactly as right as in the
loopback originals (which carry offloaded, partial checksums: the sensor does not check them,
and neither does tshark by default).

Both tools run as children of this process, one after the other, on the same file (read once
beforehand so both find it in the page cache); wall time, CPU time and peak RSS come from wait4():
  sessiontap import BIG --keys <combined key log> --rdp-server-key <TLS key> --rdp-server-key <xrdp key>
  tshark -r BIG -d tcp.port==3389,tls -o tls.keylog_file:<same key log> -o uat:rsa_keys:<TLS key>
         -q -z io,stat,0,tpkt,tls     (the tpkt count is the number of frames it decrypted)
tshark has no Standard RDP Security decryption: it reads that quarter of the sessions as
undecryptable TLS-port traffic, sessiontap decrypts it.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RDP = ROOT / "pcaps" / "rdp"

MODES = {  # capture -> (secret kind, file beside it)
    "rdp-stdsec.pcap": ("server-key", "rdp-stdsec.rsakeys.pem"),
    "rdp-tls12-rsa.pcap": ("server-key", "rdp-tls12-rsa.server-key.pem"),
    "rdp-tls12-ecdhe.pcap": ("keylog", "rdp-tls12-ecdhe.keylog"),
    "rdp-tls13.pcap": ("keylog", "rdp-tls13.keylog"),
}
RDP_PORT = 3389
SERVER_IP = bytes([10, 0, 0, 10])
COPY_SPACING = 2.0        # seconds between the starts of two copies


# ------------------------------------------------------------------ building the capture ----
def read_pcap(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
    """(global header, [(ts, frame)]) of a classic little-endian microsecond pcap (what tcpdump wrote)."""
    raw = path.read_bytes()
    magic = struct.unpack_from("<I", raw, 0)[0]
    if magic != 0xA1B2C3D4:
        raise SystemExit(f"{path.name}: expected a little-endian microsecond pcap")
    out, i = [], 24
    while i + 16 <= len(raw):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", raw, i)
        out.append((sec + usec / 1e6, raw[i + 16:i + 16 + incl]))
        i += 16 + incl
    return raw[:24], out


def _csum_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def _sum16(data: bytes) -> int:
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s = _csum_add(s, w)
    return s


def _ip_checksum(hdr: bytearray) -> int:
    hdr[10:12] = b"\0\0"
    return ~_sum16(bytes(hdr)) & 0xFFFF


class Template:
    """One capture split into per-packet pieces, so a copy is a few byte splices per packet."""

    def __init__(self, path: Path) -> None:
        _, packets = read_pcap(path)
        self.t0 = packets[0][0]
        self.packets: list[tuple[float, bytes, bool, int, int]] = []   # ts offset, frame, c2s, ip off, tcp off
        for ts, frame in packets:
            if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue                                     # only IPv4/TCP in these captures
            ihl = (frame[14] & 0xF) * 4
            dport = struct.unpack_from("!H", frame, 14 + ihl + 2)[0]
            self.packets.append((ts - self.t0, frame, dport == RDP_PORT, 14, 14 + ihl))
        self.old_ip = packets[0][1][26:30]                 # both ends are 127.0.0.1 on loopback

    def copy(self, k: int, start: float) -> Iterator[tuple[float, bytes]]:
        client_ip = bytes([10, 1, (k >> 8) & 0xFF, k & 0xFF])
        # TCP checksum covers the pseudo-header: the change is new addresses minus old ones
        old = _sum16(self.old_ip * 2)
        new = _sum16(client_ip + SERVER_IP)
        delta = _csum_add(new, ~old & 0xFFFF)
        for off, frame, c2s, ip, tcp in self.packets:
            f = bytearray(frame)
            src, dst = (client_ip, SERVER_IP) if c2s else (SERVER_IP, client_ip)
            f[ip + 12:ip + 16] = src
            f[ip + 16:ip + 20] = dst
            f[ip + 10:ip + 12] = struct.pack("!H", _ip_checksum(f[ip:tcp]))
            c = struct.unpack_from("!H", f, tcp + 16)[0]
            c = ~_csum_add(~c & 0xFFFF, delta) & 0xFFFF
            f[tcp + 16:tcp + 18] = struct.pack("!H", c)
            yield start + off, bytes(f)


def build(out: Path, mb: float) -> tuple[int, int]:
    """Write the big capture; (copies of each capture, packets)."""
    templates = [Template(RDP / name) for name in MODES]
    per_round = sum((RDP / n).stat().st_size - 24 for n in MODES)
    rounds = int(mb * 1e6 // per_round) + 1
    base = 1_780_000_000.0
    streams = []
    for r in range(rounds):
        for j, t in enumerate(templates):
            k = r * len(templates) + j
            streams.append(t.copy(k + 1, base + k * COPY_SPACING))
    header = (RDP / next(iter(MODES))).read_bytes()[:24]
    n = 0
    with open(out, "wb", buffering=1 << 22) as f:
        f.write(header)
        for ts, frame in heapq.merge(*streams, key=lambda p: p[0]):
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)) % 1_000_000, len(frame), len(frame)))
            f.write(frame)
            n += 1
    return rounds, n


def secrets(work: Path) -> tuple[Path, list[Path]]:
    keylog = work / "combined.keylog"
    keylog.write_text("".join((RDP / f).read_text() for kind, f in MODES.values() if kind == "keylog"))
    return keylog, [RDP / f for kind, f in MODES.values() if kind == "server-key"]


# ------------------------------------------------------------------------ running tools ----
def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MB, stdout) of one child process (and the children it
    waited for). CPU time is what to compare on a shared machine: wall time there depends on
    what else runs."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert p.stdout is not None and p.stderr is not None
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err.decode(errors='replace')[-2000:]}")
    return secs, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, out.decode(errors="replace")


def benchmark(args: argparse.Namespace) -> int:
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="st-bench-rdp-"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / "rdp-big.pcap"
    try:
        if not big.exists():
            t0 = time.perf_counter()
            rounds, packets = build(big, args.mb)
            print(f"built {big.name}: {rounds} copies of each of the 4 captures, {packets} packets, "
                  f"{big.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        keylog, server_keys = secrets(work)
        size = big.stat().st_size
        with open(big, "rb") as f:             # warm the page cache so neither tool pays the first read
            while f.read(1 << 24):
                pass
        load_before = Path("/proc/loadavg").read_text().split()[:3]

        home = work / "home"
        env = dict(os.environ, SESSIONTAP_HOME=str(home))
        cmd = [sys.executable, "-m", "appliance.cli", "import", "--json", str(big), "--keys", str(keylog)]
        for k in server_keys:
            cmd += ["--rdp-server-key", str(k)]
        if args.jobs is not None:
            cmd += ["--jobs", str(args.jobs)]
        st_secs, st_cpu, st_rss, st_out = run(cmd, env=env, cwd=str(ROOT))
        rows = [json.loads(line) for line in st_out.splitlines() if line.startswith("{")]
        decrypted = sum(1 for r in rows if r.get("decrypted"))
        commands = sum(int(r.get("commands") or 0) for r in rows)
        shutil.rmtree(home, ignore_errors=True)

        ts_cmd = ["tshark", "-n", "-r", str(big), "-d", f"tcp.port=={RDP_PORT},tls",
                  "-o", f"tls.keylog_file:{keylog}"]
        tls_key = RDP / MODES["rdp-tls12-rsa.pcap"][1]     # (the xrdp key is not a TLS key)
        ts_cmd += ["-o", f'uat:rsa_keys:"{tls_key}",""']
        ts_cmd += ["-q", "-z", "io,stat,0,tpkt,tls"]
        ts_secs, ts_cpu, ts_rss, ts_out = run(ts_cmd)
        m = re.findall(r"\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", ts_out)
        ts_decrypted = int(m[-1][0]) if m else -1
        load_after = Path("/proc/loadavg").read_text().split()[:3]

        mbytes = size / 1e6
        print(f"capture: {mbytes:.0f} MB, {len(rows)} sessions found by sessiontap ({decrypted} decrypted, "
              f"{commands} typed lines); tshark decrypted {ts_decrypted} frames to TPKT")
        print(f"load average before: {' '.join(load_before)}, after: {' '.join(load_after)} "
              f"({os.cpu_count()} cores)")
        print(f"{'tool':<30}{'seconds':>9}{'MB/s':>7}{'CPU s':>8}{'MB/CPU s':>10}{'peak RSS MB':>13}"
              f"{'CPU x sessiontap':>18}")
        for name, secs, cpu, rss in (("sessiontap import", st_secs, st_cpu, st_rss),
                                     ("tshark (TLS decrypting pass)", ts_secs, ts_cpu, ts_rss)):
            print(f"{name:<30}{secs:>9.1f}{mbytes / secs:>7.1f}{cpu:>8.1f}{mbytes / cpu:>10.1f}{rss:>13.0f}"
                  f"{cpu / st_cpu:>18.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# ------------------------------------------------------------- decoder alone, per capture ----
def decoder_only(repeats: int) -> int:
    from reconstruct.rdp import KeyLogLookup, RDPDecoder
    from sensor.pipeline import read_streams
    from sensor.streams import StreamClosed, StreamData, StreamOpened

    def decode(name: str, entry: dict) -> tuple[int, int]:
        keys = KeyLogLookup((RDP / entry["keys"]).read_text()) if entry["keys"] else None
        server = [str(RDP / entry["rdp_server_key"])] if entry["rdp_server_key"] else []
        wire, replay, dec = 0, 0, None
        for ev in read_streams(str(RDP / name)):
            if isinstance(ev, StreamOpened):
                dec = RDPDecoder(keys, server_keys=server)
            elif isinstance(ev, StreamData):
                wire += len(ev.data)
                dec.feed(ev.direction, ev.data, ev.ts)
            elif isinstance(ev, StreamClosed):
                dec.close(ev.ts, ev.reason)
                replay += len(dec.replay() or b"")
        return wire, replay

    manifest = json.loads((RDP / "manifest.json").read_text())
    decode("rdp-tls13.pcap", manifest["rdp-tls13.pcap"])          # imports and caches warmed
    total_wire, total_s = 0, 0.0
    print(f"{'capture':32} {'wire bytes':>10} {'ms/decode':>10} {'MB/s':>7} {'replay':>8}")
    for name, entry in manifest.items():
        if entry["expect_error"]:
            continue
        t0 = time.perf_counter()
        for _ in range(repeats):
            wire, replay = decode(name, entry)
        dt = (time.perf_counter() - t0) / repeats
        total_wire += wire
        total_s += dt
        print(f"{name:32} {wire:10d} {dt * 1000:10.1f} {wire / dt / 1e6:7.2f} {replay:8d}")
    print(f"{'all':32} {total_wire:10d} {total_s * 1000:10.1f} {total_wire / total_s / 1e6:7.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="size of the built capture (default 200)")
    ap.add_argument("--jobs", type=int, default=None, help="sessiontap import --jobs (default: its own)")
    ap.add_argument("--keep", metavar="DIR", help="build into DIR and keep it (reused on the next run)")
    ap.add_argument("--decoder", type=int, nargs="?", const=20, metavar="REPEATS",
                    help="only the decoder, per bundled capture, repeated (no import, no tshark)")
    args = ap.parse_args()
    if args.decoder is not None:
        return decoder_only(args.decoder)
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
