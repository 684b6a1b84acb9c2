"""The console's JSON API as scripts and browsers meet it: sign-in with two factors, lockout,
CSRF, roles, zones (no IDOR), audited reads, exports. A real data directory with the real
t2 capture imported; a real console on a loopback port."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest

from console_harness import ROOT


def test_sign_in_needs_password_and_a_fresh_totp_code(console):
    u = console.user("alice", "auditor")
    c = console.client()
    assert c.call("GET", "/api/me").status == 401
    bad_pw = c.call("POST", "/api/login", {"user": "alice", "password": "wrong-password-x", "code": u.code()})
    assert bad_pw.status == 401 and "wrong user name, password or code" in bad_pw.json()["error"]
    bad_code = c.call("POST", "/api/login", {"user": "alice", "password": u.password, "code": "000000"})
    assert bad_code.status == 401 and bad_code.json()["error"] == bad_pw.json()["error"]  # says not which
    nobody = c.call("POST", "/api/login", {"user": "nobody", "password": "x" * 12, "code": "123456"})
    assert nobody.json()["error"] == bad_pw.json()["error"]
    code = u.code()
    ok = c.call("POST", "/api/login", {"user": "alice", "password": u.password, "code": code})
    assert ok.status == 200, ok.body
    cookie = ok.headers["Set-Cookie"]
    for attr in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"):
        assert attr in cookie
    c.csrf = ok.json()["csrf"]
    me = c.call("GET", "/api/me").json()
    assert me["user"] == "alice" and me["role"] == "auditor" and me["csrf"] == c.csrf
    # the same code again is a replay, even with the right password
    again = console.client().call("POST", "/api/login", {"user": "alice", "password": u.password, "code": code})
    assert again.status == 401
    # signing out ends the cookie's power
    assert c.call("POST", "/api/logout").status == 200
    assert c.call("GET", "/api/me").status == 401


def test_five_failures_lock_the_account_until_an_admin_unlocks_it(console):
    u = console.user("bob", "analyst")
    c = console.client()
    for _ in range(5):
        assert c.call("POST", "/api/login", {"user": "bob", "password": "not-bobs-password", "code": "123456"}).status == 401
    locked = c.sign_in(u)  # right password and code, but locked
    assert locked.status == 401 and "locked" in locked.json()["error"]
    admin = console.user("root-admin", "admin")
    a = console.client()
    assert a.sign_in(admin).status == 200
    users = {x["name"]: x for x in a.call("GET", "/api/users").json()["users"]}
    assert users["bob"]["locked"] is True
    assert a.call("PATCH", "/api/users/bob", {"unlock": True}).status == 200
    assert c.sign_in(u).status == 200
    trail = [(e["action"], e["target"]) for e in a.call("GET", "/api/audit").json()["console"]]
    assert ("locked", "bob") in trail and ("sign-in", "bob") in trail


def test_failed_sign_ins_from_one_address_are_rate_limited(console):
    acc = console.accounts
    acc._attempts.clear()
    acc.ip_max_attempts, saved = 3, acc.ip_max_attempts
    try:
        c = console.client()
        for _ in range(3):
            assert c.call("POST", "/api/login", {"user": "nobody", "password": "x" * 12, "code": "1"}).status == 401
        r = c.call("POST", "/api/login", {"user": "nobody", "password": "x" * 12, "code": "1"})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    finally:
        acc.ip_max_attempts = saved
        acc._attempts.clear()


def test_changes_with_the_cookie_need_the_csrf_token_and_same_origin(console, t2_session_id):
    u = console.user("carol", "auditor")
    c = console.client()
    assert c.sign_in(u).status == 200
    path = f"/api/sessions/{t2_session_id}/comments"
    no_token = c.call("POST", path, {"text": "x"}, headers={"X-CSRF-Token": ""})
    assert no_token.status == 403 and "CSRF" in no_token.json()["error"]
    wrong = c.call("POST", path, {"text": "x"}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403
    cross = c.call("POST", path, {"text": "x"}, headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    cross_read = c.call("GET", f"/api/sessions/{t2_session_id}/recording", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_read.status == 403
    ok = c.call("POST", path, {"text": "checked with the change ticket"})
    assert ok.status == 200 and ok.json()["user"] == "carol"


def test_analyst_sees_metadata_and_events_but_no_recording_output_or_export(console, t2_session_id):
    u = console.user("dave", "analyst")
    c = console.client()
    assert c.sign_in(u).status == 200
    s = c.call("GET", f"/api/sessions/{t2_session_id}").json()
    assert s["user"] == "tndemo" and "firmware-upgrade" in s["tags"]
    assert [x["text"] for x in s["commands"]][4] == "fwupdate -i /tmp/st-fw.bin"
    assert all("output" not in x for x in s["commands"])
    assert s["replay"] is None
    for path in ("recording", "activity", "export?format=asciicast", "export?format=json", "export?format=evidence"):
        r = c.call("GET", f"/api/sessions/{t2_session_id}/{path}")
        assert r.status == 403, path
    assert c.call("POST", f"/api/sessions/{t2_session_id}/review", {"reviewed": True}).status == 403
    # search finds commands but never hands an analyst the output of one
    hits = c.call("GET", "/api/search?q=command%20not%20found").json()["hits"]
    assert hits == []
    assert [h["kind"] for h in c.call("GET", "/api/search?q=fwupdate").json()["hits"]] == ["command"]


def test_admin_manages_but_reads_no_content(console, t2_session_id):
    admin = console.user("erin", "admin")
    c = console.client()
    assert c.sign_in(admin).status == 200
    assert c.call("GET", f"/api/sessions/{t2_session_id}/recording").status == 403
    assert c.call("GET", "/api/search?q=fwupdate").status == 403
    s = c.call("GET", f"/api/sessions/{t2_session_id}").json()
    assert "commands" not in s and "events" not in s


def test_auditor_replay_and_exports_are_in_the_vault_trail_under_their_name(console, t2_session_id):
    u = console.user("frank", "auditor")
    c = console.client()
    assert c.sign_in(u).status == 200
    cast = c.call("GET", f"/api/sessions/{t2_session_id}/recording")
    assert cast.status == 200
    lines = cast.body.decode().splitlines()
    assert json.loads(lines[0])["version"] == 2
    assert any("fwupdate: command not found" in line for line in lines)
    j = c.call("GET", f"/api/sessions/{t2_session_id}/export?format=json")
    assert j.status == 200 and "attachment" in j.headers["Content-Disposition"]
    doc = j.json()
    assert doc["asciicast"] == cast.body.decode() and doc["commands"][4]["text"] == "fwupdate -i /tmp/st-fw.bin"
    ev = c.call("GET", f"/api/sessions/{t2_session_id}/export?format=evidence")
    assert ev.status == 200
    z = zipfile.ZipFile(io.BytesIO(ev.body))
    assert "bundle.json" in z.namelist() and "verify.py" in z.namelist()
    admin = console.user("grace", "admin")
    a = console.client()
    assert a.sign_in(admin).status == 200
    trail = a.call("GET", "/api/audit?limit=1000").json()["vault"]
    mine = [(e["action"], e["purpose"]) for e in trail if e["actor"] == "console:frank"]
    assert ("read", "replay in the console") in mine
    assert ("read", "export JSON from the console") in mine
    assert ("export", "evidence bundle from the console") in mine


def test_activity_strip_shows_where_keys_output_and_tags_are_in_the_same_audited_view(console, t2_session_id):
    u = console.user("fiona", "auditor")
    c = console.client()
    assert c.sign_in(u).status == 200
    w = c.call("GET", f"/api/sessions/{t2_session_id}/replay?t=0").json()
    a = c.call("GET", f"/api/sessions/{t2_session_id}/activity?bins=50&view={w['view']}").json()
    assert a["view"] == w["view"] and len(a["input"]) == len(a["output"]) == len(a["markers"]) == 50
    events = [json.loads(line) for line in w["cast"].splitlines()[1:]]
    assert a["duration"] == pytest.approx(max(e[0] for e in events))
    assert sum(a["input"]) == sum(1 for e in events if e[1] == "i") > 0
    # the firmware-upgrade marker sits in the slice of its second
    fw = next(e[0] for e in events if e[1] == "m" and e[2].startswith("firmware-upgrade"))
    assert a["markers"][min(int(fw / a["bin_seconds"]), 49)] >= 1
    # the strip came from the view's plaintext: still one vault read for this auditor
    admin = console.user("gwen", "admin")
    g = console.client()
    assert g.sign_in(admin).status == 200
    reads = [e for e in g.call("GET", "/api/audit?limit=1000").json()["vault"]
             if e["actor"] == "console:fiona" and e["purpose"] == "replay in the console"]
    assert len(reads) == 1
    # without a view it is one new audited read, and bad bins are a 400 with a reason
    assert c.call("GET", f"/api/sessions/{t2_session_id}/activity").json()["view"] != w["view"]
    bad = c.call("GET", f"/api/sessions/{t2_session_id}/activity?bins=0")
    assert bad.status == 400 and "bins" in bad.json()["error"]


def test_evidence_bundle_from_the_console_verifies_with_its_own_script(console, t2_session_id, tmp_path):
    u = console.user("heidi", "auditor")
    c = console.client()
    assert c.sign_in(u).status == 200
    ev = c.call("GET", f"/api/sessions/{t2_session_id}/export?format=evidence")
    zipfile.ZipFile(io.BytesIO(ev.body)).extractall(tmp_path / "bundle")
    p = subprocess.run([sys.executable, str(tmp_path / "bundle" / "verify.py"), str(tmp_path / "bundle")],
                       capture_output=True, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def test_an_auditor_of_another_zone_cannot_see_the_session_even_by_id(console, t2_session_id):
    admin = console.user("ivan", "admin")
    a = console.client()
    assert a.sign_in(admin).status == 200
    assert a.call("PUT", "/api/zones/plant-b", {"cidrs": ["10.20.0.0/16"]}).status == 200
    assert a.call("PUT", "/api/zones/lab", {"cidrs": ["127.0.0.0/8"]}).status == 200
    bad = a.call("PUT", "/api/zones/oops", {"cidrs": ["10.300.0.0/16"]})
    assert bad.status == 400 and "not an IP network" in bad.json()["error"]
    other = a.call("POST", "/api/users", {"name": "judy", "role": "auditor", "zones": ["plant-b"]}).json()
    mine = a.call("POST", "/api/users", {"name": "ken", "role": "auditor", "zones": ["lab"]}).json()
    from console_harness import User
    judy = User("judy", "auditor", other["password"], other["totp_secret"])
    ken = User("ken", "auditor", mine["password"], mine["totp_secret"])
    j, k = console.client(), console.client()
    assert j.sign_in(judy).status == 200 and k.sign_in(ken).status == 200
    assert k.call("GET", "/api/sessions").json()["total"] == 1
    assert j.call("GET", "/api/sessions").json() == {"total": 0, "sessions": []}
    for path in ("", "/recording", "/activity", "/export?format=json", "/export?format=evidence"):
        r = j.call("GET", f"/api/sessions/{t2_session_id}{path}")
        assert r.status == 404, path  # not 403: the id alone must not confirm the session exists
    assert j.call("POST", f"/api/sessions/{t2_session_id}/review", {"reviewed": True}).status == 404
    assert j.call("GET", "/api/search?q=fwupdate").json()["hits"] == []
    assert len(k.call("GET", "/api/search?q=fwupdate").json()["hits"]) == 1
    # the same holds for an API token: it carries its user's zones
    tok = j.call("POST", "/api/tokens", {"label": "script"}).json()["token"]
    script = console.client()
    script.token = tok
    assert script.call("GET", f"/api/sessions/{t2_session_id}/recording").status == 404
    assert script.call("GET", "/api/sessions").json()["total"] == 0


def test_path_parameters_are_decoded_after_matching(console):
    admin = console.user("zed@ops", "admin")
    c = console.client()
    assert c.sign_in(admin).status == 200
    r = c.call("PATCH", "/api/users/zed%40ops", {"unlock": True})
    assert r.status == 200 and r.json()["name"] == "zed@ops"
    assert c.call("PATCH", "/api/users/zed%2Fops", {"unlock": True}).status == 404


def test_api_token_for_scripts_works_without_cookie_or_csrf_and_can_be_revoked(console, t2_session_id):
    u = console.user("leo", "auditor")
    c = console.client()
    assert c.sign_in(u).status == 200
    made = c.call("POST", "/api/tokens", {"label": "nightly export"}).json()
    script = console.client()
    script.token = made["token"]
    assert script.call("GET", "/api/me").json()["user"] == "leo"
    r = script.call("POST", f"/api/sessions/{t2_session_id}/review", {"reviewed": True})
    assert r.status == 200 and r.json()["review"]["by"] == "leo"
    listed = script.call("GET", "/api/sessions?reviewed=true").json()
    assert [s["id"] for s in listed["sessions"]] == [t2_session_id]
    assert script.call("GET", "/api/sessions?reviewed=false").json()["total"] == 0
    assert c.call("DELETE", f"/api/tokens/{made['id']}").status == 200
    assert script.call("GET", "/api/me").status == 401
    fake = console.client()
    fake.token = "st_not-a-token"
    assert fake.call("GET", "/api/sessions").status == 401


def test_filters_match_the_manifest_of_the_capture(console, t2_session_id):
    u = console.user("mallory", "analyst")
    c = console.client()
    assert c.sign_in(u).status == 200
    manifest = json.loads((ROOT / "pcaps" / "telnet" / "manifest.json").read_text())
    expect = manifest["t2_failed_then_success.pcap"]["sessions"][0]
    q = {"protocol=telnet": 1, "protocol=ssh": 0, f"user={expect['user']}": 1, "user=tn*": 1, "user=root": 0,
         "tag=firmware-upgrade": 1, "tag=no-such-tag": 0, "status=complete": 1, "status=partial": 0,
         "server=127.0.0.1": 1, "server=10.0.0.1": 0, "live=true": 0, "since=2000-01-01T00:00:00": 1,
         "until=2000-01-01T00:00:00": 0}
    for query, n in q.items():
        doc = c.call("GET", "/api/sessions?" + query).json()
        assert doc["total"] == n, (query, doc)
    for tag in expect["tags"]:
        assert c.call("GET", f"/api/sessions?tag={tag}").json()["total"] == 1, tag


@pytest.fixture(scope="module")
def auditor(console):
    c = console.client()
    assert c.sign_in(console.user("nina", "auditor")).status == 200
    return c


@pytest.mark.parametrize("path, status", [
    ("/api/sessions?limit=0", 400), ("/api/sessions?limit=abc", 400), ("/api/sessions?protocol=ftp", 400),
    ("/api/sessions?since=yesterday", 400), ("/api/sessions?bogus=1", 400), ("/api/sessions/zz", 400),
    ("/api/sessions/0123456789abcdef", 404), ("/api/search?q=%28&regex=true", 400), ("/api/nothing", 404),
    ("/api/sessions?" + "&".join(f"p{i}=1" for i in range(60)), 400), ("/api/sessions/%ff%fe", 400),
])
def test_bad_requests_get_a_one_sentence_reason_not_a_crash(auditor, path, status):
    r = auditor.call("GET", path)
    assert r.status == status, (path, r.body)
    assert r.json()["error"]


def test_bodies_over_the_limit_and_non_json_are_refused(console):
    c = console.client()
    assert c.call("POST", "/api/login", raw=b"{" * 70_000, headers={"Content-Type": "application/json"}).status == 413
    assert c.call("POST", "/api/login", raw=b"not json", headers={"Content-Type": "application/json"}).status == 400
    r = c.call("POST", "/api/login", {"user": "x", "password": "y"})
    assert r.status == 400 and "code" in r.json()["error"]


def test_pages_need_a_session_and_carry_a_strict_content_security_policy(console):
    c = console.client()
    r = c.call("GET", "/login")
    assert r.status == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(console.url + "/")
        raise AssertionError("the sessions page answered without a session")
    except urllib.error.HTTPError as e:
        assert e.code == 303 and e.headers["Location"] == "/login"
    assert c.call("GET", "/static/../store.py").status == 404
    assert c.call("GET", "/static/vendor/asciinema-player/asciinema-player.min.js").status == 200


import urllib.error  # noqa: E402  (used in the page test above)


def test_reset_gives_new_credentials_and_ends_the_old_ones(console):
    admin = console.user("olaf", "admin")
    victim = console.user("pia", "analyst")
    a, v = console.client(), console.client()
    assert a.sign_in(admin).status == 200 and v.sign_in(victim).status == 200
    fresh = a.call("POST", "/api/users/pia/reset").json()
    assert fresh["password"] != victim.password and fresh["totp_secret"] != victim.secret
    assert v.call("GET", "/api/me").status == 401            # signed out everywhere
    assert console.client().sign_in(victim).status == 401     # the old password and secret are gone
    from console_harness import User
    assert console.client().sign_in(User("pia", "analyst", fresh["password"], fresh["totp_secret"])).status == 200


def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(tmp_path):
    from console_harness import Running
    r = Running(tmp_path / "home")
    try:
        only = r.user("root", "admin")
        c = r.client()
        assert c.sign_in(only).status == 200
        for change in ({"role": "auditor"}, {"disabled": True}):
            res = c.call("PATCH", "/api/users/root", change)
            assert res.status == 409 and "last enabled admin" in res.json()["error"]
        assert c.call("GET", "/api/sessions").json() == {"total": 0, "sessions": []}  # no catalog yet: empty
    finally:
        r.close()
