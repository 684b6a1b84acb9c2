"""More than one sensor process on one mirror port (``capture.workers = N``).

The kernel shares the port's packets between the processes' TPACKET_V3 rings by flow hash
(``PACKET_FANOUT`` with ``PACKET_FANOUT_HASH``: both directions of a connection hash alike),
so each process has whole flows in a flow table of its own and reconstructs them on a core of
its own. The catalog keeps one writer, as in a parallel import (``appliance/importer.py``):

* the main process (``SensorDaemon``) captures its share, runs the services (status, metrics,
  escrow intake, ``sessiontap live``, SIEM) and writes every catalog row;
* each worker (``WorkerDaemon``, the same loop) captures its share and seals its recordings in
  the vault itself (the vault takes writers from several processes), then sends the catalog
  rows (without the recording content), SIEM messages, alerts, its counters and the screens
  of followed sessions to the main process through one queue.

Stopping: the main process tells the workers; each stops like a single sensor does (backlog
processed up to ``stop_seconds``, sessions in progress written as partial, the rest counted)
and says it is done; the main process writes their last rows in its final checkpoint. A
worker that dies is an alert; its sessions in progress stay ``live`` in the catalog and are
closed as ``partial`` at the next start, as after a crash.
"""
from __future__ import annotations

import multiprocessing
import queue
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from appliance.config import Config
from appliance.home import Home
from appliance.keys import parse_key_text
from appliance.sensor_daemon import ACTOR, TICK, Alerts, Follower, SensorDaemon, log
from sensor.capture import CaptureError
from sensor.flows import Limits
from sensor.live import LiveSensor, RawRing, RingSocket

READY_WAIT = 60.0          # seconds the workers may take to start (imports, vault, ring)
FINISH_GRACE = 30.0        # seconds beyond stop_seconds a worker may take to write its sessions


class Workers:
    """The main process's side: starts the workers, takes in what they send."""

    def __init__(self, cfg: Config, home_path: Path, group: int, bpf: bytes | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.inbox: Any = ctx.Queue()
        self.count = cfg.workers - 1
        self.controls = [ctx.Queue() for _ in range(self.count)]
        self.procs = [ctx.Process(target=worker_main, name=f"sessiontap-sensor-{i + 1}",
                                  args=(cfg, str(home_path), i + 1, group, bpf, self.controls[i], self.inbox))
                      for i in range(self.count)]
        self.status: dict[int, dict[str, Any]] = {}
        self.done: set[int] = set()
        self.stopping = False
        self.followers: dict[int, Follower] = {}
        self._token = 0
        self._reported_dead: set[int] = set()

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def wait_ready(self, daemon: SensorDaemon, timeout: float = READY_WAIT) -> None:
        """Until every worker is on the port (its first status): before that the kernel would
        give the main process all the traffic, and flows would move when a worker joins."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.status) < self.count:
            self.poll(daemon)
            if any(p.exitcode is not None for p in self.procs):
                break
            time.sleep(0.05)
        if len(self.status) < self.count:
            daemon.alerts.raise_("capture-workers", f"only {len(self.status)} of {self.count} more sensor "
                                 f"process(es) started; the others' share of the traffic is not recorded")

    def send_all(self, msg: tuple) -> None:
        for q in self.controls:
            q.put(msg)

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.send_all(("stop",))

    def poll(self, daemon: SensorDaemon, limit: int = 10_000) -> None:
        """Take what the workers sent (at most ``limit`` messages: the loop must go on)."""
        for _ in range(limit):
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                break
            self._take(daemon, msg)
        for i, p in enumerate(self.procs, 1):
            if p.exitcode is not None and i not in self.done and i not in self._reported_dead:
                self._reported_dead.add(i)
                # the kernel takes its socket out of the fanout group: its flows come to the others
                # from now on (picked up mid-session); what it had open stays live until a restart
                daemon.alerts.raise_(f"capture-worker-{i}", f"sensor process {i} exited ({p.exitcode}); its flows "
                                     f"now go to the other process(es); the sessions it had open are closed as "
                                     f"partial at the next start")

    def _take(self, daemon: SensorDaemon, msg: tuple) -> None:
        kind, i = msg[0], msg[1]
        if kind == "rows":
            for rec, names in msg[2]:
                daemon.worker_rows.pop(rec.id, None)      # kept in the order of their last update
                daemon.worker_rows[rec.id] = (rec, names)
        elif kind == "siem":
            daemon.siem.send(msg[2])
        elif kind == "session_log":
            daemon.siem.session_log(msg[2])
        elif kind == "alert":
            daemon.alerts.raise_(f"{msg[2]}-worker-{i}", f"(sensor process {i}) {msg[3]}")
        elif kind == "status":
            self.status[i] = msg[2]
        elif kind == "out":
            fol = self.followers.get(msg[2])
            if fol is not None:
                fol.push(msg[3])
                if msg[3] is None or fol.gone:
                    del self.followers[msg[2]]
        elif kind == "done":
            self.done.add(i)
            if len(msg) > 2:
                self.status[i] = msg[2]

    def follow(self, prefix: str, fol: Follower) -> bool:
        """Hand a ``sessiontap live ID`` over to the worker that has the session, if one has."""
        if not prefix:
            return False
        owners = [i for i, st in self.status.items() for s in st.get("sessions", []) if s["id"].startswith(prefix)]
        if len(owners) != 1:
            return False
        self._token += 1
        self.followers[self._token] = fol
        self.controls[owners[0] - 1].put(("follow", prefix, self._token))
        return True

    def merge(self, st: dict[str, Any]) -> None:
        """Add the workers' counters and sessions in progress to the main process's status."""
        c = st["counters"]
        workers = list(self.status.items())       # the metrics thread reads while the loop updates
        for _i, w in workers:
            wc = w.get("counters", {})
            for k in ("packets", "bytes", "kernel_drops", "own_drops", "interface_drops", "stop_drops",
                      "processed_packets", "capture_queue_bytes", "tcp_packets", "sessions_active",
                      "recording_failures", "decrypt_failures"):
                c[k] = c.get(k, 0) + wc.get(k, 0)
            for proto, n in wc.get("sessions_total", {}).items():
                c["sessions_total"][proto] = c["sessions_total"].get(proto, 0) + n
            st["sessions"].extend(w.get("sessions", []))
        # the interface's own drop counter is one for all the processes
        c["interface_drops"] = max([st["counters"]["interface_drops"]] +
                                   [w.get("counters", {}).get("interface_drops", 0) for _i, w in workers])
        st["workers"] = {str(i): {"pid": w.get("pid"), "running": i not in self.done,
                                  "packets": w.get("counters", {}).get("packets", 0)} for i, w in sorted(workers)}

    def finish(self, daemon: SensorDaemon) -> None:
        """At the stop: wait for every worker to write its sessions and say so (bounded)."""
        self.stop()
        deadline = time.monotonic() + daemon.cfg.stop_seconds + FINISH_GRACE
        while time.monotonic() < deadline:
            self.poll(daemon)
            if all(i in self.done or p.exitcode is not None for i, p in enumerate(self.procs, 1)):
                break
            time.sleep(0.05)
        self.poll(daemon)
        for i, p in enumerate(self.procs, 1):
            p.join(timeout=5)
            if p.is_alive():
                log(f"sensor process {i} did not stop in time: killed; its sessions in progress are "
                    f"closed as partial at the next start")
                p.kill()
                p.join(timeout=5)


class _ToMain:
    """Stands in for the SIEM forwarder in a worker: messages go to the main process."""

    dropped = 0
    senders: list[Any] = []

    def __init__(self, send: Callable[[tuple], None]) -> None:
        self._send = send

    def send(self, ev: Any) -> None:
        self._send(("siem", ev))

    def session_log(self, fields: dict[str, Any]) -> None:
        self._send(("session_log", fields))

    def depth(self) -> int:
        return 0

    def close(self) -> None:
        pass


class _RemoteFollower(Follower):
    """A follower in a worker: the screen goes to the main process, which has the client."""

    def __init__(self, send: Callable[[tuple], None], token: int) -> None:
        super().__init__()
        self._send, self._token = send, token

    def push(self, obj: dict[str, Any] | None) -> None:
        self._send(("out", self._token, obj))


class WorkerDaemon(SensorDaemon):
    """One more sensor process: the same loop on its share of the port, no services, no
    catalog: what it would write there goes to the main process."""

    def __init__(self, cfg: Config, home: Home, index: int, group: int, bpf: bytes | None,
                 control: Any, inbox: Any) -> None:
        self.index, self.group, self.control, self.inbox = index, group, control, inbox
        super().__init__(cfg, home)
        self.bpf = bpf
        self.siem = _ToMain(self._to_main)    # type: ignore[assignment]
        self.alerts = Alerts(lambda name, message: self._to_main(("alert", name, message)))

    def _to_main(self, msg: tuple) -> None:
        self.inbox.put((msg[0], self.index, *msg[1:]))

    def _make_siem(self, cfg: Config) -> Any:
        return _ToMain(self._to_main)

    def run(self) -> int:
        self._prepare()
        cfg = self.cfg
        try:
            self.source = RingSocket(cfg.interface or "", self.bpf, cfg.buffer_mb * 1024 * 1024, fanout=self.group)
        except CaptureError as e:
            log(f"sensor process {self.index}: {e}")
            return 1
        if cfg.ring:
            self.ring = RawRing(self.home.path / "raw" / f"worker-{self.index}", cfg.ring.file_mb * 1024 * 1024,
                                cfg.ring.files, cfg.ring.file_seconds)
            self.source.on_raw = self.ring.write
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)     # the main process reloads and tells us
        self.sensor = LiveSensor(self.source, Limits(idle_timeout=cfg.idle_timeout))
        self.source.start()
        self.write_status()
        try:
            for ev in self.sensor.events(TICK):
                if ev is None:
                    self.tick()
                    continue
                self.on_stream_event(ev)
        finally:
            self.shutdown()
            self._to_main(("done", self.status()))
        return 1 if self.source.error else 0

    def tick(self) -> None:
        while True:
            try:
                msg = self.control.get_nowait()
            except queue.Empty:
                break
            self._control(msg)
        super().tick()

    def _control(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "stop":
            self.stop_requested = True
            if self.source is not None:
                self.source.request_stop(self.cfg.stop_seconds)
        elif kind == "keys":
            try:
                self.ring_keys.lookups.extend(parse_key_text(msg[1], f"escrow:{msg[2]}").lookups)
            except ValueError:
                pass
        elif kind == "follow":
            fol = _RemoteFollower(self._to_main, msg[2])
            self.follow_requests.put((msg[1], fol))
        elif kind == "reload":
            if self.sensor is not None:
                self.sensor.table.limits.idle_timeout = msg[1]
            if msg[2] and isinstance(self.source, RingSocket):
                self.source.set_filter(msg[2])

    def _announce_stop(self) -> None:
        self._stop_logged = True          # the main process says it once for all

    def checkpoint(self, final: bool = False) -> None:
        """Seal what changed, as the main process does, and send it the rows."""
        def send_rows(rows: list[Any]) -> None:
            # the recording content is sealed already: the row needs none of it (and it would be
            # pickled through the queue at every checkpoint)
            self._to_main(("rows", [(replace(rec, terminal=[], artefacts={}), names)
                                    for rec, _iid, _src, names in rows]))
        if self.finished:
            group = self.finished[:]
            self._write_group(send_rows, [self._finished_items(rec, slog) for rec, slog, _s in group],
                              [rec.id for rec, _l, _s in group])
            del self.finished[:len(group)]
        dirty = [s for s in self.active.values() if s.dirty]
        if dirty:
            self._write_group(send_rows, [self._checkpoint_items(s) for s in dirty], [s.rec.id for s in dirty])
        self.last_checkpoint = time.time()

    def write_status(self) -> None:
        self._last_status = time.time()
        self._to_main(("status", self.status()))

    def redecode_waiting(self) -> None:
        self.redecode_pending = False      # the main process does it from the catalog


def worker_main(cfg: Config, home_path: str, index: int, group: int, bpf: bytes | None, control: Any,
                inbox: Any) -> None:
    """A worker process's body (``multiprocessing`` spawn target)."""
    import appliance.sensor_daemon as daemon_module
    from appliance.gc_tuning import tune_for_reconstruction
    tune_for_reconstruction()      # a spawned worker does not run the CLI's main()
    daemon_module.LOG_NAME = f"sessiontap-sensor[{index}]"
    try:
        home = Home(Path(home_path), actor=ACTOR)
        rc = WorkerDaemon(cfg, home, index, group, bpf, control, inbox).run()
    except BaseException as e:   # the main process must hear of it
        inbox.put(("alert", index, "capture-failure", f"{type(e).__name__}: {e}"))
        rc = 1
    raise SystemExit(rc)


__all__ = ["Workers", "WorkerDaemon", "worker_main"]
