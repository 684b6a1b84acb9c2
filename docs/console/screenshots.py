"""Screenshots of the console's main pages for the docs, taken in Chromium.

Run the demo (``DEMO_SERVE=1 ./quickstart.sh demo``), then::

    .venv/bin/python docs/console/screenshots.py URL AUDITOR PASSWORD SECRET ADMIN PASSWORD SECRET

It signs in (TOTP codes computed from the secrets the demo printed) and writes PNGs here.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from appliance.console.totp import STEP, totp

OUT = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sign_in(page, url: str, user: str, password: str, secret: str, step_offset: int = 0) -> None:
    page.goto(url + "/login")
    page.fill("#user", user)
    page.fill("#password", password)
    page.fill("#code", totp(secret, time.time() + step_offset * STEP))
    page.click("#sign-in")
    page.wait_for_selector("#who")


def main(argv: list[str]) -> int:
    url, auditor, apw, asec, admin, dpw, dsec = argv
    url = url.rstrip("/")
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=ARGS,
                                                    headless=True, viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        page.goto(url + "/login")
        page.screenshot(path=str(OUT / "login.png"))
        sign_in(page, url, auditor, apw, asec, 1)
        page.wait_for_selector("#sessions tbody tr")
        page.fill("#search-q", "fwupdate")
        page.click("#search-go")
        page.wait_for_selector("#search-results a")
        page.screenshot(path=str(OUT / "sessions.png"))
        page.locator("#search-results a").first.click()
        page.wait_for_function("() => window.stReady === true")
        time.sleep(1)
        page.screenshot(path=str(OUT / "replay.png"), full_page=False)
        page.goto(url + "/?protocol=rdp")
        page.select_option("select[name=protocol]", "rdp")
        page.click("#filters button[type=submit]")
        time.sleep(1)
        rdp = page.locator("#sessions tbody tr a").last
        rdp.click()
        page.wait_for_function("() => window.stReady === true")
        page.wait_for_selector("#thumbs button img", timeout=300_000)  # the first view renders the video
        page.locator("#thumbs button").nth(1).click()
        page.locator("#video-box").scroll_into_view_if_needed()
        time.sleep(1)
        page.screenshot(path=str(OUT / "rdp-video.png"))
        page.locator("#timeline").scroll_into_view_if_needed()
        time.sleep(0.5)
        page.screenshot(path=str(OUT / "rdp-timeline.png"))
        page.click("#sign-out")
        page.wait_for_selector("#login-form")
        sign_in(page, url, admin, dpw, dsec, 1)
        page.wait_for_selector("#audit tbody tr")
        page.screenshot(path=str(OUT / "admin.png"))
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
