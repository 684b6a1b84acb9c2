#!/usr/bin/env python3
"""SSH decryption throughput: one real SFTP upload of 200 MB (OpenSSH sshd, escrowing asyncssh
client, curve25519 / aes128-ctr / hmac-sha2-256, no strict kex so Wireshark 4.0 can follow),
generated on demand into benchmarks/out/ssh/ (never committed), then

  * sessiontap: MB/s of decrypted SSH payload, decoder only (streams read beforehand) and
    sensor + decoder;
  * tshark 4.0 on the same file with the same key log, for comparison.

usage (root, for tcpdump and the private sshd):  python benchmarks/ssh_decrypt.py [--mb 200]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconstruct.events import DecodeError, FileTransfer  # noqa: E402
from reconstruct.ssh import KeyStore, SSHDecoder  # noqa: E402
from sensor.pipeline import read_streams  # noqa: E402
from sensor.streams import StreamData  # noqa: E402

NAME = "z01_bench_sftp_put"


def generate(out: Path, nbytes: int) -> None:
    env = dict(os.environ, OUT=str(out / "run"), DEST=str(out), UPLOAD_BYTES=str(nbytes))
    subprocess.run(["bash", str(ROOT / "pcaps/make/ssh/gen.sh"), NAME], env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/ssh"))
    a = ap.parse_args()
    out = Path(a.out)
    pcap, keylog = out / f"{NAME}.pcap", out / f"{NAME}.keylog"
    nbytes = a.mb * 1000 * 1000
    if not pcap.exists() or pcap.stat().st_size < nbytes:
        generate(out, nbytes)
    cap = subprocess.run(["capinfos", "-c", str(pcap)], capture_output=True, text=True).stdout
    print(cap.strip().splitlines()[-1] if cap else "")
    port = json.loads((out / "manifest.json").read_text())[pcap.name]["sessions"][0]["server_port"]
    size = pcap.stat().st_size
    print(f"capture {pcap.name}: {size / 1e6:.1f} MB")

    keys = KeyStore()
    keys.add_text(keylog.read_text())

    # sensor + decoder, as an import runs
    t0 = time.perf_counter()
    chunks = []
    for ev in read_streams(str(pcap)):
        if isinstance(ev, StreamData):
            chunks.append((ev.direction, ev.data, ev.ts))
    t_sensor = time.perf_counter() - t0

    def decode():
        dec = SSHDecoder(keys=keys)
        payload = 0
        files = []
        t = dec._t
        for d, data, ts in chunks:
            for e in dec.feed(d, data, ts):
                if isinstance(e, FileTransfer):
                    files.append(e)
                elif isinstance(e, DecodeError):
                    print("decode error:", e.reason)
        files += [e for e in dec.close(chunks[-1][2], "fin") if isinstance(e, FileTransfer)]
        payload = sum(x.bytes for x in t.d.values())
        return payload, files

    t0 = time.perf_counter()
    payload, files = decode()
    t_dec = time.perf_counter() - t0
    assert files and files[0].size >= nbytes - 100, "the upload was not reconstructed"
    mb = payload / 1e6
    print(f"sessiontap decoder only:     {t_dec:6.2f} s  {mb / t_dec:7.1f} MB/s of SSH stream "
          f"({files[0].size / 1e6:.0f} MB file, sha256 {files[0].sha256[:16]}...)")
    print(f"sessiontap sensor + decoder: {t_sensor + t_dec:6.2f} s  "
          f"{mb / (t_sensor + t_dec):7.1f} MB/s")

    t0 = time.perf_counter()
    res = subprocess.run(["tshark", "-n", "-r", str(pcap), "-d", f"tcp.port=={port},ssh",
                          "-o", f"ssh.keylog_file:{keylog}", "-T", "fields", "-E", "occurrence=a",
                          "-e", "ssh.channel_data_length"],
                         capture_output=True, text=True, check=True)
    t_tshark = time.perf_counter() - t0
    seen = sum(int(n) for line in res.stdout.split() for n in line.split(",") if n)
    print(f"tshark 4.0 (same keys):      {t_tshark:6.2f} s  {mb / t_tshark:7.1f} MB/s of SSH stream,"
          f" but it recovered only {seen / 1e6:.3f} MB of channel data (ours: "
          f"{files[0].size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
