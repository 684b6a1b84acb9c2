"""Import capture files: sensor -> reconstruct -> storage, for each file given.

The importer is wiring only: the sensor yields stream events, each flow gets its decoder and
``SessionReconstructor``, and each finished session is written (recording artefacts first,
then the catalog row in one transaction, so a catalog row never points at missing bytes).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from appliance.home import Home
from reconstruct.decoder import KeyLookup, NoKeys
from reconstruct.events import Event, Tagged
from reconstruct.registry import DecoderUnavailable, make_decoder
from reconstruct.session import SessionReconstructor, SessionRecord, session_id
from sensor.capture import CaptureError
from sensor.flows import Limits
from sensor.pipeline import SensorRun
from sensor.streamlog import StreamLog, replay
from sensor.streams import StreamClosed, StreamConflict, StreamData, StreamGap, StreamOpened
from storage.catalog import Catalog
from storage.recordings import RecordingStore

ENCRYPTED = {"ssh", "rdp"}       # protocols whose raw streams are kept for later keys


@dataclass
class FileResult:
    path: str
    sessions: list[dict[str, Any]] = field(default_factory=list)
    already: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    packets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stats: Any = None


def default_tagger() -> Callable[[Event], list[Tagged]] | None:
    try:
        from reconstruct.rules import RuleSet
    except ImportError:
        return None
    return RuleSet.default().apply


def render_cast(rec: SessionRecord) -> bytes | None:
    try:
        from reconstruct.asciicast import render
    except ImportError:
        return None
    return render(rec)


class Importer:
    def __init__(self, home: Home, keys: KeyLookup | None = None,
                 tagger: Callable[[Event], list[Tagged]] | None = None,
                 decoder_options: dict[str, dict[str, Any]] | None = None,
                 limits: Limits | None = None, actor: str = "import") -> None:
        self.home = home
        self.keys = keys or NoKeys()
        self.tagger = tagger if tagger is not None else default_tagger()
        self.decoder_options = decoder_options or {}
        self.limits = limits
        self.actor = actor
        self.fresh_keys = not isinstance(self.keys, NoKeys)

    def _decoder(self, protocol: str):  # type: ignore[no-untyped-def]
        try:
            return make_decoder(protocol, self.keys, **self.decoder_options.get(protocol, {}))
        except DecoderUnavailable:
            return None

    def import_file(self, path: str, catalog: Catalog, store: RecordingStore,
                    progress: Callable[[int, int], None] | None = None) -> FileResult:
        res = FileResult(path)
        t0 = time.perf_counter()
        source = os.path.basename(path)
        run = SensorRun(path, self.limits, progress=progress)
        iid = catalog.begin_import(os.path.abspath(path), "", run.size)
        active: dict[int, tuple[SessionReconstructor, StreamLog | None]] = {}
        ignored: set[int] = set()
        try:
            for ev in run:
                if isinstance(ev, StreamData):
                    a = active.get(ev.flow_id)
                    if a is not None:
                        a[0].data(ev.direction, ev.data, ev.ts)
                        if a[1] is not None:
                            a[1].data(ev.direction, ev.data, ev.ts)
                elif isinstance(ev, StreamOpened):
                    sid = session_id(ev.protocol, ev.client_ip, ev.client_port, ev.server_ip, ev.server_port, ev.ts)
                    prior = catalog.session_status(sid)
                    if prior is not None and not (self.fresh_keys and prior[1] is False):
                        res.already += 1
                        ignored.add(ev.flow_id)
                        continue
                    recon = SessionReconstructor(ev.ts, ev.protocol, ev.client_ip, ev.client_port, ev.server_ip,
                                                 ev.server_port, ev.picked_up, self._decoder(ev.protocol), self.tagger)
                    active[ev.flow_id] = (recon, StreamLog() if ev.protocol in ENCRYPTED else None)
                elif isinstance(ev, StreamGap):
                    a = active.get(ev.flow_id)
                    if a is not None:
                        a[0].gap(ev.direction, ev.nbytes, ev.ts)
                        if a[1] is not None:
                            a[1].gap(ev.direction, ev.nbytes, ev.ts)
                elif isinstance(ev, StreamConflict):
                    a = active.get(ev.flow_id)
                    if a is not None:
                        a[0].conflict(ev.direction, ev.offset, ev.nbytes, ev.ts)
                elif isinstance(ev, StreamClosed):
                    a = active.pop(ev.flow_id, None)
                    if a is not None:
                        rec = a[0].close(ev.ts, ev.reason)
                        res.sessions.append(self.persist(rec, a[1], catalog, store, iid, source))
        except CaptureError as e:
            res.error = str(e)
        finally:
            # whatever was open when the file ended or broke is still a session
            for recon, log in active.values():
                rec = recon.close(run.last_ts or recon.record.start, "capture-end")
                res.sessions.append(self.persist(rec, log, catalog, store, iid, source))
            res.problems = [str(p) for p in run.problems]
            res.packets = run.stats.packets
            res.bytes = run.stats.bytes
            res.stats = run.stats
            res.seconds = time.perf_counter() - t0
            status = "failed" if res.error else ("damaged" if res.problems else "ok")
            catalog.finish_import(iid, run.stats.packets, len(res.sessions), res.problems + ([res.error] if res.error else []), status)
        return res

    def persist(self, rec: SessionRecord, log: StreamLog | None, catalog: Catalog, store: RecordingStore,
                import_id: int | None, source: str) -> dict[str, Any]:
        names: list[str] = []
        meta = {"time_range": (rec.start, rec.end if rec.end is not None else rec.start), "source": source}
        if log is not None and log.size:
            names.append(_put_versioned(store, rec.id, "streams.bin", log.blob(), meta))
        for f in rec.files:
            if f.content is not None:
                name = f"files/{f.sha256}"
                if not store.exists(rec.id, name):
                    store.put(rec.id, name, f.content, **meta)
                names.append(name)
        if any(type(e).__name__ == "Output" for e in rec.terminal):
            cast = render_cast(rec)
            if cast:
                names.append(_put_versioned(store, rec.id, "terminal.cast", cast, meta))
        catalog.write_session(rec, import_id, source, names)
        return {"id": rec.id, "protocol": rec.protocol, "client": f"{rec.client_ip}:{rec.client_port}",
                "server": f"{rec.server_ip}:{rec.server_port}", "user": rec.user, "auth": rec.auth,
                "commands": len(rec.commands), "status": rec.status, "status_reason": rec.status_reason,
                "decrypted": rec.decrypted, "start": rec.start, "end": rec.end}

    def redecode(self, sid: str, catalog: Catalog, store: RecordingStore) -> dict[str, Any] | None:
        """Decode a stored encrypted session again (new keys arrived)."""
        row = catalog.session(sid)
        if row is None or not store.exists(sid, _latest(store, sid, "streams.bin")):
            return None
        blob = store.get(sid, _latest(store, sid, "streams.bin"), actor=self.actor, purpose="decrypt with new keys")
        recon = SessionReconstructor(_ts(row["start"]), row["protocol"], row["client_ip"], row["client_port"],
                                     row["server_ip"], row["server_port"], row["picked_up"],
                                     self._decoder(row["protocol"]), self.tagger)
        log = StreamLog()
        end = _ts(row["start"])
        for what, direction, ts, payload in replay(blob):
            end = ts
            if what == "data":
                recon.data(direction, payload, ts)  # type: ignore[arg-type]
                log.data(direction, payload, ts)  # type: ignore[arg-type]
            else:
                recon.gap(direction, payload, ts)  # type: ignore[arg-type]
                log.gap(direction, payload, ts)  # type: ignore[arg-type]
        rec = recon.close(_ts(row["end"]) if row["end"] else end, row["end_reason"] or "capture-end")
        return self.persist(rec, log, catalog, store, None, row["source"] or "")


def _ts(iso_text: str) -> float:
    from storage.catalog import parse_time
    return parse_time(iso_text)


def _latest(store: RecordingStore, sid: str, name: str) -> str:
    base, dot, ext = name.rpartition(".")
    versions = [n for n in store.names(sid) if n == name or (n.startswith(base + ".v") and n.endswith("." + ext))]
    return sorted(versions, key=lambda n: (len(n), n))[-1] if versions else name


def _put_versioned(store: RecordingStore, sid: str, name: str, data: bytes, meta: dict) -> str:
    """Artefacts are never overwritten (evidence): a re-decoded session gets a new version."""
    if not store.exists(sid, name):
        store.put(sid, name, data, **meta)
        return name
    digest = hashlib.sha256(data).hexdigest()
    base, _, ext = name.rpartition(".")
    v = 2
    while True:
        cand = f"{base}.v{v}.{ext}"
        if not store.exists(sid, cand):
            store.put(sid, cand, data, **meta)
            return cand
        v += 1
        if v > 1000:
            raise RuntimeError(f"too many versions of {sid}/{name} ({digest[:12]})")
