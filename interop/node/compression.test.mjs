// permessage-deflate with Node's ws (perMessageDeflate, its default) against
// examples/echo and examples/secure started with -compression: what is
// negotiated, and proof from the bytes on ws's own socket that messages
// travel compressed in both directions, with the protocols unchanged.
// Without -compression nothing is negotiated (echo.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as jose from "jose";
import { startServer, stopServer, killAll, stats, handshake, connect, frame } from "./harness.mjs";

const READ_LIMIT = 32 << 10; // the default read limit, counted after inflation
const THRESHOLD = 512; // the server's default CompressionThreshold
const MARK = "payload-marker-7e1a"; // no log line may carry it
const SECRET = randomBytes(32).toString("base64"); // fresh per run: a test value

let echo, secure;

before(async () => {
  echo = await startServer("echo", ["-compression"]);
  secure = await startServer("secure", ["-compression"], { WSSAFE_JWT_SECRET: SECRET });
});
after(killAll);

// chatJSON is n bytes of JSON lines like the chat's, compressible as
// real traffic is (repeated keys, varying values).
function chatJSON(n) {
  let s = "";
  for (let i = 0; s.length < n; i++) {
    s += JSON.stringify({ type: "said", from: `u-${(i * 7919).toString(16).padStart(24, "0")}`, name: "Ann", text: `line ${i} ${MARK}`, id: (i * 104729).toString(16).padStart(12, "0") }) + "\n";
  }
  return s.slice(0, n);
}

// io runs fn and returns what it moved on the client's TCP socket, in
// both directions, once it resolves.
async function io(c, fn) {
  const s = c.ws._socket;
  const [r0, w0] = [s.bytesRead, s.bytesWritten];
  const out = await fn();
  return { read: s.bytesRead - r0, written: s.bytesWritten - w0, out };
}

async function echoes(c, text) {
  c.ws.send(text);
  assert.equal(await c.next(), "Server received: " + text);
}

test("-compression: ws's offer is answered with permessage-deflate without context takeover", async () => {
  const { client, res } = await handshake(echo.url);
  assert.equal(client.ws.extensions, "permessage-deflate");
  const params = res.headers["sec-websocket-extensions"].split(";").map((p) => p.trim());
  assert.equal(params[0], "permessage-deflate");
  assert.ok(params.includes("server_no_context_takeover"), params.join("; "));
  assert.ok(params.includes("client_no_context_takeover"), params.join("; "));
  client.ws.close();
});

test("a large message from ws travels compressed and is inflated by the server", async () => {
  const c = await connect(echo.url);
  const text = chatJSON(16 << 10);
  const before = (await stats(echo)).traffic;
  const { written } = await io(c, () => echoes(c, text));
  const after = (await stats(echo)).traffic;
  assert.ok(written < text.length / 4, `ws wrote ${written} bytes for a ${text.length}-byte message`);
  assert.equal(after.bytes_in - before.bytes_in, text.length, "the server counts the inflated bytes");
  c.ws.close();
});

test("a large reply travels compressed: fewer bytes on ws's socket than its payload", async () => {
  const c = await connect(echo.url);
  const text = chatJSON(16 << 10);
  const reply = "Server received: ".length + text.length;
  const { read } = await io(c, () => echoes(c, text));
  assert.ok(read < reply / 4, `ws read ${read} bytes for a ${reply}-byte reply`);
  c.ws.close();
});

test("a reply under the server's threshold goes out uncompressed", async () => {
  const c = await connect(echo.url);
  const text = "x".repeat(THRESHOLD - 100); // the reply stays under 512 bytes
  const reply = "Server received: ".length + text.length;
  const { read } = await io(c, () => echoes(c, text));
  assert.ok(read >= reply, `ws read ${read} bytes for a ${reply}-byte reply`);
  c.ws.close();
});

test("every message compressed (threshold 0): short ones, and a message in fragments", async () => {
  const c = await connect(echo.url, { perMessageDeflate: { threshold: 0 } });
  await echoes(c, "hi");
  await echoes(c, `xin chào ${MARK} 👋`);
  // ws compresses a fragmented message as one deflate stream: RSV1 on the
  // first fragment only.
  const part = chatJSON(4 << 10);
  const { written } = await io(c, async () => {
    c.ws.send(part, { fin: false });
    c.ws.send(part, { fin: false });
    c.ws.send(part, { fin: true });
    assert.equal(await c.next(), "Server received: " + part + part + part);
  });
  assert.ok(written < part.length, `ws wrote ${written} bytes for ${3 * part.length} in three fragments`);
  c.ws.close();
});

test("a compressed message of exactly the read limit passes; one byte more closes 1009 (counted inflated)", async () => {
  const c = await connect(echo.url);
  const { written } = await io(c, () => echoes(c, MARK + "x".repeat(READ_LIMIT - MARK.length)));
  assert.ok(written < READ_LIMIT / 10, `ws wrote ${written} bytes`);
  c.ws.send(MARK + "x".repeat(READ_LIMIT + 1 - MARK.length)); // a few hundred bytes on the wire
  const { code, reason } = await c.closeWithin();
  assert.equal(code, 1009);
  assert.ok(!reason.includes(MARK));
});

for (const [name, bytes] of [
  ["RSV1 on a ping", () => frame(0xc9, MARK)],
  ["RSV1 on a continuation frame", () => Buffer.concat([frame(0x01, MARK), frame(0xc0, MARK)])],
]) {
  test(`on a compressed session, ${name} closes 1002`, async () => {
    const c = await connect(echo.url);
    assert.equal(c.ws.extensions, "permessage-deflate");
    c.raw(bytes());
    const { code } = await c.closeWithin();
    assert.equal(code, 1002);
  });
}

test("examples/secure -compression: a compressed first-message token authenticates, then the echo", async () => {
  const token = await new jose.SignJWT({ user_id: 42 }).setProtectedHeader({ alg: "HS256" })
    .setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
  const { client: c, res } = await handshake(secure.url, { perMessageDeflate: { threshold: 0 } });
  assert.equal(c.ws.extensions, "permessage-deflate");
  assert.match(res.headers["sec-websocket-extensions"], /^permessage-deflate;/);
  c.ws.send(token);
  assert.equal(await c.next(), "Authenticated!");
  const text = chatJSON(8 << 10);
  const { read, written } = await io(c, () => echoes(c, text));
  assert.ok(written < text.length / 4, `ws wrote ${written} bytes`);
  assert.ok(read < text.length / 4, `ws read ${read} bytes`);
  c.ws.close();
  const { code } = await stopServer(secure);
  assert.equal(code, 0, secure.log());
  assert.ok(!secure.log().includes(token), "the token reached the server's log");
});

test("shutdown: the server exits 0 and logged no payload", async () => {
  const { code, signal } = await stopServer(echo);
  assert.equal(signal, null);
  assert.equal(code, 0, echo.log());
  assert.ok(!echo.log().includes(MARK), "a payload reached the server's log");
});
