"""The sensor on the mirror port: live capture -> the same sensor/reconstruct code as an import
-> vault + catalog, while the sessions are still going on.

One process, one writer. The main loop owns the flow table, the reconstructors, the vault and
the catalog; every other thread (capture reader, SIEM senders, metrics and escrow HTTP, the
local socket) only hands things over through queues or reads counters.

Crash safety: every ``checkpoint_seconds`` each session that changed gets its new terminal
output sealed as ``terminal.part-N.cast`` (and, for SSH/RDP, its new raw stream bytes as
``streams.part-N.bin``) and its catalog row rewritten with status ``live``. When the session
ends the whole recording is written as at import (``terminal.cast``, ``streams.bin``) and the
row gets its final status. A ``kill -9`` therefore loses at most the last few seconds: on the
next start every row still ``live`` is closed as ``partial`` and its parts are joined into
``terminal.cast`` / ``streams.bin``, so it replays and exports like any other session.

Stopping (SIGTERM/SIGINT): capture stops at once; what was already captured is processed for
at most ``sessions.stop_seconds``; every session still in progress is then closed and written
whole as ``partial`` (end reason ``sensor-stopped``), exactly as a finished one; whatever was
not processed is counted (``stop_drops``) and named in one alert line; exit status 0.

Readers: DuckDB allows one writing process, and a reader cannot open the file while a writer
holds it. So the sensor opens the catalog only for the few milliseconds of each checkpoint,
and publishes what is in progress in ``run/status.json`` (counters, alerts, sessions in
progress - no recording content) and on a unix socket ``run/sensor.sock`` (``sessiontap live
ID`` follows one session's terminal output as it arrives, from memory: nothing of it is
written outside the vault).
"""
from __future__ import annotations

import codecs
import json
import os
import queue
import shutil
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from appliance.config import Config, ConfigError, load
from appliance.home import Home
from appliance.importer import ENCRYPTED, Importer, _put_versioned, _seal
from appliance.keys import KeyRing, deposit, deposited_keys, parse_key_text
from appliance.siem import Siem, SiemEvent
from reconstruct.asciicast import to_asciicast
from reconstruct.events import Output
from reconstruct.session import SessionReconstructor, SessionRecord
from sensor.capture import CaptureError
from sensor.flows import Limits
from sensor.live import (BatchSource, LiveSensor, PacketSocket, PcapStream, RawRing, RingSocket, build_filter,
                         open_capture_socket,
                         compile_filter)
from sensor.streamlog import StreamLog
from sensor.streams import StreamClosed, StreamConflict, StreamData, StreamGap, StreamOpened
from storage.catalog import SessionFilter, iso

ACTOR = "sensor"
TICK = 0.2                        # seconds: how often the loop looks up from the packets
STATUS_EVERY = 0.5
ALERT_HOLD = 60.0                 # an alert stays raised this long after its cause last moved
DISK_ALERT_RATIO = 0.05
BEHIND_BYTES = 1 << 20            # captured bytes waiting: the loop is behind the capture
CHECKPOINT_SHARE = 5              # behind: a checkpoint at most every 5x its own duration
MAX_CHECKPOINT_STRETCH = 5        # ... but never more than 5x checkpoint_seconds apart
FOLLOW_QUEUE = 2000               # chunks waiting for a slow `sessiontap live ID` before it is cut off


LOG_NAME = "sessiontap-sensor"     # a worker process says which it is (sessiontap-sensor[1])


def log(msg: str) -> None:
    """One line to stderr (the journal under systemd). Never key material, never recording content."""
    sys.stderr.write(f"{LOG_NAME}: {msg}\n")
    sys.stderr.flush()


@dataclass
class Follower:
    q: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=FOLLOW_QUEUE))
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    sent: int = 0                 # index into the record's terminal events
    gone: bool = False

    def push(self, obj: dict[str, Any] | None) -> None:
        if self.gone:
            return
        try:
            self.q.put_nowait(obj)
        except queue.Full:
            self.gone = True      # too slow: cut it off rather than hold memory


@dataclass
class LiveSession:
    recon: SessionReconstructor
    log: StreamLog | None
    cast_sent: int = 0
    log_sent: int = 0
    timeline_sent: int = 0
    parts: int = 0
    part_names: list[str] = field(default_factory=list)
    dirty: bool = True
    in_catalog: bool = False
    keys_at_start: int = 0
    last_ts: float = 0.0
    followers: list[Follower] = field(default_factory=list)

    @property
    def rec(self) -> SessionRecord:
        return self.recon.record


def session_view(rec: SessionRecord) -> dict[str, Any]:
    return {"id": rec.id, "protocol": rec.protocol, "client_ip": rec.client_ip, "client_port": rec.client_port,
            "server_ip": rec.server_ip, "server_port": rec.server_port, "user": rec.user}


class Alerts:
    """Raised conditions (IEC 62443-3-3 SR 2.10: audit processing failures are events too)."""

    def __init__(self, notify: Callable[[str, str], None]) -> None:
        self.active: dict[str, tuple[str, float, float]] = {}   # name -> (message, since, last)
        self.notify = notify

    def raise_(self, name: str, message: str) -> None:
        now = time.time()
        if name not in self.active:
            self.active[name] = (message, now, now)
            self.notify(name, message)
        else:
            self.active[name] = (message, self.active[name][1], now)

    def expire(self) -> None:
        now = time.time()
        for name, (_m, _since, last) in list(self.active.items()):
            if now - last > ALERT_HOLD:
                del self.active[name]

    def as_list(self) -> list[dict[str, Any]]:
        return [{"name": n, "message": m, "since": iso(s)} for n, (m, s, _l) in sorted(self.active.items())]


class SensorDaemon:
    def __init__(self, cfg: Config, home: Home, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.home = home
        self.run_dir = home.path / "run"
        self.stop_requested = False
        self.reload_requested = False
        self.active: dict[int, LiveSession] = {}
        self.finished: list[tuple[SessionRecord, StreamLog | None, LiveSession]] = []
        self.follow_requests: queue.Queue[tuple[str, Follower]] = queue.Queue()
        self.counters: dict[str, Any] = {"sessions_total": {}, "recording_failures": 0, "keys_received": 0,
                                         "decrypt_failures": 0, "keys_missing": 0, "redecoded": 0,
                                         "catalog_busy": 0}
        self.last_checkpoint = time.time()
        self.started = time.time()
        self.import_id: int | None = None
        self.source: BatchSource | None = None
        self.sensor: LiveSensor | None = None
        self.ring: RawRing | None = None
        self.intake: Any = None
        self.metrics: Any = None
        self.sock_server: Any = None
        self.siem = self._make_siem(cfg)
        self.alerts = Alerts(self._alert)
        self._seen_drops = (0, 0, 0)
        self._last_status = 0.0
        self._last_keys_missing = 0.0
        self.redecode_pending = False     # keys arrived; waiting sessions still to be tried
        self._stop_logged = False
        self._checkpoint_cost = 0.0       # seconds the last checkpoint took
        self.workers: Any = None          # appliance.sensor_workers.Workers, with capture.workers > 1
        # their catalog rows still to write, by session: a newer row replaces an older one
        self.worker_rows: dict[str, tuple[SessionRecord, list[str]]] = {}
        self.fanout_group = os.getpid() & 0xFFFF
        self.bpf: bytes | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def _make_siem(self, cfg: Config) -> Siem:
        zeek = None
        if cfg.zeek_logs:
            zeek = Path(cfg.zeek_logs) if os.path.isabs(cfg.zeek_logs) else self.home.path / cfg.zeek_logs
        return Siem(cfg.syslog, zeek, cfg.siem_queue)

    def _alert(self, name: str, message: str) -> None:
        log(f"ALERT {name}: {message}")
        self.siem.send(SiemEvent("alert", time.time(), message, "high", None, {"reason": name}))

    @property
    def source_name(self) -> str:
        return f"live:{self.cfg.interface}" if self.cfg.interface else f"live:pcap:{self.cfg.pcap}"

    def filter_expr(self) -> str:
        return build_filter(self.cfg.subnets, self.cfg.ports, self.cfg.content_detection)

    def _open_source(self) -> BatchSource:
        cfg = self.cfg
        if cfg.interface:
            bpf = self.bpf = compile_filter(self.filter_expr(), cfg.interface)
            src, why = open_capture_socket(cfg.interface, bpf, cfg.buffer_mb * 1024 * 1024, cfg.method,
                                           fanout=self.fanout_group if cfg.workers > 1 else None)
            if why:
                log(f"the capture ring is not available ({why}); capturing with a plain packet socket"
                    + (" in one process" if cfg.workers > 1 else ""))
        else:
            f = sys.stdin.buffer if cfg.pcap == "-" else open(cfg.pcap or "", "rb")
            src = PcapStream(f, cfg.pcap or "-")
        if cfg.ring:
            self.ring = RawRing(self.home.path / "raw", cfg.ring.file_mb * 1024 * 1024, cfg.ring.files,
                                cfg.ring.file_seconds)
            src.on_raw = self.ring.write
        return src

    def _start_services(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.cfg.metrics_listen:
            from appliance.metrics import MetricsServer
            self.metrics = MetricsServer(*self.cfg.metrics_listen, self.metrics_snapshot)
            log(f"metrics on http://{self.cfg.metrics_listen[0]}:{self.metrics.port}/metrics")
        if self.cfg.escrow_listen:
            from appliance.escrow_intake import EscrowIntake, ensure_certificate
            if self.cfg.escrow_cert and self.cfg.escrow_key:
                cert, key, fp = Path(self.cfg.escrow_cert), Path(self.cfg.escrow_key), "(configured)"
            else:
                cert, key, fp = ensure_certificate(self.home.path / "escrow-tls", socket.gethostname())
            self.intake = EscrowIntake(*self.cfg.escrow_listen, self.cfg.escrow_tokens, cert, key)
            log(f"escrow intake on https://{self.cfg.escrow_listen[0]}:{self.intake.port}/v1/keys "
                f"(certificate {cert}, sha256 {fp})")
        self._start_socket()

    def _start_socket(self) -> None:
        path = self.run_dir / "sensor.sock"
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        daemon = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    req = json.loads(self.rfile.readline(4096) or b"{}")
                except ValueError:
                    return
                if req.get("op") == "status":
                    self.wfile.write((json.dumps(daemon.status()) + "\n").encode())
                    return
                if req.get("op") != "follow":
                    self.wfile.write(b'{"error": "unknown request"}\n')
                    return
                fol = Follower()
                daemon.follow_requests.put((str(req.get("id", "")), fol))
                while True:
                    try:
                        item = fol.q.get(timeout=1.0)
                    except queue.Empty:
                        if fol.gone or daemon.stop_requested:
                            return
                        continue
                    if item is None:
                        return
                    try:
                        self.wfile.write((json.dumps(item) + "\n").encode())
                        self.wfile.flush()
                    except OSError:
                        fol.gone = True
                        return

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        old = os.umask(0o077)
        try:
            self.sock_server = Server(str(path), Handler)
        finally:
            os.umask(old)
        threading.Thread(target=self.sock_server.serve_forever, name="local-socket", daemon=True).start()

    # -- the loop -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        vault = self.home.vault()
        self.ring_keys = KeyRing()
        self.ring_keys.lookups.extend(deposited_keys(vault, ACTOR, "decrypt live sessions").lookups)
        self.importer = Importer(self.home, keys=self.ring_keys, actor=ACTOR)
        self.importer.keys = self.ring_keys   # even while empty (an empty ring is falsy): keys come later
        self.store = self.home.store()

    def run(self) -> int:
        self._prepare()
        self.recover()
        try:
            self.source = self._open_source()
        except (CaptureError, OSError) as e:
            log(str(e))
            return 1
        if self.cfg.workers > 1 and isinstance(self.source, RingSocket):
            from appliance.sensor_workers import Workers
            self.workers = Workers(self.cfg, self.home.path, self.fanout_group, self.bpf)
            self.workers.start()
            self.workers.wait_ready(self)
            log(f"{self.cfg.workers} sensor processes share {self.cfg.interface} by flow hash (PACKET_FANOUT)")
        self._start_services()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        limits = Limits(idle_timeout=self.cfg.idle_timeout)
        self.sensor = LiveSensor(self.source, limits)
        self.source.start()
        what = (f"{self.cfg.interface} ({'TPACKET_V3 ring' if isinstance(self.source, RingSocket) else 'packet socket'})"
                if self.cfg.interface else f"pcap stream {self.cfg.pcap}")
        log(f"capturing on {what} (filter: {self.filter_expr()}), data in {self.home.path}")
        self.write_status()
        try:
            for ev in self.sensor.events(TICK):
                if ev is None:
                    self.tick()
                    continue
                self.on_stream_event(ev)
        finally:
            self.shutdown()
        if self.source.error:
            log(f"capture stopped: {self.source.error}")
            return 1
        return 0

    def _on_stop(self, signum: int, frame: Any) -> None:
        # only flags here (a signal handler); the loop says it and does the work
        self.stop_requested = True
        if self.source is not None:
            self.source.request_stop(self.cfg.stop_seconds)

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reload_requested = True

    def on_stream_event(self, ev: Any) -> None:
        if isinstance(ev, StreamData):
            s = self.active.get(ev.flow_id)
            if s is not None:
                s.recon.data(ev.direction, ev.data, ev.ts)
                if s.log is not None:
                    s.log.data(ev.direction, ev.data, ev.ts)
                s.dirty = True
                s.last_ts = ev.ts
                if s.followers:
                    self._feed_followers(s)
        elif isinstance(ev, StreamOpened):
            recon = SessionReconstructor(ev.ts, ev.protocol, ev.client_ip, ev.client_port, ev.server_ip,
                                         ev.server_port, ev.picked_up, self.importer._decoder(ev.protocol),
                                         self.importer.tagger)
            s = LiveSession(recon, StreamLog() if ev.protocol in ENCRYPTED else None,
                            keys_at_start=len(self.ring_keys), last_ts=ev.ts)
            self.active[ev.flow_id] = s
            by = self.counters["sessions_total"]
            by[ev.protocol] = by.get(ev.protocol, 0) + 1
            rec = recon.record
            self.siem.send(SiemEvent("session-start", ev.ts,
                                     f"{ev.protocol} session {ev.client_ip}:{ev.client_port} -> "
                                     f"{ev.server_ip}:{ev.server_port} started", "info", session_view(rec),
                                     {"picked_up": ev.picked_up}))
        elif isinstance(ev, StreamGap):
            s = self.active.get(ev.flow_id)
            if s is not None:
                s.recon.gap(ev.direction, ev.nbytes, ev.ts)
                if s.log is not None:
                    s.log.gap(ev.direction, ev.nbytes, ev.ts)
                s.dirty = True
        elif isinstance(ev, StreamConflict):
            s = self.active.get(ev.flow_id)
            if s is not None:
                s.recon.conflict(ev.direction, ev.offset, ev.nbytes, ev.ts)
        elif isinstance(ev, StreamClosed):
            s = self.active.pop(ev.flow_id, None)
            if s is not None:
                rec = s.recon.close(ev.ts, ev.reason)
                if self.stop_requested and ev.reason == "capture-end":
                    # in progress when the sensor was told to stop: what was seen is kept whole
                    rec.end_reason = "sensor-stopped"
                    if rec.status == "partial":
                        rec.status_reason = "the sensor was stopped while the session was in progress; " \
                                            "recorded up to the stop"
                self._send_tags(s)
                self._feed_followers(s)
                for f in s.followers:
                    f.push({"end": ev.reason, "status": rec.status})
                    f.push(None)
                self.finished.append((rec, s.log, s))
                self._session_ended(rec)

    def _session_ended(self, rec: SessionRecord) -> None:
        if rec.decrypted is False:
            self.counters["decrypt_failures"] += 1
        tags = sorted({t for e in rec.timeline for t in e.tags})
        view = session_view(rec)
        self.siem.send(SiemEvent("session-end", rec.end or rec.start,
                                 f"{rec.protocol} session of {rec.user or '?'} on {rec.server_ip}:{rec.server_port} "
                                 f"ended ({rec.end_reason}): {rec.status}", "info", view,
                                 {"status": rec.status, "reason": rec.end_reason, "commands": len(rec.commands),
                                  "auth": rec.auth, "tags": tags, "decrypted": rec.decrypted}))
        self.siem.session_log({**view, "start_ts": rec.start, "end_ts": rec.end, "auth": rec.auth,
                               "auth_attempts": len(rec.auth_attempts),
                               "commands": [c.text for c in rec.commands], "tags": tags, "status": rec.status,
                               "end_reason": rec.end_reason, "decrypted": rec.decrypted,
                               "metadata": rec.metadata})

    def _send_tags(self, s: LiveSession) -> None:
        tl = s.rec.timeline
        for e in tl[s.timeline_sent:]:
            if e.kind == "tag":
                cmd = next((c.text for c in reversed(s.rec.commands) if c.index == e.ref), None) \
                    if e.ref is not None else None
                fields: dict[str, Any] = {"tag": e.tags[0] if e.tags else ""}
                if cmd is not None:
                    fields["command"] = cmd
                self.siem.send(SiemEvent("tag", e.ts, e.text, e.severity, session_view(s.rec), fields))
        s.timeline_sent = len(tl)

    def _feed_followers(self, s: LiveSession) -> None:
        term = s.rec.terminal
        for f in s.followers:
            if f.gone:
                continue
            for e in term[f.sent:]:
                if isinstance(e, Output):
                    text = f.decoder.decode(e.data)
                    if text:
                        f.push({"o": text, "ts": e.ts})
            f.sent = len(term)
        s.followers = [f for f in s.followers if not f.gone]

    def tick(self) -> None:
        if self.stop_requested and self.source is not None:
            self.source.request_stop(self.cfg.stop_seconds)
            self._announce_stop()
            if self.workers is not None:
                self.workers.stop()
        if self.workers is not None:
            self.workers.poll(self)
        if self.reload_requested:
            self.reload_requested = False
            self.reload()
        while not self.follow_requests.empty():
            prefix, fol = self.follow_requests.get_nowait()
            match = [s for s in self.active.values() if s.rec.id.startswith(prefix)] if prefix else []
            if not match and self.workers is not None and self.workers.follow(prefix, fol):
                continue          # a session of another sensor process: it streams it through us
            if len(match) != 1:
                fol.push({"error": f"no session in progress with id {prefix!r}" if not match
                          else f"session id prefix {prefix!r} is ambiguous"})
                fol.push(None)
                continue
            s = match[0]
            fol.push({"session": {**session_view(s.rec), "start": iso(s.rec.start)}})
            s.followers.append(fol)
            self._feed_followers(s)
        for s in self.active.values():
            if len(s.rec.timeline) > s.timeline_sent:
                self._send_tags(s)
        if self.intake is not None:
            self._take_deposits()
        if self.redecode_pending:
            self.redecode_waiting()
        now = time.time()
        if now - self.last_checkpoint >= self.checkpoint_interval():
            t0 = time.monotonic()
            self.checkpoint()
            self._checkpoint_cost = time.monotonic() - t0
        if self.ring is not None and now - self.last_checkpoint < TICK * 2:
            self.ring.flush()
        self._check_health()
        if now - self._last_status >= STATUS_EVERY:
            self.write_status()

    # -- writing ----------------------------------------------------------------------------------
    def checkpoint_interval(self) -> float:
        """``checkpoint_seconds``, stretched while the capture is behind so that writing takes at
        most ``1/CHECKPOINT_SHARE`` of the time: a checkpoint costs about the same whatever it
        carries (catalog open, one group commit, one transaction), so under a backlog fewer,
        larger checkpoints leave the core to the packets. The stretch shows in the status
        (``checkpoint_interval``) and the checkpoint age metric."""
        base = self.cfg.checkpoint_seconds
        src = self.source
        if src is not None and src.counters.queue_bytes > BEHIND_BYTES:
            return max(base, min(CHECKPOINT_SHARE * self._checkpoint_cost, MAX_CHECKPOINT_STRETCH * base))
        return base

    def checkpoint(self, final: bool = False) -> None:
        """Seal what changed since the last checkpoint and rewrite the catalog rows: all of it
        as one vault group commit and one catalog transaction (hundreds of sessions in
        progress cost two syncs, not two per session); a group that fails is retried session
        by session, so one bad session costs only itself."""
        try:
            catalog = self.home.catalog()
        except Exception as e:   # a reader holds the file; the data waits in memory
            self.counters["catalog_busy"] += 1
            if time.time() - self.last_checkpoint > 30:
                self.alerts.raise_("recording-stalled", f"catalog unavailable for checkpoints: {type(e).__name__}")
            return
        try:
            if self.import_id is None:
                self.import_id = catalog.begin_import(self.source_name, "", 0)
            self._write_worker_rows(catalog)
            if self.finished:
                group = self.finished[:]
                self._write_group(catalog.write_sessions,
                                  [self._finished_items(rec, slog) for rec, slog, _s in group],
                                  [rec.id for rec, _l, _s in group])
                for rec, _slog, s in group:
                    if rec.decrypted is False and len(self.ring_keys) > s.keys_at_start:
                        # a key came while it ran: try again now that the whole stream is stored
                        try:
                            if self._redecode(rec.id, catalog):
                                self.counters["redecoded"] += 1
                        except Exception as e:
                            self.counters["recording_failures"] += 1
                            self.alerts.raise_("recording-failure", f"session {rec.id}: {type(e).__name__}: {e}")
                del self.finished[:len(group)]
            dirty = [s for s in self.active.values() if s.dirty]
            if dirty:
                self._write_group(catalog.write_sessions, [self._checkpoint_items(s) for s in dirty],
                                  [s.rec.id for s in dirty])
            now = time.time()
            if now - self._last_keys_missing > 30 or final:
                self.counters["keys_missing"] = len(catalog.sessions(SessionFilter(decrypted=False)))
                self._last_keys_missing = now
            if final and self.import_id is not None:
                catalog.finish_import(self.import_id, self.sensor.stats.packets if self.sensor else 0,
                                      sum(self.counters["sessions_total"].values()), [], "ok")
            self.last_checkpoint = now
        finally:
            catalog.close()

    def _write_worker_rows(self, catalog: Any) -> None:
        """Rows the other sensor processes sent (their recordings are sealed already)."""
        if not self.worker_rows:
            return
        rows, self.worker_rows = list(self.worker_rows.values()), {}
        self._write_group(catalog.write_sessions,
                          [(lambda r=r, n=n: ([], (r, self.import_id, self.source_name, n), lambda: None))
                           for r, n in rows], [r.id for r, _n in rows])
        if len(self.ring_keys) and any(r.decrypted is False and r.end is not None for r, _n in rows):
            self.redecode_pending = True

    def _write_group(self, write_rows: Callable[[list[Any]], None], makers: list[Callable[[], Any]],
                     ids: list[str]) -> None:
        """``makers`` each give (vault items, catalog row, what to note once written)."""
        def one(group: list[Callable[[], Any]]) -> None:
            made = [m() for m in group]
            _seal(self.store, [p for puts, _row, _done in made for p in puts])
            write_rows([row for _puts, row, _done in made])
            for _puts, _row, done in made:
                done()
        try:
            one(makers)
            return
        except Exception:
            if len(makers) == 1:
                self.counters["recording_failures"] += 1
                e = sys.exc_info()[1]
                self.alerts.raise_("recording-failure", f"session {ids[0]}: {type(e).__name__}: {e}")
                return
        for m, sid in zip(makers, ids):
            try:
                one([m])
            except Exception as e:
                self.counters["recording_failures"] += 1
                self.alerts.raise_("recording-failure", f"session {sid}: {type(e).__name__}: {e}")

    def _finished_items(self, rec: SessionRecord, slog: StreamLog | None) -> Callable[[], Any]:
        """The finished session, written exactly as an import writes it."""
        def make() -> Any:
            names, puts = self.importer.artefacts(rec, slog, self.store, self.source_name)
            return puts, (rec, self.import_id, self.source_name, names), lambda: None
        return make

    def _redecode(self, sid: str, catalog: Any) -> bool:
        """Decode a stored session with the keys known now; written only if that decrypted it."""
        return self.importer.redecode(sid, catalog, self.store, only_if_decrypted=True) is not None

    def _checkpoint_items(self, s: LiveSession) -> Callable[[], Any]:
        """A session in progress: its new terminal output and stream bytes as the next parts,
        its row as ``live``. What was sent is noted only once it is written."""
        def make() -> Any:
            rec = s.rec
            meta = {"time_range": (rec.start, max(s.last_ts, rec.start)), "source": self.source_name}
            puts: list[tuple[str, str, bytes, dict]] = []
            names = list(s.part_names)
            parts = s.parts
            term = rec.terminal
            cast_to, log_to = s.cast_sent, s.log_sent
            if len(term) > s.cast_sent:
                chunk = to_asciicast(term[s.cast_sent:], start=rec.start, term=rec.metadata.get("terminal"))
                parts += 1
                names.append(f"terminal.part-{parts}.cast")
                puts.append((rec.id, names[-1], chunk, meta))
                cast_to = len(term)
            if s.log is not None and len(s.log.parts) > s.log_sent:
                parts += 1
                names.append(f"streams.part-{parts}.bin")
                puts.append((rec.id, names[-1], b"".join(s.log.parts[s.log_sent:]), meta))
                log_to = len(s.log.parts)
            row = replace(rec, status="live", status_reason="in progress",
                          metadata={**rec.metadata, "live-checkpoint-ts": f"{max(s.last_ts, rec.start):.6f}"})

            def done() -> None:
                s.parts, s.part_names, s.cast_sent, s.log_sent = parts, names, cast_to, log_to
                s.in_catalog, s.dirty = True, False
            return puts, (row, self.import_id, self.source_name, names), done
        return make

    def recover(self) -> None:
        """Rows left ``live`` by a sensor that died: close them as ``partial``, join their parts."""
        with self.home.catalog() as catalog:
            for row in catalog.sessions(SessionFilter(status="live")):
                sid = row["id"]
                names = self.store.names(sid)
                casts = sorted((n for n in names if n.startswith("terminal.part-")), key=_part_no)
                streams = sorted((n for n in names if n.startswith("streams.part-")), key=_part_no)
                recordings: list[str] = []
                end = float(row["metadata"].get("live-checkpoint-ts") or 0) or None
                meta = {"time_range": (_epoch(row["start"]), end or _epoch(row["start"])), "source": row["source"]}
                try:
                    if streams:
                        blob = b"".join(self.store.get(sid, n, actor=ACTOR, purpose="recover after sensor stop")
                                        for n in streams)
                        recordings.append(_put_versioned(self.store, sid, "streams.bin", blob, meta))
                    if casts:
                        lines: list[str] = []
                        for i, n in enumerate(casts):
                            part = self.store.get(sid, n, actor=ACTOR, purpose="recover after sensor stop")
                            ls = part.decode("utf-8").splitlines()
                            lines.extend(ls if i == 0 else ls[1:])
                        recordings.append(_put_versioned(self.store, sid, "terminal.cast",
                                                         ("\n".join(lines) + "\n").encode(), meta))
                except Exception as e:
                    self.counters["recording_failures"] += 1
                    log(f"session {sid}: its checkpointed parts could not be joined ({type(e).__name__}: {e})")
                    recordings = casts + streams
                catalog.close_interrupted(
                    sid, "partial", "the sensor stopped while the session was in progress (crash or power "
                                    "loss); recorded up to its last checkpoint", end, "sensor-stopped", recordings)
                log(f"session {sid} was in progress when the sensor stopped: kept as partial")

    def _take_deposits(self) -> None:
        intake = self.intake
        got = False
        while True:
            try:
                dep = intake.deposits.get_nowait()
            except queue.Empty:
                break
            try:
                parsed = parse_key_text(dep.text, f"escrow:{dep.host}")
            except ValueError:
                dep.result = (400, {"error": "no SSH or TLS key lines found (expected a Wireshark SSH key log, "
                                             "escrow JSON lines or an NSS key log)"})
                dep.done.set()
                continue
            try:
                deposit(self.home.vault(), dep.text, f"escrow:{dep.host}", ACTOR)
            except Exception as e:
                self.counters["recording_failures"] += 1
                self.alerts.raise_("escrow-failure", f"key deposit from {dep.host} not sealed: {type(e).__name__}")
                dep.result = (503, {"error": "the sensor could not seal the keys; retry"})
                dep.done.set()
                continue
            self.ring_keys.lookups.extend(parsed.lookups)
            if self.workers is not None:
                self.workers.send_all(("keys", dep.text, dep.host))
            lines = sum(1 for l in dep.text.splitlines() if l.strip() and not l.startswith("#"))
            self.counters["keys_received"] += 1
            dep.result = (200, {"accepted": lines, "host": dep.host})
            dep.done.set()
            log(f"escrow: {lines} key line(s) from {dep.host} sealed")
            got = True
        if got:
            self.redecode_pending = True

    def redecode_waiting(self) -> None:
        """Sessions that ended undecrypted: try them with the keys now known."""
        try:
            catalog = self.home.catalog()
        except Exception:
            self.counters["catalog_busy"] += 1
            return      # tried again at the next tick
        self.redecode_pending = False
        try:
            waiting = [s for s in catalog.sessions(SessionFilter(decrypted=False))
                       if s["protocol"] in ENCRYPTED and s["status"] != "live"]
            for s in waiting:
                try:
                    if self._redecode(s["id"], catalog):
                        self.counters["redecoded"] += 1
                        log(f"session {s['id']} decrypted with escrowed keys")
                except Exception as e:
                    self.counters["recording_failures"] += 1
                    self.alerts.raise_("recording-failure", f"session {s['id']}: {type(e).__name__}: {e}")
            self.counters["keys_missing"] = len(catalog.sessions(SessionFilter(decrypted=False)))
        finally:
            catalog.close()

    # -- health -----------------------------------------------------------------------------------
    def _check_health(self) -> None:
        src = self.source
        if src is not None:
            c = src.refresh_counters()
            seen = (c.kernel_drops, c.own_drops, c.interface_drops)
            for (label, now, before) in zip(("kernel", "sensor", "interface"), seen, self._seen_drops):
                if now > before:
                    self.alerts.raise_(f"capture-drops-{label}",
                                       f"{now - before} packet(s) dropped ({label}); {now} since start")
            self._seen_drops = seen
            if src.error:
                self.alerts.raise_("capture-failure", f"capture stopped: {src.error}")
        if self.siem.dropped:
            self.alerts.raise_("siem-drops", f"{self.siem.dropped} SIEM message(s) dropped (target unreachable)")
        if self.ring is not None and self.ring.errors:
            self.alerts.raise_("raw-ring-failure", f"{self.ring.errors} write(s) to the raw packet ring failed")
        free, ratio = self.disk()
        if ratio < DISK_ALERT_RATIO:
            self.alerts.raise_("disk-low", f"only {free // (1 << 20)} MiB ({ratio:.1%}) free for recordings")
        self.alerts.expire()

    def disk(self) -> tuple[int, float]:
        try:
            du = shutil.disk_usage(self.home.path)
            return du.free, du.free / du.total if du.total else 0.0
        except OSError:
            return 0, 0.0

    def status(self) -> dict[str, Any]:
        c = self.source.counters if self.source else None
        stats = self.sensor.stats if self.sensor else None
        free, ratio = self.disk()
        sessions = []
        for s in list(self.active.values()):
            r = s.rec
            sessions.append({"id": r.id, "protocol": r.protocol, "client": f"{r.client_ip}:{r.client_port}",
                             "server": f"{r.server_ip}:{r.server_port}", "user": r.user, "start": iso(r.start),
                             "last_activity": iso(s.last_ts), "commands": len(r.commands),
                             "last_command": r.commands[-1].text if r.commands else None,
                             "bytes": r.c2s_bytes + r.s2c_bytes, "decrypted": r.decrypted})
        st = {
            "pid": os.getpid(), "running": not self.stop_requested, "started": iso(self.started),
            "updated": time.time(), "capture": self.cfg.interface or f"pcap:{self.cfg.pcap}",
            "capture_method": {RingSocket: "ring", PacketSocket: "socket"}.get(type(self.source), "pcap-stream"),
            "filter": self.filter_expr(), "checkpoint_seconds": self.cfg.checkpoint_seconds,
            "last_checkpoint": iso(self.last_checkpoint),
            "checkpoint_interval": round(self.checkpoint_interval(), 3),
            "counters": {
                "packets": c.packets if c else 0, "bytes": c.bytes if c else 0,
                "kernel_drops": c.kernel_drops if c else 0, "own_drops": c.own_drops if c else 0,
                "interface_drops": c.interface_drops if c else 0,
                "stop_drops": c.stop_drops if c else 0,
                "processed_packets": stats.packets if stats else 0,
                "capture_queue_bytes": c.queue_bytes if c else 0,
                "tcp_packets": stats.tcp_packets if stats else 0,
                "sessions_total": dict(self.counters["sessions_total"]),
                "sessions_active": len(self.active),
                "recording_failures": self.counters["recording_failures"],
                "decrypt_failures": self.counters["decrypt_failures"],
                "keys_missing": self.counters["keys_missing"],
                "keys_received": self.counters["keys_received"],
                "redecoded": self.counters["redecoded"],
                "catalog_busy": self.counters["catalog_busy"],
                "siem_queue": self.siem.depth(), "siem_dropped": self.siem.dropped,
                "siem_sent": sum(s.sent for s in self.siem.senders),
            },
            "disk": {"free_bytes": free, "free_ratio": round(ratio, 4)},
            "alerts": self.alerts.as_list(),
            "sessions": sessions,
        }
        if self.workers is not None:
            self.workers.merge(st)     # the other sensor processes' counters and sessions added in
        return st

    def write_status(self) -> None:
        self._last_status = time.time()
        st = self.status()
        tmp = self.run_dir / "status.json.tmp"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(st, f)
            os.replace(tmp, self.run_dir / "status.json")
        except OSError as e:
            self.alerts.raise_("status-file", f"cannot write the status file: {e.strerror}")

    def metrics_snapshot(self) -> dict[str, Any]:
        st = self.status()
        c = st["counters"]
        return {
            "sessiontap_packets_total": c["packets"], "sessiontap_bytes_total": c["bytes"],
            "sessiontap_drops_total": {("kernel",): c["kernel_drops"], ("sensor",): c["own_drops"],
                                       ("interface",): c["interface_drops"], ("stop",): c["stop_drops"]},
            "sessiontap_sessions_active": c["sessions_active"],
            "sessiontap_sessions_total": {(k,): v for k, v in c["sessions_total"].items()} or {("none",): 0},
            "sessiontap_decrypt_failures_total": c["decrypt_failures"],
            "sessiontap_keys_missing": c["keys_missing"],
            "sessiontap_keys_received_total": c["keys_received"],
            "sessiontap_queue_depth": {("capture",): c["capture_queue_bytes"], ("siem",): c["siem_queue"]},
            "sessiontap_siem_dropped_total": c["siem_dropped"],
            "sessiontap_siem_sent_total": c["siem_sent"],
            "sessiontap_recording_failures_total": c["recording_failures"],
            "sessiontap_disk_free_bytes": st["disk"]["free_bytes"],
            "sessiontap_disk_free_ratio": st["disk"]["free_ratio"],
            "sessiontap_alerts_active": len(st["alerts"]),
            "sessiontap_checkpoint_age_seconds": round(time.time() - self.last_checkpoint, 3),
        }

    # -- reload and stop ----------------------------------------------------------------------
    def reload(self) -> None:
        if not self.config_path:
            log("SIGHUP: no configuration file to reload (started from command-line options)")
            return
        try:
            new = load(self.config_path)
        except ConfigError as e:
            self.alerts.raise_("config-reload", f"configuration not reloaded, the running one is kept: {e}")
            return
        old = self.cfg
        if (new.interface, new.pcap) != (old.interface, old.pcap):
            log("SIGHUP: a new capture interface takes effect at the next restart")
            new.interface, new.pcap = old.interface, old.pcap
        if (new.subnets, new.ports, new.content_detection) != (old.subnets, old.ports, old.content_detection) \
                and isinstance(self.source, (PacketSocket, RingSocket)):
            expr = build_filter(new.subnets, new.ports, new.content_detection)
            try:
                self.bpf = compile_filter(expr, new.interface)
                self.source.set_filter(self.bpf)
                log(f"SIGHUP: capture filter now {expr}")
            except CaptureError as e:
                self.alerts.raise_("config-reload", str(e))
                new.subnets, new.ports, new.content_detection = old.subnets, old.ports, old.content_detection
        if self.sensor is not None:
            self.sensor.table.limits.idle_timeout = new.idle_timeout
        if self.workers is not None:
            self.workers.send_all(("reload", new.idle_timeout, self.bpf))
        if (new.syslog, new.zeek_logs, new.siem_queue) != (old.syslog, old.zeek_logs, old.siem_queue):
            self.siem.close()
            self.siem = self._make_siem(new)
        if self.intake is not None:
            self.intake.tokens = dict(new.escrow_tokens)
        if new.metrics_listen != old.metrics_listen or new.escrow_listen != old.escrow_listen:
            log("SIGHUP: new listen addresses take effect at the next restart")
            new.metrics_listen, new.escrow_listen = old.metrics_listen, old.escrow_listen
        self.cfg = new
        log(f"SIGHUP: configuration {self.config_path} reloaded")

    def _announce_stop(self) -> None:
        if not self._stop_logged:
            self._stop_logged = True
            log(f"stopping: capture stopped; processing what was captured for at most "
                f"{self.cfg.stop_seconds:g} s, then sessions in progress are written as partial")

    def shutdown(self) -> None:
        if self.stop_requested:
            self._announce_stop()
        if self.source is not None:
            self.source.stop()
            left = self.source.abandon()
            if left:
                self.alerts.raise_("capture-drops-stop",
                                   f"{left} packet(s) captured but not processed before the stop deadline "
                                   f"({self.cfg.stop_seconds:g} s): counted as dropped")
        if self.workers is not None:
            self.workers.finish(self)      # their last rows, before the final checkpoint writes them
        for s in self.active.values():     # the loop ended without closing them (an error)
            rec = s.recon.close(s.last_ts or s.rec.start, "capture-end")
            self.finished.append((rec, s.log, s))
            self._session_ended(rec)
        self.active.clear()
        for _ in range(50):
            self.checkpoint(final=True)
            if not self.finished:
                break
            time.sleep(0.1)
        self.stop_requested = True
        self.write_status()
        if self.ring is not None:
            self.ring.close()
        for srv in (self.metrics, self.intake):
            if srv is not None:
                srv.close()
        if self.sock_server is not None:
            self.sock_server.shutdown()
            self.sock_server.server_close()
            try:
                (self.run_dir / "sensor.sock").unlink()
            except FileNotFoundError:
                pass
        self.siem.close()
        log("stopped")


def _part_no(name: str) -> int:
    try:
        return int(name.split("part-")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


def _epoch(text: str) -> float:
    from storage.catalog import parse_time
    return parse_time(text)


__all__ = ["SensorDaemon", "Alerts", "log"]
