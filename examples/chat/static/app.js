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

  // The Server panel's trend: the last WINDOW_MS of sessions and of the
  // message rate, one sample per /stats poll, kept in a ring of SAMPLES so
  // that a page left open for days holds no more than five minutes. The
  // page draws the charts itself as inline SVG paths: no library, nothing
  // from another origin, nothing the CSP would have to allow.
  const POLL_MS = 2000;
  const WINDOW_MS = 5 * 60 * 1000;
  const SAMPLES = WINDOW_MS / POLL_MS;
  const CHART_W = 240, CHART_H = 48; // the SVGs' viewBox
  const samples = ring(SAMPLES);
  let previous = null; // the last sample's time and "messages in", for the rate

  // ring is a fixed-size buffer: push overwrites the oldest entry once full.
  function ring(size) {
    const buf = new Array(size);
    let head = 0, len = 0;
    return {
      push(v) {
        buf[(head + len) % size] = v;
        if (len < size) len++;
        else head = (head + 1) % size;
      },
      values() {
        const out = [];
        for (let i = 0; i < len; i++) out.push(buf[(head + i) % size]);
        return out;
      },
      get length() { return len; },
    };
  }

  // sample adds one poll's answer to the ring. The rate is the growth of
  // the node's "messages in" counter since the previous sample, per
  // second; there is none after a failed poll or a counter that went back
  // (a restarted server), rather than a wrong one.
  function sample(s) {
    const t = Date.now();
    const received = s["messages in"];
    let rate = null;
    if (previous && received >= previous.received && t > previous.t) {
      rate = (received - previous.received) * 1000 / (t - previous.t);
    }
    previous = { t, received };
    const cluster = s["cluster sessions"];
    samples.push({ t, sessions: s.sessions, cluster: typeof cluster === "number" ? cluster : null, rate });
    drawTrend();
  }

  function drawTrend() {
    const all = samples.values();
    const last = all[all.length - 1];
    drawChart("chart-sessions", all, ["sessions", "cluster"]);
    drawChart("chart-rate", all, ["rate"]);
    const clustered = last.cluster !== null;
    $("trend-sessions").textContent = clustered
      ? last.sessions + " here, " + last.cluster + " in cluster"
      : String(last.sessions);
    $("trend-span").textContent = "last " + Math.round(span(all) / 60000) + " min, sampled every " + POLL_MS / 1000 + " s";
    $("trend-rate").textContent = last.rate === null ? "…" : formatRate(last.rate) + "/s" + (clustered ? " here" : "");
  }

  const formatRate = (r) => (r >= 10 ? r.toFixed(0) : r.toFixed(1));

  // span is the time the charts show, ending at the newest sample: the
  // time since the first sample, at least MIN_SPAN_MS (so that a page just
  // opened does not plot its first seconds across the whole width) and at
  // most WINDOW_MS.
  const MIN_SPAN_MS = 60 * 1000;
  function span(all) {
    if (all.length < 2) return MIN_SPAN_MS;
    return Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, all[all.length - 1].t - all[0].t));
  }

  // drawChart draws each key of the samples as one path in the SVG with
  // that id (its path.line.<key>), over span(all) ending at the newest
  // sample, scaled to the largest value shown. A missing value or
  // a missed poll breaks the line instead of joining across the gap. The
  // SVG's data-samples, data-peak (the largest value) and each path's
  // data-points say what was drawn.
  function drawChart(id, all, keys) {
    const svg = $(id);
    const end = all.length ? all[all.length - 1].t : Date.now();
    const width = span(all);
    const start = end - width;
    let max = 0;
    for (const p of all) for (const k of keys) if (p[k] !== null && p[k] > max) max = p[k];
    const top = niceCeil(max);
    for (const k of keys) {
      let d = "", points = 0, prevT = -Infinity;
      for (const p of all) {
        const v = p[k];
        if (v === null) { prevT = -Infinity; continue; }
        const x = ((p.t - start) / width) * CHART_W;
        const y = CHART_H - 1 - (v / top) * (CHART_H - 2);
        d += (p.t - prevT > 2.5 * POLL_MS ? "M" : "L") + x.toFixed(1) + "," + y.toFixed(1);
        prevT = p.t;
        points++;
      }
      const path = svg.querySelector("path.line." + k);
      path.setAttribute("d", d);
      path.dataset.points = String(points);
    }
    svg.dataset.samples = String(all.length);
    svg.dataset.max = String(top);
    svg.dataset.peak = String(max);
    svg.parentElement.querySelector(".max").textContent = "max " + top;
  }

  // niceCeil rounds up to 1, 2 or 5 times a power of ten, at least 1.
  function niceCeil(v) {
    if (!(v > 1)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // pollStats fills the Server panel and its trend. /stats answers
  // signed-in users only, so the request carries the current token.
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
      sample(s);
    } catch (e) {
      previous = null; // the server may be restarting: no rate across the gap
    }
    setTimeout(pollStats, POLL_MS);
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
  // extensions is what the socket negotiated: "permessage-deflate; ..."
  // when the server runs with -compression, "" otherwise.
  window.chat = {
    send,
    state: () => ({ connected: !!ws && ws.readyState === WebSocket.OPEN, expiresAt, extensions: ws ? ws.extensions : "" }),
  };
})();
