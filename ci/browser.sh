#!/usr/bin/env bash
# The chat example end to end in Debian's headless Chromium, driven by
# playwright-core (pinned in examples/chat/e2e/package-lock.json; it never
# downloads a browser). Screenshots land in examples/chat/e2e/output/.
set -euo pipefail
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/chat" ./examples/chat
cd examples/chat/e2e
npm ci --no-audit --no-fund --loglevel=error
CHAT_BIN="$bin/chat" CHROMIUM=/usr/bin/chromium node --test --test-concurrency=1 chat.test.mjs
ls -l output/
