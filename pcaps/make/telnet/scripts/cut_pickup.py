#!/usr/bin/env python3
"""Make a "picked-up" copy of a capture: drop the TCP handshake and everything before a chosen point,
as a sensor that starts (or loses its flow table) mid-session sees it.  stdlib + tshark/editcap.

usage: cut_pickup.py CLEAN.pcap SERVER_PORT OUT.pcap

The copy starts with the first frame after the server->client segment that carries the first
"Login incorrect" of CLEAN.  inetutils sends that message and the next "login: " prompt in one
segment, so the copy begins with the user name of the second attempt being typed (no prompt before
it), then "Password: ", the wrong password, "Login incorrect", the third (successful) attempt and the
whole shell session.  No SYN, no option negotiation, nothing of the first attempt.  Every frame
from the cut point on is kept unchanged (editcap).
Prints a JSON description of the cut.
"""
import json
import os
import subprocess
import sys
from decimal import Decimal

clean, sport, dst = sys.argv[1:4]

out = subprocess.run(
    ["tshark", "-r", clean, "-o", "tcp.relative_sequence_numbers:TRUE", "-T", "fields",
     "-e", "frame.number", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.seq",
     "-e", "tcp.len", "-e", "tcp.payload"], check=True, capture_output=True, text=True).stdout
frames = []
for line in out.splitlines():
    n, t, sp, seq, ln, pl = line.split("\t")
    frames.append(dict(frame=int(n), t=Decimal(t), dir="C>S" if sp != sport else "S>C",
                       seq=int(seq), len=int(ln), data=bytes.fromhex(pl)))

fail = next(f for f in frames if f["dir"] == "S>C" and b"Login incorrect" in f["data"])
cut = next(f for f in frames if f["frame"] > fail["frame"])
last = frames[-1]["frame"]
subprocess.run(["editcap", "-F", "pcap", "-r", clean, dst, "%d-%d" % (cut["frame"], last)],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
c2s_before = sum(f["len"] for f in frames if f["frame"] < cut["frame"] and f["dir"] == "C>S")
s2c_before = sum(f["len"] for f in frames if f["frame"] < cut["frame"] and f["dir"] == "S>C")
print(json.dumps({os.path.basename(dst): {
    "source": os.path.basename(clean),
    "action": "kept frames %d-%d of the source (editcap -r): the handshake and the first login attempt are cut"
              % (cut["frame"], last),
    "first_frame": {"frame": cut["frame"], "direction": cut["dir"], "rel_seq": cut["seq"], "len": cut["len"],
                    "time_epoch": str(cut["t"]), "payload": cut["data"].decode("latin-1")},
    "cut_bytes": {"c2s": c2s_before, "s2c": s2c_before},
    "cut_seconds": str(cut["t"] - frames[0]["t"]),
    "effect": "no SYN: the connection must be picked up mid-stream (client = the ephemeral port side); "
              "the capture starts right after the first 'Login incorrect' + 'login: ' segment"}}, indent=2))
