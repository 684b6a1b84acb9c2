"""RDP videos made on demand for the console: the first auditor who opens an RDP session
starts one render of its replay (appliance/rdp_video.py, in a child process), and everyone
after that gets the video and thumbnail strip sealed in the vault.

One render per session at a time, a few at once (each is a Qt + x264 process), a bounded queue
behind them; a failed render is remembered for a while so a page that polls does not start
one after another.
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from appliance.rdp_video import RENDER_TIMEOUT, VideoNames, render, seal

RETRY_FAILED_AFTER = 300.0


@dataclass
class Job:
    sid: str
    names: VideoNames
    state: str = "queued"          # queued, rendering, failed
    queued: float = field(default_factory=time.time)
    started: float | None = None
    error: str = ""
    failed_at: float = 0.0

    def view(self) -> dict[str, Any]:
        now = time.time()
        return {"state": self.state, "queued_for": round((self.started or now) - self.queued, 1),
                "rendering_for": round(now - self.started, 1) if self.started and self.state == "rendering" else None,
                "error": self.error or None}


class Busy(Exception):
    """Too many renders waiting."""


class Renders:
    def __init__(self, vault: Any, vault_lock: threading.Lock, workers: int = 2, queue: int = 16,
                 timeout: float = RENDER_TIMEOUT) -> None:
        self.vault = vault
        self.vault_lock = vault_lock
        self.timeout = timeout
        self.queue = queue
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._children: set[subprocess.Popen] = set()
        self._closed = False

    def request(self, actor: str, sid: str, names: VideoNames, time_range: tuple[float, float] | None
                ) -> tuple[Job | None, bool]:
        """The job making this session's video and whether this call started it; (None, False)
        when the video is sealed already. Raises Busy when the queue is full."""
        with self._lock:
            job = self._jobs.get(sid)
            if job is not None and job.names == names:
                if job.state != "failed" or time.time() - job.failed_at < RETRY_FAILED_AFTER:
                    return job, False
            # checked under the lock: a job that just sealed its video has left the table
            with self.vault_lock:
                if self.vault.exists(sid, names.video) and self.vault.exists(sid, names.thumbnails):
                    return None, False
            if sum(j.state != "failed" for j in self._jobs.values()) >= self.queue:
                raise Busy()
            job = self._jobs[sid] = Job(sid, names)
        threading.Thread(target=self._run, args=(job, actor, time_range), daemon=True,
                         name=f"render-{sid}").start()
        return job, True

    def _run(self, job: Job, actor: str, time_range: tuple[float, float] | None) -> None:
        with self._slots:
            job.state, job.started = "rendering", time.time()
            try:
                if self._closed:
                    raise RuntimeError("the console is stopping")
                with self.vault_lock:  # the replay read is audited under the auditor who asked
                    replay = self.vault.get(job.sid, job.names.replay, actor=actor,
                                            purpose="render video in the console")
                video, strip = render(replay, self.timeout, self._started)
                with self.vault_lock:
                    seal(self.vault, job.sid, job.names, video, strip, actor, time_range)
            except Exception as e:  # noqa: BLE001 - whatever went wrong is shown to the page
                job.state, job.error, job.failed_at = "failed", str(e) or type(e).__name__, time.time()
                return
            with self._lock:
                self._jobs.pop(job.sid, None)

    def _started(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._children = {p for p in self._children if p.poll() is None} | {proc}
            if self._closed:
                proc.kill()

    def close(self) -> None:
        """Ends the renders in progress (their videos are not sealed; the next view starts again)."""
        with self._lock:
            self._closed = True
            for p in self._children:
                if p.poll() is None:
                    p.kill()
