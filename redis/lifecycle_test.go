package redis

// Start and Stop: concurrent and repeated calls, and what a graceful stop
// logs.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/redis/redistest"
)

// together starts fns at the same moment, spinning rather than blocking
// so that they overlap on every core, and waits for them.
func together(fns ...func()) {
	var wg sync.WaitGroup
	var ready, go_ atomic.Int32
	for _, f := range fns {
		wg.Go(func() {
			ready.Add(1)
			for go_.Load() == 0 {
			}
			f()
		})
	}
	for ready.Load() < int32(len(fns)) {
	}
	go_.Store(1)
	wg.Wait()
}

// Stop is exported and the Endpoint's Shutdown calls it too: calls at
// once stop once, and all return what it returned.
func TestConcurrentStop(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	for i := range 20 {
		b, _ := startNode(t, testOptions(srv.URL(0)), fmt.Sprintf("n%d", i))
		errs := make([]error, 4)
		fns := make([]func(), len(errs))
		for j := range fns {
			fns[j] = func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				errs[j] = b.Stop(ctx)
			}
		}
		together(fns...)
		for _, err := range errs[1:] {
			if err != errs[0] {
				t.Fatalf("the Stops returned %v", errs)
			}
		}
	}
}

// grab is a Backplane that keeps the Node its Endpoint starts it with.
type grab struct{ n *wssafe.Node }

func (g *grab) NodeID() string                                     { return "grab" }
func (g *grab) Start(n *wssafe.Node) error                         { g.n = n; return nil }
func (g *grab) Stop(context.Context) error                         { return nil }
func (g *grab) Subscribe(string)                                   {}
func (g *grab) Unsubscribe(string)                                 {}
func (g *grab) Publish(wssafe.Publication) error                   { return nil }
func (g *grab) Control(wssafe.ControlOp) error                     { return nil }
func (g *grab) Acquire(context.Context, string, int) (bool, error) { return true, nil }
func (g *grab) Release(string)                                     {}
func (g *grab) Online(context.Context) (map[string]int, error)     { return nil, nil }

// Two Starts at once: one wins, the other is refused and changes nothing
// (the winner keeps its Node and logger). A Backplane handed to a second
// Endpoint is refused the same way and keeps delivering for the first;
// one stopped before it started cannot start.
func TestSecondStartRefused(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	nodes := make([]*wssafe.Node, 2)
	for i := range nodes {
		g := &grab{}
		ep, err := wssafe.New(wssafe.HandlerFunc(rooms), &wssafe.Options{
			Auth: &wssafe.AuthOptions{HMACSecret: c.secret}, Backplane: g, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ep.Shutdown(context.Background()) })
		nodes[i] = g.n
	}
	for i := range 20 {
		opt := c.bpOpt
		opt.NodeID = fmt.Sprintf("x%d", i)
		bp, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		together(func() { errs[0] = bp.Start(nodes[0]) }, func() { errs[1] = bp.Start(nodes[1]) })
		win := 0
		if errs[0] != nil {
			win = 1
		}
		if errs[win] != nil || errs[1-win] == nil || !strings.Contains(errs[1-win].Error(), "Start called twice") {
			t.Fatalf("two Starts at once: %v", errs)
		}
		if bp.node != nodes[win] || bp.log != nodes[win].Logger() {
			t.Fatal("the refused Start replaced the winner's Node or logger")
		}
		if err := bp.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	a, b := c.node("a", nil), c.node("b", nil)
	node, log := a.bp.node, a.bp.log
	if _, err := wssafe.New(wssafe.HandlerFunc(rooms), &wssafe.Options{
		Auth: &wssafe.AuthOptions{HMACSecret: c.secret}, Backplane: a.bp,
	}); err == nil || !strings.Contains(err.Error(), "Start called twice") {
		t.Fatalf("a second Endpoint on the same Backplane: %v", err)
	}
	if a.bp.node != node || a.bp.log != log {
		t.Fatal("the refused Start replaced the first Endpoint's Node or logger")
	}
	onB := c.dial(b, "alice")
	join(t, onB, "room")
	knows(t, "room", a)
	publish(t, a, wssafe.Publication{Topic: "room", Data: []byte("still-wired")})
	if got := read(t, onB); got != "still-wired" {
		t.Fatalf("after the refused Start, B got %q", got)
	}

	opt := c.bpOpt
	opt.NodeID = "stopped"
	bp, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := bp.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := wssafe.New(wssafe.HandlerFunc(rooms), &wssafe.Options{
		Auth: &wssafe.AuthOptions{HMACSecret: c.secret}, Backplane: bp,
	}); err == nil {
		t.Fatal("a stopped Backplane started")
	}
}

// A graceful stop closes the connections itself: that is no outage, and
// logs none.
func TestGracefulStopLogsNoOutage(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) {
			c := newTestCluster(t, redistest.Config{})
			c.bpOpt.Sharded = sharded
			for i := range 5 {
				n := c.node(fmt.Sprintf("n%d", i), nil)
				conn := c.dial(n, "alice")
				for r := range 16 { // topics on most partitions: a link each
					join(t, conn, fmt.Sprintf("room-%d", r))
				}
				conn.CloseRead(context.Background()) // answers the close handshake at shutdown
				eventually(t, 5*time.Second, "the node is up", func() bool { return n.ep.Stats().Backplane.Up })
				n.shutdown(t)
				if logs := n.logs.String(); strings.Contains(logs, `"event":"backplane_down"`) {
					t.Fatalf("a graceful stop logged an outage:\n%s", logs)
				}
			}
		})
	}
}
