#!/usr/bin/env bash
# Builds examples/echo, starts it on loopback and talks to it with Python's
# websockets: the seed's protocol must work for clients we did not write.
set -euo pipefail
bin=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/echo" ./examples/echo
addr=127.0.0.1:18765
"$bin/echo" -addr "$addr" -log-level warn &
pid=$!
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/18765) 2>/dev/null && break
	sleep 0.1
done
/usr/bin/python3 examples/echo/client.py "ws://$addr"
kill -TERM "$pid"
wait "$pid"
echo "examples/echo: python websockets client passed; graceful shutdown exit 0"
