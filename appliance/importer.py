"""Import capture files: sensor -> reconstruct -> storage, for each file given.

The importer is wiring only: the sensor yields stream events, each flow gets its decoder and
``SessionReconstructor``, and each finished session is written (recording artefacts first,
then the catalog row in one transaction, so a catalog row never points at missing bytes).
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from appliance.home import Home
from reconstruct.asciicast import render
from reconstruct.decoder import KeyLookup, NoKeys
from reconstruct.events import Event, FileTransfer, Output, Tagged
from reconstruct import seek
from reconstruct.rules import RuleSet
from reconstruct.registry import DecoderUnavailable, make_decoder
from reconstruct.session import SessionReconstructor, SessionRecord, session_id
from sensor.capture import CaptureError, capture_size
from sensor.flows import Limits
from sensor.pipeline import SensorRun
from sensor.streamlog import StreamLog, replay
from sensor.streams import StreamClosed, StreamConflict, StreamData, StreamGap, StreamOpened
from storage.catalog import Catalog
from storage.recordings import RecordingStore, latest_version, next_version

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


def default_tagger() -> Callable[[Event], list[Tagged]]:
    return RuleSet.default().apply


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
                    progress: Callable[[int, int], None] | None = None, jobs: int = 1) -> FileResult:
        """Import one capture. With ``jobs`` > 1 the flows are sharded by their 5-tuple hash
        over that many worker processes (each reads the whole file, decodes only its flows and
        seals its recordings); this process writes every catalog row."""
        res = FileResult(path)
        t0 = time.perf_counter()
        source = os.path.basename(path)
        iid = catalog.begin_import(os.path.abspath(path), "", capture_size(path))
        known = catalog.session_states()
        skip = {sid for sid, decrypted in known.items() if not (self.fresh_keys and decrypted is False)}
        batch = SessionBatch(store, lambda items: catalog.write_sessions(
            [(rec, iid, source, names) for rec, names in items]))
        try:
            if jobs > 1 and _shardable(path):
                for rec, names in self._parallel(path, jobs, skip, progress, res):
                    batch.add(rec, names, [])
                    res.sessions.append(summary(rec))
            else:
                run = SensorRun(path, self.limits, progress=progress)
                flows = FlowReconstruction(self, run, skip)
                for rec, log in flows:
                    batch.add(rec, *self.artefacts(rec, log, store, source))
                    res.sessions.append(summary(rec))
                res.error, res.already = flows.error, flows.already
                res.problems = [str(p) for p in run.problems]
                res.packets, res.bytes, res.stats = run.stats.packets, run.stats.bytes, run.stats
        finally:
            batch.flush()       # what was reconstructed before a failure is kept
            res.seconds = time.perf_counter() - t0
            status = "failed" if res.error else ("damaged" if res.problems else "ok")
            catalog.finish_import(iid, res.packets, len(res.sessions), res.problems + ([res.error] if res.error else []), status)
        return res

    def _parallel(self, path: str, jobs: int, skip: set[str], progress: Callable[[int, int], None] | None,
                  res: FileResult) -> Iterator[tuple[SessionRecord, list[str]]]:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue(maxsize=4 * jobs)
        procs = [ctx.Process(target=_shard_worker, daemon=True,
                             args=(path, i, jobs, str(self.home.path), self.keys, self.decoder_options, skip,
                                   self.limits, self.actor, queue))
                 for i in range(jobs)]
        for p in procs:
            p.start()
        done_bytes = [0] * jobs
        size = capture_size(path)
        running = jobs
        try:
            while running:
                msg = queue.get()
                kind = msg[0]
                if kind == "sessions":
                    yield from msg[1]
                elif kind == "progress":
                    done_bytes[msg[1]] = msg[2]
                    if progress:
                        progress(min(done_bytes), size)
                elif kind == "done":
                    running -= 1
                    _, i, error, already, problems, stats = msg
                    res.already += already
                    if i == 0:
                        res.error, res.problems = error, problems
                        res.packets, res.bytes, res.stats = stats.packets, stats.bytes, stats
                elif kind == "crash":
                    running -= 1
                    res.error = res.error or f"{path}: a worker failed: {msg[2]}"
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()

    def artefacts(self, rec: SessionRecord, log: StreamLog | None, store: RecordingStore,
                  source: str) -> tuple[list[str], list[tuple[str, str, bytes, dict]]]:
        """What a finished session leaves in the vault: the names for its catalog row and the
        (session, name, data, meta) items still to seal."""
        names: list[str] = []
        puts: list[tuple[str, str, bytes, dict]] = []
        stored = store.names(rec.id)
        meta = {"time_range": (rec.start, rec.end if rec.end is not None else rec.start), "source": source}
        if log is not None and log.size:
            name = next_version(stored, "streams.bin")
            names.append(name)
            puts.append((rec.id, name, log.blob(), meta))
        for f in rec.files:
            if f.content is not None:
                name = f"files/{f.sha256}"
                if name in names:           # the same content moved twice is stored once
                    continue
                if name not in stored:
                    puts.append((rec.id, name, f.content, meta))
                names.append(name)
        for base, data in rec.artefacts.items():
            name = next_version(stored, base)
            names.append(name)
            puts.append((rec.id, name, data, meta))
        if any(isinstance(e, Output) for e in rec.terminal):
            cast = render(rec)
            if cast:
                name = next_version(stored, "terminal.cast")
                names.append(name)
                puts.append((rec.id, name, cast, meta))
                if len(cast) > seek.WHOLE_LIMIT:
                    # a long recording gets its seek index now, so the console opens it at any
                    # second from its first replay (built lazily otherwise, on its own retention clock)
                    iname = seek.index_name(name)
                    if iname not in stored:
                        index = seek.build_index(cast, hashlib.sha256(cast).hexdigest())
                        names.append(iname)
                        puts.append((rec.id, iname, index.to_bytes(), meta))
        return names, puts

    def store_artefacts(self, rec: SessionRecord, log: StreamLog | None, store: RecordingStore,
                        source: str) -> list[str]:
        """Seal a finished session's artefacts now; returns their names for the catalog row."""
        names, puts = self.artefacts(rec, log, store, source)
        _seal(store, puts)
        return names

    def redecode(self, sid: str, catalog: Catalog, store: RecordingStore,
                 only_if_decrypted: bool = False) -> dict[str, Any] | None:
        """Decode a stored encrypted session again (new keys arrived). With
        ``only_if_decrypted``, nothing is written unless the new keys did decrypt it (the live
        sensor tries every waiting session on each deposit)."""
        row = catalog.session(sid)
        stream_name = latest_version(store.names(sid), "streams.bin")
        if row is None or stream_name is None:
            return None
        blob = store.get(sid, stream_name, actor=self.actor, purpose="decrypt with new keys")
        recon = SessionReconstructor(_ts(row["start"]), row["protocol"], row["client_ip"], row["client_port"],
                                     row["server_ip"], row["server_port"], row["picked_up"],
                                     self._decoder(row["protocol"]), self.tagger)
        end = _ts(row["start"])
        for what, direction, ts, payload in replay(blob):
            end = ts
            if what == "data":
                recon.data(direction, payload, ts)  # type: ignore[arg-type]
            else:
                recon.gap(direction, payload, ts)  # type: ignore[arg-type]
        rec = recon.close(_ts(row["end"]) if row["end"] else end, row["end_reason"] or "capture-end")
        if only_if_decrypted and rec.decrypted is not True:
            return None
        # the streams are already stored: only what decoding produced is new
        names = [stream_name] + self.store_artefacts(rec, None, store, row["source"] or "")
        catalog.write_session(rec, None, row["source"] or "", names)
        return summary(rec)


class SessionBatch:
    """Finished sessions on their way to storage, in groups: the group's artefacts are sealed
    in one vault group commit, then ``sink`` gets the group (catalog rows in one transaction,
    or a worker's message to the importing process). A crash loses at most the last group's
    few seconds, which a re-import adds; a catalog row never points at unsealed bytes."""

    MAX_SESSIONS = 500
    MAX_BYTES = 64 * 1024 * 1024
    MAX_SECONDS = 2.0

    def __init__(self, store: RecordingStore, sink: Callable[[list[tuple[SessionRecord, list[str]]]], None]) -> None:
        self.store, self.sink = store, sink
        self.items: list[tuple[SessionRecord, list[str]]] = []
        self.puts: list[tuple[str, str, bytes, dict]] = []
        self.size = 0
        self.since = time.monotonic()

    def add(self, rec: SessionRecord, names: list[str], puts: list[tuple[str, str, bytes, dict]]) -> None:
        rec.terminal = []                # in ``puts`` already; the catalog row needs none of it
        rec.artefacts = {}
        self.items.append((rec, names))
        self.puts.extend(puts)
        self.size += sum(len(p[2]) for p in puts)
        if (len(self.items) >= self.MAX_SESSIONS or self.size >= self.MAX_BYTES
                or time.monotonic() - self.since > self.MAX_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.puts:
            _seal(self.store, self.puts)
        if self.items:
            self.sink(self.items)
        self.items, self.puts, self.size = [], [], 0
        self.since = time.monotonic()


class FlowReconstruction:
    """The sensor's stream events of one run, turned into finished sessions (in the order
    they end). Sessions whose id is in ``skip`` were imported before and are passed over."""

    def __init__(self, importer: Importer, run: SensorRun, skip: set[str]) -> None:
        self.importer, self.run, self.skip = importer, run, skip
        self.error: str | None = None
        self.already = 0

    def __iter__(self) -> Iterator[tuple[SessionRecord, StreamLog | None]]:
        imp = self.importer
        active: dict[int, tuple[SessionReconstructor, StreamLog | None]] = {}
        try:
            for ev in self.run:
                if isinstance(ev, StreamData):
                    a = active.get(ev.flow_id)
                    if a is not None:
                        a[0].data(ev.direction, ev.data, ev.ts)
                        if a[1] is not None:
                            a[1].data(ev.direction, ev.data, ev.ts)
                elif isinstance(ev, StreamOpened):
                    sid = session_id(ev.protocol, ev.client_ip, ev.client_port, ev.server_ip, ev.server_port, ev.ts)
                    if sid in self.skip:
                        self.already += 1
                        continue
                    recon = SessionReconstructor(ev.ts, ev.protocol, ev.client_ip, ev.client_port, ev.server_ip,
                                                 ev.server_port, ev.picked_up, imp._decoder(ev.protocol), imp.tagger)
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
                        yield a[0].close(ev.ts, ev.reason), a[1]
        except CaptureError as e:
            self.error = str(e)
        # whatever was open when the file ended or broke is still a session
        for recon, log in active.values():
            yield recon.close(self.run.last_ts or recon.record.start, "capture-end"), log


def summary(rec: SessionRecord) -> dict[str, Any]:
    return {"id": rec.id, "protocol": rec.protocol, "client": f"{rec.client_ip}:{rec.client_port}",
            "server": f"{rec.server_ip}:{rec.server_port}", "user": rec.user, "auth": rec.auth,
            "commands": len(rec.commands), "status": rec.status, "status_reason": rec.status_reason,
            "decrypted": rec.decrypted, "start": rec.start, "end": rec.end}


def _shardable(path: str) -> bool:
    """Only a plain (mapped) pcap is worth reading N times; gzip would be decompressed N times."""
    with open(path, "rb") as f:
        return f.read(4) in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


def _shard_worker(path: str, shard: int, nshards: int, home_path: str, keys: KeyLookup,
                  decoder_options: dict, skip: set[str], limits: Limits | None, actor: str, queue: Any) -> None:
    from pathlib import Path

    from appliance.gc_tuning import tune_for_reconstruction
    tune_for_reconstruction()      # a spawned worker does not run the CLI's main()
    try:
        home = Home(Path(home_path), actor=actor)
        store = home.vault()
        imp = Importer(home, keys=keys, decoder_options=decoder_options, limits=limits, actor=actor)
        source = os.path.basename(path)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                queue.put(("progress", shard, done))

        run = SensorRun(path, limits, progress=progress, shard=(shard, nshards))
        flows = FlowReconstruction(imp, run, skip)

        def send(items: list[tuple[SessionRecord, list[str]]]) -> None:
            for rec, names in items:
                rec.files = [FileTransfer(f.ts, f.direction, f.path, f.size, f.sha256, f.method, None, f.complete)
                             for f in rec.files]
            queue.put(("sessions", items))     # one message per sealed group

        batch = SessionBatch(store, send)
        for rec, log in flows:
            batch.add(rec, *imp.artefacts(rec, log, store, source))
        batch.flush()
        queue.put(("done", shard, flows.error, flows.already, [str(p) for p in run.problems], run.stats))
    except BaseException as e:  # the parent must hear of it, or it would wait forever
        queue.put(("crash", shard, f"{type(e).__name__}: {e}"))


def _ts(iso_text: str) -> float:
    from storage.catalog import parse_time
    return parse_time(iso_text)


def _seal(store: RecordingStore, puts: list[tuple[str, str, bytes, dict]]) -> None:
    put_many = getattr(store, "put_many", None)
    if put_many is not None:
        put_many(puts)
    else:
        for sid, name, data, meta in puts:
            store.put(sid, name, data, **meta)  # type: ignore[call-arg]


def _put_versioned(store: RecordingStore, sid: str, name: str, data: bytes, meta: dict) -> str:
    """Seal one artefact under a name not used yet; returns that name."""
    name = next_version(store.names(sid), name)
    _seal(store, [(sid, name, data, meta)])
    return name
