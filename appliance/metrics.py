"""Prometheus metrics of the running sensor, served over HTTP (``GET /metrics``).

The daemon hands over a function that returns a snapshot (a flat dict of name -> value, or
name -> {label tuple: value}); this module only knows the exposition format (text 0.0.4) and
the HTTP plumbing, so nothing here can slow the capture down: a scrape reads counters the
sensor keeps anyway.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

# name -> (type, help); the snapshot may leave any of them out
METRICS: dict[str, tuple[str, str]] = {
    "sessiontap_packets_total": ("counter", "Packets captured by the sensor"),
    "sessiontap_bytes_total": ("counter", "Bytes captured by the sensor"),
    "sessiontap_drops_total": ("counter", "Packets lost, by where: kernel (ring or socket buffer), sensor (reconstruction behind), interface (NIC), stop (captured but not processed before the stop deadline)"),
    "sessiontap_sessions_active": ("gauge", "Sessions in progress"),
    "sessiontap_sessions_total": ("counter", "Sessions recorded since start, by protocol"),
    "sessiontap_decrypt_failures_total": ("counter", "Encrypted sessions that ended without being decrypted"),
    "sessiontap_keys_missing": ("gauge", "Encrypted sessions in the catalog still waiting for their key"),
    "sessiontap_keys_received_total": ("counter", "Key deposits accepted by the escrow intake"),
    "sessiontap_queue_depth": ("gauge", "Items waiting, by queue: capture (bytes), siem (messages)"),
    "sessiontap_siem_dropped_total": ("counter", "SIEM messages dropped because a target's queue was full"),
    "sessiontap_siem_sent_total": ("counter", "SIEM messages delivered"),
    "sessiontap_recording_failures_total": ("counter", "Checkpoints or session writes that failed"),
    "sessiontap_disk_free_bytes": ("gauge", "Free space where the data directory lives"),
    "sessiontap_disk_free_ratio": ("gauge", "Free fraction of the data directory's file system"),
    "sessiontap_alerts_active": ("gauge", "Alerts currently raised (capture drops, recording failures, disk)"),
    "sessiontap_checkpoint_age_seconds": ("gauge", "Seconds since the last successful checkpoint"),
}


def _labels(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    return "{" + ",".join(f'{n}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                          for n, v in zip(names, values)) + "}"


LABELS = {"sessiontap_drops_total": ("stage",), "sessiontap_sessions_total": ("protocol",),
          "sessiontap_queue_depth": ("queue",)}


def render(snapshot: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, (kind, help_text) in METRICS.items():
        if name not in snapshot:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        v = snapshot[name]
        if isinstance(v, dict):
            for key, val in sorted(v.items()):
                key = key if isinstance(key, tuple) else (key,)
                lines.append(f"{name}{_labels(LABELS.get(name, ('label',)), key)} {float(val):g}")
        else:
            lines.append(f"{name} {float(v):g}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    def __init__(self, host: str, port: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = render(snapshot()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._t = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._t.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["MetricsServer", "render", "METRICS"]
