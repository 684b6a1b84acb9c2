"""Vault throughput: seal and open N MB of terminal-like recordings, next to plain file writes.

    python benchmarks/vault.py [--size-mb 1024] [--recording-mb 8] [--levels 1,3] [--dir DIR]

"plain write" writes each recording to its own file and fsyncs it, which is what the vault
does for its sealed files, so the comparison is the cost of compression + hashing +
AES-256-GCM + signed manifest + audit. Reads come from the page cache in both cases.
The target (issue 5) is sealing < 30 % slower than the plain write.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.vault import Vault  # noqa: E402

PROMPTS = [b"sw-core-%d# ", b"plc-gw-%d:~$ ", b"RTU%d>", b"[admin@hist%d ~]$ "]
COMMANDS = [b"show running-config", b"show interfaces status", b"show log", b"ping 10.9.%d.%d",
            b"configure terminal", b"interface Gi1/0/%d", b"copy tftp: flash:", b"tail -f /var/log/messages",
            b"ls -la /opt/scada/projects", b"systemctl status historian", b"write memory"]


def line_pool(rnd: random.Random, n: int = 50_000) -> list[bytes]:
    """Output lines of the kind a maintenance session prints: tables, logs, counters, hex."""
    out = []
    for i in range(n):
        kind = rnd.randrange(5)
        if kind == 0:
            out.append(b"Gi1/0/%-3d connected  %-5d a-full a-1000 10/100/1000BaseTX\r\n"
                       % (rnd.randint(1, 48), rnd.randint(1, 4094)))
        elif kind == 1:
            out.append(b"Nov 24 %02d:%02d:%02d.%03d: %%LINK-3-UPDOWN: Interface Gi1/0/%d, changed state to %s\r\n"
                       % (rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), rnd.randrange(1000),
                          rnd.randint(1, 48), rnd.choice([b"up", b"down"])))
        elif kind == 2:
            out.append(b"%08x  " % (i * 16) + b" ".join(b"%02x" % rnd.randrange(256) for _ in range(16)) + b"\r\n")
        elif kind == 3:
            out.append(b"-rw-r--r-- 1 scada scada %8d Nov %2d %02d:%02d project_%05d.s7p\r\n"
                       % (rnd.randrange(10**7), rnd.randint(1, 30), rnd.randrange(24), rnd.randrange(60), i))
        else:
            out.append(b"\x1b[1;32m" + rnd.choice(PROMPTS) % rnd.randrange(9) + b"\x1b[0m"
                       + rnd.choice(COMMANDS).replace(b"%d", b"%d" % rnd.randrange(255), 1).replace(b"%d", b"") + b"\r\n")
    return out


def recording(rnd: random.Random, pool: list[bytes], size: int) -> bytes:
    """An asciicast v2 file of about ``size`` bytes built from random pool lines."""
    parts = [b'{"version": 2, "width": 120, "height": 40}\n']
    total, t = 0, 0.0
    while total < size:
        t += rnd.expovariate(4.0)
        body = b"".join(rnd.choices(pool, k=rnd.randint(1, 12)))
        ev = b'[%.6f, "o", "%s"]\n' % (t, body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                                         .replace(b"\r", b"\\r").replace(b"\n", b"\\n").replace(b"\x1b", b"\\u001b"))
        parts.append(ev)
        total += len(ev)
    return b"".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--recording-mb", type=int, default=8)
    ap.add_argument("--levels", default="1,3")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=1,
                    help="writer threads, as an importer with N workers (same for plain and vault)")
    args = ap.parse_args()

    rnd = random.Random(20261125)
    pool = line_pool(rnd)
    n = max(1, args.size_mb // args.recording_mb)
    # a few distinct recordings, reused: generating 1 GB in Python would dominate the run
    distinct = [recording(rnd, pool, args.recording_mb << 20) for _ in range(min(n, 8))]
    total = sum(len(distinct[i % len(distinct)]) for i in range(n))
    base = Path(tempfile.mkdtemp(prefix="vault-bench-", dir=args.dir))
    print(f"{n} recordings, {total / 1e6:.0f} MB of terminal-like data, {args.threads} writer thread(s)")
    rows = []
    try:
        plain = base / "plain"
        plain.mkdir()
        def write_plain(i: int) -> None:
            with open(plain / f"{i}.cast", "wb") as fh:
                fh.write(distinct[i % len(distinct)])
                fh.flush()
                os.fsync(fh.fileno())

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool_:
            list(pool_.map(write_plain, range(n)))
        t_plain_w = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            (plain / f"{i}.cast").read_bytes()
        t_plain_r = time.perf_counter() - t0
        rows.append(("plain write+fsync / read", t_plain_w, t_plain_r, total))
        shutil.rmtree(plain)

        for level in [int(x) for x in args.levels.split(",")]:
            home = base / f"vault-l{level}"
            vault = Vault.init(home, zstd_level=level, actor="bench")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool_:
                list(pool_.map(lambda i: vault.put(f"s{i}", "terminal.cast", distinct[i % len(distinct)]),
                               range(n)))
            t_seal = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(n):
                vault.get(f"s{i}", "terminal.cast", actor="bench", purpose="benchmark")
            t_open = time.perf_counter() - t0
            stored = vault.status().stored_bytes
            rows.append((f"vault zstd {level} seal / open", t_seal, t_open, stored))
            shutil.rmtree(home)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"{'':34} {'write MB/s':>10} {'read MB/s':>10} {'on disk MB':>11} {'vs plain write':>15}")
    for name, tw, tr, disk in rows:
        print(f"{name:34} {total / 1e6 / tw:10.0f} {total / 1e6 / tr:10.0f} {disk / 1e6:11.0f} "
              f"{(tw / t_plain_w - 1) * 100:+14.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
