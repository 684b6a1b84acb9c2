"""An auditor opens a real RDP session (pcaps/rdp/rdp-video.pcap, xfreerdp -> xrdp over TLS 1.3)
in the console: the first request renders its video from the sealed replay in a child process
(202 meanwhile), seals the MP4 and the thumbnail strip in the vault, and from then on serves
them, audited. An analyst and an auditor of another zone get nothing; a session whose graphics
PyRDP cannot render (rdp-nla.pcap: FreeRDP's shadow server speaks RDPGFX) says why."""
from __future__ import annotations

import base64
import io
import time

import pytest

from console_harness import RENDERED, UNRENDERABLE, session_from


def wait_rendered(client, path: str, timeout: float = 300) -> "object":
    deadline = time.monotonic() + timeout
    while True:
        a = client.call("GET", path)
        if a.status != 202:
            return a
        assert a.json()["state"] in ("queued", "rendering") and int(a.headers["Retry-After"]) > 0
        assert time.monotonic() < deadline, "the render did not finish"
        time.sleep(0.5)


def mp4_duration(data: bytes) -> float:
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(video=0))
        assert frames and frames[-1].to_ndarray(format="rgb24").shape == (600, 800, 3)
        return float(c.duration) / 1e6


def test_the_first_view_renders_the_video_seals_it_and_later_views_read_it(rdp_console):
    pytest.importorskip("PySide6", reason="optional video dependencies (PySide6-Essentials, av, qimage2ndarray)")
    c = rdp_console.client()
    assert c.sign_in(rdp_console.user("walt", "auditor")).status == 200
    s = session_from(c, RENDERED)
    sid = s["id"]
    detail = c.call("GET", f"/api/sessions/{sid}").json()
    assert detail["replay"] == {"terminal": False, "video": True, "video_ready": False, "no_video": None}

    first, again = c.call("GET", f"/api/sessions/{sid}/video"), c.call("GET", f"/api/sessions/{sid}/thumbnails")
    assert first.status == 202 and again.status == 202   # the second request joins the same render
    started = time.monotonic()
    video = wait_rendered(c, f"/api/sessions/{sid}/video")
    took = time.monotonic() - started
    assert video.status == 200, video.body[:300]
    assert video.headers["Content-Type"] == "video/mp4" and video.body[4:8] == b"ftyp"
    duration = mp4_duration(video.body)
    # the video keeps session time: it starts at the first screen, a moment after the connection
    assert 0 < duration <= s["duration"] + 0.5 and duration > s["duration"] - 2, (duration, s["duration"])

    strip = c.call("GET", f"/api/sessions/{sid}/thumbnails")
    assert strip.status == 200
    doc = strip.json()
    times = [t["t"] for t in doc["thumbnails"]]
    assert len(times) >= 2 and times[0] == 0 and all(a < b for a, b in zip(times, times[1:]))
    assert abs(times[-1] - duration) < 0.5 and doc["width"] == 160 and doc["height"] == 120
    for t in doc["thumbnails"]:
        head, _, b64 = t["image"].partition(",")
        assert head == "data:image/jpeg;base64" and base64.b64decode(b64)[:3] == b"\xff\xd8\xff"
    assert 0 <= doc["origin"] - time.mktime(time.strptime(s["start"][:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone < 3

    vault = rdp_console.accounts.vault
    assert {"rdp.mp4", "rdp.thumbs.json"} <= set(vault.names(sid))
    trail = vault.audit_entries()
    renders = [e for e in trail if e["purpose"] == "render video in the console"]
    assert [(e["actor"], e["target"]) for e in renders] == [("console:walt", f"{sid}/rdp.pyrdp")]
    assert any(e["actor"] == "console:walt" and e["target"] == f"{sid}/rdp.mp4" for e in trail)
    assert any(e["actor"] == "console:walt" and e["target"] == f"{sid}/rdp.thumbs.json" for e in trail)
    assert [t["target"] for t in rdp_console.accounts.store.trail() if t["action"] == "render-video"] == [sid]

    # another auditor, later: the sealed video at once, no second render
    other = rdp_console.client()
    assert other.sign_in(rdp_console.user("vera", "auditor")).status == 200
    assert other.call("GET", f"/api/sessions/{sid}").json()["replay"]["video_ready"] is True
    t0 = time.monotonic()
    assert other.call("GET", f"/api/sessions/{sid}/video").body == video.body
    assert time.monotonic() - t0 < took
    assert sum(e["purpose"] == "render video in the console" for e in vault.audit_entries()) == 1
    # the export link hands over the same sealed video as a download, in the trail as an export
    e = other.call("GET", f"/api/sessions/{sid}/export?format=mp4")
    assert e.status == 200 and e.body == video.body and f"{sid}.mp4" in e.headers["Content-Disposition"]
    assert any(x["actor"] == "console:vera" and x["purpose"] == "export MP4 from the console"
               for x in vault.audit_entries())


def test_analysts_and_other_zones_get_no_video(rdp_console):
    a = rdp_console.client()
    assert a.sign_in(rdp_console.user("ann", "analyst")).status == 200
    sid = session_from(a, RENDERED)["id"]
    assert a.call("GET", f"/api/sessions/{sid}").json()["replay"] is None
    for what in ("video", "thumbnails", "export?format=mp4"):
        assert a.call("GET", f"/api/sessions/{sid}/{what}").status == 403

    rdp_console.accounts.store.set_zone("elsewhere", ["192.0.2.0/24"])
    o = rdp_console.client()
    assert o.sign_in(rdp_console.user("otto", "auditor", ["elsewhere"])).status == 200
    for what in ("video", "thumbnails", "export?format=mp4"):
        assert o.call("GET", f"/api/sessions/{sid}/{what}").status == 404
    readers = {e["actor"] for e in rdp_console.accounts.vault.audit_entries() if e["target"].startswith(sid)}
    assert not {"console:ann", "console:otto"} & readers


def test_a_session_pyrdp_cannot_render_says_why(rdp_console):
    c = rdp_console.client()
    assert c.sign_in(rdp_console.user("nina", "auditor")).status == 200
    s = session_from(c, UNRENDERABLE)
    replay = c.call("GET", f"/api/sessions/{s['id']}").json()["replay"]
    assert replay["video"] is False and "RDPGFX" in replay["no_video"]
    for what in ("video", "thumbnails", "export?format=mp4"):
        a = c.call("GET", f"/api/sessions/{s['id']}/{what}")
        assert a.status == 404 and "RDPGFX" in a.json()["error"]
    assert not any(n.endswith(".mp4") for n in rdp_console.accounts.vault.names(s["id"]))
