#!/usr/bin/env python3
"""The original Python client for examples/secure (websockets + PyJWT).

It sends a JWT carrying a user_id as its first message, prints the reply
("Authenticated!" or "Token Expired"), then sends a few messages and prints
what the server answers.

    # the defaults: a strong secret, a token with exp
    export WSSAFE_JWT_SECRET=$(openssl rand -base64 32)
    go run ./examples/secure &
    python3 examples/secure/client.py

    # the original client unchanged: secret 'secret_key', a token without exp
    WSSAFE_JWT_SECRET=secret_key go run ./examples/secure -allow-weak-secret -allow-missing-exp &
    WSSAFE_JWT_SECRET=secret_key python3 examples/secure/client.py --no-exp
"""
import asyncio
import os
import sys
import time

import jwt
import websockets


async def secure_client(uri, secret, user_id, with_exp):
    claims = {'user_id': user_id}
    if with_exp:
        claims['exp'] = int(time.time()) + 300
    token = jwt.encode(claims, secret, algorithm='HS256')
    async with websockets.connect(uri) as websocket:
        try:
            await websocket.send(token)
            print(await websocket.recv())
            for message in ("hello", "xin chào"):
                await websocket.send(message)
                print(await websocket.recv())
        except websockets.exceptions.ConnectionClosed as e:
            frame = e.rcvd
            print("closed:", frame.code if frame else None, frame.reason if frame else "")
            return 1
    return 0


def main():
    secret = os.environ.get("WSSAFE_JWT_SECRET", "secret_key")
    uri = os.environ.get("WSSAFE_URL", "ws://localhost:8888")
    return asyncio.run(secure_client(uri, secret, 42, "--no-exp" not in sys.argv))


if __name__ == "__main__":
    sys.exit(main())
