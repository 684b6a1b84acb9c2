"""``sessiontap export <id> --format pyrdp|mp4`` for RDP sessions.

The PyRDP replay comes from the session's stored artefact ``rdp.pyrdp`` when the importer kept
one, else it is rebuilt by decoding the stored raw streams (``streams.bin``) again with the
secrets given on this command line (``--keys``, ``--rdp-server-key``). An MP4 export is the
video sealed in the vault when the console or an earlier export made one, else it is rendered
(appliance/rdp_video.py, in a child process) and sealed for the next viewer.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.home import Home
from appliance.rdp_video import REPLAY as REPLAY_ARTEFACT
from appliance.rdp_video import RenderError, render, seal, session_time_range, video_names, why_no_video
from storage.recordings import latest_version


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.choices.get("export")
    if export is None:
        return
    export.add_argument("--keys", action="append", metavar="FILE",
                        help="RDP: TLS key log, to rebuild the replay from the stored streams")
    export.add_argument("--rdp-server-key", action="append", metavar="FILE",
                        help="RDP: server private key (PEM or xrdp rsakeys.ini), to rebuild the replay")


def replay_bytes(home: Home, sid: str, actor: str, keys: list[str], server_keys: list[str]) -> bytes | None:
    """The session's PyRDP replay: stored, or rebuilt from the stored streams."""
    store = home.store()
    names = store.names(sid)
    stored = latest_version(names, REPLAY_ARTEFACT)
    if stored:
        return store.get(sid, stored, actor=actor, purpose="export rdp replay")
    streams = latest_version(names, "streams.bin")
    if not streams:
        return None
    from appliance.keys import load_keys
    from reconstruct.rdp import RDPDecoder
    from sensor.streamlog import replay

    dec = RDPDecoder(load_keys(keys), server_keys=server_keys)
    blob = store.get(sid, streams, actor=actor, purpose="export rdp replay (decode again)")
    end = 0.0
    for what, direction, ts, payload in replay(blob):
        end = ts
        if what == "data":
            dec.feed(direction, payload, ts)  # type: ignore[arg-type]
        else:
            dec.gap(direction, payload, ts)  # type: ignore[arg-type]
    dec.close(end, "capture-end")
    return dec.replay()


def export(args: argparse.Namespace, home: Home, s: dict[str, Any], actor: str) -> int:
    from appliance.cli import err, fail

    if s.get("protocol") != "rdp":
        return fail(f"--format {args.format} is for RDP sessions; session {s['id'][:12]} is {s.get('protocol')}")
    names = None
    if args.format == "mp4":
        why = why_no_video(s)
        if why:
            return fail(f"no video for session {s['id'][:12]}: {why}")
        if args.output == "-":
            return fail("mp4 export needs a file name (-o out.mp4)")
        store = home.store()
        names = video_names(store.names(s["id"]))
        if names is not None and store.exists(s["id"], names.video):
            return _write(args.output, store.get(s["id"], names.video, actor=actor, purpose="export rdp video"))
    try:
        data = replay_bytes(home, s["id"], actor, getattr(args, "keys", None) or [],
                            getattr(args, "rdp_server_key", None) or [])
    except (OSError, ValueError) as e:
        return fail(str(e))
    if not data:
        why = (s.get("metadata") or {}).get("decrypt-reason") or s.get("status_reason") or "nothing was decrypted"
        return fail(f"session {s['id'][:12]} has no RDP replay ({why}); give --keys or --rdp-server-key")
    if args.format == "pyrdp":
        if args.output == "-":
            sys.stdout.buffer.write(data)
            return 0
        return _write(args.output, data, ", opens with pyrdp-player")
    try:
        video, thumbnails = render(data)
    except RenderError as e:
        return fail(f"mp4 export failed: {e}")
    # sealed only when made from the stored replay (names is None without one): a replay
    # rebuilt with keys given on this command line is not what the vault holds
    if names is not None:
        seal(home.store(), s["id"], names, video, thumbnails, actor, session_time_range(s))
    return _write(args.output, video)


def _write(path: str, data: bytes, note: str = "") -> int:
    from appliance.cli import err

    with open(path, "wb") as f:
        f.write(data)
    err.print(f"wrote {path} ({len(data)} bytes{note})", markup=False)
    return 0
