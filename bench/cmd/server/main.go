// Command server runs one echo implementation for the load tool:
//
//	server -impl wssafe|coder|gorilla|gws|nbio|tcp|rawread [-fanout] [-addr 127.0.0.1:0] [-debug-addr 127.0.0.1:0]
//	server -topic [-redis URL -node ID -prefix P] [-addr ...] [-debug-addr ...]
//
// It prints "ws=ADDR debug=ADDR" on its first line of stdout once both
// listeners are up, serves the echo on ADDR (path /, or raw TCP for -impl
// tcp; -impl rawread is the read-path prototype of internal/rawread, not
// a peer), and on the debug address serves /mem: Go memory statistics as
// JSON (?gc=1 runs a garbage collection first), and /debug/pprof/ for
// CPU and heap profiles under load. It exits on SIGINT/SIGTERM.
//
// With -fanout every connection is a broadcast subscriber instead (see
// peers.Fanout), and the debug address serves /broadcast, which drives the
// broadcast for the load tool (see broadcastControl).
//
// With -topic the server is one node of wssafe's topic fan-out (see
// clusterNode): every connection joins one topic, the broadcast publishes
// to it with Hub.Publish, and with -redis the node joins the other nodes
// of a cluster through the Redis backplane (github.com/wssafe/wssafe/redis),
// its cluster key taken from $WSSAFE_BENCH_CLUSTER_KEY. The debug address
// then also serves /probe and /backplane.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"
	"time"

	"github.com/wssafe/wssafe/bench/internal/rawread"
	"github.com/wssafe/wssafe/bench/peers"
)

func main() {
	impl := flag.String("impl", "wssafe", "implementation: one of wssafe, wssafe-hs256, wssafe-prom, wssafe-otel, wssafe-deflate, wssafe-deflate-all, wssafe-deflate-ctx, coder, gorilla, gws, nbio, tcp")
	fanout := flag.Bool("fanout", false, "serve broadcast subscribers instead of the echo (wssafe, wssafe-deflate..., coder, gorilla, gws, nbio)")
	addr := flag.String("addr", "127.0.0.1:0", "echo listen address")
	debugAddr := flag.String("debug-addr", "127.0.0.1:0", "debug (memory statistics) listen address")
	topic := flag.Bool("topic", false, "serve wssafe topic subscribers, broadcast with Hub.Publish (implies -fanout, ignores -impl)")
	redisURL := flag.String("redis", "", "with -topic: join a cluster through the Redis backplane at this URL")
	node := flag.String("node", "", "with -redis: this node's ID (empty: random)")
	prefix := flag.String("prefix", "", "with -redis: the backplane's channel and key prefix (empty: the default)")
	flag.IntVar(&runtime.MemProfileRate, "mem-profile-rate", runtime.MemProfileRate, "runtime.MemProfileRate: bytes per sampled allocation in heap profiles (1: every allocation)")
	flag.Parse()
	if *topic {
		n, err := newClusterNode(*redisURL, *node, *prefix)
		if err != nil {
			log.Fatal(err)
		}
		defer n.stop()
		cluster = n
	}
	if err := run(*impl, *fanout, *addr, *debugAddr); err != nil {
		log.Fatal(err)
	}
}

// cluster is the -topic node, if any.
var cluster *clusterNode

func run(impl string, fanout bool, addr, debugAddr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	dln, err := net.Listen("tcp", debugAddr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("/mem", memStats)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	dbg := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	serve := func(h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
	}
	switch {
	case cluster != nil:
		serve(cluster.f)
		cluster.routes(mux)
	case impl == "nbio":
		n, err := peers.StartNbio(ln, fanout)
		if err != nil {
			return err
		}
		defer n.Stop()
		if fanout {
			mux.Handle("/broadcast", broadcastControl(n))
		}
	case fanout:
		mk, ok := peers.Fanouts()[impl]
		if !ok {
			return fmt.Errorf("-fanout: unknown -impl %q (want nbio or one of %v)", impl, keys(peers.Fanouts()))
		}
		f, err := mk()
		if err != nil {
			return err
		}
		serve(f)
		mux.Handle("/broadcast", broadcastControl(f))
	case impl == "tcp":
		go func() { errc <- peers.ServeTCP(ln) }()
	case impl == "rawread": // the read-path prototype (internal/rawread), not a peer
		serve(rawread.Echo(peers.ReadLimit))
	default:
		mk, ok := peers.Handlers()[impl]
		if !ok {
			return fmt.Errorf("unknown -impl %q (want nbio or one of %v)", impl, peers.Names())
		}
		h, err := mk()
		if err != nil {
			return err
		}
		serve(h)
	}
	go dbg.Serve(dln) // once every route is registered
	fmt.Printf("ws=%s debug=%s\n", ln.Addr(), dln.Addr())
	select {
	case <-ctx.Done():
		return nil // hijacked connections die with the process
	case err := <-errc:
		return err
	}
}

// memStats reports the numbers the load tool turns into per-connection and
// per-message costs.
func memStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]uint64{
		"heap_inuse":  m.HeapInuse,
		"heap_alloc":  m.HeapAlloc,
		"stack_inuse": m.StackInuse,
		"mallocs":     m.Mallocs,
		"goroutines":  uint64(runtime.NumGoroutine()),
	})
}

// keys returns m's keys, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
