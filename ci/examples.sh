#!/usr/bin/env bash
# Builds the examples, starts each on loopback and talks to it with Python
# clients (websockets, PyJWT): the original Python example's protocols must
# work for clients this project did not write, and each server must shut
# down cleanly.
set -euo pipefail
bin=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$bin"' EXIT
go build -o "$bin/echo" ./examples/echo
go build -o "$bin/secure" ./examples/secure

wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listening on port $1" >&2
	return 1
}

stop() { # stop PID: SIGTERM, and the exit status must be 0
	kill -TERM "$1"
	wait "$1"
}

echo "--- examples/echo with python websockets"
"$bin/echo" -addr 127.0.0.1:18765 -log-level warn &
pid=$!; pids+=("$pid")
wait_port 18765
/usr/bin/python3 examples/echo/client.py ws://127.0.0.1:18765
stop "$pid"

echo "--- examples/echo -stats-addr: /metrics passes promtool check metrics"
if command -v promtool >/dev/null; then
	"$bin/echo" -addr 127.0.0.1:18766 -stats-addr 127.0.0.1:18767 -log-level error &
	pid=$!; pids+=("$pid")
	wait_port 18766
	wait_port 18767
	/usr/bin/python3 examples/echo/client.py ws://127.0.0.1:18766 >/dev/null
	/usr/bin/python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
		http://127.0.0.1:18767/metrics >"$bin/metrics"
	grep -q '^wssafe_handshakes_accepted_total 2$' "$bin/metrics" # the client's two sessions
	promtool check metrics <"$bin/metrics"
	if /usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1])' http://127.0.0.1:18766/metrics 2>/dev/null; then
		echo "the public listener served /metrics" >&2; exit 1
	fi
	stop "$pid"
elif [ "${CI:-}" = true ]; then
	echo "promtool is missing (ci/deps.sh installs Debian's prometheus package)" >&2; exit 1
else
	echo "skipped: no promtool (apt-get install prometheus)"
fi

echo "--- examples/secure, defaults: strong secret, token with exp"
secret=$(head -c 32 /dev/urandom | base64)
WSSAFE_JWT_SECRET="$secret" "$bin/secure" -addr 127.0.0.1:18888 -log-level warn &
pid=$!; pids+=("$pid")
wait_port 18888
out=$(WSSAFE_URL=ws://127.0.0.1:18888 WSSAFE_JWT_SECRET="$secret" /usr/bin/python3 examples/secure/client.py)
echo "$out"
grep -qx 'Authenticated!' <<<"$out"
grep -qx 'Server received: hello' <<<"$out"
echo "--- the original client's token (no exp) is refused by the defaults"
out=$(WSSAFE_URL=ws://127.0.0.1:18888 WSSAFE_JWT_SECRET="$secret" /usr/bin/python3 examples/secure/client.py --no-exp || true)
echo "$out"
grep -q 'closed: 3000 invalid token' <<<"$out"
stop "$pid"

echo "--- examples/secure with both migration flags: the original Python client unchanged"
WSSAFE_JWT_SECRET=secret_key "$bin/secure" -addr 127.0.0.1:18889 -allow-weak-secret -allow-missing-exp -log-level error &
pid=$!; pids+=("$pid")
wait_port 18889
out=$(WSSAFE_URL=ws://127.0.0.1:18889 WSSAFE_JWT_SECRET=secret_key /usr/bin/python3 examples/secure/client.py --no-exp)
echo "$out"
grep -qx 'Authenticated!' <<<"$out"
stop "$pid"

echo "--- examples/secure without a key exits non-zero with one line"
if WSSAFE_JWT_SECRET= "$bin/secure" -addr 127.0.0.1:18890 2>"$bin/err"; then
	echo "secure started without a key" >&2; exit 1
fi
cat "$bin/err"
[ "$(wc -l <"$bin/err")" -eq 1 ]
echo "examples: all client checks passed"
