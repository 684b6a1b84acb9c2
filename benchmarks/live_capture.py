#!/usr/bin/env python3
"""Live capture benchmark: how fast can traffic cross the mirror port before packets are lost?

    sudo .venv/bin/python benchmarks/live_capture.py [--mix big.pcap] [--rates 5000,20000,...]

A network namespace and a veth pair make a virtual SPAN port (as in tests/appliance). For each
rate, tcpreplay sends the mix at that many packets per second for about ``--seconds``, and we
read the kernel's and the sensor's drop counters, the sensor's CPU time and peak RSS.

These paths are measured on the same rates, which is how the capture method was chosen:

* ``sensor``  - the whole appliance (``sessiontap sensor``: capture + reconstruction + vault), with
  the capture method(s) of ``--methods`` (``ring``: TPACKET_V3 mmap'd ring, ``socket``: one
  ``recvmsg`` per packet); after the last rate it is stopped with SIGTERM while still behind, and
  the time to exit and the packets counted as stop drops are reported;
* ``reader``  - our capture alone (``RingSocket`` / ``PacketSocket``, batches discarded): what the
  capture costs without the reconstruction, to tell the two apart;
* ``tcpdump`` - ``tcpdump -w -`` into a pipe that is read and discarded (a capture child process).

Then the keystroke-to-``live`` latency: a Telnet session is replayed up to its login, a
``sessiontap live ID`` follower attaches, and each further server packet is sent on its own;
the time from sending a frame to the follower printing its bytes is reported (median, p95).

The default mix is the project's Telnet captures back to back: every packet is an admin-session
packet, the worst case for per-packet Python. ``benchmarks/make_mix.sh`` builds a realistic
mirror-port mix (mostly bulk traffic the kernel filter drops) to pass with ``--mix``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# all on port 2323, which the sensor's default filter lets through: every frame sent must be captured
TELNET = ["t1_inetutils_full_session.pcap", "t2_failed_then_success.pcap", "t4_two_concurrent_sessions.pcap"]


def sh(*args: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


class Span:
    def __init__(self) -> None:
        tag = str(os.getpid() % 100000)
        self.ns, self.mirror, self.inside = f"stbench-{tag}", f"sbm{tag}", f"sbi{tag}"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.mirror, "mtu", "65535", "type", "veth", "peer", "name", self.inside, "mtu", "65535")
        sh("ip", "link", "set", self.inside, "netns", self.ns)
        sh("ip", "link", "set", self.mirror, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.inside, "up")

    def replay(self, pcap: Path, pps: int, loops: int) -> dict:
        p = sh("ip", "netns", "exec", self.ns, "tcpreplay", "-i", self.inside, f"--pps={pps}", f"--loop={loops}",
               str(pcap))
        sent = int(p.stdout.split("Actual: ")[1].split()[0]) if "Actual: " in p.stdout else 0
        secs = float(p.stdout.split("sent in ")[1].split()[0]) if "sent in " in p.stdout else 0.0
        return {"sent": sent, "seconds": secs}

    def close(self) -> None:
        sh("ip", "link", "del", self.mirror)
        sh("ip", "netns", "del", self.ns)


def family(pid: int) -> list[int]:
    """The process and its children (the sensor's other processes with ``--workers``)."""
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        kids = []
    return [pid] + [int(k) for k in kids]


def proc_cpu(pid: int) -> float:
    total = 0.0
    for p in family(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def proc_hwm_mb(pid: int) -> float:
    total = 0.0
    for p in family(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def settle(read, quiet: float = 1.0, limit: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    """Counters once they stop moving (the kernel buffer can hold seconds of backlog)."""
    last = read()
    deadline = time.time() + limit
    while time.time() < deadline:
        time.sleep(quiet)
        now = read()
        if now["packets"] == last["packets"] and not now.get("capture_queue_bytes") \
                and now.get("updated", 1) != last.get("updated", 0):
            return now
        last = now
    return last


def mix_pcap(tmp: Path) -> Path:
    out = tmp / "mix.pcap"
    sh("mergecap", "-a", "-F", "pcap", "-w", str(out), *(str(ROOT / "pcaps" / "telnet" / n) for n in TELNET),
       check=True)
    return out


def packets_in(pcap: Path) -> int:
    p = sh("capinfos", "-c", "-M", str(pcap))
    return int(p.stdout.split("Number of packets:")[1].split()[0])


def bench_sensor(span: Span, pcap: Path, rates: list[int], seconds: float, home: Path, method: str) -> list[dict]:
    """``method``: ring, socket, or ring:N for N sensor processes sharing the port."""
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    errlog = open(home.parent / f"sensor-{method.replace(':', '-')}.log", "wb")
    how, _, workers = method.partition(":")
    p = subprocess.Popen([sys.executable, "-m", "appliance.cli", "sensor", "--interface", span.mirror,
                          "--checkpoint-seconds", "2", "--capture-method", how, "--workers", workers or "1"],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errlog)
    status = home / "run" / "status.json"
    while not status.exists():
        time.sleep(0.2)
    time.sleep(1)
    n = packets_in(pcap)
    out = []
    try:
        for rate in rates:
            st0 = json.loads(status.read_text())["counters"]
            cpu0 = proc_cpu(p.pid)
            t0 = time.time()
            r = span.replay(pcap, rate, max(1, round(rate * seconds / n)))
            st1 = settle(lambda: {**(d := json.loads(status.read_text()))["counters"], "updated": d["updated"]},
                         quiet=2.0, limit=120)
            wall = time.time() - t0
            out.append({"path": f"sensor/{method}", "pps": rate, "sent": r["sent"], "achieved_pps": round(r["sent"] / r["seconds"]) if r["seconds"] else 0,
                        "captured": st1["packets"] - st0["packets"],
                        "kernel_drops": st1["kernel_drops"] - st0["kernel_drops"],
                        "own_drops": st1["own_drops"] - st0["own_drops"],
                        "processed": st1["processed_packets"] - st0["processed_packets"],
                        "settle_seconds": round(wall - r["seconds"], 1),
                        "cpu_percent": round(100 * (proc_cpu(p.pid) - cpu0) / wall, 1),
                        "rss_peak_mb": round(proc_hwm_mb(p.pid), 1)})
            print(json.dumps(out[-1]), flush=True)
        # stop while behind: the last rate again, SIGTERM as soon as tcpreplay is done
        span.replay(pcap, rates[-1], 1)
    finally:
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=300)
        stop = {"path": f"sensor/{method}", "stop_exit": rc, "stop_seconds": round(time.monotonic() - t0, 1)}
        try:
            stop["stop_drops"] = json.loads(status.read_text())["counters"].get("stop_drops")
        except (OSError, ValueError):
            pass
        out.append(stop)
        print(json.dumps(stop), flush=True)
    return out


def bench_reader(span: Span, pcap: Path, rates: list[int], seconds: float, method: str) -> list[dict]:
    from sensor.live import ADMIN_PORTS, PacketSocket, RingSocket, build_filter, compile_filter
    n = packets_in(pcap)
    out = []
    for rate in rates:
        bpf = compile_filter(build_filter([], list(ADMIN_PORTS), False), span.mirror)
        src = RingSocket(span.mirror, bpf) if method == "ring" else PacketSocket(span.mirror, bpf)
        src.start()
        got = [0]

        def drain() -> None:
            for b in src.batches(0.2):
                if b is not None:
                    got[0] += len(b)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        c0 = time.process_time()
        t0 = time.time()
        r = span.replay(pcap, rate, max(1, round(rate * seconds / n)))
        settle(lambda: {"packets": src.counters.packets + src.refresh_counters().kernel_drops})
        c = src.counters
        wall = time.time() - t0
        out.append({"path": f"reader/{method}", "pps": rate, "sent": r["sent"], "captured": c.packets,
                    "kernel_drops": c.kernel_drops, "own_drops": c.own_drops,
                    "cpu_percent": round(100 * (time.process_time() - c0) / wall, 1)})
        print(json.dumps(out[-1]), flush=True)
        src.stop()
    return out


def bench_tcpdump(span: Span, pcap: Path, rates: list[int], seconds: float) -> list[dict]:
    from sensor.live import ADMIN_PORTS, build_filter
    n = packets_in(pcap)
    out = []
    for rate in rates:
        p = subprocess.Popen(["tcpdump", "-i", span.mirror, "-s", "262144", "-B", "65536", "-U", "-w", "-",
                              build_filter([], list(ADMIN_PORTS), False)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        nbytes = [0]

        def drain() -> None:
            assert p.stdout is not None
            while True:
                b = p.stdout.read1(1 << 20)
                if not b:
                    return
                nbytes[0] += len(b)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        time.sleep(1.0)
        cpu0 = proc_cpu(p.pid)
        t0 = time.time()
        r = span.replay(pcap, rate, max(1, round(rate * seconds / n)))
        time.sleep(1.0)
        wall = time.time() - t0
        cpu = proc_cpu(p.pid) - cpu0
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
        text = err.decode()
        captured = int(text.split(" packets captured")[0].split()[-1]) if "packets captured" in text else -1
        drops = int(text.split(" packets dropped by kernel")[0].split()[-1]) if "dropped by kernel" in text else -1
        out.append({"path": "tcpdump", "pps": rate, "sent": r["sent"], "captured": captured, "kernel_drops": drops,
                    "cpu_percent": round(100 * cpu / wall, 1), "note": "drops known only at exit"})
        print(json.dumps(out[-1]), flush=True)
    return out


def bench_latency(span: Span, home: Path, tmp: Path, samples: int, method: str) -> dict:
    """Frame sent -> follower printed it, for single server packets of a live Telnet session."""
    t1 = ROOT / "pcaps" / "telnet" / "t1_inetutils_full_session.pcap"
    fields = sh("tshark", "-r", str(t1), "-T", "fields", "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.len").stdout
    rows = [tuple(map(int, l.split("\t"))) for l in fields.splitlines() if l.count("\t") == 2]
    login = next(f for f, _sp, _ln in rows if f > 60)
    later = [f for f, sp, ln in rows if f > login and sp == 2323 and ln > 0][:samples]
    head = tmp / "head.pcap"
    sh("editcap", "-F", "pcap", "-r", str(t1), str(head), f"1-{login}", check=True)
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    sensor = subprocess.Popen([sys.executable, "-m", "appliance.cli", "sensor", "--interface", span.mirror,
                               "--capture-method", method],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = home / "run" / "status.json"
    lat: list[float] = []
    try:
        while not status.exists():
            time.sleep(0.2)
        time.sleep(1)
        span.replay(head, 1000, 1)
        while not json.loads(status.read_text())["sessions"]:
            time.sleep(0.1)
        sid = json.loads(status.read_text())["sessions"][0]["id"]
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(home / "run" / "sensor.sock"))
        s.sendall(json.dumps({"op": "follow", "id": sid}).encode() + b"\n")
        f = s.makefile("rb")
        f.readline()
        s.settimeout(0.3)
        try:                                    # the backlog up to now
            while f.readline():
                pass
        except (socket.timeout, OSError):
            pass
        s.settimeout(5)
        f = s.makefile("rb")
        # one injector in the namespace: frame in, send time out (replaying one by one with
        # tcpreplay would measure its start-up, not ours)
        frames = []
        for fr in later:
            one = tmp / f"f{fr}.pcap"
            sh("editcap", "-F", "pcap", "-r", str(t1), str(one), str(fr), check=True)
            data = one.read_bytes()[24:]
            frames.append(data[16:])
        inj = subprocess.Popen(["ip", "netns", "exec", span.ns, sys.executable, "-c",
                                "import socket,sys,time\n"
                                f"s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('{span.inside}',0))\n"
                                "for line in sys.stdin:\n"
                                "  b=bytes.fromhex(line.strip()); t=time.time(); s.send(b)\n"
                                "  print(t,flush=True)\n"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for fr in frames:
            assert inj.stdin is not None and inj.stdout is not None
            inj.stdin.write(fr.hex() + "\n")
            inj.stdin.flush()
            sent = float(inj.stdout.readline())
            try:
                line = f.readline()
            except socket.timeout:
                continue
            if line and b'"o"' in line:
                lat.append(time.time() - sent)
            time.sleep(0.05)
        inj.stdin.close()  # type: ignore[union-attr]
        inj.wait(timeout=10)
    finally:
        sensor.send_signal(signal.SIGTERM)
        sensor.wait(timeout=60)
    if not lat:
        return {"samples": 0}
    lat.sort()
    return {"samples": len(lat), "median_ms": round(1000 * statistics.median(lat), 1),
            "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1), "max_ms": round(1000 * lat[-1], 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mix", type=Path)
    ap.add_argument("--rates", default="5000,10000,20000,40000,80000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--paths", default="sensor,reader,tcpdump,latency")
    ap.add_argument("--methods", default="ring,socket,ring:2",
                    help="capture methods (ring:N: N sensor processes; the reader and latency use the plain ones)")
    ap.add_argument("--latency-samples", type=int, default=30)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespace, packet sockets)", file=sys.stderr)
        return 2
    rates = [int(r) for r in a.rates.split(",")]
    paths = a.paths.split(",")
    span = Span()
    results: dict = {}
    try:
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmpd:
            tmp = Path(tmpd)
            pcap = a.mix or mix_pcap(tmp)
            print(f"mix: {pcap} ({packets_in(pcap)} packets)", flush=True)
            print(f"load before: {open('/proc/loadavg').read().strip()}", flush=True)
            for method in a.methods.split(","):
                if "sensor" in paths:
                    results[f"sensor/{method}"] = bench_sensor(span, pcap, rates, a.seconds, tmp / f"home-{method}",
                                                               method)
                if "reader" in paths and ":" not in method:
                    results[f"reader/{method}"] = bench_reader(span, pcap, rates, a.seconds, method)
                if "latency" in paths and ":" not in method:
                    results[f"latency/{method}"] = bench_latency(span, tmp / f"home-lat-{method}", tmp,
                                                                 a.latency_samples, method)
                    print(json.dumps({f"latency/{method}": results[f"latency/{method}"]}), flush=True)
            if "tcpdump" in paths:
                results["tcpdump"] = bench_tcpdump(span, pcap, rates, a.seconds)
            print(f"load after: {open('/proc/loadavg').read().strip()}", flush=True)
    finally:
        span.close()
    for path, rows in results.items():
        if path.startswith("latency"):
            continue
        rows = [r for r in rows if "pps" in r]
        # every packet the kernel filter let through was captured (and, for the sensor, processed)
        ok = [r["pps"] for r in rows if r.get("kernel_drops", 0) == 0 and r.get("own_drops", 0) == 0
              and r["captured"] > 0 and r.get("processed", r["captured"]) >= r["captured"]]
        print(f"{path}: highest rate with zero drops: {max(ok) if ok else 'none'} pps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
