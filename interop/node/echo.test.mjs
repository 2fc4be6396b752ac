// examples/echo driven by Node's ws: the echo protocol, then hostile
// frames and messages, each answered with the close code or HTTP status in
// the README's tables, while a bystander session stays usable.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, stopServer, killAll, stats, connect, handshake, frame } from "./harness.mjs";

const READ_LIMIT = 32 << 10; // the default read limit
// A marker that every payload carries: it must never reach a log line.
const MARK = "payload-marker-5f2c";

let srv, bystander;

before(async () => {
  srv = await startServer("echo");
  bystander = await connect(srv.url);
});
after(killAll);

async function echoes(c, text) {
  c.ws.send(text);
  assert.equal(await c.next(), "Server received: " + text);
}

test("the echo protocol", async () => {
  const c = await connect(srv.url);
  await echoes(c, `hello ${MARK}`);
  await echoes(c, `xin chào ${MARK} 👋`);
  c.ws.close(1000);
  assert.equal((await c.closeWithin()).code, 1000);
});

test("without -compression, ws's permessage-deflate offer (its default) is not answered", async () => {
  const { client, res } = await handshake(srv.url, { perMessageDeflate: { threshold: 0 } });
  assert.equal(client.ws.extensions, "");
  assert.equal(res.headers["sec-websocket-extensions"], undefined);
  const text = MARK + "z".repeat(4096); // would compress to a few dozen bytes
  const s = client.ws._socket;
  const w0 = s.bytesWritten;
  await echoes(client, text);
  assert.ok(s.bytesWritten - w0 > text.length, "ws compressed on a session that negotiated nothing");
  client.ws.close();
});

test("a fragmented message is reassembled, even with a character split across fragments", async () => {
  const c = await connect(srv.url);
  const e = Buffer.from("é"); // two bytes: each fragment alone is invalid UTF-8
  c.ws.send(Buffer.concat([Buffer.from(MARK + " caf"), e.subarray(0, 1)]), { binary: false, fin: false });
  c.ws.send(e.subarray(1), { binary: false, fin: false });
  c.ws.send(" au lait", { fin: true });
  assert.equal(await c.next(), `Server received: ${MARK} café au lait`);
  c.ws.close();
});

test("a message of exactly the read limit passes", async () => {
  const c = await connect(srv.url);
  const text = MARK + "x".repeat(READ_LIMIT - MARK.length);
  await echoes(c, text);
  c.ws.close();
});

test("a handshake from the server's own origin passes", async () => {
  const c = await connect(srv.url, { origin: srv.origin });
  await echoes(c, MARK);
  c.ws.close();
});

test("a foreign Origin gets HTTP 403", async () => {
  const before = await stats(srv);
  const r = await handshake(srv.url, { origin: "https://evil.example" });
  assert.equal(r.status, 403);
  const after = await stats(srv);
  assert.equal((after.refused.origin_refused ?? 0) - (before.refused?.origin_refused ?? 0), 1);
});

test("a binary message on the text-only echo closes 1003", async () => {
  const c = await connect(srv.url);
  c.ws.send(Buffer.from(MARK), { binary: true });
  const { code } = await c.closeWithin();
  assert.equal(code, 1003);
});

test("an unmasked frame closes 1002", async () => {
  const c = await connect(srv.url);
  c.raw(frame(0x81, MARK, { masked: false }));
  const { code } = await c.closeWithin();
  assert.equal(code, 1002);
});

for (const [name, b0] of [["RSV1 (no extension negotiated)", 0xc1], ["RSV2", 0xa1], ["RSV3", 0x91]]) {
  test(`a frame with ${name} set closes 1002`, async () => {
    const c = await connect(srv.url);
    c.raw(frame(b0, MARK));
    const { code } = await c.closeWithin();
    assert.equal(code, 1002);
  });
}

for (const [name, b0] of [["a reserved opcode (0x3)", 0x83], ["a fragmented ping (FIN clear)", 0x09]]) {
  test(`${name} closes 1002`, async () => {
    const c = await connect(srv.url);
    c.raw(frame(b0, MARK));
    const { code } = await c.closeWithin();
    assert.equal(code, 1002);
  });
}

test("a text message that is not valid UTF-8 closes 1007", async () => {
  const c = await connect(srv.url);
  c.ws.send(Buffer.concat([Buffer.from(MARK), Buffer.from([0xc3, 0x28, 0xff])]), { binary: false });
  const { code, reason } = await c.closeWithin();
  assert.equal(code, 1007);
  assert.equal(reason, "invalid utf-8");
});

test("a message one byte over the read limit closes 1009", async () => {
  const c = await connect(srv.url);
  c.ws.send(MARK + "x".repeat(READ_LIMIT + 1 - MARK.length));
  const { code, reason } = await c.closeWithin();
  assert.equal(code, 1009);
  assert.ok(!reason.includes(MARK), "the close reason quotes the payload");
});

test("a fragmented message over the read limit closes 1009 before its last fragment", async () => {
  const c = await connect(srv.url);
  const chunk = MARK + "y".repeat((8 << 10) - MARK.length);
  for (let i = 0; i < 5; i++) c.ws.send(chunk, { fin: false }); // 40 KiB, never finished
  const { code } = await c.closeWithin();
  assert.equal(code, 1009);
});

test("a ping flood closes 1008", async () => {
  const c = await connect(srv.url);
  const before = await stats(srv);
  for (let i = 0; i < 100; i++) c.ws.ping(MARK);
  const { code, reason } = await c.closeWithin();
  assert.equal(code, 1008);
  assert.equal(reason, "ping rate exceeded");
  const after = await stats(srv);
  assert.equal((after.limit_hits.ping_flood ?? 0) - (before.limit_hits?.ping_flood ?? 0), 1);
});

test("pings within the rate are answered and the session goes on", async () => {
  const c = await connect(srv.url);
  const pongs = [];
  c.ws.on("pong", (d) => pongs.push(d.toString()));
  for (let i = 0; i < 5; i++) c.ws.ping(String(i));
  await echoes(c, MARK);
  assert.deepEqual(pongs, ["0", "1", "2", "3", "4"]);
  c.ws.close();
});

test("the bystander session was unaffected by all of the above", async () => {
  await echoes(bystander, `still here ${MARK}`);
});

test("shutdown: the bystander gets 1001, the server exits 0, no payload was logged", async () => {
  const closed = bystander.closeWithin(10000);
  const { code, signal } = await stopServer(srv);
  assert.equal((await closed).code, 1001);
  assert.equal(signal, null);
  assert.equal(code, 0, srv.log());
  assert.ok(!srv.log().includes(MARK), "a payload reached the server's log");
  assert.match(srv.log(), /"event":"protocol_error"/);
});
