#!/usr/bin/env bash
# Runs the peer comparison and prints its tables: wssafe (every guard on),
# bare coder/websocket (the base of every ratio), gorilla/websocket,
# lxzan/gws, lesismal/nbio and a raw TCP echo (the ceiling), over loopback:
# echo rate, latency, CPU and allocations per message; memory per idle
# connection (wssafe also authenticated, as wssafe-hs256; nbio, on epoll
# without a goroutine per connection, is the floor); the handshake rate of
# wssafe plain, wssafe with HS256 first-message authentication, and bare
# coder; and broadcast fan-out (wssafe's Hub.Broadcast, bare coder,
# gorilla with PreparedMessage, gws's Broadcaster, nbio), paced (server CPU
# per delivery) and saturated (deliveries/s); and the cluster: Hub.Publish
# to a topic on a single node without a backplane and through a Redis
# backplane (a redis-server of its own, on a free port, no persistence) on
# 1, 2 and 3 node processes, subscribers spread over the nodes: local and
# cross-node latency, deliveries/s (skipped with a message when there is no
# redis-server binary). The full run then adds the
# Go benchmarks (echo over a pipe and loopback, the server loop alone,
# handshakes with HS256/RS256/ES256/EdDSA first-message tokens, typed JSON,
# the refused handshake, and Hub.Publish's cost with a Redis backplane vs
# none, in 5 interleaved rounds). The full run's echo also measures wssafe
# with each metrics adapter wired and scraped every second (wssafe-prom,
# wssafe-otel), and its Go benchmarks their cost per message against none
# (BenchmarkMetricsCost and BenchmarkMetricsObserve, 5 interleaved rounds).
#
#   bench/run.sh                 full run, about 30 minutes on 2 cores:
#                                echo and handshakes (7 rounds), idle memory
#                                at 10,000 connections (3 rounds), broadcast
#                                to 1000 and 5000 subscribers (3 rounds),
#                                cluster with 60 and 600 subscribers (3 rounds)
#   BENCH_COMPRESSION=1 bench/run.sh
#                                compression on vs off with the chat
#                                example's JSON messages: echo, memory per
#                                session, broadcast; about 10 minutes
#   BENCH_QUICK=1 bench/run.sh   one short round of each, reduced sizes
#                                (1000 idle connections, 200 subscribers,
#                                60 in the cluster),
#                                under two minutes (CI; the numbers are
#                                informative, never a gate)
#
# The server (in the cluster runs every node and redis-server) is pinned to
# CPU 0 and the load generator to CPU 1 when taskset and a second CPU are
# available. Results (the tables and every run as JSON)
# are written to bench/results/ (BENCH_OUT overrides). Extra arguments go
# to every invocation of the load tool.
set -euo pipefail
cd "$(dirname "$0")"

out=${BENCH_OUT:-results}
mkdir -p "$out"
go build -o "$out/server" ./cmd/server
go build -o "$out/load" ./cmd/load

# The idle and broadcast runs hold thousands of connections: one file
# descriptor each in the load tool and in the server (which inherits it).
need=$([ -n "${BENCH_QUICK:-}" ] && echo 4096 || echo 16384)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
		echo "run.sh: the open-file limit is $(ulimit -n) (hard $(ulimit -Hn)); the idle and broadcast runs need $need" >&2
		exit 1
	fi
fi

if [ -n "${BENCH_COMPRESSION:-}" ]; then
	# Compression on vs off with the chat example's JSON messages (see
	# PERFORMANCE.md, "Compression"): echo, memory per session idle and
	# after one message (context takeover at 2,000 sessions: it holds a
	# compressor each), broadcast to 1000 subscribers. About 10 minutes.
	runs=(
		"-mode echo -idle 0 -rounds 5 -duration 1500ms -warmup 300ms -attempts 2 -payload chat -sizes 1,1024 -base wssafe -impls wssafe,wssafe-deflate,wssafe-deflate-all,wssafe-deflate-ctx"
		"-mode idle -idle 10000 -idle-message -rounds 3 -base wssafe -idle-impls wssafe,wssafe-deflate"
		"-mode idle -idle 2000 -idle-message -rounds 3 -base wssafe -idle-impls wssafe,wssafe-deflate,wssafe-deflate-ctx"
		"-mode broadcast -subs 1000 -rounds 3 -duration 2s -warmup 500ms -attempts 2 -payload chat -fanout-sizes 16,1024 -paced-rate 10000 -base wssafe -fanout-impls wssafe,wssafe-deflate,wssafe-deflate-all,wssafe-deflate-ctx"
	)
	jsons=(compress-echo.json compress-idle.json compress-idle-ctx.json compress-broadcast.json)
elif [ -n "${BENCH_QUICK:-}" ]; then
	runs=("-mode all -rounds 1 -duration 1s -warmup 200ms -idle 1000 -subs 200 -cluster-subs 60 -attempts 1")
	jsons=(results.json)
else
	runs=(
		"-mode echo,handshake -idle 0 -rounds 7 -duration 1500ms -warmup 300ms -impls wssafe,wssafe-prom,wssafe-otel,coder,gorilla,gws,tcp"
		"-mode idle -idle 10000 -rounds 3"
		"-mode broadcast -rounds 3 -duration 2s -warmup 500ms -attempts 2"
		"-mode cluster -rounds 3 -duration 2s -warmup 500ms -attempts 2"
	)
	jsons=(results.json idle.json broadcast.json cluster.json)
fi
args=()
client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
	args=(-server-cpus 0)
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
for i in "${!runs[@]}"; do
	# shellcheck disable=SC2086 # each entry is a list of flags
	"${client[@]}" "$out/load" -server "$out/server" -json "$out/${jsons[$i]}" ${runs[$i]} "${args[@]}" "$@" | tee -a "$out/table.md"
done

if [ -z "${BENCH_QUICK:-}" ] && [ -z "${BENCH_COMPRESSION:-}" ]; then
	echo
	echo "Go benchmarks (in-process, on one CPU). Echo: allocs/op is the server's, the client allocates nothing."
	echo "Handshake: allocs/op includes the client's HTTP handshake, the same in every row."
	pin=()
	if [ ${#client[@]} -gt 0 ]; then
		pin=(taskset -c 0)
	fi
	# A test binary carries no dependency versions, so wssafe cannot tell
	# the coder/websocket it links and would fall back to coder's writes:
	# name the version, as a built server knows it from its build info.
	coder=$(go list -m -f '{{.Version}}' github.com/coder/websocket)
	go test -c -ldflags="-X=github.com/wssafe/wssafe.linkedCoder=$coder" -o "$out/bench.test" .
	{
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench 'ServerLoop' -test.benchtime 1000000x -test.count 3 -test.benchmem
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench 'Echo|RefusedHandshake|JSON' -test.benchtime 20000x -test.benchmem
		"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkHandshake$' -test.benchtime 3000x -test.count 3 -test.benchmem
		# Interleaved: each round runs every case once, on one CPU (the
		# subscribers' writes run while the timer is stopped).
		for _ in 1 2 3 4 5; do
			"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkClusterPublish$' -test.cpu 1 -test.benchtime 300000x -test.benchmem
		done
		for _ in 1 2 3 4 5; do
			"${pin[@]}" "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkMetrics(Cost|Observe)$' -test.cpu 1 -test.benchtime 300000x -test.benchmem
		done
	} | tee "$out/gobench.txt"
fi
