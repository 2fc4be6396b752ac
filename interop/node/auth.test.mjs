// examples/secure driven by Node's ws with tokens minted by jose: the
// first-message protocol of the original Python client, handshake authentication by header and by
// subprotocol, and the token attacks a real attacker would try. Every
// refusal gets the close code or HTTP status in the README's tables, and no
// token ever reaches the server's log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as jose from "jose";
import { startServer, stopServer, killAll, stats, connect, handshake } from "./harness.mjs";

const AUTH_TIMEOUT_MS = 800;
// A fresh random HS256 secret per run: nothing here is a real secret.
const SECRET = randomBytes(32).toString("base64");
const KEY = new TextEncoder().encode(SECRET);
const KID = "interop-rsa";

const minted = new Set(); // every token made here; none may reach a log
const queryTokens = []; // sent in a URL: the case access logs leak
const keep = (t) => (minted.add(t), t);
const now = () => Math.floor(Date.now() / 1000);

let hs, rs, rsa, attacker, pem;

async function hs256(claims = { user_id: 42 }, { exp = "5m", key = KEY, header = {} } = {}) {
  const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", ...header }).setIssuedAt(now() - 120);
  return keep(await jwt.setExpirationTime(exp).sign(key));
}

async function rs256(claims = { user_id: 7 }, { exp = "5m", key = rsa.privateKey, header = { kid: KID } } = {}) {
  const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", ...header }).setIssuedAt(now() - 120);
  return keep(await jwt.setExpirationTime(exp).sign(key));
}

// handMadeHS256 is what an attacker writes without a JWT library: a JWS
// whose HMAC key is whatever bytes they like (here, the server's public key).
function handMadeHS256(header, claims, secret) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${enc(header)}.${enc(claims)}`;
  return keep(`${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`);
}

function unsigned(alg) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return keep(`${enc({ alg, typ: "JWT" })}.${enc({ user_id: 42, exp: now() + 300 })}.`);
}

before(async () => {
  rsa = await jose.generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  attacker = await jose.generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  pem = await jose.exportSPKI(rsa.publicKey);
  const jwk = { ...(await jose.exportJWK(rsa.publicKey)), kid: KID, alg: "RS256", use: "sig" };
  const jwks = join(mkdtempSync(join(tmpdir(), "wssafe-jwks-")), "jwks.json");
  writeFileSync(jwks, JSON.stringify({ keys: [jwk] }));
  const timeout = ["-auth-timeout", `${AUTH_TIMEOUT_MS}ms`];
  hs = await startServer("secure", timeout, { WSSAFE_JWT_SECRET: SECRET });
  rs = await startServer("secure", [...timeout, "-jwks", jwks]);
});
after(killAll);

// firstMessage opens a socket without handshake credentials and sends
// token as the original Python client does.
async function firstMessage(srv, token) {
  const c = await connect(srv.url);
  c.ws.send(token);
  return c;
}

async function authenticatedEcho(c) {
  assert.equal(await c.next(), "Authenticated!");
  c.ws.send("hello");
  assert.equal(await c.next(), "Server received: hello");
  c.ws.close();
}

async function closesInvalid(c) {
  assert.deepEqual(await closeOf(c), { code: 3000, reason: "invalid token" });
}

async function closeOf(c, ms) {
  const { code, reason } = await c.closeWithin(ms);
  return { code, reason };
}

// refusedAtHandshake asserts RFC 6750's 401 for a bad handshake token.
async function refusedAtHandshake(srv, opts) {
  const r = await handshake(srv.url, opts);
  assert.equal(r.status, 401);
  assert.equal(r.headers["www-authenticate"], 'Bearer error="invalid_token"');
}

const bearer = (t) => ({ headers: { Authorization: `Bearer ${t}` } });

// failures returns how many auth failures srv has counted for reason.
async function failures(srv, reason) {
  return (await stats(srv)).auth_failed?.[reason] ?? 0;
}

test("first message: a valid token gets Authenticated!, then the echo", async () => {
  await authenticatedEcho(await firstMessage(hs, await hs256()));
});

test("first message: an expired token gets Token Expired, then 3000 token expired", async () => {
  const c = await firstMessage(hs, await hs256({ user_id: 42 }, { exp: now() - 60 }));
  assert.equal(await c.next(), "Token Expired");
  assert.deepEqual(await closeOf(c), { code: 3000, reason: "token expired" });
});

test("first message: a token signed with another secret closes 3000 invalid token", async () => {
  const before = await failures(hs, "signature");
  await closesInvalid(await firstMessage(hs, await hs256({ user_id: 42 }, { key: randomBytes(32) })));
  assert.equal(await failures(hs, "signature"), before + 1);
});

test("first message: text that is not a JWT closes 3000 invalid token", async () => {
  await closesInvalid(await firstMessage(hs, "hello, let me in"));
});

test("first message: a token without a subject closes 3000 invalid token", async () => {
  await closesInvalid(await firstMessage(hs, await hs256({ role: "admin" })));
});

test("first message: silence for -auth-timeout closes 3008", async () => {
  const c = await connect(hs.url);
  const { code, ms } = await c.closeWithin(AUTH_TIMEOUT_MS + 3000);
  assert.equal(code, 3008);
  assert.ok(ms >= AUTH_TIMEOUT_MS - 100, `closed after ${ms} ms, before the auth timeout`);
});

test("Authorization header: a valid token is authenticated at the handshake", async () => {
  await authenticatedEcho(await connect(hs.url, bearer(await hs256())));
});

test("Authorization header: a forged or expired token gets 401", async () => {
  const before = await failures(hs, "expired");
  await refusedAtHandshake(hs, bearer(await hs256({ user_id: 42 }, { key: randomBytes(32) })));
  await refusedAtHandshake(hs, bearer(await hs256({ user_id: 42 }, { exp: now() - 60 })));
  assert.equal(await failures(hs, "expired"), before + 1);
});

for (const order of ["wssafe first", "token first"]) {
  test(`subprotocol (${order}): authenticated, and the server selects wssafe, never the token entry`, async () => {
    const token = await hs256();
    const protocols = order === "wssafe first" ? ["wssafe", `bearer.${token}`] : [`bearer.${token}`, "wssafe"];
    const { client, res } = await handshake(hs.url, { protocols });
    assert.equal(res.headers["sec-websocket-protocol"], "wssafe");
    assert.equal(client.ws.protocol, "wssafe");
    await authenticatedEcho(client);
  });
}

test("subprotocol: a forged token gets 401", async () => {
  await refusedAtHandshake(hs, { protocols: ["wssafe", `bearer.${await hs256({ user_id: 42 }, { key: randomBytes(32) })}`] });
});

test("alg none, minted by jose's UnsecuredJWT, is refused at every door", async () => {
  const token = keep(new jose.UnsecuredJWT({ user_id: 42 }).setIssuedAt().setExpirationTime("5m").encode());
  const before = await failures(hs, "alg_none");
  await closesInvalid(await firstMessage(hs, token));
  await refusedAtHandshake(hs, bearer(token));
  await refusedAtHandshake(hs, { protocols: ["wssafe", `bearer.${token}`] });
  assert.equal(await failures(hs, "alg_none"), before + 3);
});

test("alg none in other spellings closes 3000 invalid token", async () => {
  const before = await failures(hs, "alg_none");
  for (const alg of ["None", "NONE", "nOnE"]) await closesInvalid(await firstMessage(hs, unsigned(alg)));
  assert.equal(await failures(hs, "alg_none"), before + 3);
});

test("a token in the query string is refused at the handshake: 401", async () => {
  const token = await hs256();
  queryTokens.push(token);
  const before = await failures(hs, "query_token");
  for (const param of ["access_token", "token", "jwt"]) {
    const r = await handshake(`${hs.url}/?${param}=${token}`);
    assert.equal(r.status, 401, param);
    assert.equal(r.headers["www-authenticate"], 'Bearer error="invalid_token"');
  }
  // Even beside a valid header token: the URL has already leaked it.
  const r = await handshake(`${hs.url}/?access_token=${token}`, bearer(token));
  assert.equal(r.status, 401);
  assert.equal(await failures(hs, "query_token"), before + 4);
});

test("a token that expires while the session is open closes 3000 token expired", async () => {
  const c = await firstMessage(hs, await hs256({ user_id: 42 }, { exp: now() + 2 }));
  assert.equal(await c.next(), "Authenticated!");
  assert.deepEqual(await closeOf(c, 4000), { code: 3000, reason: "token expired" });
});

test("the original Python client's token (secret_key, no exp) works only with both migration flags", async () => {
  const weakKey = new TextEncoder().encode("secret_key"); // the original client's published test secret
  const token = keep(await new jose.SignJWT({ user_id: 42 }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(weakKey));
  const weak = await startServer("secure", ["-allow-weak-secret", "-allow-missing-exp"], { WSSAFE_JWT_SECRET: "secret_key" });
  try {
    await authenticatedEcho(await firstMessage(weak, token));
    await closesInvalid(await firstMessage(hs, token)); // the defaults refuse it
  } finally {
    assert.equal((await stopServer(weak)).code, 0);
  }
  assert.match(weak.log(), /"event":"insecure_config"/);
});

test("JWK Set: an RS256 token from the listed key is authenticated (the control)", async () => {
  await authenticatedEcho(await firstMessage(rs, await rs256()));
  await authenticatedEcho(await connect(rs.url, bearer(await rs256())));
});

test("algorithm confusion: HS256 signed by jose with the RSA public key's PEM is refused", async () => {
  const token = await hs256({ user_id: 7 }, { key: new TextEncoder().encode(pem), header: { kid: KID } });
  const before = await failures(rs, "alg_not_allowed");
  await closesInvalid(await firstMessage(rs, token));
  await refusedAtHandshake(rs, bearer(token));
  await refusedAtHandshake(rs, { protocols: ["wssafe", `bearer.${token}`] });
  assert.equal(await failures(rs, "alg_not_allowed"), before + 3);
});

test("algorithm confusion built by hand with node's HMAC (PEM with and without newline, DER, JWK) is refused", async () => {
  const before = await failures(rs, "alg_not_allowed");
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  const jwkJSON = JSON.stringify(await jose.exportJWK(rsa.publicKey));
  const claims = { user_id: 7, exp: now() + 300 };
  for (const secret of [pem, pem.trimEnd(), der, jwkJSON]) {
    for (const header of [{ alg: "HS256", typ: "JWT" }, { alg: "HS256", typ: "JWT", kid: KID }]) {
      await closesInvalid(await firstMessage(rs, handMadeHS256(header, claims, secret)));
    }
  }
  assert.equal(await failures(rs, "alg_not_allowed"), before + 8);
});

test("a token that carries its own key in the header (jwk) is refused", async () => {
  const jwk = await jose.exportJWK(attacker.publicKey);
  const token = await rs256({ user_id: 7 }, { key: attacker.privateKey, header: { kid: KID, jwk } });
  const before = await failures(rs, "key_in_header");
  await closesInvalid(await firstMessage(rs, token));
  await refusedAtHandshake(rs, bearer(token));
  assert.equal(await failures(rs, "key_in_header"), before + 2);
});

test("RS256 signed by another key under the listed kid closes 3000 invalid token", async () => {
  await closesInvalid(await firstMessage(rs, await rs256({ user_id: 7 }, { key: attacker.privateKey })));
});

test("JWK Set: an expired RS256 token gets Token Expired, then 3000 token expired", async () => {
  const c = await firstMessage(rs, await rs256({ user_id: 7 }, { exp: now() - 60 }));
  assert.equal(await c.next(), "Token Expired");
  assert.deepEqual(await closeOf(c), { code: 3000, reason: "token expired" });
});

test("shutdown: both servers exit 0, and no token or secret is in their logs", async () => {
  for (const srv of [hs, rs]) {
    const { code, signal } = await stopServer(srv);
    assert.equal(signal, null);
    assert.equal(code, 0, srv.log());
    const log = srv.log();
    assert.match(log, /"event":"auth_failed"/);
    assert.ok(!log.includes(SECRET), "the HMAC secret is in the log");
    for (const token of queryTokens) assert.ok(!log.includes(token), "a query-string token is in the log");
    for (const token of minted) {
      const signature = token.split(".")[2];
      assert.ok(!log.includes(token), `a token is in the log of ${srv.name}: ${token.slice(0, 12)}...`);
      if (signature) assert.ok(!log.includes(signature), "a token's signature is in the log");
    }
  }
});
