"""Console latency on a large catalog: p50/p95 of the API calls the pages make, and the time
to the first frame when opening a long recording at its end.

A synthetic catalog (default 100,000 sessions, 10,000,000 timeline events, 1,000,000
commands with output) is written with DuckDB's own generators into an encrypted catalog in a
fresh data directory. One 8-hour terminal recording (a shell session: prompts, typed
commands, tables, log tails, full-screen programs; ~22 MB of asciicast, made by
tests/console/long_cast.py) is sealed in the vault twice: once with its seek index built as
the importer's hook would build it, once without. The console runs in this process on a
loopback port and is queried over HTTP like the pages do; the first-frame time is measured in
Chromium (Playwright, Debian's chromium) the way a user opens it: the session page with
``?t=<end>``, until the player's rows are the screen the terminal emulator shows at that second.

    .venv/bin/python benchmarks/console.py                    # full size (a few minutes to build)
    .venv/bin/python benchmarks/console.py --sessions 10000 --events-per-session 20   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "console"))

from appliance.console.app import build  # noqa: E402
from appliance.console.totp import totp  # noqa: E402
from appliance.home import Home  # noqa: E402
from appliance.console.replay import ensure_index  # noqa: E402
from reconstruct.seek import Emulator, header_of  # noqa: E402
from long_cast import shell_session  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def make_catalog(home: Home, n_sessions: int, events_per: int, commands_per: int) -> None:
    t0 = time.perf_counter()
    with home.catalog() as cat:
        con = cat.con
        con.execute("BEGIN")
        con.execute(f"""
            INSERT INTO sessions BY NAME
            SELECT substr(md5(i::VARCHAR), 1, 16) AS id,
                   ['telnet', 'ssh', 'rdp'][1 + i % 3] AS protocol,
                   '10.' || (i % 4) || '.' || (i // 256 % 256) || '.' || (i % 250 + 1) AS client_ip,
                   40000 + i % 20000 AS client_port,
                   '10.' || (20 + i % 8) || '.0.' || (i % 200 + 1) AS server_ip,
                   [23, 22, 3389][1 + i % 3] AS server_port,
                   'op' || (i % 500) AS "user", 'success' AS auth,
                   1.7e9 + i * 30.0 AS start_ts, 1.7e9 + i * 30.0 + 600 AS end_ts, 'fin' AS end_reason,
                   'complete' AS status, '' AS status_reason,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE true END AS decrypted, '' AS decrypt_reason,
                   false AS picked_up, 10000 AS c2s_bytes, 100000 AS s2c_bytes,
                   {commands_per} AS n_commands, {events_per} AS n_events,
                   CASE WHEN i % 50 = 0 THEN ['firmware-upgrade'] WHEN i % 7 = 0 THEN ['config-change']
                        ELSE []::VARCHAR[] END AS tags,
                   '{{}}' AS metadata, ['terminal.cast'] AS recordings, 1 AS import_id,
                   'synthetic.pcap' AS source, false AS truncated
            FROM range({n_sessions}) t(i)""")
        con.execute(f"""
            INSERT INTO commands BY NAME
            SELECT substr(md5((j // {commands_per})::VARCHAR), 1, 16) AS session_id, j % {commands_per} AS idx,
                   1.7e9 + (j // {commands_per}) * 30.0 + (j % {commands_per}) * 5 AS ts,
                   CASE WHEN j % 997 = 0 THEN 'fwupdate -i /tmp/fw-' || j || '.bin'
                        ELSE 'show interface ge-0/0/' || (j % 48) END AS text,
                   'typed' AS source, 'interface up, ' || (j % 10000) || ' packets' AS output,
                   1.7e9 + (j // {commands_per}) * 30.0 + (j % {commands_per}) * 5 + 1 AS output_ts,
                   []::VARCHAR[] AS tags
            FROM range({n_sessions * commands_per}) t(j)""")
        con.execute(f"""
            INSERT INTO events BY NAME
            SELECT substr(md5((k // {events_per})::VARCHAR), 1, 16) AS session_id, k % {events_per} AS seq,
                   1.7e9 + (k // {events_per}) * 30.0 + (k % {events_per}) * 0.5 AS ts,
                   CASE WHEN k % 10 = 0 THEN 'command' ELSE 'output' END AS kind,
                   'line ' || (k % 100000) || ' of output' AS text, []::VARCHAR[] AS tags,
                   'info' AS severity, NULL AS ref
            FROM range({n_sessions * events_per}) t(k)""")
        con.execute("COMMIT")
        t1 = time.perf_counter()
        cat.rebuild_search_index()  # the rows went in by SQL, not through write_sessions
        t_index = time.perf_counter() - t1
        con.execute("CHECKPOINT")
        words = con.execute("SELECT count(*) FROM search_terms").fetchone()[0]
    print(f"search index: {words:,} (word, column, session) rows built in {t_index:.1f} s")
    print(f"catalog: {n_sessions:,} sessions, {n_sessions * commands_per:,} commands, "
          f"{n_sessions * events_per:,} events written in {time.perf_counter() - t0:.1f} s "
          f"({home.catalog_path.stat().st_size / 1e6:.0f} MB encrypted)")


def pct(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--events-per-session", type=int, default=100)
    ap.add_argument("--commands-per-session", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--cast-hours", type=float, default=8.0)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sessiontap-bench-console-") as tmp:
        home = Home(path=Path(tmp) / "home", actor="benchmark")
        home.vault()
        make_catalog(home, args.sessions, args.events_per_session, args.commands_per_session)
        long_sid, cold_sid = "0" * 16, "f" * 16
        cast = shell_session(args.cast_hours * 3600, seed=8)
        with home.catalog() as cat:
            cat.con.execute("UPDATE sessions SET id = ?, end_ts = start_ts + ? WHERE id = (SELECT min(id) FROM sessions)",
                            [long_sid, args.cast_hours * 3600])
            cat.con.execute("UPDATE sessions SET id = ?, end_ts = start_ts + ? WHERE id = (SELECT max(id) FROM sessions)",
                            [cold_sid, args.cast_hours * 3600])
        vault = home.vault()
        vault.put(long_sid, "terminal.cast", cast)
        vault.put(cold_sid, "terminal.cast", cast)
        t = time.perf_counter()
        ensure_index(vault, long_sid, "terminal.cast", actor="benchmark")
        built = time.perf_counter() - t
        seek_size = sum(vault.manifest(long_sid, n)["ciphertext_size"] for n in vault.names(long_sid) if n.endswith(".seek"))
        n_events = cast.count(b"\n") - 1
        print(f"long recording: {args.cast_hours} h, {n_events:,} events, {len(cast) / 1e6:.1f} MB "
              f"({vault.manifest(long_sid, 'terminal.cast')['ciphertext_size'] / 1e6:.1f} MB sealed); "
              f"seek index built in {built:.1f} s, {seek_size / 1e6:.2f} MB sealed")
        header, first = header_of(cast)
        end = float(json.loads(cast.rstrip().rsplit(b"\n", 1)[1])[0]) - 1.0
        emu = Emulator(header["width"], header["height"])
        for line in cast[first:].splitlines():
            ts, code, data = json.loads(line)
            if ts > end:
                break
            emu.event(code, data)
        expected = [emu.screen.row_text(y) for y in range(emu.screen.lines)]

        console = build(home, "127.0.0.1", 0, tls=False)
        threading.Thread(target=console.serve_forever, daemon=True).start()
        url = console.url.rstrip("/")
        nu = console.accounts.create("bench", "auditor", ["*"], actor="benchmark")
        console.accounts.store.set_zone("cell-21", ["10.21.0.0/16"])
        scoped = console.accounts.create("bench-zone", "auditor", ["cell-21"], actor="benchmark")
        tokens = {}
        for u in (nu, scoped):
            tokens[u.name] = console.accounts.new_token(u.name, "benchmark")[1]

        def get(path: str, who: str = "bench") -> tuple[float, bytes]:
            req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {tokens[who]}"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=600) as r:
                body = r.read()
            return time.perf_counter() - t, body

        cases = [
            ("list, newest 50", "/api/sessions?limit=50", "bench"),
            ("list, page 1000", "/api/sessions?limit=50&offset=50000", "bench"),
            ("filter protocol+user+tag", "/api/sessions?protocol=ssh&user=op1*&tag=config-change&limit=50", "bench"),
            ("filter time window", "/api/sessions?since=2023-11-15T00:00:00&until=2023-11-16T00:00:00&limit=50", "bench"),
            ("list, zone-scoped auditor", "/api/sessions?limit=50", "bench-zone"),
            ("session detail", f"/api/sessions/{long_sid}", "bench"),
            ("search 'fwupdate' (commands)", "/api/search?q=fwupdate&limit=100", "bench"),
            ("search 'ge-0/0/47' (commands)", "/api/search?q=ge-0%2F0%2F47&limit=100", "bench"),
            ("search '9999 packets' (output)", "/api/search?q=9999%20packets&limit=100", "bench"),
            ("search 'line 99999' (10 M events)", "/api/search?q=line%2099999&limit=100", "bench"),
            ("search 'of output' (every event)", "/api/search?q=of%20output&limit=100", "bench"),
            ("search a word that is nowhere", "/api/search?q=qqqzzz&limit=100", "bench"),
            ("search regex 'fw.pdate' (full read)", "/api/search?q=fw.pdate&regex=true&limit=100", "bench"),
            (f"recording, whole {args.cast_hours:g} h cast", f"/api/sessions/{long_sid}/recording", "bench"),
            ("replay window at the end (new view)", f"/api/sessions/{long_sid}/replay?t={end}", "bench"),
        ]
        print(f"\n{'operation':<36} {'p50 ms':>9} {'p95 ms':>9}  (n={args.repeat})")
        for name, path, who in cases:
            get(path, who)  # warm: first attach, page cache
            n = args.repeat if "whole" not in name else max(3, args.repeat // 4)
            samples = [get(path, who)[0] for _ in range(n)]
            p50, p95 = pct(samples)
            print(f"{name:<36} {p50 * 1000:9.1f} {p95 * 1000:9.1f}")

        if not args.no_browser:
            from playwright.sync_api import sync_playwright
            with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
                ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                            args=ARGS, headless=True)
                page = ctx.new_page()
                page.goto(url + "/login")
                page.fill("#user", nu.name)
                page.fill("#password", nu.password)
                page.fill("#code", totp(nu.totp_secret))
                page.click("#sign-in")
                page.wait_for_selector("#who")
                rows = ("() => [...document.querySelectorAll('#player .ap-line')]"
                        ".map(l => l.textContent.replace(/\\u00a0/g, ' ').replace(/\\s+$/, ''))")
                shows = f"(want) => window.stReady === true && JSON.stringify(({rows})()) === JSON.stringify(want)"

                def first_frame(sid: str) -> tuple[float, dict]:
                    page.goto("about:blank")
                    t = time.perf_counter()
                    page.goto(f"{url}/sessions/{sid}?t={end}")
                    page.wait_for_function(shows, arg=expected, timeout=600_000, polling=20)
                    took = time.perf_counter() - t
                    assert abs(page.evaluate("window.stRecordingTime()") - end) < 0.01
                    return took, page.evaluate("window.stWindow()")

                times = []
                for _ in range(5):
                    took, win = first_frame(long_sid)
                    assert not win["whole"]
                    times.append(took)
                print(f"{'first frame at the end, indexed':<36} {statistics.median(times) * 1000:9.1f} "
                      f"{max(times) * 1000:9.1f}  (Chromium, ?t=end to the right screen, n=5; "
                      f"window {win['end'] - win['start']:.0f} s)")
                took, win = first_frame(cold_sid)
                assert win["whole"]
                print(f"{'first frame at the end, not indexed':<36} {took * 1000:9.1f} {'':>9}  "
                      f"(whole recording, as before seek indexes; n=1)")
                ctx.close()
        console.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
