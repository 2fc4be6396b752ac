#!/usr/bin/env python3
"""wssafe's examples driven by Python's websockets and PyJWT.

Debian's python3-websockets (10.4, the legacy asyncio client) and
python3-jwt (PyJWT 2.6, with python3-cryptography for RS256) talk to the
real examples/echo and examples/secure binaries on loopback: the echo and
first-message protocols of the original Python example, handshake
authentication, and hostile frames and tokens. Each case asserts the close
code or HTTP status in the README's tables.

    ECHO_BIN=... SECURE_BIN=... python3 interop/python/interop.py

Without ECHO_BIN / SECURE_BIN the binaries are built with `go build`. The
last line is "N passed, N failed"; the exit status is non-zero on failure.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

import jwt
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
READ_LIMIT = 32 << 10   # the default read limit
AUTH_TIMEOUT = 0.8      # seconds, passed to examples/secure as -auth-timeout
MARK = "payload-marker-9d41"  # every payload carries it; no log line may
SECRET = base64.b64encode(secrets.token_bytes(32)).decode()  # fresh per run: a test value
KID = "interop-rsa"

MINTED = set()  # every token made here: none may reach a server's log
QUERY_TOKENS = []


def keep(token):
    MINTED.add(token)
    return token


# --- servers -----------------------------------------------------------------

_build_dir = None


def binary(name):
    """Path of the example's binary: $<NAME>_BIN, or built from this tree."""
    given = os.environ.get(name.upper() + "_BIN")
    if given:
        return given
    global _build_dir
    if _build_dir is None:
        _build_dir = tempfile.mkdtemp(prefix="wssafe-interop-py-")
    out = os.path.join(_build_dir, name)
    if not os.path.exists(out):
        subprocess.run(["go", "build", "-o", out, "./examples/" + name], cwd=ROOT, check=True)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An example binary on a kernel-chosen loopback port, with debug JSON
    logs captured (for the never-logged checks) and a stats endpoint."""

    def __init__(self, name, flags=(), secret=""):
        self.name = name
        self.stats_url = "http://127.0.0.1:%d" % free_port()
        args = [binary(name), "-addr", "127.0.0.1:0", "-log-level", "debug", "-log-format", "json",
                "-stats-addr", self.stats_url[len("http://"):], *flags]
        env = dict(os.environ, WSSAFE_JWT_SECRET=secret)
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.url = None
        self.listening = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.listening.wait(15) or self.url is None:
            self.proc.kill()
            raise RuntimeError("%s did not start:\n%s" % (name, self.log()))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("msg") == "listening" and rec.get("url") != self.stats_url:
                    self.origin = rec["url"]
                    self.url = "ws" + rec["url"][len("http"):]
                    self.listening.set()
        self.listening.set()  # exited before listening

    def log(self):
        return "".join(self.lines)

    def stats(self):
        with urllib.request.urlopen(self.stats_url + "/stats", timeout=5) as r:
            return json.load(r)

    def auth_failures(self, reason):
        return (self.stats().get("auth_failed") or {}).get(reason, 0)

    def stop(self):
        """SIGTERM; returns the exit status (0 after a graceful shutdown)
        once every line the server wrote has been read."""
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(15)
        self.reader.join(5)
        return code


# --- client helpers ----------------------------------------------------------

async def connect(url, **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return await websockets.connect(url, **kw)


async def refused(url, **kw):
    """The handshake's HTTP status and headers; fails if it was upgraded."""
    try:
        ws = await connect(url, **kw)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code, e.headers
    await ws.close()
    raise AssertionError("handshake was upgraded")


async def closed(ws, timeout=3.0):
    """Wait for the server to close ws; returns (code, reason)."""
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code, ws.close_reason


async def echoes(ws, text):
    await ws.send(text)
    got = await asyncio.wait_for(ws.recv(), 3)
    assert got == "Server received: " + text, got


def frame(b0, payload, masked=True):
    """One hand-made client frame (short payloads): first byte b0, masked
    unless masked is False."""
    assert len(payload) <= 125
    if not masked:
        return bytes([b0, len(payload)]) + payload
    mask = secrets.token_bytes(4)
    return bytes([b0, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw(ws, data):
    """Write bytes on the TCP connection under the WebSocket."""
    ws.transport.write(data)


class Counting(websockets.WebSocketClientProtocol):
    """websockets' client protocol, counting the bytes on its TCP
    connection in each direction: what compression saved is visible there."""

    read = written = 0

    def connection_made(self, transport):
        write = transport.write

        def counted(data):
            self.written += len(data)
            write(data)

        transport.write = counted  # the protocol writes every frame through it
        super().connection_made(transport)

    def data_received(self, data):
        self.read += len(data)
        super().data_received(data)


def chat_json(n):
    """n bytes of JSON lines like the chat's: repeated keys, varying values."""
    out, size, i = [], 0, 0
    while size < n:
        line = json.dumps({"type": "said", "from": "u-%024x" % (i * 7919), "name": "Ann",
                           "text": "line %d %s" % (i, MARK), "id": "%012x" % (i * 104729)}) + "\n"
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)[:n]


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def hs256(claims=None, secret=SECRET, exp=300):
    claims = dict(claims or {"user_id": 42})
    if exp is not None:
        claims["exp"] = int(time.time()) + exp
    return keep(jwt.encode(claims, secret, algorithm="HS256"))


def hand_made_hs256(header, claims, key):
    """An HS256 JWS built without a JWT library, as an attacker does."""
    signing_input = b64(header) + "." + b64(claims)
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return keep(signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode())


# --- the suite ---------------------------------------------------------------

TESTS = []


def case(fn):
    TESTS.append(fn)
    return fn


class Ctx:
    echo = echoz = secure = jwks = bystander = None
    rsa_key = attacker_key = pem = None


C = Ctx()


def setup():
    C.echo = Server("echo")
    C.echoz = Server("echo", ["-compression"])
    C.secure = Server("secure", ["-auth-timeout", "%dms" % int(AUTH_TIMEOUT * 1000)], secret=SECRET)
    C.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    C.attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = C.rsa_key.public_key()
    C.pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = json.loads(RSAAlgorithm.to_jwk(pub))
    jwk.update(kid=KID, alg="RS256", use="sig")
    C.jwks_dir = tempfile.mkdtemp(prefix="wssafe-interop-jwks-")
    path = os.path.join(C.jwks_dir, "jwks.json")
    with open(path, "w") as f:
        json.dump({"keys": [jwk]}, f)
    C.jwks = Server("secure", ["-auth-timeout", "%dms" % int(AUTH_TIMEOUT * 1000), "-jwks", path])


# examples/echo

@case
async def echo_protocol():
    """the echo protocol, and a normal close"""
    C.bystander = await connect(C.echo.url)
    ws = await connect(C.echo.url)
    await echoes(ws, "hello " + MARK)
    await echoes(ws, "xin chào " + MARK)
    await ws.close()
    assert ws.close_code == 1000


@case
async def echo_fragmented():
    """a fragmented message (websockets sends an iterable as fragments) is reassembled"""
    ws = await connect(C.echo.url)
    await ws.send([MARK, " in ", "three fragments"])
    assert await asyncio.wait_for(ws.recv(), 3) == "Server received: %s in three fragments" % MARK
    await ws.close()


@case
async def echo_read_limit_boundary():
    """exactly the read limit passes; one byte more closes 1009"""
    ws = await connect(C.echo.url, max_size=None)
    await echoes(ws, MARK + "x" * (READ_LIMIT - len(MARK)))
    await ws.send(MARK + "x" * (READ_LIMIT + 1 - len(MARK)))
    code, reason = await closed(ws)
    assert code == 1009, (code, reason)
    assert MARK not in reason


@case
async def echo_fragmented_oversized():
    """a fragmented message over the read limit closes 1009"""
    ws = await connect(C.echo.url)
    try:
        await ws.send([MARK + "y" * 8192] * 6)
    except websockets.exceptions.ConnectionClosed:
        pass  # the server cut it off mid-message
    code, _ = await closed(ws)
    assert code == 1009, code


@case
async def echo_origin():
    """the server's own Origin passes; a foreign Origin gets HTTP 403"""
    ws = await connect(C.echo.url, origin=C.echo.origin)
    await echoes(ws, MARK)
    await ws.close()
    status, _ = await refused(C.echo.url, origin="https://evil.example")
    assert status == 403, status


@case
async def echo_binary():
    """a binary message on the text-only echo closes 1003"""
    ws = await connect(C.echo.url)
    await ws.send(MARK.encode())
    code, _ = await closed(ws)
    assert code == 1003, code


@case
async def echo_unmasked():
    """an unmasked client frame closes 1002"""
    ws = await connect(C.echo.url)
    raw(ws, frame(0x81, MARK.encode(), masked=False))
    code, _ = await closed(ws)
    assert code == 1002, code


@case
async def echo_reserved_bits():
    """frames with RSV1 (nothing negotiated), RSV2 or RSV3 close 1002"""
    for b0 in (0xC1, 0xA1, 0x91):
        ws = await connect(C.echo.url)
        raw(ws, frame(b0, MARK.encode()))
        code, _ = await closed(ws)
        assert code == 1002, (hex(b0), code)


@case
async def echo_invalid_utf8():
    """a text frame that is not UTF-8 (sent with websockets' write_frame) closes 1007"""
    ws = await connect(C.echo.url)
    await ws.write_frame(True, 0x1, MARK.encode() + b"\xc3\x28\xff")
    code, reason = await closed(ws)
    assert (code, reason) == (1007, "invalid utf-8"), (code, reason)


@case
async def echo_ping_flood():
    """a ping flood closes 1008"""
    ws = await connect(C.echo.url)
    before = (C.echo.stats().get("limit_hits") or {}).get("ping_flood", 0)
    pongs = []
    try:
        for i in range(100):
            pongs.append(await ws.ping(b"%d" % i))
    except websockets.exceptions.ConnectionClosed:
        pass
    code, reason = await closed(ws)
    for p in pongs:  # the unanswered pings failed with the close: collect them
        if p.done():
            p.exception()
        else:
            p.cancel()
    assert (code, reason) == (1008, "ping rate exceeded"), (code, reason)
    assert C.echo.stats()["limit_hits"]["ping_flood"] == before + 1


@case
async def echo_no_compression():
    """without -compression, websockets' permessage-deflate offer (its default) is not answered"""
    ws = await connect(C.echo.url, create_protocol=Counting)
    assert ws.extensions == [], ws.extensions
    assert "Sec-WebSocket-Extensions" not in ws.response_headers, ws.response_headers
    text = MARK + "z" * 4096
    before = ws.written
    await echoes(ws, text)
    assert ws.written - before > len(text), "websockets compressed on a session that negotiated nothing"
    await ws.close()


@case
async def echo_bystander_and_shutdown():
    """the bystander was unaffected; shutdown sends it 1001; exit 0; no payload logged"""
    await echoes(C.bystander, "still here " + MARK)
    code = await asyncio.to_thread(C.echo.stop)  # the loop must stay free to answer the close
    bcode, _ = await closed(C.bystander, 10)
    assert bcode == 1001, bcode
    assert code == 0, C.echo.log()
    assert MARK not in C.echo.log(), "a payload reached the log"


# examples/echo -compression

@case
async def compression_negotiated():
    """-compression: the offer is answered with permessage-deflate without context takeover"""
    ws = await connect(C.echoz.url)
    header = ws.response_headers["Sec-WebSocket-Extensions"]
    params = [p.strip() for p in header.split(";")]
    assert params[0] == "permessage-deflate", header
    assert "server_no_context_takeover" in params and "client_no_context_takeover" in params, header
    [ext] = ws.extensions
    assert ext.name == "permessage-deflate", ext
    assert ext.remote_no_context_takeover and ext.local_no_context_takeover, vars(ext)
    await ws.close()


@case
async def compression_client_to_server():
    """a large message from websockets travels compressed and is inflated by the server"""
    ws = await connect(C.echoz.url, create_protocol=Counting)
    text = chat_json(16 << 10)
    before, written = C.echoz.stats()["traffic"]["bytes_in"], ws.written
    await echoes(ws, text)
    written = ws.written - written
    assert written < len(text) / 4, "websockets wrote %d bytes for a %d-byte message" % (written, len(text))
    inflated = C.echoz.stats()["traffic"]["bytes_in"] - before
    assert inflated == len(text), "the server counted %d bytes in, not the inflated %d" % (inflated, len(text))
    await ws.close()


@case
async def compression_server_to_client():
    """a large reply travels compressed: fewer bytes on the socket than its payload; a short one does not"""
    ws = await connect(C.echoz.url, create_protocol=Counting)
    text = chat_json(16 << 10)
    reply = len("Server received: ") + len(text)
    read = ws.read
    await echoes(ws, text)
    read = ws.read - read
    assert read < reply / 4, "websockets read %d bytes for a %d-byte reply" % (read, reply)
    short = "x" * 400  # the reply stays under the server's 512-byte threshold
    read = ws.read
    await echoes(ws, short)
    read = ws.read - read
    assert read >= len("Server received: ") + len(short), "a %d-byte reply took %d bytes" % (len(short) + 17, read)
    await ws.close()


@case
async def compression_fragmented_and_limit():
    """a compressed message in fragments is reassembled; the read limit counts inflated bytes (1009)"""
    ws = await connect(C.echoz.url, create_protocol=Counting, max_size=None)
    part = chat_json(4 << 10)
    await ws.send([part, part, part])
    assert await asyncio.wait_for(ws.recv(), 3) == "Server received: " + part * 3
    written = ws.written
    await echoes(ws, MARK + "x" * (READ_LIMIT - len(MARK)))
    assert ws.written - written < READ_LIMIT / 10, "%d bytes written" % (ws.written - written)
    await ws.send(MARK + "x" * (READ_LIMIT + 1 - len(MARK)))  # a few hundred bytes on the wire
    code, reason = await closed(ws)
    assert code == 1009, (code, reason)
    assert MARK not in reason


@case
async def compression_shutdown():
    """the -compression echo exits 0 and logged no payload"""
    code = await asyncio.to_thread(C.echoz.stop)
    assert code == 0, C.echoz.log()
    assert MARK not in C.echoz.log(), "a payload reached the log"


# examples/secure, HS256

async def first_message(server, token):
    ws = await connect(server.url)
    await ws.send(token)
    return ws


async def authenticated_echo(ws):
    assert await asyncio.wait_for(ws.recv(), 3) == "Authenticated!"
    await echoes(ws, "hello")
    await ws.close()


async def closes_invalid(ws):
    got = await closed(ws)
    assert got == (3000, "invalid token"), got


async def refused_401(server, **kw):
    status, headers = await refused(server.url, **kw)
    assert status == 401, status
    assert headers.get("WWW-Authenticate") == 'Bearer error="invalid_token"', headers


def bearer(token):
    return {"extra_headers": {"Authorization": "Bearer " + token}}


@case
async def secure_first_message():
    """first message: a valid PyJWT token gets Authenticated!, then the echo"""
    await authenticated_echo(await first_message(C.secure, hs256()))


@case
async def secure_expired():
    """first message: expired gets Token Expired, then 3000 token expired"""
    ws = await first_message(C.secure, hs256(exp=-60))
    assert await asyncio.wait_for(ws.recv(), 3) == "Token Expired"
    got = await closed(ws)
    assert got == (3000, "token expired"), got


@case
async def secure_invalid():
    """first message: another secret, or not a JWT, closes 3000 invalid token"""
    await closes_invalid(await first_message(C.secure, hs256(secret=secrets.token_hex(32))))
    await closes_invalid(await first_message(C.secure, "let me in"))


@case
async def secure_auth_timeout():
    """first message: silence for -auth-timeout closes 3008"""
    ws = await connect(C.secure.url)
    start = time.monotonic()
    code, _ = await closed(ws, AUTH_TIMEOUT + 3)
    assert code == 3008, code
    assert time.monotonic() - start >= AUTH_TIMEOUT - 0.1


@case
async def secure_header():
    """Authorization: Bearer authenticates at the handshake; a forged or expired one gets 401"""
    await authenticated_echo(await connect(C.secure.url, **bearer(hs256())))
    await refused_401(C.secure, **bearer(hs256(secret=secrets.token_hex(32))))
    await refused_401(C.secure, **bearer(hs256(exp=-60)))


@case
async def secure_subprotocol():
    """subprotocols wssafe + bearer.<jwt>: authenticated, wssafe selected, the token never echoed"""
    token = hs256()
    ws = await connect(C.secure.url, subprotocols=["wssafe", "bearer." + token])
    assert ws.subprotocol == "wssafe", ws.subprotocol
    assert ws.response_headers.get_all("Sec-WebSocket-Protocol") == ["wssafe"]
    await authenticated_echo(ws)
    await refused_401(C.secure, subprotocols=["wssafe", "bearer." + hs256(secret=secrets.token_hex(32))])


@case
async def secure_alg_none():
    """alg none from PyJWT is refused: 3000 as a first message, 401 at the handshake"""
    token = keep(jwt.encode({"user_id": 42, "exp": int(time.time()) + 300}, None, algorithm="none"))
    before = C.secure.auth_failures("alg_none")
    await closes_invalid(await first_message(C.secure, token))
    await refused_401(C.secure, **bearer(token))
    assert C.secure.auth_failures("alg_none") == before + 2


@case
async def secure_query_token():
    """?access_token=<valid jwt> is refused at the handshake with 401, even beside a valid header"""
    token = hs256()
    QUERY_TOKENS.append(token)
    for url in (C.secure.url + "/?access_token=" + token, C.secure.url + "/?token=" + token):
        status, headers = await refused(url)
        assert status == 401, status
        assert headers.get("WWW-Authenticate") == 'Bearer error="invalid_token"', headers
    status, _ = await refused(C.secure.url + "/?access_token=" + token, **bearer(token))
    assert status == 401, status


# examples/secure with a JWK Set holding an RSA public key

@case
async def jwks_rs256():
    """an RS256 token from PyJWT under the listed key is authenticated (the control)"""
    token = keep(jwt.encode({"user_id": 7, "exp": int(time.time()) + 300}, C.rsa_key, algorithm="RS256",
                            headers={"kid": KID}))
    await authenticated_echo(await first_message(C.jwks, token))


@case
async def jwks_alg_confusion():
    """HS256 with the RSA public key as the HMAC secret (PyJWT refuses to make one; built by hand) is refused"""
    try:
        jwt.encode({"user_id": 7}, C.pem, algorithm="HS256")
        raise AssertionError("PyJWT signed HS256 with a PEM public key")
    except jwt.exceptions.InvalidKeyError:
        pass
    claims = {"user_id": 7, "exp": int(time.time()) + 300}
    before = C.jwks.auth_failures("alg_not_allowed")
    for key in (C.pem, C.pem.rstrip(b"\n")):
        token = hand_made_hs256({"alg": "HS256", "typ": "JWT", "kid": KID}, claims, key)
        await closes_invalid(await first_message(C.jwks, token))
        await refused_401(C.jwks, **bearer(token))
    assert C.jwks.auth_failures("alg_not_allowed") == before + 4


@case
async def jwks_other_key_and_expired():
    """RS256 by another key under the listed kid: 3000 invalid token; expired: Token Expired + 3000"""
    forged = keep(jwt.encode({"user_id": 7, "exp": int(time.time()) + 300}, C.attacker_key, algorithm="RS256",
                             headers={"kid": KID}))
    await closes_invalid(await first_message(C.jwks, forged))
    expired = keep(jwt.encode({"user_id": 7, "exp": int(time.time()) - 60}, C.rsa_key, algorithm="RS256",
                              headers={"kid": KID}))
    ws = await first_message(C.jwks, expired)
    assert await asyncio.wait_for(ws.recv(), 3) == "Token Expired"
    assert await closed(ws) == (3000, "token expired")


@case
async def secure_shutdown_and_logs():
    """both secure servers exit 0, and no token (nor the secret) is in their logs"""
    for srv in (C.secure, C.jwks):
        code = await asyncio.to_thread(srv.stop)
        assert code == 0, srv.log()
        log = srv.log()
        assert '"event":"auth_failed"' in log
        assert SECRET not in log, "the HMAC secret is in the log"
        for token in QUERY_TOKENS:
            assert token not in log, "a query-string token is in the log"
        for token in MINTED:
            assert token not in log, "a token is in the log of %s" % srv.name
            sig = token.split(".")[2]
            assert not sig or sig not in log, "a token's signature is in the log"


async def run_all():
    """Runs the cases in order on one event loop (the bystander's connection
    lives across cases); returns (passed, failed)."""
    passed = failed = 0
    for fn in TESTS:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(fn(), 30)
            passed += 1
            print("ok   %-28s %5.0f ms  %s" % (fn.__name__, (time.monotonic() - t0) * 1000, fn.__doc__), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-28s %s" % (fn.__name__, fn.__doc__))
            traceback.print_exc(file=sys.stdout)
    return passed, failed


def main():
    passed = failed = 0
    start = time.monotonic()
    try:
        setup()
        passed, failed = asyncio.run(run_all())
    except Exception:
        failed += 1
        print("FAIL setup")
        traceback.print_exc(file=sys.stdout)
    finally:
        for srv in (C.echo, C.echoz, C.secure, C.jwks):
            if srv is not None and srv.proc.poll() is None:
                srv.proc.kill()
        for d in (_build_dir, getattr(C, "jwks_dir", None)):
            if d:
                shutil.rmtree(d, ignore_errors=True)
    print("python interop: websockets %s, PyJWT %s, %.1f s" % (websockets.__version__, jwt.__version__,
                                                               time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
