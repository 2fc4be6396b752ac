#!/usr/bin/env bash
# Interop: the examples built from this tree, driven over loopback by real
# clients nobody on this team wrote: Node's ws and jose (pinned in
# interop/node/package-lock.json) and Debian's Python websockets and PyJWT.
# .ci/run calls it; it takes about 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

t0=$SECONDS
go build -o "$bin/echo" ./examples/echo
go build -o "$bin/secure" ./examples/secure
export ECHO_BIN="$bin/echo" SECURE_BIN="$bin/secure"
echo "interop: built the examples in $((SECONDS - t0)) s"

t0=$SECONDS
echo "--- Node $(node --version): ws and jose"
(
	cd interop/node
	npm ci --no-audit --no-fund --loglevel=error
	node --test --test-concurrency=1 echo.test.mjs auth.test.mjs compression.test.mjs
)
echo "interop: node suite in $((SECONDS - t0)) s"

t0=$SECONDS
echo "--- Python: websockets and PyJWT"
/usr/bin/python3 interop/python/interop.py
echo "interop: python suite in $((SECONDS - t0)) s"
