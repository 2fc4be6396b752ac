// End-to-end test of examples/chat in a real browser: Debian's Chromium,
// headless, driven by playwright-core (no browser download).
//
//   CHAT_BIN=/path/to/chat node --test chat.test.mjs
//
// CHAT_BIN is a built examples/chat binary (.ci/run builds it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const OUT = join(import.meta.dirname, "output");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let server, serverLog, base, browser, evil, evilURL;

// freePort asks the kernel for an unused loopback port.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function waitForServer(url, ms, log) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url + "/");
      if (res.ok) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error("chat server did not start:\n" + log());
    await new Promise((r) => setTimeout(r, 100));
  }
}

// startChat runs the chat binary on a free port and returns its URL, the
// process, and a function that returns everything it has logged.
async function startChat(...flags) {
  return startChatWith({ WSSAFE_JWT_SECRET: "" }, ...flags);
}

// startChatWith is startChat with env added to the environment.
async function startChatWith(env, ...flags) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.env.CHAT_BIN, ["-addr", `127.0.0.1:${port}`, "-log-level", "debug", ...flags], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  await waitForServer(url, 30000, () => log);
  return { url, proc, log: () => log };
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const chat = await startChat("-msg-rate", "5", "-msg-burst", "10");
  base = chat.url;
  server = chat.proc;
  serverLog = chat.log;

  // A page on another origin (another port) that tries to open the chat's
  // socket: cross-site WebSocket hijacking.
  evil = createServer((req, res) => {
    res.setHeader("Content-Type", "text/html");
    res.end(`<!doctype html><title>evil</title><script>
      window.result = new Promise((resolve) => {
        const ws = new WebSocket("${base.replace("http", "ws")}/ws", ["chat.v1"]);
        ws.onopen = () => resolve("opened");
        ws.onclose = (e) => resolve("closed " + e.code);
      });
    </script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  evilURL = `http://127.0.0.1:${evil.address().port}/`;

  // playwright gives every launch a fresh, empty --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  evil?.close();
  if (server && server.exitCode === null) server.kill("SIGKILL");
});

async function signIn(name, email, url = base) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => assert.fail(`page error in ${name}'s page: ${e}`));
  await page.goto(url + "/");
  await page.fill("#name", name);
  await page.fill("#email", email);
  await page.click("#signin-button");
  await page.waitForSelector("#status.on", { timeout: 10000 });
  return page;
}

const messages = (page) => page.locator("#messages li");

test("two users chat, see each other online, and get validation errors", async () => {
  const alice = await signIn("Alice", "alice@example.com");
  const bob = await signIn("Bob", "bob@example.org");

  await alice.waitForFunction(() => document.querySelectorAll("#online li").length === 2);
  assert.deepEqual((await bob.locator("#online li .who").allTextContents()).sort(), ["Alice", "Bob"]);
  // Without -compression (the default) nothing is negotiated, though
  // Chromium offers permessage-deflate.
  assert.equal(await alice.evaluate(() => window.chat.state().extensions), "");

  await alice.fill("#text", "hello from alice");
  await alice.click("#send");
  const line = bob.locator("#messages li", { hasText: "hello from alice" });
  await line.waitFor({ timeout: 10000 });
  assert.match(await line.textContent(), /^Alice[0-9a-f]{8}hello from alice#\S+$/);

  // Invalid: too long for "say". The server answers with the structured error.
  await bob.fill("#text", "x".repeat(600));
  await bob.click("#send");
  await bob.locator("#chat-error").filter({ hasText: "text" }).waitFor({ timeout: 10000 });
  assert.match(await bob.locator("#chat-error").textContent(), /^text: /);

  // Invalid: an unknown message type, sent as a hand-made frame.
  await bob.evaluate(() => window.chat.send({ type: "shout", text: "hi" }));
  await bob.locator("#messages li.error", { hasText: "rejected" }).nth(1).waitFor({ timeout: 10000 });

  // Valid rename reaches the other page.
  await bob.fill("#new-name", "Robert");
  await bob.click("#rename-form button");
  await alice.locator("#messages li", { hasText: /^Bob[0-9a-f]{8} is now Robert[0-9a-f]{8}$/ }).waitFor({ timeout: 10000 });

  // The live panel polls /stats: wait until it shows both sessions.
  await alice.waitForFunction(() => /sessions2/.test(document.querySelector("#stats").textContent), null, { timeout: 10000 });
  // The panel's trend plots what it polled: sessions over several samples,
  // and a message rate above zero from the messages just sent.
  await alice.waitForFunction(() => {
    const rate = document.querySelector("#chart-rate");
    const line = rate.querySelector("path.line.rate");
    return Number(rate.dataset.peak) > 0 && Number(line.dataset.points) >= 2 &&
      /^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+/.test(line.getAttribute("d"));
  }, null, { timeout: 10000 });
  await alice.waitForFunction(() => {
    const s = document.querySelector("#chart-sessions");
    return Number(s.dataset.peak) === 2 && Number(s.querySelector("path.line.sessions").dataset.points) >= 2;
  }, null, { timeout: 10000 });
  assert.match(await alice.locator("#trend-rate").textContent(), /^\d+(\.\d)?\/s$/);
  assert.equal(await alice.locator("#chart-sessions path.line.cluster").getAttribute("d"), "", "no cluster line on a single server");
  await alice.screenshot({ path: join(OUT, "chat.png") });
  await bob.screenshot({ path: join(OUT, "chat-errors.png") });
  await bob.context().close();
  await alice.context().close();
});

test("one email and one name, twice: two users, told apart by their tags", async () => {
  const victim = await signIn("Vic", "victim@example.com");
  const impostor = await signIn("Vic", "victim@EXAMPLE.com");
  await victim.waitForFunction(() => document.querySelectorAll("#online li").length === 2);
  const tags = await victim.locator("#online li .tag").allTextContents();
  assert.equal(tags.length, 2);
  assert.notEqual(tags[0], tags[1], "the same name and email must not look the same");
  const mine = await victim.locator("#online li.me .tag").textContent();
  assert.match(await victim.locator("#status").textContent(), new RegExp("connected as Vic \\(" + mine + "\\)"));

  // The impostor's rename is theirs alone: the victim keeps name and tag.
  await impostor.fill("#new-name", "Mallory");
  await impostor.click("#rename-form button");
  await victim.locator("#messages li", { hasText: /^Vic[0-9a-f]{8} is now Mallory[0-9a-f]{8}$/ }).waitFor({ timeout: 10000 });
  await victim.fill("#text", "the real vic");
  await victim.click("#send");
  const line = impostor.locator("#messages li", { hasText: "the real vic" });
  await line.waitFor({ timeout: 10000 });
  assert.equal(await line.locator(".who").textContent(), "Vic");
  assert.equal(await line.locator(".tag").textContent(), mine);

  // The Server panel is for signed-in users: the page's own request carries
  // the token; the same request without it gets 401.
  await victim.waitForFunction(() => /sessions/.test(document.querySelector("#stats").textContent), null, { timeout: 10000 });
  assert.equal(await victim.evaluate(() => fetch("/stats").then((r) => r.status)), 401);
  await impostor.context().close();
  await victim.context().close();
});

test("sign-in refuses an invalid email with the validator's answer", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(base + "/");
  await page.fill("#name", "Mallory");
  await page.fill("#email", "mallory@@example.com");
  await page.click("#signin-button");
  await page.locator("#signin-error").filter({ hasText: "email" }).waitFor({ timeout: 10000 });
  assert.equal(await page.locator("#chat").isHidden(), true);
  await ctx.close();
});

test("a page from another origin cannot open the socket (403)", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on("websocket", (ws) => ws.on("socketerror", (e) => errors.push(e)));
  await page.goto(evilURL);
  const result = await page.evaluate(() => window.result);
  assert.equal(result, "closed 1006");
  assert.ok(errors.some((e) => e.includes("403")), `expected a 403 handshake error, got ${JSON.stringify(errors)}`);
  assert.match(serverLog(), /origin_refused/);
  await ctx.close();
});

test("the page refreshes its token in-band before it expires", async () => {
  const chat = await startChat("-token-ttl", "10s");
  try {
    const page = await signIn("Rita", "rita@example.com", chat.url);
    const first = await page.evaluate(() => window.chat.state().expiresAt);
    // Past the first token's expiry: without the refresh the server would
    // have closed the socket 3000 "token expired".
    await page.waitForFunction((t) => Date.now() > t + 1500, first, { timeout: 20000, polling: 250 });
    assert.ok(await page.evaluate(() => window.chat.state().connected), "still connected after the first token expired");
    assert.ok((await page.evaluate(() => window.chat.state().expiresAt)) > first, "the page holds a newer token");
    await page.fill("#text", "still here");
    await page.click("#send");
    await page.locator("#messages li", { hasText: "still here" }).waitFor({ timeout: 10000 });
    assert.match(chat.log(), /token_refreshed/);
    assert.doesNotMatch(chat.log(), /token_expired/);
    await page.context().close();
  } finally {
    chat.proc.kill("SIGKILL");
  }
});

test("a flood is cut with 1008 and the page says why", async () => {
  const page = await signIn("Flo", "flo@example.net");
  await page.evaluate(() => { for (let i = 0; i < 200; i++) window.chat.send({ type: "say", text: "spam " + i }); });
  await page.locator("#status.off").waitFor({ timeout: 10000 });
  assert.match(await page.locator("#status").textContent(), /disconnected: 1008 rate limit exceeded/);
  await page.context().close();
});

test("with -compression the page's socket negotiates permessage-deflate and the chat goes on", async () => {
  const chat = await startChat("-compression");
  try {
    const page = await signIn("Zoe", "zoe@example.com", chat.url);
    const ext = await page.evaluate(() => window.chat.state().extensions);
    assert.match(ext, /^permessage-deflate(;|$)/);
    assert.match(ext, /(^|; )server_no_context_takeover(;|$)/);
    assert.match(ext, /(^|; )client_no_context_takeover(;|$)/);
    // Chromium compresses what it sends; the broadcast of a 480-character
    // line is over the server's 512-byte threshold, so it comes back
    // compressed, and the page shows it inflated.
    const text = "compressed both ways, ".repeat(22).slice(0, 480);
    await page.fill("#text", text);
    await page.click("#send");
    await page.locator("#messages li", { hasText: text.slice(0, 60) }).waitFor({ timeout: 10000 });
    assert.ok((await page.locator("#messages li .text").allTextContents()).includes(text), "the whole line arrived");
    await page.fill("#text", "short");
    await page.click("#send");
    await page.locator("#messages li", { hasText: /short#/ }).waitFor({ timeout: 10000 });
    assert.ok(await page.evaluate(() => window.chat.state().connected));
    await page.context().close();
  } finally {
    chat.proc.kill("SIGKILL");
  }
});

// startRedis runs a redis-server without persistence on a free port, or
// returns null when there is none (an error under CI=true: CI must run
// the cluster test).
async function startRedis() {
  if (spawnSync("redis-server", ["--version"]).error) {
    if (process.env.CI === "true") throw new Error("redis-server not found (CI=true: the cluster test must run)");
    return null;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "chat-e2e-redis-"));
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" });
  for (const deadline = Date.now() + 10000; ; ) {
    if (spawnSync("redis-cli", ["-p", String(port), "ping"]).stdout?.toString().includes("PONG")) break;
    if (Date.now() > deadline) throw new Error("redis-server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `redis://127.0.0.1:${port}/0`, stop: () => { proc.kill("SIGKILL"); rmSync(dir, { recursive: true, force: true }); } };
}

test("two chat processes on one Redis are one chat; a node that dies leaves the online list", async (t) => {
  const redis = await startRedis();
  if (!redis) return t.skip("redis-server not found: install Debian's redis-server to run the cluster test");
  const env = { WSSAFE_JWT_SECRET: randomBytes(32).toString("hex"), WSSAFE_CLUSTER_KEY: randomBytes(32).toString("hex") };
  const nodes = [];
  try {
    nodes.push(await startChatWith(env, "-redis", redis.url, "-node", "e2e-1"));
    nodes.push(await startChatWith(env, "-redis", redis.url, "-node", "e2e-2"));
    const ann = await signIn("Ann", "ann@example.com", nodes[0].url);
    const ben = await signIn("Ben", "ben@example.org", nodes[1].url);

    // Each page's online list holds both users, from both nodes' rosters.
    for (const page of [ann, ben]) {
      await page.waitForFunction(() => document.querySelectorAll("#online li").length === 2, null, { timeout: 15000 });
      assert.deepEqual((await page.locator("#online li .who").allTextContents()).sort(), ["Ann", "Ben"]);
    }
    await ann.fill("#text", "across the cluster");
    await ann.click("#send");
    await ben.locator("#messages li", { hasText: "across the cluster" }).waitFor({ timeout: 10000 });
    await ann.waitForFunction(() => /nodee2e-1/.test(document.querySelector("#stats").textContent), null, { timeout: 10000 });
    await ann.waitForFunction(() => /cluster sessions2/.test(document.querySelector("#stats").textContent), null, { timeout: 10000 });
    await ann.waitForFunction(() => {
      const s = document.querySelector("#chart-sessions");
      return Number(s.dataset.peak) === 2 && Number(s.querySelector("path.line.cluster").dataset.points) >= 2;
    }, null, { timeout: 10000 });
    await ann.locator("#trend-sessions", { hasText: /^1 here, 2 in cluster$/ }).waitFor({ timeout: 10000 });

    // Ben's node dies without a word: Ann's page drops its roster once it
    // is not renewed.
    nodes[1].proc.kill("SIGKILL");
    await ann.waitForFunction(() => document.querySelectorAll("#online li").length === 1, null, { timeout: 15000 });
    assert.deepEqual(await ann.locator("#online li .who").allTextContents(), ["Ann"]);
    await ann.screenshot({ path: join(OUT, "chat-cluster.png") });
    for (const n of nodes) {
      assert.doesNotMatch(n.log(), new RegExp(env.WSSAFE_CLUSTER_KEY), "no cluster key in the logs");
    }
    await ben.context().close();
    await ann.context().close();
  } finally {
    for (const n of nodes) if (n.proc.exitCode === null) n.proc.kill("SIGKILL");
    redis.stop();
  }
});

test("shutdown closes with 1001 and the page says the server is going away", async () => {
  const page = await signIn("Sam", "sam@example.com");
  const exited = new Promise((r) => server.on("exit", r));
  server.kill("SIGTERM");
  await page.locator("#status.wait", { hasText: "going away" }).waitFor({ timeout: 10000 });
  assert.equal(await exited, 0, "graceful exit:\n" + serverLog());
  assert.doesNotMatch(serverLog(), /eyJ/, "no token in the server's logs");
  assert.doesNotMatch(serverLog(), /hello from alice/, "no message body in the server's logs");
  await page.context().close();
});
