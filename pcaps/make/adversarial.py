#!/usr/bin/env python3
"""Adversarial and bad-input captures for the sensor, built from the bytes of a real Telnet session.

usage: python pcaps/make/adversarial.py [--src pcaps/telnet/t2_failed_then_success.pcap] [--out pcaps/adversarial]

Every session here is the real t2 session (inetutils telnet -> inetutils telnetd: two failed logins,
one good one, a few tagged commands), re-encapsulated or damaged in one precise way, with valid
checksums as a mirror port shows them.  What each file must yield goes to OUT/manifest.json; it is
derived from pcaps/telnet/manifest.json (the scenario's expectations) plus the exact change made
here (bytes deleted, segments swapped or forged), never from the code under test.

Needs scapy (packet building) and editcap (pcapng conversion, from wireshark-common).  The output
is deterministic for a given source capture, except the pcapng section header that editcap writes.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass, replace
from decimal import Decimal

from scapy.all import IP, TCP, Dot1AD, Dot1Q, Ether, IPv6, rdpcap

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SRC_NAME = "t2_failed_then_success.pcap"
MADE_BY = "pcaps/make/adversarial.py"

# addresses of the rebuilt session: a field-bus engineering station and a controller
CLIENT4, SERVER4 = "10.20.0.5", "10.20.0.23"
CLIENT6, SERVER6 = "2001:db8:20::5", "2001:db8:20::23"
CLIENT_MAC, SERVER_MAC = "00:1b:21:3a:4c:5e", "00:0e:8c:12:34:56"   # Intel NIC, Siemens OUI
ODD_PORT = 40023

LT_NULL, LT_ETHERNET, LT_RAW, LT_SLL, LT_SLL2 = 0, 1, 101, 113, 276


@dataclass(frozen=True)
class Seg:
    """One TCP segment of the source session, as the sensor should see it."""
    ts: Decimal
    c2s: bool
    sport: int
    dport: int
    seq: int
    ack: int
    flags: str
    window: int
    options: tuple
    payload: bytes


def load(src: str) -> tuple[list[Seg], int]:
    pkts = rdpcap(src)
    server_port = None
    segs = []
    for p in pkts:
        t = p[TCP]
        if server_port is None:                     # the first frame is the client's SYN
            assert t.flags == "S", "source capture must start with the SYN"
            server_port = t.dport
        segs.append(Seg(ts=Decimal(str(p.time)), c2s=t.dport == server_port, sport=t.sport, dport=t.dport,
                        seq=t.seq, ack=t.ack, flags=str(t.flags), window=t.window,
                        options=tuple(t.options), payload=bytes(t.payload)))
    return segs, server_port


# ------------------------------------------------------------------ building frames
def tcp(s: Seg, port_map: dict[int, int]) -> TCP:
    return TCP(sport=port_map.get(s.sport, s.sport), dport=port_map.get(s.dport, s.dport), seq=s.seq,
               ack=s.ack, flags=s.flags, window=s.window, options=list(s.options)) / s.payload


def ip4(s: Seg, pm) -> bytes:
    src, dst = (CLIENT4, SERVER4) if s.c2s else (SERVER4, CLIENT4)
    return bytes(IP(src=src, dst=dst, id=0, flags="DF", ttl=64) / tcp(s, pm))


def ip6(s: Seg, pm) -> bytes:
    src, dst = (CLIENT6, SERVER6) if s.c2s else (SERVER6, CLIENT6)
    return bytes(IPv6(src=src, dst=dst, hlim=64) / tcp(s, pm))


def macs(s: Seg) -> tuple[str, str]:
    return (CLIENT_MAC, SERVER_MAC) if s.c2s else (SERVER_MAC, CLIENT_MAC)


def eth(s: Seg, pm) -> bytes:
    src, dst = macs(s)
    return bytes(Ether(src=src, dst=dst, type=0x0800)) + ip4(s, pm)


def eth6(s: Seg, pm) -> bytes:
    src, dst = macs(s)
    return bytes(Ether(src=src, dst=dst, type=0x86DD)) + ip6(s, pm)


def vlan(s: Seg, pm) -> bytes:
    src, dst = macs(s)
    return bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=100, type=0x0800)) + ip4(s, pm)


def qinq(s: Seg, pm) -> bytes:
    src, dst = macs(s)
    return bytes(Ether(src=src, dst=dst) / Dot1AD(vlan=200) / Dot1Q(vlan=100, type=0x0800)) + ip4(s, pm)


def sll(s: Seg, pm) -> bytes:
    # Linux cooked v1: packet type (0 = to us, 4 = sent by us), ARPHRD_ETHER, address length,
    # 8-byte address field, protocol.  Captured on the server ("any" device).
    src, _ = macs(s)
    addr = bytes.fromhex(src.replace(":", "")) + b"\0\0"
    return struct.pack(">HHH8sH", 0 if s.c2s else 4, 1, 6, addr, 0x0800) + ip4(s, pm)


def sll2(s: Seg, pm) -> bytes:
    # Linux cooked v2: protocol, reserved, interface index, ARPHRD_ETHER, packet type, address
    # length, 8-byte address field.
    src, _ = macs(s)
    addr = bytes.fromhex(src.replace(":", "")) + b"\0\0"
    return struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0 if s.c2s else 4, 6, addr) + ip4(s, pm)


def null(s: Seg, pm) -> bytes:
    # BSD loopback: address family in the *capturing host's* byte order (little-endian here)
    return struct.pack("<I", 2) + ip4(s, pm)


def write_pcap(path: str, linktype: int, frames: list[tuple[Decimal, bytes]], *, nano=False,
               big_endian=False, tail: bytes = b"") -> None:
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    div = 10**9 if nano else 10**6
    for ts, data in frames:
        sec = int(ts)
        frac = int((ts - sec) * div)
        out.append(struct.pack(e + "IIII", sec, frac, len(data), len(data)) + data)
    out.append(tail)
    with open(path, "wb") as f:
        f.write(b"".join(out))


def frames_of(segs: list[Seg], build, pm=None) -> list[tuple[Decimal, bytes]]:
    return [(s.ts, build(s, pm or {})) for s in segs]


# ------------------------------------------------------------------ damaging the session
def data_segs(segs, c2s):
    return [i for i, s in enumerate(segs) if s.c2s == c2s and s.payload]


def find_payload(segs, c2s, needle: bytes) -> int:
    return next(i for i in data_segs(segs, c2s) if needle in segs[i].payload)


def keystroke_index(segs, command: str, k: int) -> int:
    """index in segs of the k-th keystroke segment of ``command`` typed by the client"""
    cs = data_segs(segs, True)
    stream = b"".join(segs[i].payload for i in cs)
    owner = [i for i in cs for _ in segs[i].payload]
    at = stream.index(command.encode() + b"\r")
    i = owner[at + k]
    assert len(segs[i].payload) == 1, "keystrokes must be one-byte segments"
    return i


def swap(segs, i, j):
    """move segment i after segment j (i < j) keeping the file chronological: the two swap places
    and timestamps, as a mirror port that saw them in this order would record them"""
    out = list(segs)
    a, b = out[i], out[j]
    out[i], out[j] = replace(b, ts=a.ts), replace(a, ts=b.ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=os.path.join(REPO, "pcaps", "telnet", SRC_NAME))
    ap.add_argument("--out", default=os.path.join(REPO, "pcaps", "adversarial"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731

    segs, sport = load(args.src)
    tn_manifest = json.load(open(os.path.join(os.path.dirname(args.src), "manifest.json")))
    base = tn_manifest[SRC_NAME]["sessions"][0]
    mark = base["commands"][0].split()[1].split("-t2-")[0]          # "st" (MARK of the corpus)
    manifest: dict[str, dict] = {}

    def expect(name, description, sessions, oracle=True, expect_error=None, **extra):
        entry = {"description": description, "made_by": MADE_BY, "oracle": oracle, "keys": None,
                 "expect_error": expect_error, "sessions": sessions, "source": SRC_NAME}
        entry.update(extra)
        manifest[name] = entry

    def sess(**changes):
        s = copy.deepcopy(base)
        s.update(changes)
        return s

    # --- link layers and encapsulations: same session, nothing missing
    # frame_protocols: what tshark's frame.protocols must say for every frame (encapsulation check)
    for name, lt, build, what, protos in [
        ("a01_ethernet.pcap", LT_ETHERNET, eth, "plain Ethernet II / IPv4 (the reference for the others)",
         "eth:ethertype:ip:tcp"),
        ("a02_vlan_8021q.pcap", LT_ETHERNET, vlan, "802.1Q VLAN 100 tag", "eth:ethertype:vlan:ethertype:ip:tcp"),
        ("a03_qinq_8021ad.pcap", LT_ETHERNET, qinq, "QinQ: 802.1ad outer tag (S-VLAN 200, EtherType 0x88a8) + "
         "802.1Q inner tag (C-VLAN 100)", "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:tcp"),
        ("a04_ipv6.pcap", LT_ETHERNET, eth6, "IPv6 (%s -> %s) over Ethernet" % (CLIENT6, SERVER6),
         "eth:ethertype:ipv6:tcp"),
        ("a05_linux_sll.pcap", LT_SLL, sll, "Linux cooked capture v1 (LINKTYPE_LINUX_SLL 113, as tcpdump -i any "
         "before libpcap 1.10)", "sll:ethertype:ip:tcp"),
        ("a06_linux_sll2.pcap", LT_SLL2, sll2, "Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 276, tcpdump -i any "
         "today)", "sll:ethertype:ip:tcp"),
        ("a07_raw_ip.pcap", LT_RAW, ip4, "raw IP, no link header (LINKTYPE_RAW 101)", "raw:ip:tcp"),
        ("a08_bsd_null_loopback.pcap", LT_NULL, null, "BSD loopback (LINKTYPE_NULL 0: 4-byte address family, "
         "little-endian 2 = IPv4)", "null:ip:tcp"),
    ]:
        write_pcap(out(name), lt, frames_of(segs, build))
        expect(name, f"real t2 session, {what}", [sess()], frame_protocols=protos, linktype=lt)

    write_pcap(out("a09_nanosecond_bigendian.pcap"), LT_ETHERNET, frames_of(segs, eth), nano=True, big_endian=True)
    expect("a09_nanosecond_bigendian.pcap",
           "real t2 session in a big-endian pcap with nanosecond timestamps (magic a1b23c4d written big-endian)",
           [sess()])

    # pcapng: converted by an independent tool from the Ethernet file
    subprocess.run(["editcap", "-F", "pcapng", out("a01_ethernet.pcap"), out("a10_pcapng.pcapng")], check=True)
    expect("a10_pcapng.pcapng", "real t2 session as pcapng (SHB, IDB, EPBs; written by editcap -F pcapng)",
           [sess()])

    with open(out("a01_ethernet.pcap"), "rb") as f:
        raw = f.read()
    with open(out("a11_gzip.pcap.gz"), "wb") as f:
        f.write(gzip.compress(raw, mtime=0))
    expect("a11_gzip.pcap.gz", "real t2 session, the classic pcap gzip-compressed (as logrotate or tcpdump -z gzip leave it)",
           [sess()])

    pm = {sport: ODD_PORT}
    write_pcap(out("a12_port_40023.pcap"), LT_ETHERNET, frames_of(segs, eth, pm))
    expect("a12_port_40023.pcap", f"real t2 session with the server port rewritten to {ODD_PORT}: nothing "
           "but the content says it is Telnet", [sess(server_port=ODD_PORT)])

    # --- reordering: in two commands the 2nd keystroke is moved after the 3rd
    r = segs
    moved = []
    for command in ("whoami", "sudo -n true"):
        i, j = keystroke_index(r, command, 1), keystroke_index(r, command, 2)
        moved.append({"command": command, "keys_arrive_as": command[0] + command[2] + command[1] + command[3:]})
        r = swap(r, i, j)
    write_pcap(out("a13_reordered.pcap"), LT_ETHERNET, frames_of(r, eth))
    expect("a13_reordered.pcap", "real t2 session where in `whoami` and `sudo -n true` the second keystroke "
           "segment arrives after the third (file order = arrival order): sequence-order reassembly must "
           "give the real commands", [sess()], reordered=moved)

    # --- duplicates: every 7th data segment (both directions) repeated 100 us later, same seq, same bytes
    d = []
    ndup = 0
    for k, s in enumerate(segs):
        d.append(s)
        if s.payload and k % 7 == 0:
            d.append(replace(s, ts=s.ts + Decimal("0.0001")))
            ndup += 1
    d.sort(key=lambda s: s.ts)
    write_pcap(out("a14_duplicated.pcap"), LT_ETHERNET, frames_of(d, eth))
    expect("a14_duplicated.pcap", f"real t2 session with {ndup} data segments sent twice (exact copies 100 us "
           "later, as spurious retransmissions): every byte must be delivered once",
           [sess(output_once=[f"{mark}-t2-after-fail"])], duplicated_segments=ndup)

    # --- overlap with different data: a forged copy of an output segment right after the original
    i = find_payload(segs, False, f"{mark}-t2-after-fail\r\n".encode())
    orig = segs[i].payload
    forged = orig.replace(f"{mark}-t2-after-fail".encode(), f"{mark}-t2-FORGED!!!!".encode())
    assert len(forged) == len(orig) and forged != orig
    o = segs[:i + 1] + [replace(segs[i], ts=segs[i].ts + Decimal("0.00005"), payload=forged)] + segs[i + 1:]
    write_pcap(out("a15_overlap_conflict.pcap"), LT_ETHERNET, frames_of(o, eth))
    expect("a15_overlap_conflict.pcap", "real t2 session where the server->client segment with the output line "
           f"`{mark}-t2-after-fail` is followed 50 us later by a segment with the same sequence range and "
           f"different bytes (`{mark}-t2-FORGED!!!!`): the first copy wins, one conflict is reported, the "
           "forged text never reaches the recording",
           [sess(conflicts=1, output_not_contains=["FORGED"],
                 conflict_detail=[{"direction": "s2c", "nbytes": len(orig), "kept": orig.decode("latin-1"),
                                   "dropped": forged.decode("latin-1")}])],
           oracle=False)

    # --- partial overlap: a segment straddling the end of an output segment A and the start of the
    # next one C; its bytes over A differ (a conflict), its bytes over C agree with C (no conflict
    # when C arrives).  The stream stays the real one.
    i = find_payload(segs, False, b"Permission denied")   # the output of the sed command
    a_seg = segs[i]
    a_end = a_seg.seq + len(a_seg.payload)
    c_idx = next(k for k in data_segs(segs, False) if segs[k].seq == a_end)
    c_seg = segs[c_idx]
    over, beyond = 6, 4
    assert len(a_seg.payload) >= over and len(c_seg.payload) >= beyond
    straddle = b"FORGED"[:over] + c_seg.payload[:beyond]
    assert straddle[:over] != a_seg.payload[-over:]
    b_seg = replace(a_seg, ts=a_seg.ts + Decimal("0.00005"), seq=a_end - over, payload=straddle)
    assert b_seg.ts < c_seg.ts, "the straddling segment must arrive before the next real one"
    p = segs[:i + 1] + [b_seg] + segs[i + 1:]
    write_pcap(out("a18_overlap_partial.pcap"), LT_ETHERNET, frames_of(p, eth))
    expect("a18_overlap_partial.pcap", f"real t2 session with an extra server->client segment of {over + beyond} "
           f"bytes straddling the end of one segment and the start of the next: its first {over} bytes "
           f"(`FORGED`) contradict what was already seen (one conflict, first copy wins), its last {beyond} "
           "agree with the segment that follows (no second conflict); the stream stays the real one",
           [sess(conflicts=1, output_not_contains=["FORGED"],
                 conflict_detail=[{"direction": "s2c", "nbytes": over,
                                   "kept": a_seg.payload[-over:].decode("latin-1"),
                                   "dropped": straddle[:over].decode("latin-1")}])],
           oracle=False)

    # --- missing segment: the output of `sudo -n true` is never captured (the client's ACK is)
    i = find_payload(segs, False, b"a password is required")
    lost = segs[i]
    write_pcap(out("a16_missing_segment.pcap"), LT_ETHERNET, frames_of(segs[:i] + segs[i + 1:], eth))
    expect("a16_missing_segment.pcap", f"real t2 session without the {len(lost.payload)}-byte server->client "
           "segment that carries the output of `sudo -n true` (and the next prompt): a gap of exactly that many "
           "bytes; decoding goes on after it",
           [sess(gaps=[{"direction": "s2c", "nbytes": len(lost.payload)}], status="partial",
                 output_contains=[x for x in base["output_contains"] if x != "sudo: a password is required"],
                 output_not_contains=["a password is required"])],
           oracle=False, deleted={"direction": "s2c", "nbytes": len(lost.payload),
                                  "payload": lost.payload.decode("latin-1")})

    # --- damaged files
    eth_frames = frames_of(segs, eth)
    last = eth_frames[-1][1]
    assert not segs[-1].payload, "the last frame should be a bare ACK"
    write_pcap(out("a17_truncated_last_record.pcap"), LT_ETHERNET, eth_frames[:-1],
               tail=struct.pack("<IIII", int(segs[-1].ts), 0, len(last), len(last)) + last[:len(last) // 2])
    expect("a17_truncated_last_record.pcap", "real t2 session whose last record (the final bare ACK) is cut in "
           "the middle of its data, as when the capturing process is killed: a warning, every session intact",
           [sess()], expect_error="last record cut short")

    # cut after the frame that shows the first command's output: login done, one command seen
    k = find_payload(segs, False, f"{mark}-t2-after-fail\r\n".encode()) + 1
    part = sess(commands=base["commands"][:1], output_contains=["Login incorrect", f"{mark}-t2-after-fail"],
                tags=[], command_tags=[], status="partial", not_commands=base["commands"][1:],
                ended="capture-end")
    write_pcap(out("b01_truncated_record_header.pcap"), LT_ETHERNET, eth_frames[:k],
               tail=struct.pack("<IIII", int(segs[k].ts), 0, 60, 60)[:7])
    expect("b01_truncated_record_header.pcap", f"the first {k} frames of the real t2 session (up to the output "
           "of its first command), then 7 bytes of a 16-byte record header: an error naming the truncation, "
           "and the session as far as it went", [part], oracle=False, expect_error="record header cut short")

    rest = b"".join(struct.pack("<IIII", int(ts), int((ts - int(ts)) * 10**6), len(f), len(f)) + f
                    for ts, f in eth_frames[k + 1:])
    absurd = struct.pack("<IIII", int(segs[k].ts), 0, 0x7FFFFFFF, 0x7FFFFFFF) + eth_frames[k][1]
    write_pcap(out("b02_absurd_record_length.pcap"), LT_ETHERNET, eth_frames[:k], tail=absurd + rest)
    expect("b02_absurd_record_length.pcap", f"the first {k} frames of the real t2 session, then a record header "
           "claiming 0x7fffffff bytes (followed by the rest of the session, which cannot be found again): an "
           "error, no attempt to allocate or read 2 GB, the session as far as it went",
           [part], oracle=False, expect_error="is absurd")

    with open(out("b03_not_a_pcap.txt"), "w") as f:
        f.write("This is not a capture file.\nIt is the kind of text an operator drops into the import folder.\n")
    expect("b03_not_a_pcap.txt", "a short text file", [], oracle=False, expect_error="not a pcap")

    open(out("b04_empty.pcap"), "wb").close()
    expect("b04_empty.pcap", "an empty file (0 bytes)", [], oracle=False, expect_error="empty")

    with open(out("manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"{len(manifest)} files in {args.out}")


if __name__ == "__main__":
    main()
