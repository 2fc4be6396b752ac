#!/usr/bin/env python3
"""A client for examples/echo written with Python's `websockets`, as the
original Python example's users would write it. Exits non-zero unless the
server answers every text message M with "Server received: M" and refuses a
binary message with close code 1003.

    python3 examples/echo/client.py ws://127.0.0.1:8765
"""
import asyncio
import sys

import websockets


async def main(uri: str) -> None:
    async with websockets.connect(uri) as ws:
        for msg in ["Hello, server!", "xin chào"]:
            await ws.send(msg)
            reply = await ws.recv()
            assert reply == f"Server received: {msg}", reply
            print(reply)
    async with websockets.connect(uri) as ws:
        await ws.send(b"\x00\x01")
        try:
            await ws.recv()
            raise SystemExit("binary message was not refused")
        except websockets.exceptions.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1003, e
            print("binary refused with", e.rcvd.code)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765"))
