"""A session as readable text: who, when, each login attempt, each command with what the
screen showed after it, and every other event in time order. Passwords never reach this
far (decoders redact them), so the transcript can be handed on."""
from __future__ import annotations

from typing import Any


def render_transcript(s: dict[str, Any], screen: list[str] | None = None) -> str:
    lines = [
        f"# session {s['id']} ({s['protocol']})",
        f"# {s['client_ip']}:{s['client_port']} -> {s['server_ip']}:{s['server_port']}",
        f"# user: {s['user'] or '?'}  auth: {s['auth']}  status: {s['status']}"
        + (f" ({s['status_reason']})" if s["status_reason"] else ""),
        f"# start: {s['start']}  end: {s['end'] or '?'}",
        "",
    ]
    for e in s["events"]:
        off = f"[+{e['offset']:8.1f}s]"
        if e["kind"] == "command":
            c = next((c for c in s["commands"] if c["text"] == e["text"] and c["offset"] == e["offset"]), None)
            tags = f"   # {', '.join(c['tags'])}" if c and c["tags"] else ""
            lines.append(f"{off} $ {e['text']}{tags}")
            if c and c["output"]:
                lines.extend(" " * 14 + "| " + ln for ln in c["output"].rstrip("\n").split("\n"))
        elif e["kind"] == "tag":
            continue
        else:
            lines.append(f"{off} ({e['kind']}) {e['text']}")
    if screen is not None:
        lines += ["", "# final screen:", *screen]
    return "\n".join(lines).rstrip() + "\n"
