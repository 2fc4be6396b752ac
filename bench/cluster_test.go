package bench_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
	"github.com/wssafe/wssafe/redis"
	"github.com/wssafe/wssafe/redis/redistest"
)

// BenchmarkClusterPublish is the caller's cost of one Hub.Publish of a
// 64-byte message, without a backplane and with a Redis backplane (a real
// redis-server, a second node subscribed to its own topic, so the
// publisher's interest table is not empty):
//
//   - to=none: a topic nobody subscribes to, on any node;
//   - to=local: a topic one session of this node is joined to and no other
//     node subscribes to;
//   - to=remote (Redis only): a topic only the other node subscribes to,
//     for comparison: encode, seal (HMAC-SHA256) and queue for Redis.
//
// For none and local the backplane's difference is what a publication no
// remote node wants costs. Every 128 publishes the timer stops until every
// message has reached its subscriber (a real client over loopback), so the
// send queues never fill; ns/op and allocs/op are the publishing
// goroutine's, the writes to the socket and to Redis happen on others (on
// one CPU, with -test.cpu 1, they run while the timer is stopped). Skipped
// without a redis-server binary.
func BenchmarkClusterPublish(b *testing.B) {
	rs, err := redistest.Launch(redistest.Config{})
	if errors.Is(err, redistest.ErrNotFound) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rs.Close)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	newBP := func(id string) wssafe.Backplane {
		bp, err := redis.New(redis.Options{URL: rs.URL(0), Keys: []redis.Key{{ID: "bench", Secret: secret}}, NodeID: id,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		return bp
	}
	single := startNode(b, nil, "local")
	nodeA := startNode(b, newBP("a"), "local")
	nodeB := startNode(b, newBP("b"), "remote")
	// Node A knows of node B's topic once a publication reaches it.
	nodeB.client.waitFor(b, func() { nodeA.ep.Hub().Publish(pub("remote")) })

	data := make([]byte, 64)
	for _, c := range []struct {
		bp, to string
		n      *benchNode
		rcv    *benchNode // whose client receives, nil: nobody
	}{
		{"none", "none", single, nil},
		{"redis", "none", nodeA, nil},
		{"none", "local", single, single},
		{"redis", "local", nodeA, nodeA},
		{"redis", "remote", nodeA, nodeB},
	} {
		b.Run(fmt.Sprintf("backplane=%s/to=%s", c.bp, c.to), func(b *testing.B) {
			p := wssafe.Publication{Topic: c.to, Type: wssafe.MessageBinary, Data: data}
			h := c.n.ep.Hub()
			var got *atomic.Int64
			var base int64
			if c.rcv != nil {
				got = &c.rcv.client.got
				base = got.Load()
			}
			b.ReportAllocs()
			for i := range b.N {
				if _, err := h.Publish(p); err != nil {
					b.Fatal(err)
				}
				if got != nil && (i%128 == 127 || i == b.N-1) {
					b.StopTimer()
					c.rcv.client.wait(b, base+int64(i)+1)
					b.StartTimer()
				}
			}
		})
	}
}

func pub(topic string) wssafe.Publication {
	return wssafe.Publication{Topic: topic, Type: wssafe.MessageBinary, Data: make([]byte, 64)}
}

// benchNode is an Endpoint whose sessions join one topic, served over
// loopback, with one client connected and draining.
type benchNode struct {
	ep     *peers.TopicFanout
	client *drainClient
}

func startNode(b *testing.B, bp wssafe.Backplane, topic string) *benchNode {
	f, err := peers.WssafeTopicFanout(bp, topic)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(f)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.Shutdown(ctx)
		srv.Close()
	})
	c, err := wsclient.Dial(strings.TrimPrefix(srv.URL, "http://"), "/", false)
	if err != nil {
		b.Fatal(err)
	}
	dc := &drainClient{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go dc.run()
	b.Cleanup(func() { c.Close(); <-dc.done })
	// The session is open and joined once Publish reaches it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if n, _ := f.Hub().Publish(pub(topic)); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the client's session did not join its topic")
		}
	}
	return &benchNode{ep: f, client: dc}
}

// drainClient reads every message its connection receives and counts it.
type drainClient struct {
	c    *wsclient.Conn
	got  atomic.Int64
	err  atomic.Pointer[error]
	wake chan struct{}
	done chan struct{}
}

func (d *drainClient) run() {
	defer close(d.done)
	var head [8]byte
	for {
		if _, err := d.c.ReadBroadcast(head[:]); err != nil {
			d.err.Store(&err)
			select {
			case d.wake <- struct{}{}:
			default:
			}
			return
		}
		d.got.Add(1)
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// wait waits until the client has received n messages in all.
func (d *drainClient) wait(b *testing.B, n int64) {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for d.got.Load() < n {
		select {
		case <-d.wake:
		case <-t.C:
			b.Fatalf("the subscriber received %d of %d messages", d.got.Load(), n)
		}
		if p := d.err.Load(); p != nil && d.got.Load() < n {
			b.Fatalf("the subscriber's connection: %v", *p)
		}
	}
}

// waitFor calls send every 10 ms until the client has received one more
// message than before. A few may still be on their way: wait's counts
// then end early by as many, which the send queues absorb.
func (d *drainClient) waitFor(b *testing.B, send func()) {
	want := d.got.Load() + 1
	for deadline := time.Now().Add(10 * time.Second); d.got.Load() < want; {
		send()
		select {
		case <-d.wake:
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatal(errors.New("no publication reached the other node"))
		}
	}
}
