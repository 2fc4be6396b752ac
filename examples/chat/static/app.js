// The chat page: plain JavaScript, no build step, no third-party code.
// The token lives in this closure only (never in storage), travels in the
// Sec-WebSocket-Protocol header at the handshake, and is refreshed in-band.
// Every sign-in is a new user with a random subject, whatever the email;
// names are free text, so every name is shown with its subject's tag, the
// part another user cannot choose.
"use strict";
(() => {
  const APP_PROTOCOL = "chat.v1";
  const TOKEN_PROTOCOL_PREFIX = "bearer.";
  const $ = (id) => document.getElementById(id);

  let token = null;       // current JWT, memory only
  let expiresAt = 0;      // ms since epoch
  let me = null;          // {subject, name}
  let ws = null;
  let backoff = 500;
  let refreshTimer = null;
  let typingTimer = null;
  let lastTyping = 0;
  // The online list is the union of the rosters of the server's nodes: one
  // node's roster per key (its node ID; "" for a single server), each kept
  // until replaced or, when it has a lifetime, until that passes unrenewed
  // (a node that died). Rosters come from the server only: a client cannot
  // publish one.
  const rosters = new Map();
  let rosterTimer = null;

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + cls;
  }

  // tag is the short, unforgeable part of an identity: the subject's first
  // 8 hex digits after "u-".
  const tag = (subject) => String(subject).slice(2, 10);
  // who is a name and its tag, as addLine parts.
  const who = (name, subject) => [["who", name], ["tag", tag(subject)]];

  function addLine(cls, parts) {
    const li = document.createElement("li");
    if (cls) li.className = cls;
    for (const [c, text] of parts) {
      const span = document.createElement("span");
      if (c) span.className = c;
      span.textContent = text; // never innerHTML: chat text is untrusted
      li.appendChild(span);
    }
    const list = $("messages");
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function showError(where, e) {
    const field = e.field ? e.field + ": " : "";
    $(where).textContent = field + (e.message || e.code || "error");
  }

  async function signIn(ev) {
    ev.preventDefault();
    $("signin-error").textContent = "";
    const res = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("name").value, email: $("email").value }),
    });
    const body = await res.json();
    if (!res.ok) return showError("signin-error", body);
    acceptToken(body);
    me = { subject: body.subject, name: body.name };
    $("signin").classList.add("hidden");
    $("chat").classList.remove("hidden");
    connect();
    pollStats();
  }

  function acceptToken(body) {
    token = body.token;
    expiresAt = Date.now() + body.expires_in * 1000;
    clearTimeout(refreshTimer);
    // Refresh at 80% of the lifetime, before the server closes 3000.
    refreshTimer = setTimeout(refresh, body.expires_in * 800);
  }

  async function refresh() {
    const res = await fetch("/api/refresh", { method: "POST", headers: { Authorization: "Bearer " + token } });
    if (!res.ok) return;
    const body = await res.json();
    acceptToken(body);
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "refresh", token: body.token }));
    }
  }

  function connect() {
    setStatus("connecting…", "wait");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url, [APP_PROTOCOL, TOKEN_PROTOCOL_PREFIX + token]);
    ws.onopen = () => { backoff = 500; setStatus("connected as " + me.name + " (" + tag(me.subject) + ")", "on"); };
    ws.onmessage = (ev) => handle(JSON.parse(ev.data));
    ws.onclose = (ev) => closed(ev);
  }

  function closed(ev) {
    const why = ev.code + (ev.reason ? " " + ev.reason : "");
    if (ev.code === 1001) {
      setStatus("server going away, reconnecting…", "wait");
      addLine("system", [["", "server going away (" + why + "); reconnecting in " + backoff + " ms"]]);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
      return;
    }
    setStatus("disconnected: " + why, "off");
    addLine("error", [["", "disconnected: " + why]]);
  }

  function handle(m) {
    switch (m.type) {
      case "said":
        addLine("", [...who(m.name, m.from), ["text", m.text], ["id", "#" + m.id]]);
        break;
      case "typing":
        if (m.from === me.subject) break;
        $("typing").textContent = m.name + " (" + tag(m.from) + ") is typing…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => ($("typing").textContent = ""), 2000);
        break;
      case "presence":
        onRoster(m);
        break;
      case "renamed":
        if (m.from === me.subject) me.name = m.name;
        addLine("system", [...who(m.old, m.from), ["", " is now "], ...who(m.name, m.from)]);
        break;
      case "joined":
        addLine("system", [...who(m.name, m.from), ["", " joined"]]);
        break;
      case "left":
        addLine("system", [...who(m.name, m.from), ["", " left"]]);
        break;
      case "error":
        showError("chat-error", m);
        addLine("error", [["", "rejected: " + (m.field ? m.field + ": " : "") + m.message]]);
        break;
    }
  }

  function onRoster(m) {
    const until = m.expires_in ? Date.now() + m.expires_in * 1000 : Infinity;
    rosters.set(m.node || "", { online: m.online, until });
    if (m.expires_in && !rosterTimer) rosterTimer = setInterval(expireRosters, 1000);
    renderOnline();
  }

  function expireRosters() {
    const now = Date.now();
    let changed = false;
    for (const [node, r] of rosters) {
      if (r.until <= now) { rosters.delete(node); changed = true; }
    }
    if (changed) renderOnline();
  }

  // renderOnline shows every user once, whichever nodes their tabs are on.
  function renderOnline() {
    const users = new Map();
    for (const r of rosters.values()) {
      for (const u of r.online) if (!users.has(u.subject)) users.set(u.subject, u);
    }
    const list = [...users.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const ul = $("online");
    ul.replaceChildren(...list.map((u) => {
      const li = document.createElement("li");
      for (const [c, text] of who(u.name, u.subject)) {
        const span = document.createElement("span");
        span.className = c;
        span.textContent = text;
        li.appendChild(span);
      }
      if (u.subject === me.subject) li.classList.add("me");
      return li;
    }));
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  // pollStats fills the Server panel. /stats answers signed-in users only,
  // so the request carries the current token.
  async function pollStats() {
    try {
      const res = await fetch("/stats", { headers: { Authorization: "Bearer " + token } });
      if (!res.ok) throw new Error("stats " + res.status);
      const s = await res.json();
      const dl = $("stats");
      dl.replaceChildren();
      for (const [k, v] of Object.entries(s)) {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        dl.append(dt, dd);
      }
    } catch (e) { /* the server may be restarting */ }
    setTimeout(pollStats, 2000);
  }

  $("signin-form").addEventListener("submit", signIn);
  $("say-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("chat-error").textContent = "";
    send({ type: "say", text: $("text").value });
    $("text").value = "";
  });
  $("text").addEventListener("input", () => {
    if (Date.now() - lastTyping > 1500) { lastTyping = Date.now(); send({ type: "typing" }); }
  });
  $("rename-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("chat-error").textContent = "";
    send({ type: "rename", name: $("new-name").value });
    $("new-name").value = "";
  });
  // Exposed for the end-to-end test, which drives the page like a user and
  // also sends raw frames a user could type into the console.
  window.chat = { send, state: () => ({ connected: !!ws && ws.readyState === WebSocket.OPEN, expiresAt }) };
})();
