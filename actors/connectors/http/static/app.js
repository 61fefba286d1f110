// greenroom web chat: one page, no build step. A guest session is created on
// first load (token kept in localStorage); replies arrive by long-polling
// GET /api/events. Every text from the server is shown with textContent only.
"use strict";

const KEY = "greenroom.session";
const $ = (id) => document.getElementById(id);
let session = JSON.parse(localStorage.getItem(KEY) || "null");
let after = 0;

function status(text) { $("status").textContent = text; }

function problem(text) {
  const p = $("problem");
  p.textContent = text || "";
  p.hidden = !text;
}

function add(kind, text) {
  const div = document.createElement("div");
  div.className = "msg " + kind;
  div.dataset.kind = kind;
  div.textContent = text;
  $("log").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.message || body.error || resp.statusText;
  } catch (_) {
    return resp.status + " " + resp.statusText;
  }
}

async function newSession() {
  const resp = await fetch("/api/session", { method: "POST" });
  if (!resp.ok) throw new Error("could not start a session: " + (await errorText(resp)));
  session = await resp.json();
  localStorage.setItem(KEY, JSON.stringify(session));
}

// A request with the session's token; a 401 (expired or unknown token) gets a
// new session and one retry.
async function api(path, init = {}, retried = false) {
  if (!session) await newSession();
  const headers = Object.assign({}, init.headers, { Authorization: "Bearer " + session.token });
  const resp = await fetch(path, Object.assign({}, init, { headers }));
  if (resp.status === 401 && !retried) {
    session = null;
    localStorage.removeItem(KEY);
    return api(path, init, true);
  }
  return resp;
}

function clientId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

async function send(text) {
  const body = JSON.stringify({ text, client_id: clientId() });
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body };
  for (let attempt = 0; attempt < 3; attempt++) {
    const resp = await api("/api/messages", init);
    if (resp.status === 202) return true;
    if (resp.status !== 503) { problem(await errorText(resp)); return false; }
    const wait = Number(resp.headers.get("Retry-After") || "1");
    await new Promise((r) => setTimeout(r, wait * 1000));
  }
  problem("the agent is busy; please try again in a moment");
  return false;
}

async function approve(id, button, outcome) {
  button.disabled = true;
  const resp = await api("/api/approvals/" + id, { method: "POST" });
  if (resp.ok) {
    outcome.textContent = "approved";
    return;
  }
  outcome.textContent = await errorText(resp);
  if (resp.status === 503) button.disabled = false;
}

function show(ev) {
  const div = add(ev.kind, ev.text);
  div.dataset.seq = ev.seq;
  if (ev.kind === "ack" && ev.approval_id) {
    const actions = document.createElement("div");
    actions.className = "actions";
    const ok = document.createElement("button");
    ok.type = "button";
    ok.className = "ok";
    ok.textContent = "OK";
    const outcome = document.createElement("span");
    outcome.className = "outcome";
    ok.addEventListener("click", () => approve(ev.approval_id, ok, outcome).catch((e) => {
      outcome.textContent = String(e.message || e);
      ok.disabled = false;
    }));
    actions.append(ok, outcome);
    div.appendChild(actions);
  }
}

async function poll() {
  let wait = 0; // the first request answers at once (history, and "connected")
  for (;;) {
    try {
      const resp = await api("/api/events?after=" + after + "&wait=" + wait);
      wait = 25;
      if (!resp.ok) throw new Error(await errorText(resp));
      const body = await resp.json();
      status("connected as " + session.user);
      for (const ev of body.events) {
        show(ev);
        after = ev.seq;
      }
    } catch (e) {
      status("reconnecting…");
      problem(String(e.message || e));
      await new Promise((r) => setTimeout(r, 2000));
      problem("");
    }
  }
}

$("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim()) return;
  $("send").disabled = true;
  problem("");
  try {
    if (await send(text)) {
      add("mine", text);
      box.value = "";
    }
  } catch (e) {
    problem(String(e.message || e));
  } finally {
    $("send").disabled = false;
    box.focus();
  }
});

$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("compose").requestSubmit();
  }
});

poll();
