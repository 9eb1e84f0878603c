// The presence page: join a room, keep the membership alive, leave on close, and show everyone
// in the room live from the server's Server-Sent Events. The page's event stream names its
// member, and while the stream is open the server keeps the member alive; the page sends
// heartbeats only while its stream is down. The stream's URL carries the member's renewal
// token, never its token: URLs end up in logs and histories, and the renewal token can only
// keep the member alive, and only for a few minutes: the stream and the heartbeats hand the
// page fresh ones.
"use strict";

const room = document.body.dataset.room;
const heartbeatMs = Number(document.body.dataset.heartbeatMs);
const base = "/rooms/" + encodeURIComponent(room);

const members = new Map(); // member id -> {id, name, status, joinedAt}
const rendered = new Set(); // ids already on screen, to animate only newcomers
// The page's member, fixed by the server before it joins: its stream names it, and its joins.
let self = { id: document.body.dataset.memberId, token: document.body.dataset.memberToken };
let renew = document.body.dataset.renewToken; // the renewal token of self, for its stream
let me = null; // {name} while joined, as the member self
let es = null; // the event stream
let joining = null; // the join in flight
let heartbeat = 0; // interval id
let clockOffset = 0; // the server's clock minus this page's, in ms

const $ = (id) => document.getElementById(id);

function post(path, fields) {
  return fetch(base + path, { method: "POST", body: new URLSearchParams(fields) });
}

function currentStatus() {
  return document.visibilityState === "hidden" ? "away" : "active";
}

// join adds this page to the room. After the page lost its member (its stream and heartbeats
// stopped while the tab slept), it joins again with its old id and keeps its place.
function join(name) {
  if (joining) return joining;
  const fields = { name, status: currentStatus(), ...self };
  joining = (async () => {
    try {
      const res = await post("/join", fields);
      if (!res.ok) throw new Error((await res.text()).trim() || res.statusText);
      const j = await res.json();
      // A new id when the server did not take the page's token (say, it restarted with
      // another secret): the stream must name the member it renews.
      self = { id: j.id, token: j.token };
      renew = j.renew;
      me = { name };
      if (!es || es.named !== self.id) connect(false);
      clearInterval(heartbeat);
      heartbeat = setInterval(beat, j.heartbeatMs || heartbeatMs);
      showJoined();
    } finally {
      joining = null;
    }
  })();
  return joining;
}

function rejoin() {
  if (me) join(me.name).catch(() => {}); // the next heartbeat tries again
}

async function beat() {
  if (!me || joining) return;
  if (es && es.readyState === EventSource.OPEN && es.named === self.id) return; // the stream renews it
  try {
    const res = await post("/heartbeat", self);
    if (res.ok) renew = (await res.json()).renew; // for the stream, which may be down for long
    if (res.status === 410 || res.status === 403) rejoin();
  } catch {
    // Offline for a moment: the next beat tries again.
  }
}

async function sendStatus() {
  if (!me || joining) return;
  try {
    const res = await post("/status", { ...self, status: currentStatus() });
    if (res.status === 410 || res.status === 403) rejoin();
  } catch {
    // The next visibility change sends it again.
  }
}

// leave removes this page's member. On pagehide only a beacon is sure to be sent.
function leave(beacon) {
  if (!me) return;
  const fields = new URLSearchParams(self);
  clearInterval(heartbeat);
  if (beacon) {
    navigator.sendBeacon(base + "/leave", fields);
  } else {
    me = null;
    fetch(base + "/leave", { method: "POST", body: fields }).catch(() => {});
    showJoined();
  }
}

function showJoined() {
  $("join").hidden = me !== null;
  $("you").hidden = me === null;
  if (me) $("you-name").textContent = me.name;
  render();
}

// connect follows the room's event stream, which names the page's member (unless anonymous)
// so that the server keeps it alive while the stream is open. The browser reconnects by
// itself after a network error and sends the last message id, the store cursor, so the server
// resumes after it, unless the stream's renewal token has expired since: it opens a new one
// with the latest token at once. After an answer that is not a stream, the page opens a new
// one; one that names no member until it joins, in case the server refused the member's
// renewal token.
function connect(anonymous) {
  if (es) es.close();
  const query = anonymous ? "" : "?" + new URLSearchParams({ id: self.id, renew });
  const stream = new EventSource(base + "/events" + query);
  stream.named = anonymous ? null : self.id;
  stream.renew = anonymous ? null : renew;
  es = stream;
  const setConnection = (state, text) => {
    $("connection").dataset.state = state;
    $("connection").textContent = text;
  };
  es.addEventListener("open", () => setConnection("live", "live"));
  es.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) {
      setConnection("offline", "offline, retrying…");
      setTimeout(() => {
        if (es === stream) connect(me === null);
      }, 3000);
    } else if (stream.named && stream.renew !== renew && me) {
      connect(false); // the stream's URL has an older token, which may have expired
    } else {
      setConnection("connecting", "reconnecting…");
    }
  });
  // A fresh renewal token, once half of the last one's life is spent.
  es.addEventListener("renew", (e) => {
    renew = JSON.parse(e.data).renew;
  });
  es.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    clockOffset = state.now - Date.now();
    members.clear();
    for (const m of state.members) members.set(m.id, m);
    render();
  });
  es.addEventListener("upsert", (e) => {
    const m = JSON.parse(e.data);
    members.set(m.id, m);
    render();
  });
  for (const kind of ["delete", "expire"]) {
    es.addEventListener(kind, (e) => {
      const { id } = JSON.parse(e.data);
      members.delete(id);
      render();
      if (me && id === self.id) rejoin(); // we were too slow: come back
    });
  }
}

function render() {
  const list = [...members.values()].sort((a, b) => a.joinedAt - b.joinedAt || (a.id < b.id ? -1 : 1));
  $("members").replaceChildren(...list.map(item));
  for (const id of rendered) if (!members.has(id)) rendered.delete(id);
  for (const m of list) rendered.add(m.id);
  $("count").textContent = String(list.length);
  $("count-label").textContent = list.length === 1 ? "person here" : "people here";
  $("empty").hidden = list.length > 0;
}

function item(m) {
  const li = el("li", "member");
  if (!rendered.has(m.id)) li.classList.add("enter");
  li.dataset.id = m.id;
  li.dataset.name = m.name;
  li.dataset.status = m.status;
  const avatar = el("span", "avatar", initials(m.name));
  avatar.style.background = color(m.name);
  avatar.setAttribute("aria-hidden", "true");
  const name = el("div", "name", m.name);
  if (me && m.id === self.id) name.append(" ", el("span", "me", "(you)"));
  const meta = el("div", "meta", (m.status === "away" ? "away" : "active") + " · joined " + ago(m.joinedAt));
  const who = el("div", "who");
  who.append(name, meta);
  li.append(avatar, who);
  return li;
}

// el makes an element; text is set with textContent, never parsed as HTML.
function el(tag, className, text) {
  const e = document.createElement(tag);
  e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const first = (w) => Array.from(w)[0] || "";
  if (words.length === 0) return "?";
  const last = words.length > 1 ? first(words[words.length - 1]) : "";
  return (first(words[0]) + last).toUpperCase();
}

// color picks an avatar color from the name, the same on every page; all of them are dark
// enough for white initials.
const palette = ["#4f5bd5", "#c2410c", "#0f766e", "#7c3aed", "#be185d", "#1d4ed8", "#15803d", "#b45309"];
function color(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return palette[h % palette.length];
}

function ago(ms) {
  const s = Math.max(0, (Date.now() + clockOffset - ms) / 1000);
  if (s < 45) return "just now";
  const min = Math.round(s / 60);
  if (min < 60) return min + " min ago";
  const h = Math.round(min / 60);
  return h < 24 ? h + " h ago" : Math.round(h / 24) + " d ago";
}

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("name").value.trim();
  $("join-button").disabled = true;
  $("join-error").textContent = "";
  try {
    await join(name);
    localStorage.setItem("presence.name", name);
  } catch (err) {
    $("join-error").textContent = err.message;
  } finally {
    $("join-button").disabled = false;
  }
});
$("leave-button").addEventListener("click", () => leave(false));
document.addEventListener("visibilitychange", sendStatus);
window.addEventListener("pagehide", () => leave(true));
window.addEventListener("pageshow", (e) => {
  if (e.persisted) rejoin(); // back from the back/forward cache
});

$("name").value = localStorage.getItem("presence.name") || "";
setInterval(render, 15000); // keep "joined 2 min ago" current
connect(false);
