// Shared by the interop tests: builds wssafe's example servers, runs them on
// loopback ports, and wraps the ws client so that a test reads like the
// protocol it checks.
//
// ECHO_BIN and SECURE_BIN name prebuilt binaries (interop/run.sh sets them);
// without them the binaries are built from this tree with `go build`.
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import WebSocket from "ws";

export const ROOT = resolve(import.meta.dirname, "../..");

let buildDir;
const built = new Map(); // name -> path, so each example is built once
const running = new Set();

// binary returns the path of the named example's binary, building it into
// a temporary directory when no <NAME>_BIN environment variable names one.
export function binary(name) {
  const given = process.env[`${name.toUpperCase()}_BIN`];
  if (given) return given;
  if (built.has(name)) return built.get(name);
  buildDir ??= mkdtempSync(join(tmpdir(), "wssafe-interop-"));
  const out = join(buildDir, name);
  execFileSync("go", ["build", "-o", out, `./examples/${name}`], { cwd: ROOT, stdio: "inherit" });
  built.set(name, out);
  return out;
}

// freePort asks the kernel for an unused loopback port.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// startServer runs an example on a kernel-chosen loopback port with debug
// JSON logs (so that the token-never-logged checks see everything the server
// can log) and a stats endpoint. It resolves once the server listens.
export async function startServer(name, flags = [], env = {}) {
  const bin = binary(name);
  const statsPort = await freePort();
  const statsURL = `http://127.0.0.1:${statsPort}`;
  const args = ["-addr", "127.0.0.1:0", "-log-level", "debug", "-log-format", "json",
    "-stats-addr", `127.0.0.1:${statsPort}`, ...flags];
  const proc = spawn(bin, args, {
    env: { ...process.env, WSSAFE_JWT_SECRET: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  // "close", not "exit": it comes after the last log line has been read.
  const exited = new Promise((resolve) => proc.on("close", (code, signal) => resolve({ code, signal })));
  const srv = { name, proc, exited, statsURL, log: () => log };
  running.add(srv);
  exited.then(() => running.delete(srv));

  const deadline = Date.now() + 15000;
  while (!srv.url) {
    for (const line of log.split("\n")) {
      if (!line.startsWith("{")) continue;
      const rec = JSON.parse(line);
      if (rec.msg === "listening" && rec.url !== statsURL) {
        srv.origin = rec.url;
        srv.url = rec.url.replace(/^http/, "ws");
      }
    }
    if (srv.url) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`${name} did not start (${args.join(" ")}):\n${log}`);
    }
    await sleep(20);
  }
  return srv;
}

// stats fetches the server's wssafe Stats.
export async function stats(srv) {
  const res = await fetch(srv.statsURL + "/stats");
  if (!res.ok) throw new Error(`stats: HTTP ${res.status}`);
  return res.json();
}

// stopServer sends SIGTERM and resolves with the exit status once the
// server has shut down (it exits 0 after a graceful shutdown).
export async function stopServer(srv) {
  if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill("SIGTERM");
  return srv.exited;
}

// killAll ends any server a failed test left running, so the runner exits.
export function killAll() {
  for (const srv of running) srv.proc.kill("SIGKILL");
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Client wraps a ws WebSocket: messages are queued for next(), and closed
// resolves with the close code and reason the server sent.
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.errors = [];
    this.closeInfo = null;
    ws.on("message", (data, isBinary) => {
      this.queue.push(isBinary ? data : data.toString("utf8"));
      this.wake();
    });
    ws.on("error", (err) => this.errors.push(err)); // EPIPE after the server cut a flood
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        this.wake();
        resolve(this.closeInfo);
      });
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  // next resolves with the next message, failing if the socket closes or
  // nothing arrives within ms.
  async next(ms = 3000) {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      if (this.closeInfo) throw new Error(`closed ${this.closeInfo.code} ${this.closeInfo.reason} while waiting for a message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${ms} ms`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return this.queue.shift();
  }

  // closeWithin resolves with the server's close code and reason and the
  // time it took, failing if the socket is still open after ms.
  async closeWithin(ms = 3000) {
    const start = Date.now();
    let t;
    const timeout = new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    });
    try {
      const info = await Promise.race([this.closed, timeout]);
      return { ...info, ms: Date.now() - start };
    } finally {
      clearTimeout(t);
    }
  }

  // raw writes bytes straight to the TCP socket under the WebSocket, as a
  // hostile client would.
  raw(bytes) {
    this.ws._socket.write(Buffer.from(bytes));
  }
}

// handshake opens a WebSocket with the ws client. It resolves with
// { client, res } when the server upgrades, or { status, headers } when it
// answers with anything else.
export function handshake(url, { protocols = [], ...opts } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: 5000, ...opts });
    let res;
    ws.on("upgrade", (r) => (res = r));
    ws.once("open", () => resolve({ client: new Client(ws), res }));
    ws.on("unexpected-response", (req, r) => {
      resolve({ status: r.statusCode, headers: r.headers });
      r.resume();
      req.destroy();
    });
    ws.once("error", reject);
  });
}

// connect is handshake for a connection that must be upgraded.
export async function connect(url, opts) {
  const r = await handshake(url, opts);
  if (!r.client) throw new Error(`handshake refused with HTTP ${r.status}`);
  return r.client;
}

// frame builds one client frame by hand: first byte b0 (FIN, RSV bits and
// opcode), the payload masked unless masked is false.
export function frame(b0, payload, { masked = true } = {}) {
  const data = Buffer.from(payload);
  if (data.length > 125) throw new Error("frame: short payloads only");
  if (!masked) return Buffer.concat([Buffer.from([b0, data.length]), data]);
  const mask = randomBytes(4);
  const body = Buffer.from(data.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([b0, 0x80 | data.length]), mask, body]);
}
