// sessiontap console: every page is a thin view over the JSON API (/api/openapi.json).
// No inline script (the Content-Security-Policy forbids it); text goes in with textContent only,
// since recordings hold whatever a user typed on a monitored host.
"use strict";

const ST = { me: null, csrf: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET" && ST.csrf) opts.headers["X-CSRF-Token"] = ST.csrf;
  const r = await fetch(path, opts);
  if (r.status === 401 && document.body.dataset.page !== "login") {
    location.href = "/login";
    throw new Error("signed out");
  }
  const ctype = r.headers.get("Content-Type") || "";
  const doc = ctype.startsWith("application/json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((doc && doc.error) || r.statusText);
  return doc;
}

function fmtTime(iso) { return iso ? iso.slice(0, 19).replace("T", " ") : "-"; }
function fmtEpoch(s) { return s ? new Date(s * 1000).toISOString().slice(0, 19).replace("T", " ") : "-"; }
function can(perm) { return ST.me && ST.me.permissions.includes(perm); }

async function header() {
  ST.me = await api("GET", "/api/me");
  ST.csrf = ST.me.csrf;
  const top = document.getElementById("top");
  const nav = el("nav", {}, el("a", { href: "/", text: "sessiontap", class: "brand" }),
    el("a", { href: "/", text: "Sessions" }));
  if (can("manage")) nav.append(el("a", { href: "/admin", text: "Admin" }));
  const who = el("span", { class: "who", id: "who", text: `${ST.me.user} (${ST.me.role})` });
  const out = el("button", { type: "button", id: "sign-out", text: "Sign out", onclick: async () => {
    await api("POST", "/api/logout"); location.href = "/login"; } });
  top.append(nav, who, out);
}

// -- sign in -------------------------------------------------------------------------------------
function loginPage() {
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("login-error");
    err.textContent = "";
    try {
      const r = await api("POST", "/api/login", {
        user: document.getElementById("user").value,
        password: document.getElementById("password").value,
        code: document.getElementById("code").value,
      });
      location.href = r.role === "admin" ? "/admin" : "/";
    } catch (e) {
      err.textContent = e.message;
    }
  });
}

// -- sessions list, search, live -----------------------------------------------------------------
const LIST = { offset: 0, limit: 50, total: 0 };

function filterQuery() {
  const f = new FormData(document.getElementById("filters"));
  const q = new URLSearchParams();
  for (const [k, v] of f.entries()) {
    if (!v) continue;
    if (k === "since" || k === "until") q.set(k, v.length === 16 ? v + ":00" : v);  // naive = UTC
    else q.set(k, v);
  }
  q.set("limit", LIST.limit);
  q.set("offset", LIST.offset);
  return q;
}

function sessionRow(s) {
  const tr = el("tr", { "data-id": s.id, class: s.live ? "live" : "" });
  const link = el("a", { href: `/sessions/${s.id}`, text: fmtTime(s.start) });
  const status = s.status + (s.decrypted === false ? " [encrypted]" : "") + (s.live ? " ● live" : "");
  tr.append(el("td", {}, link), el("td", { text: s.protocol }), el("td", { text: s.user || "-" }),
    el("td", { text: `${s.client_ip}:${s.client_port}` }), el("td", { text: `${s.server_ip}:${s.server_port}` }),
    el("td", { text: s.duration == null ? "…" : `${Math.round(s.duration)}s` }), el("td", { text: String(s.commands) }),
    el("td", {}, ...s.tags.map((t) => el("span", { class: "tag", text: t }))),
    el("td", { text: status, class: "status-" + s.status }), el("td", { text: s.reviewed ? "✓" : "" }));
  return tr;
}

async function loadSessions() {
  const doc = await api("GET", "/api/sessions?" + filterQuery().toString());
  LIST.total = doc.total;
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren(...doc.sessions.map(sessionRow));
  const last = Math.min(LIST.offset + doc.sessions.length, doc.total);
  document.getElementById("summary").textContent =
    doc.total ? `${LIST.offset + 1}–${last} of ${doc.total} session(s)` : "no session matches";
  document.getElementById("prev").disabled = LIST.offset === 0;
  document.getElementById("next").disabled = last >= doc.total;
}

async function runSearch(ev) {
  if (ev) ev.preventDefault();
  const q = document.getElementById("search-q").value.trim();
  const box = document.getElementById("search-results");
  if (!q) { box.replaceChildren(); return; }
  const params = new URLSearchParams({ q, limit: "100" });
  if (document.getElementById("search-regex").checked) params.set("regex", "true");
  try {
    const doc = await api("GET", "/api/search?" + params.toString());
    const items = doc.hits.map((h) => el("li", { class: "hit" },
      el("a", { href: `/sessions/${h.id}#t=${h.offset}`, text: `${fmtTime(h.ts)} +${h.offset.toFixed(1)}s` }),
      el("span", { class: "muted", text: ` ${h.protocol} ${h.user || "-"}@${h.server_ip} ${h.kind}: ` }),
      el("code", { text: h.text })));
    box.replaceChildren(el("p", { class: "summary", text: `${doc.hits.length} hit(s) for “${q}”` }), el("ul", {}, ...items));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

function liveUpdates() {
  // server-sent events: the catalog is polled server-side; the table reloads when it changes
  // (an event is sent only when the snapshot changed; the first one may repeat what is shown)
  const es = new EventSource("/api/live");
  es.addEventListener("sessions", () => { loadSessions().catch(() => {}); });
}

async function sessionsPage() {
  await header();
  document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); LIST.offset = 0; loadSessions(); });
  document.getElementById("search-form").addEventListener("submit", runSearch);
  document.getElementById("prev").addEventListener("click", () => { LIST.offset = Math.max(0, LIST.offset - LIST.limit); loadSessions(); });
  document.getElementById("next").addEventListener("click", () => { LIST.offset += LIST.limit; loadSessions(); });
  if (!can("events")) document.querySelector(".search").hidden = true;
  await loadSessions();
  liveUpdates();
}

// -- one session: replay, commands, timeline, review, export --------------------------------------
// Long recordings come in windows (GET /api/sessions/{id}/replay): an asciicast that starts with
// the screen at a keyframe, then the recording's own events for a few hundred KB, at their own
// times, so the player's clock is the recording's. Jumping outside the window fetches another one
// in the same view (the server reads the vault once per view); playing past its end goes on with the next.
const REPLAY = { player: null, cast: null, events: [], idle: null, speed: 1, win: null, sid: null, loading: null,
  ready: false };

// With "skip idle" the player compresses pauses, so its clock is not the recording's: map both ways.
function castTimes(text) {
  const times = [];
  for (const line of text.split("\n").slice(1)) {
    if (!line) continue;
    try { times.push(JSON.parse(line)[0]); } catch (e) { /* a damaged line plays as nothing */ }
  }
  return times;
}

async function loadWindow(t) {
  const q = new URLSearchParams({ t: String(Math.max(0, t)) });
  if (REPLAY.win && REPLAY.win.view) q.set("view", REPLAY.win.view);
  const w = await api("GET", `/api/sessions/${encodeURIComponent(REPLAY.sid)}/replay?${q}`);
  REPLAY.win = w;
  REPLAY.cast = w.cast;
  REPLAY.events = castTimes(w.cast);
  return w;
}

function inWindow(t) {
  const w = REPLAY.win;
  return !w || w.whole || (t >= w.start - 0.001 && t <= w.end + 0.001);
}

function toPlayer(t) {
  if (!REPLAY.idle) return t;
  let prev = 0, out = 0;
  for (const ts of REPLAY.events) {
    if (ts > t) break;
    out += Math.min(ts - prev, REPLAY.idle); prev = ts;
  }
  return out + Math.min(t - prev, REPLAY.idle);
}
function fromPlayer(pt) {
  if (!REPLAY.idle) return pt;
  let prev = 0, out = 0;
  for (const ts of REPLAY.events) {
    const step = Math.min(ts - prev, REPLAY.idle);
    if (out + step > pt) return prev + (pt - out);
    out += step; prev = ts;
  }
  return prev + (pt - out);
}

function makePlayer(at) {
  const box = document.getElementById("player");
  if (REPLAY.player) REPLAY.player.dispose();
  box.replaceChildren();
  REPLAY.ready = false;  // until a seek has put it at its place
  const opts = { preload: true, autoPlay: false, speed: REPLAY.speed, fit: "width", terminalFontSize: "small" };
  if (REPLAY.idle) opts.idleTimeLimit = REPLAY.idle;
  if (at > 0) opts.startAt = toPlayer(at);
  const player = REPLAY.player = AsciinemaPlayer.create({ data: REPLAY.cast }, box, opts);
  player.addEventListener("ended", async () => {
    const w = REPLAY.win;
    if (player !== REPLAY.player || !w || w.whole || w.end >= w.duration) return;
    const t = w.end;  // the next window starts where this one ends: play on
    await loadWindow(t);
    makePlayer(t);
    await jump(t);
    REPLAY.player.play();
  });
  window.stPlayer = REPLAY.player;
  window.stRecordingTime = () => fromPlayer(REPLAY.player.getCurrentTime());
  window.stWindow = () => REPLAY.win && { start: REPLAY.win.start, end: REPLAY.win.end,
    duration: REPLAY.win.duration, whole: REPLAY.win.whole, indexing: REPLAY.win.indexing };
}

async function jump(t) {
  // seek in recording seconds; the player shows the frame at that second
  if (!inWindow(t)) {
    await loadWindow(t);
    makePlayer(t);
  }
  await REPLAY.player.seek(toPlayer(t));
  REPLAY.ready = true;
}

function hashTime() {
  const m = /(?:^#|&)t=([0-9.]+)/.exec(location.hash) || /[?&]t=([0-9.]+)/.exec(location.search);
  return m ? parseFloat(m[1]) : 0;
}

// The activity strip (GET /api/sessions/{id}/activity, in the player's view): where in the whole
// recording the user typed, the screen moved and tagged actions happened; a click jumps there.
const ACTIVITY = { data: null };

function drawActivity(now) {
  const a = ACTIVITY.data, c = document.getElementById("activity");
  if (!a || c.hidden) return;
  const w = c.width = c.clientWidth || 600, h = c.height, n = a.output.length;
  const g = c.getContext("2d");
  const top = (xs) => Math.log1p(Math.max(1, ...xs));
  const outTop = top(a.output), inTop = top(a.input);
  g.clearRect(0, 0, w, h);
  for (let i = 0; i < n; i++) {
    const x = Math.floor(i * w / n), bw = Math.max(1, Math.floor((i + 1) * w / n) - x);
    const o = Math.log1p(a.output[i]) / outTop, k = Math.log1p(a.input[i]) / inTop;
    if (o > 0) { g.fillStyle = `rgba(37, 99, 235, ${0.15 + 0.85 * o})`; g.fillRect(x, h * (1 - o) * 0.6, bw, h); }
    if (k > 0) { g.fillStyle = "#1f2937"; g.fillRect(x, h - 6 * k - 1, bw, 6 * k + 1); }
    if (a.markers[i]) { g.fillStyle = "#dc2626"; g.fillRect(x, 0, Math.max(2, bw), 7); }
  }
  if (now !== undefined && a.duration > 0) {
    g.fillStyle = "#111"; g.fillRect(Math.min(w - 2, Math.floor(now / a.duration * w)), 0, 2, h);
  }
}

async function setupActivity(s) {
  const c = document.getElementById("activity");
  const q = new URLSearchParams({ bins: "240" });
  if (REPLAY.win && REPLAY.win.view) q.set("view", REPLAY.win.view);
  try {
    ACTIVITY.data = await api("GET", `/api/sessions/${encodeURIComponent(s.id)}/activity?${q}`);
  } catch (e) { return; }  // a recording that cannot be read says so in the player already
  window.stActivity = ACTIVITY.data;
  c.hidden = false;
  c.addEventListener("click", (ev) => {
    const r = c.getBoundingClientRect(), t = (ev.clientX - r.left) / r.width * ACTIVITY.data.duration;
    history.replaceState(null, "", `#t=${t.toFixed(2)}`);
    jump(t);
  });
  window.addEventListener("resize", () => drawActivity());
  drawActivity(0);
}

function renderCommands(s) {
  document.getElementById("commands").replaceChildren(...s.commands.map((c) => el("li", {},
    el("a", { href: `#t=${c.offset}`, "data-offset": String(c.offset), text: `+${c.offset.toFixed(1)}s  ${c.text}`,
      class: c.tags.length ? "tagged" : "",
      onclick: (ev) => { ev.preventDefault(); history.replaceState(null, "", `#t=${c.offset}`); jump(c.offset); } }))));
}

async function reloadRecording(s) {
  // a session in progress: its recording grew (or was finished); keep the player where it was
  const t = window.stRecordingTime ? window.stRecordingTime() : 0;
  REPLAY.cast = await api("GET", `/api/sessions/${s.id}/recording`);
  REPLAY.events = castTimes(REPLAY.cast);
  REPLAY.win = null;  // in progress: the whole recording so far
  makePlayer(t);
  if (t > 0) await jump(t);
}

async function setupReplay(s) {
  const box = document.getElementById("replay");
  box.hidden = false;
  const t0 = hashTime();
  if (!(REPLAY.first && await REPLAY.first && REPLAY.sid === s.id)) {
    REPLAY.sid = s.id;
    await loadWindow(t0);
  }
  makePlayer(t0);
  await jump(t0);
  renderCommands(s);
  setupActivity(s);
  document.getElementById("speed").addEventListener("change", (ev) => {
    const t = window.stRecordingTime(); REPLAY.speed = parseFloat(ev.target.value); makePlayer(t); jump(t);
  });
  document.getElementById("skip-idle").addEventListener("change", (ev) => {
    const t = window.stRecordingTime(); REPLAY.idle = ev.target.checked ? 2 : null; makePlayer(t); jump(t);
  });
  setInterval(() => {
    if (!REPLAY.player) return;
    const t = window.stRecordingTime();
    const total = REPLAY.win && !REPLAY.win.whole ? ` of ${REPLAY.win.duration.toFixed(0)} s` : "";
    document.getElementById("player-time").textContent = `at ${t.toFixed(1)} s${total} of the recording`;
    drawActivity(t);
    // moved outside the window with the player's own progress bar: fetch the window there
    if (REPLAY.ready && !inWindow(t) && !REPLAY.loading) REPLAY.loading = jump(t).finally(() => { REPLAY.loading = null; });
  }, 500);
  window.addEventListener("hashchange", () => jump(hashTime()));
}

function renderTimeline(s) {
  const tl = document.querySelector("#timeline tbody");
  const jumpable = s.replay && s.replay.terminal;
  const events = (s.events || []).slice().sort((a, b) => a.offset - b.offset);
  const at = (e) => {
    if (jumpable) return el("a", { href: `#t=${e.offset}`, text: e.offset.toFixed(1) });
    if (VIDEO.shift !== null) return el("a", { href: "#", text: e.offset.toFixed(1), onclick: (ev) => {
      ev.preventDefault(); seekVideo(e.offset - VIDEO.shift); } });
    return el("span", { text: e.offset.toFixed(1) });
  };
  tl.replaceChildren(...events.map((e) => el("tr", { class: e.severity !== "info" ? "sev-" + e.severity : "" },
    el("td", {}, at(e)),
    el("td", { text: e.kind }), el("td", { text: e.text }),
    el("td", {}, ...e.tags.map((t) => el("span", { class: "tag", text: t }))))));
}

// -- RDP video ------------------------------------------------------------------------------------
// The first view of an RDP session renders its video on the appliance (202 until it is sealed).
// The MP4 is fetched whole and played from a blob: one audited read per view, and seeking works
// without range requests.
const VIDEO = { shift: null };  // session second of the video's second 0

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function whenRendered(path, status) {
  for (;;) {
    const r = await fetch(path, { credentials: "same-origin" });
    if (r.status !== 202) return r;
    const st = await r.json();
    status.textContent = st.state === "queued" ? "rendering video… (waiting for a free renderer)"
      : `rendering video… ${Math.round(st.rendering_for || 0)} s`;
    await sleep(1000 * Math.min(10, Number(r.headers.get("Retry-After")) || 2));
  }
}

function seekVideo(t) {
  const v = document.getElementById("video");
  v.currentTime = Math.max(0, t);
  for (const b of document.querySelectorAll("#thumbs button")) b.classList.toggle("current", Number(b.dataset.t) === t);
  v.scrollIntoView({ block: "nearest" });
}

async function setupVideo(s) {
  document.getElementById("video-box").hidden = false;
  const status = document.getElementById("video-status");
  if (!s.replay.video) { status.textContent = `No video for this session: ${s.replay.no_video}.`; return; }
  status.textContent = s.replay.video_ready ? "loading video…" : "rendering video…";
  const r = await whenRendered(`/api/sessions/${s.id}/video`, status);
  if (!r.ok) {
    const doc = await r.json().catch(() => ({}));
    status.textContent = `No video: ${doc.error || r.statusText}`;
    return;
  }
  const v = document.getElementById("video");
  v.src = URL.createObjectURL(await r.blob());
  v.hidden = false;
  status.textContent = "";
  if (can("export")) {  // rendered and sealed: the export is one more audited read of it
    document.getElementById("export-mp4").href = `/api/sessions/${s.id}/export?format=mp4`;
    document.getElementById("export-mp4-box").hidden = false;
  }
  const t = await whenRendered(`/api/sessions/${s.id}/thumbnails`, status);
  if (!t.ok) return;
  const strip = await t.json();
  VIDEO.shift = strip.origin - Date.parse(s.start) / 1000;
  const thumbs = document.getElementById("thumbs");
  thumbs.replaceChildren(...strip.thumbnails.map((th) => el("li", {}, el("button", {
    type: "button", "data-t": String(th.t), title: `video at ${th.t.toFixed(1)} s`, onclick: () => seekVideo(th.t) },
  el("img", { src: th.image, alt: `screen at ${th.t.toFixed(1)} s`, width: String(strip.width), height: String(strip.height) }),
  el("span", { text: `${th.t.toFixed(1)} s` })))));
  thumbs.hidden = false;
  renderTimeline(s);  // timeline rows now seek the video
}

function followLive(s) {
  // server-sent events say when the catalog changed; then this session is fetched again
  const es = new EventSource("/api/live");
  es.addEventListener("sessions", async () => {
    const fresh = await api("GET", `/api/sessions/${s.id}`).catch(() => null);
    if (!fresh) return;
    const grew = fresh.events && s.events && fresh.events.length !== s.events.length;
    const ended = !fresh.live;
    Object.assign(s, fresh);
    renderMeta(s); renderTimeline(s);
    if (s.commands) renderCommands(s);
    if (s.replay && s.replay.terminal && !REPLAY.player) await setupReplay(s).catch(() => {});
    else if (s.replay && s.replay.terminal && (grew || ended)) await reloadRecording(s).catch(() => {});
    if (ended) es.close();
  });
}

function renderMeta(s) {
  document.getElementById("title").textContent =
    `${s.protocol} session ${s.user || "?"}@${s.server_ip}:${s.server_port}` + (s.live ? " ● live" : "");
  document.title = `sessiontap — ${s.id}`;
  const meta = document.getElementById("meta");
  const fields = [["id", s.id], ["client", `${s.client_ip}:${s.client_port}`], ["user", s.user || "-"],
    ["auth", s.auth], ["start (UTC)", fmtTime(s.start)], ["end (UTC)", fmtTime(s.end)],
    ["duration", s.duration == null ? "in progress" : `${s.duration} s`],
    ["status", s.status + (s.status_reason ? ` — ${s.status_reason}` : "")],
    ["decrypted", s.decrypted === null ? "n/a (plaintext protocol)" : (s.decrypted ? "yes" : "no") + (s.decrypt_reason ? ` — ${s.decrypt_reason}` : "")],
    ["tags", s.tags.join(", ") || "-"], ["source", s.source || "-"]];
  meta.replaceChildren(...fields.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
}

function renderReview(s) {
  const r = s.review;
  document.getElementById("review-state").textContent =
    r && r.reviewed ? `reviewed by ${r.by} at ${fmtEpoch(r.ts)}` : "not reviewed";
  const b = document.getElementById("review-toggle");
  b.textContent = r && r.reviewed ? "Mark not reviewed" : "Mark reviewed";
}

function renderComments(s) {
  document.getElementById("comments").replaceChildren(...s.comments.map((c) =>
    el("li", {}, el("span", { class: "muted", text: `${fmtEpoch(c.ts)} ${c.user}: ` }), el("span", { text: c.text }))));
}

async function sessionPage() {
  await header();
  const sid = location.pathname.split("/")[2];
  if (can("content")) {
    // the recording's window is fetched while the session's details are: it is most of the wait
    REPLAY.sid = sid;
    REPLAY.first = loadWindow(hashTime()).catch(() => null);
  }
  let s;
  try {
    s = await api("GET", `/api/sessions/${encodeURIComponent(sid)}`);
  } catch (e) {
    document.getElementById("title").textContent = e.message;
    return;
  }
  renderMeta(s);
  renderReview(s);
  renderComments(s);
  if (can("review")) {
    const b = document.getElementById("review-toggle");
    b.hidden = false;
    b.addEventListener("click", async () => {
      const now = !(s.review && s.review.reviewed);
      const r = await api("POST", `/api/sessions/${s.id}/review`, { reviewed: now });
      s.review = r.review; renderReview(s);
    });
    const form = document.getElementById("comment-form");
    form.hidden = false;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = document.getElementById("comment-text");
      if (!input.value.trim()) return;
      const c = await api("POST", `/api/sessions/${s.id}/comments`, { text: input.value });
      s.comments.push(c); input.value = ""; renderComments(s);
    });
  }
  if (can("export")) {
    document.getElementById("exports").hidden = false;
    for (const fmt of ["asciicast", "json", "evidence"]) {
      const a = document.getElementById(`export-${fmt}`);
      a.href = `/api/sessions/${s.id}/export?format=${fmt}`;
      if (fmt === "asciicast" && !(s.replay && s.replay.terminal)) a.hidden = true;
    }
  }
  if (!can("content")) document.getElementById("no-content").hidden = false;
  renderTimeline(s);
  if (s.files && s.files.length) {
    document.getElementById("files-box").hidden = false;
    document.querySelector("#files tbody").replaceChildren(...s.files.map((f) => el("tr", {},
      el("td", { text: f.direction }), el("td", { text: f.path }), el("td", { text: String(f.size) }),
      el("td", { class: "mono", text: f.sha256 ? f.sha256.slice(0, 16) + "…" : "-" }),
      el("td", {}, f.stored ? el("a", { href: `/api/sessions/${s.id}/files/${f.sha256}`, text: "download" }) : el("span", { text: "" })))));
  }
  if (s.replay && (s.replay.video || s.replay.no_video)) {
    setupVideo(s).catch((e) => { document.getElementById("video-status").textContent = `No video: ${e.message}`; });
  }
  if (s.replay && s.replay.terminal) await setupReplay(s);
  if (s.live) followLive(s);
  window.stReady = true;
}

// -- admin ------------------------------------------------------------------------------------------
function showCredentials(r, what) {
  const out = document.getElementById("new-credentials");
  out.textContent = `${what} ${r.name}${r.role ? ` (${r.role})` : ""}\npassword: ${r.password}\nTOTP secret: ${r.totp_secret}\n${r.totp_uri}\nshown once: give it to the user now`;
  out.hidden = false;
}

function userRow(u) {
  const path = `/api/users/${encodeURIComponent(u.name)}`;
  const role = el("select", { "aria-label": `role of ${u.name}` },
    ...["admin", "auditor", "analyst"].map((r) => { const o = el("option", { text: r }); o.selected = r === u.role; return o; }));
  const zones = el("input", { value: u.zones.join(", "), "aria-label": `zones of ${u.name}`, size: "18" });
  const act = async (body) => {
    try { await api("PATCH", path, body); } catch (e) { alert(e.message); }
    ADMIN.refresh();
  };
  const buttons = el("td", { class: "actions" },
    el("button", { type: "button", text: "Save", onclick: () => act({ role: role.value,
      zones: zones.value.split(",").map((z) => z.trim()).filter(Boolean) }) }),
    el("button", { type: "button", text: u.disabled ? "Enable" : "Disable", onclick: () => act({ disabled: !u.disabled }) }),
    el("button", { type: "button", text: "New password + 2FA", onclick: async () => {
      if (!confirm(`New password and TOTP secret for ${u.name}? They will be signed out.`)) return;
      try { showCredentials(await api("POST", `${path}/reset`), "reset"); } catch (e) { alert(e.message); }
      ADMIN.refresh(); } }));
  if (u.locked) buttons.append(el("button", { type: "button", text: "Unlock", onclick: () => act({ unlock: true }) }));
  return el("tr", { "data-user": u.name }, el("td", { text: u.name }), el("td", {}, role), el("td", {}, zones),
    el("td", { text: u.disabled ? "disabled" : (u.locked ? `locked (${u.failures} failures)` : "active") }), buttons);
}

const ADMIN = { refresh: async () => {} };

async function adminPage() {
  await header();
  const refresh = ADMIN.refresh = async () => {
    const [users, zones, tokens, audit] = await Promise.all([api("GET", "/api/users"), api("GET", "/api/zones"),
      api("GET", "/api/tokens"), api("GET", "/api/audit?limit=100")]);
    document.querySelector("#users tbody").replaceChildren(...users.users.map(userRow));
    document.querySelector("#zones tbody").replaceChildren(...Object.entries(zones.zones).map(([n, c]) =>
      el("tr", {}, el("td", { text: n }), el("td", { text: c.join(", ") }))));
    document.querySelector("#tokens tbody").replaceChildren(...tokens.tokens.map((t) => el("tr", {},
      el("td", { text: String(t.id) }), el("td", { text: t.user }), el("td", { text: t.label }),
      el("td", { text: fmtEpoch(t.created) }), el("td", { text: fmtEpoch(t.last_used) }),
      el("td", {}, el("button", { type: "button", text: "Revoke", onclick: async () => {
        await api("DELETE", `/api/tokens/${t.id}`); refresh(); } })))));
    document.querySelector("#audit tbody").replaceChildren(...audit.vault.map((a) => el("tr", {},
      el("td", { text: fmtTime(a.ts) }), el("td", { text: a.actor }), el("td", { text: a.action }),
      el("td", { text: a.target }), el("td", { text: a.purpose || "" }))));
    document.querySelector("#trail tbody").replaceChildren(...audit.console.map((a) => el("tr", {},
      el("td", { text: fmtEpoch(a.ts) }), el("td", { text: a.actor }), el("td", { text: a.action }),
      el("td", { text: a.target }), el("td", { text: a.detail }), el("td", { text: a.ip || "" }))));
  };
  document.getElementById("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("new-credentials");
    try {
      const zones = document.getElementById("new-zones").value.split(",").map((z) => z.trim()).filter(Boolean);
      const r = await api("POST", "/api/users", { name: document.getElementById("new-name").value,
        role: document.getElementById("new-role").value, zones });
      showCredentials(r, "user");
    } catch (e) { out.textContent = e.message; out.hidden = false; }
    refresh();
  });
  document.getElementById("zone-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const cidrs = document.getElementById("zone-cidrs").value.split(",").map((z) => z.trim()).filter(Boolean);
    try { await api("PUT", `/api/zones/${encodeURIComponent(document.getElementById("zone-name").value)}`, { cidrs }); }
    catch (e) { alert(e.message); }
    refresh();
  });
  document.getElementById("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/api/tokens", { label: document.getElementById("token-label").value });
    const out = document.getElementById("new-token");
    out.textContent = `token ${r.id} (${r.label}): ${r.token}\nshown once; use it as: Authorization: Bearer ${r.token}`;
    out.hidden = false;
    refresh();
  });
  await refresh();
}

const PAGES = { login: loginPage, sessions: sessionsPage, session: sessionPage, admin: adminPage };
document.addEventListener("DOMContentLoaded", () => {
  const f = PAGES[document.body.dataset.page];
  if (f) f().catch((e) => { if (e.message !== "signed out") console.error(e); });
});
