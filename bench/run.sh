#!/usr/bin/env bash
# Runs the peer comparison and prints its tables: wssafe (every guard on),
# bare coder/websocket (the base of every ratio), gorilla/websocket,
# lxzan/gws and a raw TCP echo (the ceiling), over loopback: echo rate,
# latency, CPU and allocations per message; memory per idle connection
# (wssafe also authenticated, as wssafe-hs256); and the handshake rate of
# wssafe plain, wssafe with HS256 first-message authentication, and bare
# coder. The full run then adds the Go benchmarks (echo over a pipe and
# loopback, the server loop alone, handshakes with HS256/RS256/ES256/EdDSA
# first-message tokens, typed JSON, the refused handshake).
#
#   bench/run.sh                 full run, about 11 minutes on 2 cores
#   BENCH_QUICK=1 bench/run.sh   one short round, under a minute (CI)
#
# The server is pinned to CPU 0 and the load generator to CPU 1 when taskset
# and a second CPU are available. Results (the table and every run as JSON)
# are written to bench/results/ (BENCH_OUT overrides).
set -euo pipefail
cd "$(dirname "$0")"

out=${BENCH_OUT:-results}
mkdir -p "$out"
go build -o "$out/server" ./cmd/server
go build -o "$out/load" ./cmd/load

if [ -n "${BENCH_QUICK:-}" ]; then
	args=(-mode all -rounds 1 -duration 1s -warmup 200ms -idle 200 -attempts 1)
else
	args=(-mode all -rounds 7 -duration 1500ms -warmup 300ms -idle 1000)
fi

client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
	args+=(-server-cpus 0)
	client=(taskset -c 1)
	pinning="server on CPU 0, load on CPU 1"
else
	pinning="not pinned (no taskset or a single CPU)"
fi

{
	echo "# wssafe peer comparison"
	echo
	echo "$(go version), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $pinning."
} | tee "$out/table.md"
"${client[@]}" "$out/load" -server "$out/server" -json "$out/results.json" "${args[@]}" "$@" | tee -a "$out/table.md"

if [ -z "${BENCH_QUICK:-}" ]; then
	echo
	echo "Go benchmarks (in-process, on one CPU). Echo: allocs/op is the server's, the client allocates nothing."
	echo "Handshake: allocs/op includes the client's HTTP handshake, the same in every row."
	pin=()
	if [ ${#client[@]} -gt 0 ]; then
		pin=(taskset -c 0)
	fi
	go test -c -o "$out/bench.test" .
	{
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench 'ServerLoop' -test.benchtime 1000000x -test.count 3 -test.benchmem
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench 'Echo|RefusedHandshake|JSON' -test.benchtime 20000x -test.benchmem
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkHandshake$' -test.benchtime 3000x -test.count 3 -test.benchmem
	} | tee "$out/gobench.txt"
fi
