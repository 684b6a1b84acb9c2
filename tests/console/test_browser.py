"""The auditor's story in a real Chromium (Debian's, driven by Playwright): sign in with a
TOTP code, search a command seen in the capture, open the hit, find the player at that
second, mark the session reviewed, export it. An analyst gets no replay; an auditor of
another zone does not get the session at all."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from console_harness import RENDERED, T2, UNRENDERABLE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (./quickstart.sh test does)")
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="st-chromium-") as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                    accept_downloads=True, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def tshark_fwupdate_window(tshark: str) -> tuple[float, float]:
    """From the capture itself (tshark, not our decoder): seconds from the first SYN to the
    first keystroke after the prompt that preceded `fwupdate`, and to the server's answer
    `fwupdate: command not found`. The command's time must lie between the two."""
    out = subprocess.run([tshark, "-r", str(T2), "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport",
                          "-e", "tcp.flags.syn", "-e", "tcp.payload"], capture_output=True, check=True, timeout=60)
    rows = [line.split("\t") for line in out.stdout.decode().splitlines()]
    start = float(rows[0][0])
    answer = next(float(t) for t, sport, _, p in rows if sport == "2323" and p and
                  b"fwupdate: command not found" in bytes.fromhex(p))
    # the server frame just before the first typed 'f' of the line: the previous command's prompt
    prompt = max(float(t) for t, sport, _, p in rows if sport == "2323" and p and float(t) < answer - 0.01
                 and bytes.fromhex(p).rstrip().endswith(b"$"))
    return prompt - start, answer - start


def sign_in(page, url: str, user) -> None:
    page.goto(url + "/login")
    page.fill("#user", user.name)
    page.fill("#password", user.password)
    page.fill("#code", user.code())
    page.click("#sign-in")
    page.wait_for_selector("#who")


def test_auditor_finds_fwupdate_replays_it_at_that_second_reviews_and_exports(console, browser, tshark, tmp_path):
    lo, hi = tshark_fwupdate_window(tshark)
    auditor = console.user("olga", "auditor")
    page = browser.new_page()
    sign_in(page, console.url, auditor)
    assert page.text_content("#who") == "olga (auditor)"
    page.wait_for_selector("#sessions tbody tr")
    assert page.locator("#sessions tbody tr").count() == 1

    page.fill("#search-q", "fwupdate")
    page.click("#search-go")
    hit = page.locator("#search-results a").first
    hit.wait_for()
    href = hit.get_attribute("href")
    offset = float(href.split("#t=")[1])
    assert lo <= offset <= hi, (lo, offset, hi)
    hit.click()
    page.wait_for_function("() => window.stReady === true")
    page.wait_for_function("() => window.stPlayer && window.stPlayer.getDuration() > 0")
    at = page.evaluate("window.stRecordingTime()")
    assert abs(at - offset) < 0.5, (at, offset)
    # the screen at that second shows the command typed, and not yet the next one
    page.wait_for_function("() => document.querySelector('#player').innerText.includes('fwupdate -i /tmp/st-fw.bin')")
    assert "sudo -n true" not in page.inner_text("#player")
    # the command list beside the player jumps it
    page.click("#commands a:has-text('sudo -n true')")
    page.wait_for_function(f"() => Math.abs(window.stRecordingTime() - {offset}) > 0.5")
    page.wait_for_function("() => document.querySelector('#player').innerText.includes('sudo -n true')")
    # skip idle: the player's clock shrinks (the login pauses are capped at 2 s) but stays on the same moment
    sudo_at = page.evaluate("() => window.stRecordingTime()")
    page.check("#skip-idle")
    page.wait_for_function(f"() => window.stPlayer.getCurrentTime() < {sudo_at} - 0.3")
    page.wait_for_function(f"() => Math.abs(window.stRecordingTime() - {sudo_at}) < 0.5")
    # the new player draws its terminal after the seek resolves (later on a loaded machine)
    page.wait_for_function("() => document.querySelector('#player').innerText.includes('sudo -n true')")

    page.click("#review-toggle")
    page.wait_for_function("() => document.querySelector('#review-state').textContent.startsWith('reviewed by olga')")
    page.fill("#comment-text", "firmware tool run by tndemo, see ticket 4711")
    page.press("#comment-text", "Enter")
    page.wait_for_selector("#comments li:has-text('ticket 4711')")

    with page.expect_download() as d:
        page.click("#export-asciicast")
    cast = Path(d.value.path()).read_text()
    assert json.loads(cast.splitlines()[0])["version"] == 2 and "fwupdate" in cast
    with page.expect_download() as d:
        page.click("#export-evidence")
    assert d.value.suggested_filename.endswith("-evidence.zip")
    page.close()

    # the admin sees those reads in the vault's trail
    admin = console.user("pat", "admin")
    page = browser.new_page()
    sign_in(page, console.url, admin)
    page.wait_for_selector("#audit tbody tr")
    trail = page.inner_text("#audit")
    assert "console:olga" in trail and "replay in the console" in trail and "evidence bundle from the console" in trail
    page.close()


def test_analyst_gets_events_but_no_player(console, browser, t2_session_id):
    analyst = console.user("quinn", "analyst")
    page = browser.new_page()
    sign_in(page, console.url, analyst)
    page.goto(f"{console.url}/sessions/{t2_session_id}")
    page.wait_for_function("() => window.stReady === true")
    assert page.is_visible("#no-content") and not page.is_visible("#replay") and not page.is_visible("#exports")
    assert "firmware-upgrade" in page.inner_text("#timeline")
    status = page.evaluate(f"fetch('/api/sessions/{t2_session_id}/recording').then(r => r.status)")
    assert status == 403
    page.close()


def test_an_auditor_scoped_to_another_zone_does_not_get_the_session(console, browser, t2_session_id):
    console.accounts.store.set_zone("substation-9", ["10.9.0.0/16"])
    outsider = console.user("rita", "auditor", ["substation-9"])
    page = browser.new_page()
    sign_in(page, console.url, outsider)
    page.wait_for_selector("#summary:has-text('no session')")
    page.goto(f"{console.url}/sessions/{t2_session_id}")
    page.wait_for_selector("#title:has-text('no session')")
    status = page.evaluate(f"fetch('/api/sessions/{t2_session_id}/recording').then(r => r.status)")
    assert status == 404
    page.close()


def test_admin_creates_a_user_in_the_page_who_then_signs_in_and_gets_a_new_role(console, browser):
    from console_harness import User

    admin = console.user("uli", "admin")
    page = browser.new_page()
    sign_in(page, console.url, admin)
    page.wait_for_selector("#users tbody tr")
    page.fill("#new-name", "tina")
    page.select_option("#new-role", "analyst")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#new-credentials:has-text('password:')")
    shown = page.inner_text("#new-credentials")
    password = shown.split("password: ")[1].split()[0]
    secret = shown.split("TOTP secret: ")[1].split()[0]
    tina = User("tina", "analyst", password, secret)
    c = console.client()  # (not this browser: its one profile holds the admin's cookie)
    assert c.sign_in(tina).status == 200 and c.call("GET", "/api/me").json()["role"] == "analyst"
    row = page.locator("#users tbody tr[data-user='tina']")
    row.locator("select").select_option("auditor")
    row.locator("button:has-text('Save')").click()
    page.wait_for_selector("#audit-box")
    for _ in range(100):  # wait for the PATCH the Save button sent to land
        if console.accounts.store.user("tina")["role"] == "auditor":
            break
        page.wait_for_timeout(100)
    assert console.accounts.store.user("tina")["role"] == "auditor"
    assert c.call("GET", "/api/me").status == 401  # new rights: signed out, signs in again
    page.locator("#users tbody tr[data-user='tina'] button:has-text('Disable')").click()
    page.wait_for_selector("#users tbody tr[data-user='tina'] td:has-text('disabled')")
    page.close()


def test_activity_strip_under_the_player_shows_the_tagged_moments_and_a_click_jumps_there(console, browser,
                                                                                        t2_session_id):
    page = browser.new_page()
    sign_in(page, console.url, console.user("ulla", "auditor"))
    page.goto(f"{console.url}/sessions/{t2_session_id}")
    page.wait_for_function("() => window.stReady === true && window.stActivity")
    a = page.evaluate("() => window.stActivity")
    n = len(a["markers"])
    tagged = [i for i, m in enumerate(a["markers"]) if m]
    assert tagged and sum(a["input"]) > 0
    # the commands' tags are drawn where they happened: red at the top of those slices only
    box = page.locator("#activity").bounding_box()
    red = page.evaluate("""() => { const c = document.getElementById('activity');
        const d = c.getContext('2d').getImageData(0, 2, c.width, 1).data, xs = [];
        for (let x = 0; x < c.width; x++) if (d[4 * x] > 200 && d[4 * x + 1] < 80) xs.push(x);
        return [c.width, xs]; }""")
    width, xs = red
    assert xs and all(int(x * n / width) in tagged or int((x + 1) * n / width) in tagged for x in xs)
    # a click on the last tagged slice moves the player there, and its screen shows that moment
    i = tagged[-1]
    page.mouse.click(box["x"] + (i + 0.5) * box["width"] / n, box["y"] + box["height"] / 2)
    want = (i + 0.5) * a["bin_seconds"]
    page.wait_for_function(f"() => Math.abs(window.stRecordingTime() - {want}) < {a['bin_seconds']}")
    # (the slice of `rm -rf`, the last tagged command: the one before it is on the screen by then)
    page.wait_for_function("() => document.querySelector('#player').innerText.includes('sudo -n true')")
    page.close()


def test_auditor_opens_an_rdp_session_the_video_renders_plays_and_a_thumbnail_seeks_it(rdp_console, browser):
    pytest.importorskip("PySide6", reason="optional video dependencies (PySide6-Essentials, av, qimage2ndarray)")
    page = browser.new_page()
    sign_in(page, rdp_console.url, rdp_console.user("rosa", "auditor"))
    rows = page.evaluate("() => fetch('/api/sessions?protocol=rdp').then((r) => r.json())")["sessions"]
    [s] = [r for r in rows if r["source"].endswith(RENDERED)]
    page.goto(f"{rdp_console.url}/sessions/{s['id']}")
    page.wait_for_function("() => window.stReady === true")
    # nobody has opened it before: the console renders it now, and says so
    page.wait_for_selector("#video-status:has-text('rendering video')")
    page.wait_for_function("() => { const v = document.querySelector('#video');"
                           " return !v.hidden && v.readyState >= 1 && v.duration > 0; }", timeout=300_000)
    duration = page.evaluate("document.querySelector('#video').duration")
    assert s["duration"] - 2 < duration <= s["duration"] + 0.5, (duration, s["duration"])
    page.wait_for_selector("#thumbs button img")
    buttons = page.locator("#thumbs button")
    assert buttons.count() >= 2
    assert page.evaluate("[...document.querySelectorAll('#thumbs img')].every((i) => i.complete && i.naturalWidth === 160)")
    target = buttons.nth(1)
    t = float(target.get_attribute("data-t"))
    assert t > 0
    target.click()
    page.wait_for_function(f"() => Math.abs(document.querySelector('#video').currentTime - {t}) < 0.01")
    assert "current" in target.get_attribute("class")
    # the timeline's typed lines seek the same video, at the session second they happened
    row = page.locator("#timeline tbody tr:has-text('touch video') a").first
    offset = float(row.text_content())
    row.click()
    page.wait_for_function(f"() => Math.abs(document.querySelector('#video').currentTime - {t}) > 0.01")
    at = page.evaluate("document.querySelector('#video').currentTime")
    assert 0 <= offset - at < 2, (offset, at)
    # the export line offers the video as a download
    with page.expect_download() as d:
        page.click("#export-mp4")
    assert d.value.suggested_filename == f"{s['id']}.mp4"
    assert Path(d.value.path()).read_bytes()[4:8] == b"ftyp"

    [gfx] = [r for r in rows if r["source"].endswith(UNRENDERABLE)]
    page.goto(f"{rdp_console.url}/sessions/{gfx['id']}")
    page.wait_for_selector("#video-status:has-text('RDPGFX')")
    assert page.locator("#video").is_hidden() and page.locator("#export-mp4").is_hidden()
    page.close()
