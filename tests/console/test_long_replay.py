"""The auditor's story with a long recording: a link to minute 29 of a 30-minute session opens
the player there, showing what the terminal showed at that second, without the whole
recording coming over the wire; moving in the recording stays one audited read. A recording
seen before its seek index exists is served whole once, and indexed for the next time."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appliance.console.replay import ensure_index, index_name
from reconstruct.seek import Emulator, header_of
from console_harness import Running
from long_cast import shell_session
from test_browser import browser, sign_in  # noqa: F401 - the Chromium fixture

INDEXED, UNINDEXED = "1a" * 8, "2b" * 8
SECONDS = 1800


def add_session(home, sid: str, cast: bytes) -> None:
    """A catalog row and a sealed recording, as an import leaves them."""
    with home.catalog() as cat:
        cat.con.execute("""INSERT INTO sessions BY NAME SELECT ? AS id, 'telnet' AS protocol,
            '10.20.0.9' AS client_ip, 40000 AS client_port, '10.20.0.5' AS server_ip, 23 AS server_port,
            'operator' AS "user", 'success' AS auth, 1.7e9 AS start_ts, 1.7e9 + ? AS end_ts, 'fin' AS end_reason,
            'complete' AS status, '' AS status_reason, NULL AS decrypted, '' AS decrypt_reason, false AS picked_up,
            0 AS c2s_bytes, ? AS s2c_bytes, 0 AS n_commands, 0 AS n_events, []::VARCHAR[] AS tags, '{}' AS metadata,
            ['terminal.cast'] AS recordings, 1 AS import_id, 'generated' AS source, false AS truncated""",
                        [sid, SECONDS, len(cast)])
    home.vault().put(sid, "terminal.cast", cast)


@pytest.fixture(scope="module")
def long_console(tmp_path_factory):
    from appliance.home import Home

    path = tmp_path_factory.mktemp("console-long") / "home"
    home = Home(path=path, actor="test-import")
    cast = shell_session(SECONDS, seed=3)
    assert len(cast) > 1 << 20  # above the size served whole
    add_session(home, INDEXED, cast)
    add_session(home, UNINDEXED, shell_session(SECONDS, seed=4))
    # what the importer's hook does for a long recording
    assert ensure_index(home.vault(), INDEXED, "terminal.cast", actor="test-import") == index_name("terminal.cast")
    r = Running(path)
    yield r, cast
    r.close()


def screen_at(cast: bytes, t: float) -> list[str]:
    """The rows the terminal showed at second ``t``: the whole recording through the emulator."""
    header, first = header_of(cast)
    emu = Emulator(header["width"], header["height"])
    for line in cast[first:].splitlines():
        ts, code, data = json.loads(line)
        if ts > t:
            break
        emu.event(code, data)
    return [emu.screen.row_text(y) for y in range(emu.screen.lines)]


def player_rows(page) -> list[str]:
    """The text of each row of asciinema-player's terminal, as a person reads it."""
    rows = page.evaluate("[...document.querySelectorAll('#player .ap-line')].map(l => l.textContent)")
    return [r.replace("\u00a0", " ").rstrip() for r in rows]


def reads(vault, sid: str) -> list[dict]:
    return [e for e in vault.audit_entries() if e["action"] == "read" and e["target"].startswith(sid)]


def test_a_link_to_minute_29_opens_the_screen_of_that_second(long_console, browser):  # noqa: F811
    console, cast = long_console
    t = 1745.25
    assert sum(1 for row in screen_at(cast, t) if row.strip()) >= 5, "pick a second with something on the screen"
    auditor = console.user("lena", "auditor")
    page = browser.new_page()
    sign_in(page, console.url, auditor)
    before = len(reads(console.accounts.vault, INDEXED))
    page.goto(f"{console.url}/sessions/{INDEXED}?t={t}")
    page.wait_for_function("() => window.stReady === true")
    win = page.evaluate("window.stWindow()")
    assert not win["whole"] and win["start"] <= t <= win["end"] and win["duration"] == pytest.approx(
        json.loads(cast.rstrip().rsplit(b"\n", 1)[1])[0])
    assert abs(page.evaluate("window.stRecordingTime()") - t) < 0.01
    # the player's screen is the emulator's screen at that second, row for row
    assert player_rows(page) == screen_at(cast, t)
    got = page.evaluate("performance.getEntriesByType('resource').filter(e => e.name.includes('/replay?'))"
                        ".map(e => e.decodedBodySize)")
    assert len(got) == 1 and 0 < got[0] < len(cast) / 2, got  # a window, not the recording
    # a command early in the session: another window, in the same view
    page.evaluate("jump(200)")
    page.wait_for_function("() => Math.abs(window.stRecordingTime() - 200) < 0.01 && window.stWindow().start <= 200")
    assert player_rows(page) == screen_at(cast, 200)
    # playing past the end of a window goes on with the next one
    end = page.evaluate("(async () => { const w = window.stWindow(); await jump(w.end - 0.3); "
                        "window.stPlayer.play(); return w.end; })()")
    page.wait_for_function(f"() => window.stWindow().start >= {end} - 0.001 && window.stRecordingTime() > {end}")
    after = reads(console.accounts.vault, INDEXED)
    assert len(after) - before == 1 and after[-1]["actor"] == "console:lena", after[before:]
    page.close()


def test_first_view_before_indexing_is_whole_then_the_next_is_windowed(long_console):
    console, _ = long_console
    auditor = console.user("mira", "auditor")
    c = console.client()
    assert c.sign_in(auditor).status == 200
    first = c.call("GET", f"/api/sessions/{UNINDEXED}/replay?t=1700").json()
    assert first["whole"] and first["indexing"]
    vault = console.accounts.vault
    for _ in range(300):  # the console builds the index in the background from the bytes it read
        with console.accounts.vault_lock:
            if index_name("terminal.cast") in vault.names(UNINDEXED):
                break
        time.sleep(0.1)
    second = c.call("GET", f"/api/sessions/{UNINDEXED}/replay?t=1700").json()
    assert not second["whole"] and second["start"] <= 1700 <= second["end"]
    assert len(second["cast"]) < len(first["cast"]) / 2
    # same view id: no new vault read
    n = len(reads(vault, UNINDEXED))
    third = c.call("GET", f"/api/sessions/{UNINDEXED}/replay?t=10&view={second['view']}").json()
    assert third["start"] <= 10 and len(reads(vault, UNINDEXED)) == n
    # someone else's view id is not theirs
    other = console.client()
    assert other.sign_in(console.user("nils", "auditor")).status == 200
    assert other.call("GET", f"/api/sessions/{UNINDEXED}/replay?t=10&view={second['view']}").status == 200
    assert len(reads(vault, UNINDEXED)) == n + 1 and reads(vault, UNINDEXED)[-1]["actor"] == "console:nils"


def test_replay_windows_follow_the_same_rights_as_the_recording(long_console):
    console, _ = long_console
    c = console.client()
    assert c.sign_in(console.user("otto", "analyst")).status == 200
    assert c.call("GET", f"/api/sessions/{INDEXED}/replay?t=5").status == 403
    c = console.client()
    assert c.sign_in(console.user("pia", "auditor")).status == 200
    for bad in ("t=-1", "t=abc", "view=short", "t=1&t=2"):
        a = c.call("GET", f"/api/sessions/{INDEXED}/replay?{bad}")
        assert a.status == 400 and a.json()["error"], bad
