#!/usr/bin/env python3
"""Send a jump host's SSH/TLS key-log lines to the sessiontap sensor's escrow intake.

Standard library only: copy this one file to the jump host.

    # once: send a file (or stdin with -)
    escrow_client.py --url https://sensor:8443 --token-file /etc/sessiontap/escrow.token \\
                     --cafile /etc/sessiontap/sensor-intake.crt --file /var/log/ssh-keys.log
    # as a service: follow the key log and send each new line as it is written
    escrow_client.py ... --follow /var/log/ssh-keys.log --state /var/lib/sessiontap/escrow.offset

The server certificate is checked against --cafile (the intake's self-signed certificate or
your CA). Lines are sent whole (a partial last line waits for its newline), in batches, and
a batch is only counted as sent when the sensor answered 200 (the keys are sealed then); on
any other answer or a network error the client waits and retries, so a key is never lost by
a sensor restart. With --follow the offset reached is kept in --state across restarts.
Exit codes: 0 sent, 1 refused (bad token, bad text), 2 usage/config problem.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

BATCH = 512 * 1024


class Refused(Exception):
    pass


def post(url: str, token: str, ctx: ssl.SSLContext, text: str, timeout: float = 20.0) -> dict:
    req = urllib.request.Request(url.rstrip("/") + "/v1/keys", data=text.encode("utf-8"), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", "")
        except ValueError:
            msg = ""
        if e.code in (400, 401, 403, 404, 413):
            raise Refused(f"the sensor refused the keys ({e.code}): {msg}") from None
        raise OSError(f"the sensor answered {e.code}: {msg}") from None


def send_with_retry(url: str, token: str, ctx: ssl.SSLContext, text: str, retries: int | None) -> dict:
    delay, attempt = 1.0, 0
    while True:
        try:
            return post(url, token, ctx, text)
        except (OSError, urllib.error.URLError, ssl.SSLError) as e:
            attempt += 1
            if retries is not None and attempt > retries:
                raise
            print(f"escrow_client: {e}; retrying in {delay:.0f} s", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)


def batches(text: str):  # type: ignore[no-untyped-def]
    lines = text.splitlines(keepends=True)
    cur: list[str] = []
    size = 0
    for line in lines:
        if cur and size + len(line) > BATCH:
            yield "".join(cur)
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        yield "".join(cur)


def follow(path: str, state: str | None, send, poll: float) -> None:  # type: ignore[no-untyped-def]
    offset = 0
    if state and os.path.exists(state):
        try:
            offset = int(open(state).read().strip() or 0)
        except ValueError:
            offset = 0
    inode = None
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            time.sleep(poll)
            continue
        if inode is not None and st.st_ino != inode or st.st_size < offset:
            offset = 0          # the key log was rotated or truncated: start the new one
        inode = st.st_ino
        if st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(st.st_size - offset)
            end = chunk.rfind(b"\n") + 1      # only whole lines
            if end:
                for part in batches(chunk[:end].decode("utf-8", "replace")):
                    send(part)
                offset += end
                if state:
                    tmp = state + ".tmp"
                    with open(tmp, "w") as f:
                        f.write(str(offset))
                    os.replace(tmp, state)
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="deposit SSH/TLS key-log lines with the sessiontap sensor")
    p.add_argument("--url", required=True, help="https://SENSOR:PORT")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--token-file", help="file holding this host's token")
    g.add_argument("--token-env", help="environment variable holding the token")
    p.add_argument("--cafile", help="certificate(s) to trust for the sensor (its intake.crt)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", help="send this key log once (- for stdin)")
    src.add_argument("--follow", help="follow this key log, sending lines as they are written")
    p.add_argument("--state", help="with --follow: file keeping the offset already sent")
    p.add_argument("--poll", type=float, default=0.5, help="with --follow: seconds between looks")
    p.add_argument("--retries", type=int, default=None, help="give up after this many failures (default: never)")
    a = p.parse_args(argv)
    try:
        token = (open(a.token_file).read() if a.token_file else os.environ[a.token_env]).strip()
    except (OSError, KeyError) as e:
        print(f"escrow_client: cannot read the token: {e}", file=sys.stderr)
        return 2
    if not a.url.startswith("https://"):
        print("escrow_client: --url must be https:// (keys never travel in clear)", file=sys.stderr)
        return 2
    ctx = ssl.create_default_context(cafile=a.cafile)

    def send(text: str) -> None:
        r = send_with_retry(a.url, token, ctx, text, a.retries)
        print(f"escrow_client: {r.get('accepted', 0)} key line(s) sealed", file=sys.stderr)

    try:
        if a.file:
            text = sys.stdin.read() if a.file == "-" else open(a.file, encoding="utf-8", errors="replace").read()
            for part in batches(text):
                send(part)
        else:
            follow(a.follow, a.state, send, a.poll)
    except Refused as e:
        print(f"escrow_client: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"escrow_client: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
