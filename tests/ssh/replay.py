"""Run SSHDecoder over a capture through the real sensor (what the importer does, minus storage)."""
from __future__ import annotations

from pathlib import Path

from reconstruct.ssh import KeyStore, SSHDecoder
from sensor.pipeline import read_streams
from sensor.streams import StreamClosed, StreamData, StreamGap, StreamOpened

PCAPS = Path(__file__).resolve().parents[2] / "pcaps" / "ssh"


def keystore(*files: str | Path | None) -> KeyStore:
    ks = KeyStore()
    for f in files:
        if f:
            p = PCAPS / f if not Path(f).is_absolute() else Path(f)
            ks.add_text(p.read_text(), p.name)
    return ks


def replay(pcap: str | Path, keys=None) -> list[list]:
    """Events of every SSH connection in the capture, in order of connection start."""
    p = PCAPS / pcap if not Path(pcap).is_absolute() else Path(pcap)
    decs: dict[int, SSHDecoder] = {}
    evs: dict[int, list] = {}
    for ev in read_streams(str(p)):
        if isinstance(ev, StreamOpened):
            decs[ev.flow_id] = SSHDecoder(keys=keys)
            evs[ev.flow_id] = []
        elif isinstance(ev, StreamData) and ev.flow_id in decs:
            evs[ev.flow_id] += decs[ev.flow_id].feed(ev.direction, ev.data, ev.ts)
        elif isinstance(ev, StreamGap) and ev.flow_id in decs:
            evs[ev.flow_id] += decs[ev.flow_id].gap(ev.direction, ev.nbytes, ev.ts)
        elif isinstance(ev, StreamClosed) and ev.flow_id in decs:
            evs[ev.flow_id] += decs[ev.flow_id].close(ev.ts, ev.reason)
            del decs[ev.flow_id]
    return [evs[k] for k in sorted(evs)]


def streams(pcap: str | Path) -> list[tuple[str, bytes, float]]:
    """The (direction, bytes, ts) chunks of the first connection, as the sensor delivers them."""
    p = PCAPS / pcap if not Path(pcap).is_absolute() else Path(pcap)
    first = None
    out = []
    for ev in read_streams(str(p)):
        if isinstance(ev, StreamOpened) and first is None:
            first = ev.flow_id
        elif isinstance(ev, StreamData) and ev.flow_id == first:
            out.append((ev.direction, ev.data, ev.ts))
    return out


def run(chunks, keys=None, close: bool = True) -> tuple[SSHDecoder, list]:
    dec = SSHDecoder(keys=keys)
    evs: list = []
    for d, data, ts in chunks:
        evs += dec.feed(d, data, ts)
    if close:
        evs += dec.close(chunks[-1][2] if chunks else 0.0, "fin")
    return dec, evs
