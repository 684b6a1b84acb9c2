"""``sessiontap export <id> --format pyrdp|mp4`` for RDP sessions.

The PyRDP replay comes from the session's stored artefact ``rdp.pyrdp`` when the importer kept
one, else it is rebuilt by decoding the stored raw streams (``streams.bin``) again with the
secrets given on this command line (``--keys``, ``--rdp-server-key``). MP4 rendering runs PyRDP's
player code (Qt + PyAV) in a child process (``python -m reconstruct.rdp.video``): a crash or a
leak there costs the export, never this process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Any

from appliance.home import Home
from storage.recordings import latest_version

REPLAY_ARTEFACT = "rdp.pyrdp"


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
        else:
            with open(args.output, "wb") as f:
                f.write(data)
            err.print(f"wrote {args.output} ({len(data)} bytes, opens with pyrdp-player)", markup=False)
        return 0
    verdict = (s.get("metadata") or {}).get("video", "")
    if verdict.startswith("not reconstructed"):
        return fail(f"no video for session {s['id'][:12]}: {verdict[len('not reconstructed: '):]}")
    if args.output == "-":
        return fail("mp4 export needs a file name (-o out.mp4)")
    with tempfile.TemporaryDirectory(prefix="sessiontap-rdp-") as tmp:
        src = os.path.join(tmp, "session.pyrdp")
        with open(src, "wb") as f:
            f.write(data)
        p = subprocess.run([sys.executable, "-m", "reconstruct.rdp.video", src, args.output],
                           capture_output=True, text=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    if p.returncode != 0 or not os.path.exists(args.output) or os.path.getsize(args.output) == 0:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return fail(f"mp4 export failed: {last}")
    err.print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)", markup=False)
    return 0
