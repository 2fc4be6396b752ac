package wssafe_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// fakeCluster is a broker in memory, standing in for Redis: the nodes'
// backplanes pass publications and control operations to one another
// through it, count presence in it, and keep revocations in it; an outage
// is a switch. Nothing in it calls a node while holding its lock.
type fakeCluster struct {
	mu       sync.Mutex
	nodes    []*fakeBackplane
	down     bool
	every    bool                      // send every topic to every node, as a broker that cannot filter would
	records  []wssafe.ControlOp        // durable revocations, for nodes that start later
	presence map[string]map[string]int // node ID -> subject -> sessions
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{presence: map[string]map[string]int{}}
}

// fakeBackplane is one node's link to the fakeCluster.
type fakeBackplane struct {
	c        *fakeCluster
	id       string
	node     *wssafe.Node
	subs     map[string]bool    // guarded by c.mu
	events   []string           // Subscribe and Unsubscribe calls, in order; guarded by c.mu
	pending  []wssafe.ControlOp // control operations kept through an outage; guarded by c.mu
	started  int
	stopped  chan struct{}
	atStop   map[string]int // the node's sessions when Stop was called
	startErr error
	stopErr  error // what Stop returns
}

func (c *fakeCluster) backplane(id string) *fakeBackplane {
	return &fakeBackplane{c: c, id: id, subs: map[string]bool{}, stopped: make(chan struct{})}
}

func (b *fakeBackplane) NodeID() string { return b.id }

func (b *fakeBackplane) Start(n *wssafe.Node) error {
	if b.startErr != nil {
		return b.startErr
	}
	c := b.c
	c.mu.Lock()
	b.node, b.started = n, b.started+1
	c.nodes = append(c.nodes, b)
	records := append([]wssafe.ControlOp(nil), c.records...)
	up := !c.down
	c.mu.Unlock()
	if up {
		for _, op := range records {
			n.Control(op)
		}
	}
	n.SetUp(up, nil)
	return nil
}

func (b *fakeBackplane) Stop(ctx context.Context) error {
	c := b.c
	atStop := b.node.Subjects()
	c.mu.Lock()
	b.atStop = atStop
	delete(c.presence, b.id)
	for i, o := range c.nodes {
		if o == b {
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	close(b.stopped)
	return b.stopErr
}

func (b *fakeBackplane) Subscribe(topic string) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	b.subs[topic] = true
	b.events = append(b.events, "+"+topic)
}

func (b *fakeBackplane) Unsubscribe(topic string) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	delete(b.subs, topic)
	b.events = append(b.events, "-"+topic)
}

func (b *fakeBackplane) subscriptions() []string {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return append([]string(nil), b.events...)
}

func (b *fakeBackplane) Publish(p wssafe.Publication) error {
	c := b.c
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		b.node.Count(wssafe.BackplaneDropped, "down")
		return wssafe.ErrDropped
	}
	var to []*wssafe.Node
	for _, o := range c.nodes {
		if o.id == b.id { // the broker echoes to the sender too: dropped by node ID
			continue
		}
		if p.Topic == "" || o.subs[p.Topic] || c.every {
			to = append(to, o.node)
		}
	}
	c.mu.Unlock()
	b.node.Count(wssafe.BackplanePublished, "")
	for _, n := range to {
		n.Deliver(p)
	}
	return nil
}

func (b *fakeBackplane) Control(op wssafe.ControlOp) error {
	c := b.c
	c.mu.Lock()
	if c.down {
		b.pending = append(b.pending, op) // kept, sent on recovery
		c.mu.Unlock()
		return nil
	}
	to := c.send(b, op)
	c.mu.Unlock()
	b.node.Count(wssafe.BackplanePublished, "")
	for _, n := range to {
		n.Control(op)
	}
	return nil
}

// send records op if it is durable and returns the nodes to hand it to;
// c.mu is held.
func (c *fakeCluster) send(from *fakeBackplane, op wssafe.ControlOp) []*wssafe.Node {
	if op.Kind == wssafe.ControlRevoke {
		c.records = append(c.records, op)
	}
	var to []*wssafe.Node
	for _, o := range c.nodes {
		if o != from {
			to = append(to, o.node)
		}
	}
	return to
}

func (b *fakeBackplane) Acquire(ctx context.Context, subject string, max int) (bool, error) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return false, errors.New("broker unreachable")
	}
	total := 0
	for _, m := range c.presence {
		total += m[subject]
	}
	if max > 0 && total >= max {
		return false, nil
	}
	if c.presence[b.id] == nil {
		c.presence[b.id] = map[string]int{}
	}
	c.presence[b.id][subject]++
	return true, nil
}

func (b *fakeBackplane) Release(subject string) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.presence[b.id]; m != nil {
		if m[subject]--; m[subject] <= 0 {
			delete(m, subject)
		}
	}
}

func (b *fakeBackplane) Online(ctx context.Context) (map[string]int, error) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errors.New("broker unreachable")
	}
	out := map[string]int{}
	for _, m := range c.presence {
		for sub, n := range m {
			out[sub] += n
		}
	}
	return out, nil
}

// setDown starts or ends an outage. On recovery the control operations
// kept meanwhile are sent, and every node learns the durable records.
func (c *fakeCluster) setDown(down bool) {
	type delivery struct {
		to []*wssafe.Node
		op wssafe.ControlOp
	}
	c.mu.Lock()
	c.down = down
	nodes := append([]*fakeBackplane(nil), c.nodes...)
	var sends []delivery
	if !down {
		for _, b := range nodes {
			for _, op := range b.pending {
				sends = append(sends, delivery{c.send(b, op), op})
			}
			b.pending = nil
		}
	}
	c.mu.Unlock()
	for _, b := range nodes {
		if down {
			b.node.SetUp(false, errors.New("connection refused"))
		} else {
			b.node.SetUp(true, nil)
		}
	}
	for _, d := range sends {
		for _, n := range d.to {
			n.Control(d.op)
		}
	}
}

// node starts an endpoint of f's on the cluster as node id, with rooms
// as its handler and opts (f.options(nil) when nil) as its options.
func (c *fakeCluster) node(t *testing.T, f *authFixture, id string, opts *wssafe.Options) (*wssafe.Endpoint, string, *fakeBackplane) {
	t.Helper()
	if opts == nil {
		opts = f.options(nil)
	}
	bp := c.backplane(id)
	opts.Backplane = bp
	ep, url := f.server(t, rooms, opts)
	return ep, url, bp
}

// waitOpen waits until ep has n open sessions.
func waitOpen(t *testing.T, ep *wssafe.Endpoint, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == n }, 5*time.Second, 5*time.Millisecond)
}

// A publication reaches the topic's sessions on every node, this node's
// at once; a node subscribes on its first join and unsubscribes on its
// last leave, an ending session included.
func TestClusterTopics(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	ep1, url1, bp1 := c.node(t, f, "n1", nil)
	ep2, url2, bp2 := c.node(t, f, "n2", nil)
	a1 := dial(t, url1, bearer(f.token(claims{"sub": "alice"})))
	b2 := dial(t, url2, bearer(f.token(claims{"sub": "bob"})))
	c2 := dial(t, url2, bearer(f.token(claims{"sub": "carol"})))
	assert.Equal(t, "ok", command(t, a1, "join room"))
	assert.Equal(t, "ok", command(t, b2, "join room"))
	assert.Equal(t, "ok", command(t, c2, "join room"))
	assert.Equal(t, "ok", command(t, c2, "join other"))
	assert.Equal(t, []string{"+room"}, bp1.subscriptions())
	assert.Equal(t, []string{"+room", "+other"}, bp2.subscriptions(), "the first join only")

	assert.Equal(t, 1, publishText(t, ep1.Hub(), "room", "from n1"), "n1's own session, at once")
	for _, conn := range []*websocket.Conn{a1, b2, c2} {
		assert.Equal(t, "from n1", readText(t, conn))
	}
	assert.Equal(t, 0, publishText(t, ep1.Hub(), "other", "to n2"))
	assert.Equal(t, "to n2", readText(t, c2))
	echoOnce(t, a1, "the echo of n1's own publication was dropped")

	assert.Equal(t, "ok", command(t, b2, "leave room"))
	assert.Equal(t, []string{"+room", "+other"}, bp2.subscriptions(), "carol is still in room")
	require.NoError(t, c2.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return len(bp2.subscriptions()) == 4 }, 5*time.Second, 5*time.Millisecond)
	assert.ElementsMatch(t, []string{"-room", "-other"}, bp2.subscriptions()[2:], "her end left both")
	assert.Equal(t, 1, publishText(t, ep1.Hub(), "room", "n1 only"))
	assert.Equal(t, "n1 only", readText(t, a1))
	echoOnce(t, b2, "bob left room")

	// Publishing by subject and to everyone crosses nodes too.
	n, err := ep2.Hub().Publish(wssafe.Publication{Subject: "alice", Type: wssafe.MessageText, Data: []byte("alice")})
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, "alice", readText(t, a1))
	n, err = ep2.Hub().Publish(wssafe.Publication{Type: wssafe.MessageBinary, Data: []byte("all")})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "all", readText(t, a1))
	assert.Equal(t, "all", readText(t, b2))
	st := ep1.Stats().Backplane
	require.NotNil(t, st)
	assert.Equal(t, "n1", st.Node)
	assert.True(t, st.Up)
	assert.Equal(t, uint64(3), st.Published)
	assert.Equal(t, uint64(2), st.Received)
}

// A topic reaches only the sessions the receiving node joined to it, even
// from a broker that sends every topic everywhere, and a publication that
// is not well formed reaches nobody.
func TestClusterDeliverByOwnTable(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	c.every = true
	f := newAuthFixture(t)
	ep1, _, _ := c.node(t, f, "n1", nil)
	ep2, url2, bp2 := c.node(t, f, "n2", nil)
	b2 := dial(t, url2, bearer(f.token(claims{"sub": "bob"})))
	waitOpen(t, ep2, 1)
	assert.Zero(t, publishText(t, ep1.Hub(), "secret", "not for bob"))
	assert.Zero(t, bp2.node.Deliver(wssafe.Publication{Topic: "secret", Type: wssafe.MessageText, Data: []byte("forged")}))
	assert.Zero(t, bp2.node.Deliver(wssafe.Publication{Topic: "bad topic", Type: wssafe.MessageText}))
	assert.Zero(t, bp2.node.Deliver(wssafe.Publication{Subject: "bob", Type: 9, Data: []byte("x")}))
	echoOnce(t, b2, "nothing reached bob")
	st := ep2.Stats().Backplane
	assert.Equal(t, map[string]uint64{"malformed": 2}, st.Refused)
	bp2.node.Control(wssafe.ControlOp{Kind: wssafe.ControlCloseSubject}) // to nobody
	bp2.node.Control(wssafe.ControlOp{Kind: 99, Subject: "bob"})
	assert.Equal(t, map[string]uint64{"malformed": 4}, ep2.Stats().Backplane.Refused)
	echoOnce(t, b2, "bob is still here")
}

// During an outage every node serves its own sessions, publications to
// the others are dropped and counted, control operations are kept and
// performed on recovery; the outage and the recovery are logged once.
func TestClusterOutage(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	log1, rec1 := newRecorder()
	opts := f.options(nil)
	opts.Logger = log1
	ep1, url1, _ := c.node(t, f, "n1", opts)
	_, url2, _ := c.node(t, f, "n2", nil)
	a1 := dial(t, url1, bearer(f.token(claims{"sub": "alice"})))
	a2 := dial(t, url2, bearer(f.token(claims{"sub": "alice"})))
	b2 := dial(t, url2, bearer(f.token(claims{"sub": "bob"})))
	assert.Equal(t, "ok", command(t, a1, "join room"))
	assert.Equal(t, "ok", command(t, b2, "join room"))

	c.setDown(true)
	c.setDown(true) // reported twice, logged once
	n, err := ep1.Hub().Publish(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: []byte("local")})
	assert.ErrorIs(t, err, wssafe.ErrDropped)
	assert.Equal(t, 1, n, "local delivery does not wait for the broker")
	assert.Equal(t, "local", readText(t, a1))
	echoOnce(t, b2, "nothing crossed")
	require.NoError(t, ep1.Hub().CloseSubject("alice", nil))
	assert.Equal(t, wssafe.StatusForbidden, readClose(t, a1).Code, "the local close is at once")
	echoOnce(t, a2, "alice on n2 waits for the broker")
	echoOnce(t, dial(t, url2, bearer(f.token(claims{"sub": "dave"}))), "without a cap, an outage refuses nobody")
	st := ep1.Stats().Backplane
	assert.False(t, st.Up)
	assert.Equal(t, uint64(1), st.Outages)
	assert.Equal(t, map[string]uint64{"down": 1}, st.Dropped)

	c.setDown(false)
	assert.Equal(t, wssafe.StatusForbidden, readClose(t, a2).Code, "the kept close is performed on recovery")
	assert.True(t, ep1.Stats().Backplane.Up)
	assert.Equal(t, 1, rec1.count(slog.LevelWarn, wssafe.EventBackplaneDown))
	assert.Equal(t, 2, rec1.count(slog.LevelInfo, wssafe.EventBackplaneUp), "one at Start, one on recovery")
	assert.Equal(t, 1, rec1.count(slog.LevelWarn, wssafe.EventBackplaneDropped))
}

// The per-subject cap counts every node's sessions; a cluster that cannot
// be asked refuses new handshakes with 503 and Retry-After (1013 after a
// first-message token) and leaves open sessions alone; a session's end
// releases its slot; Online is cluster-wide.
func TestClusterSubjectCap(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	opts := func() *wssafe.Options {
		o := f.options(nil)
		o.MaxConnsPerSubject = 2
		return o
	}
	ep1, url1, _ := c.node(t, f, "n1", opts())
	ep2, url2, _ := c.node(t, f, "n2", opts())
	a1 := dial(t, url1, bearer(f.token(nil)))
	a2 := dial(t, url2, bearer(f.token(nil)))
	waitOpen(t, ep1, 1)
	waitOpen(t, ep2, 1)
	resp := handshake(t, url1, bearer(f.token(nil)))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "two on two nodes: the cap")
	first := f.dialFirst(t, url2, "alice")
	ce := readClose(t, first)
	assert.Equal(t, wssafe.StatusPolicyViolation, ce.Code)
	assert.Equal(t, "too many connections", ce.Reason)
	online, err := ep1.Hub().Online(context.Background())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"alice": 2}, online)

	// A session's end frees its slot cluster-wide.
	require.NoError(t, a2.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool {
		o, _ := ep1.Hub().Online(context.Background())
		return o["alice"] == 1
	}, 5*time.Second, 5*time.Millisecond)
	a1b := dial(t, url1, bearer(f.token(nil)))
	echoOnce(t, a1b, "a slot was free")

	// The broker unreachable: new handshakes of a capped subject fail closed.
	require.NoError(t, a1b.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return len(ep1.Hub().Sessions()) == 1 }, 5*time.Second, 5*time.Millisecond)
	c.setDown(true)
	resp = handshake(t, url1, bearer(f.token(nil)))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	first = f.dialFirst(t, url2, "bob")
	ce = readClose(t, first)
	assert.Equal(t, wssafe.StatusTryAgainLater, ce.Code)
	assert.Equal(t, "try again later", ce.Reason)
	echoOnce(t, a1, "an open session is never affected")
	_, err = ep1.Hub().Online(context.Background())
	assert.Error(t, err)
	assert.Equal(t, uint64(1), ep1.Stats().Refused[wssafe.EventClusterUnavailable])
	require.Eventually(t, func() bool { return ep2.Stats().Refused[wssafe.EventClusterUnavailable] == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(1), ep1.Stats().Refused[wssafe.EventSubjectConnLimit])
	assert.Equal(t, uint64(1), ep2.Stats().Refused[wssafe.EventSubjectConnLimit], "after Accept too")
	assert.Contains(t, f.logs.String(), `"event":"cluster_unavailable"`)
	c.setDown(false)
	echoOnce(t, dial(t, url2, bearer(f.token(claims{"sub": "bob"}))), "back")
}

// New starts the Backplane and refuses one without a node ID or whose
// Start fails; Shutdown stops it once its sessions have closed.
func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	_, err := wssafe.New(rooms, &wssafe.Options{Backplane: c.backplane("")})
	assert.ErrorContains(t, err, "NodeID")
	bad := c.backplane("n0")
	bad.startErr = errors.New("no such host")
	_, err = wssafe.New(rooms, &wssafe.Options{Backplane: bad})
	assert.ErrorContains(t, err, "no such host")

	ep, url, bp := c.node(t, f, "n1", nil)
	assert.Equal(t, 1, bp.started)
	dial(t, url, bearer(f.token(nil)))
	waitOpen(t, ep, 1)
	assert.Equal(t, map[string]int{"alice": 1}, bp.node.Subjects())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ep.Shutdown(ctx))
	<-bp.stopped
	assert.Empty(t, bp.atStop, "Stop came after the sessions had closed")
	require.NoError(t, ep.Shutdown(ctx), "Stop runs once")
}

// ShutdownWith's hook stops the Backplane once the sessions have closed.
func TestClusterShutdownWith(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	f := newAuthFixture(t)
	bp := c.backplane("n1")
	o := f.options(nil)
	o.Backplane = bp
	ep, err := wssafe.NewWithHooks(rooms, o, f.hooks())
	require.NoError(t, err)
	srv := &http.Server{Handler: ep}
	ep.ShutdownWith(srv)
	require.NoError(t, srv.Shutdown(context.Background()))
	select {
	case <-bp.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook did not stop the backplane")
	}
}
