#!/usr/bin/env bash
# Installs the Debian packages the checks use, only when they are missing.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
/usr/bin/python3 -c 'import jwt' 2>/dev/null || need+=(python3-jwt)
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography) # PyJWT's RS256
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v jq >/dev/null || need+=(jq)
command -v redis-server >/dev/null || need+=(redis-server) # the Redis backplane's and the chat cluster's tests
command -v make >/dev/null || need+=(make) # the README's test command
command -v promtool >/dev/null || need+=(prometheus) # promtool: checks the examples' /metrics
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
go version
/usr/bin/python3 -c 'import websockets; print("python websockets", websockets.__version__)'
/usr/bin/chromium --version
node --version
redis-server --version
promtool --version 2>&1 | head -1
