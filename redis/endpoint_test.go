package redis

// End to end: real wssafe Endpoints on httptest servers, joined by this
// backplane through a real redis-server, real coder/websocket clients with
// jwx-signed tokens.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/redis/redistest"
)

// A testCluster is one redis-server and the nodes joined through it.
type testCluster struct {
	t      *testing.T
	redis  *redistest.Server
	secret []byte
	bpOpt  Options // the backplanes' options, NodeID aside
}

// A testNode is one Endpoint with its backplane, server and log.
type testNode struct {
	id   string
	ep   *wssafe.Endpoint
	bp   *Backplane
	srv  *httptest.Server
	url  string
	logs *lockedBuffer
}

func newTestCluster(t *testing.T, cfg redistest.Config) *testCluster {
	t.Helper()
	srv := redistest.Start(t, cfg)
	c := &testCluster{t: t, redis: srv, secret: make([]byte, 32)}
	_, _ = rand.Read(c.secret)
	c.bpOpt = testOptions(srv.URL(0))
	c.bpOpt.Logger = nil // the Endpoint's
	return c
}

// maxLifetime is the endpoints' MaxTokenLifetime: what makes CloseSubject
// record a revocation.
const maxLifetime = time.Hour

// node starts an Endpoint named id on the cluster; mutate adjusts its
// options. It is shut down when the test ends.
func (c *testCluster) node(id string, mutate func(*wssafe.Options, *Options)) *testNode {
	t := c.t
	t.Helper()
	bpOpt := c.bpOpt
	bpOpt.NodeID = id
	opts := &wssafe.Options{
		Auth: &wssafe.AuthOptions{
			HMACSecret: c.secret, Sources: wssafe.FromHeader | wssafe.FromFirstMessage,
			MaxTokenLifetime: maxLifetime, AcceptableSkew: 2 * time.Second,
		},
		MaxConnsPerSubject:  5,
		SecurityLogInterval: -1,
	}
	if mutate != nil {
		mutate(opts, &bpOpt)
	}
	bp, err := New(bpOpt)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: id, bp: bp, logs: &lockedBuffer{}}
	opts.Backplane = bp
	opts.Logger = slog.New(slog.NewJSONHandler(n.logs, nil))
	n.ep, err = wssafe.New(wssafe.HandlerFunc(rooms), opts)
	if err != nil {
		t.Fatal(err)
	}
	n.srv = httptest.NewServer(n.ep)
	n.url = "ws" + strings.TrimPrefix(n.srv.URL, "http")
	t.Cleanup(func() { n.shutdown(t) })
	return n
}

// shutdown ends the node gracefully (again: a no-op).
func (n *testNode) shutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.ep.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("node %s: Shutdown: %v", n.id, err)
	}
	n.srv.Close()
}

// rooms joins a topic on "join <topic>" and echoes anything else.
func rooms(_ context.Context, s *wssafe.Session, m wssafe.Message) error {
	if room, ok := strings.CutPrefix(m.Text(), "join "); ok {
		if err := s.Join(room); err != nil {
			return err
		}
		return s.Send(wssafe.MessageText, []byte("joined "+room))
	}
	return s.Send(wssafe.MessageText, []byte("echo "+m.Text()))
}

// token mints an HS256 token for sub issued at iat, valid for 30 minutes.
func (c *testCluster) token(sub string, iat time.Time) string {
	c.t.Helper()
	tok, err := jwt.NewBuilder().Subject(sub).IssuedAt(iat).Expiration(iat.Add(30 * time.Minute)).Build()
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), c.secret))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

func bearer(tok string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}
}

// dial opens a session on n as sub with a fresh token.
func (c *testCluster) dial(n *testNode, sub string) *websocket.Conn {
	c.t.Helper()
	return c.dialToken(n, c.token(sub, time.Now()))
}

func (c *testCluster) dialToken(n *testNode, tok string) *websocket.Conn {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, n.url, bearer(tok))
	if err != nil {
		t.Fatalf("dial %s: %v", n.id, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// refused dials n with tok and returns the refusing HTTP response.
func refused(t *testing.T, n *testNode, tok string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, n.url, bearer(tok))
	if err == nil {
		conn.CloseNow()
		t.Fatalf("node %s admitted a session it should refuse", n.id)
	}
	if resp == nil {
		t.Fatalf("no HTTP response: %v", err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	return resp
}

// read returns the next text message on conn.
func read(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func send(t *testing.T, conn *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// join joins conn's session to room.
func join(t *testing.T, conn *websocket.Conn, room string) {
	t.Helper()
	send(t, conn, "join "+room)
	if got := read(t, conn); got != "joined "+room {
		t.Fatalf("join %s: got %q", room, got)
	}
}

// nothingQueued proves that nothing reached conn before this call: the
// reply to an echo comes first. (A session's messages are queued in order,
// and a node delivers a publication to all its sessions at once.)
func nothingQueued(t *testing.T, conn *websocket.Conn, what string) {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	send(t, conn, marker)
	if got := read(t, conn); got != "echo "+marker {
		t.Fatalf("%s: got %q before the echo", what, got)
	}
}

// closed waits for conn to be closed and returns the close code.
func closed(t *testing.T, conn *websocket.Conn, within time.Duration) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("no close frame within %v: %v", within, err)
		}
		return ce.Code
	}
}

// knows waits until every node of from has learnt that a node has a
// subscriber for topic (the interest table: publications are sent only
// then).
func knows(t *testing.T, topic string, from ...*testNode) {
	t.Helper()
	for _, n := range from {
		eventually(t, 5*time.Second, n.id+" learns of "+topic, func() bool { return n.bp.remote.has(topic) })
	}
}

func publish(t *testing.T, n *testNode, p wssafe.Publication) int {
	t.Helper()
	if p.Type == 0 {
		p.Type = wssafe.MessageText
	}
	got, err := n.ep.Hub().Publish(p)
	if err != nil {
		t.Fatalf("Publish on %s: %v", n.id, err)
	}
	return got
}

// A topic published on A reaches its subscribers on C, and on A at once,
// and no session that did not join it on any node; a subject's
// publication reaches its sessions on every node, one to everyone every
// session.
func TestEndpointPublishAcrossNodes(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) {
			c := newTestCluster(t, redistest.Config{})
			c.bpOpt.Sharded = sharded
			a, b, cn := c.node("a", nil), c.node("b", nil), c.node("c", nil)

			onA := c.dial(a, "alice")
			join(t, onA, "room")
			onC := c.dial(cn, "alice")
			join(t, onC, "room")
			otherC := c.dial(cn, "bob") // on C, never joined
			otherB := c.dial(b, "bob")  // joined another topic
			join(t, otherB, "lobby")
			carolB := c.dial(b, "carol") // another subject
			knows(t, "room", a)

			if n := publish(t, a, wssafe.Publication{Topic: "room", Data: []byte("to-room")}); n != 1 {
				t.Fatalf("A's own sessions: %d, want 1 at once", n)
			}
			if got := read(t, onA); got != "to-room" {
				t.Fatalf("A's subscriber got %q", got)
			}
			if got := read(t, onC); got != "to-room" {
				t.Fatalf("C's subscriber got %q", got)
			}
			nothingQueued(t, otherC, "C's session that never joined")
			nothingQueued(t, otherB, "B's session joined to another topic")

			publish(t, a, wssafe.Publication{Subject: "bob", Data: []byte("to-bob")})
			for _, conn := range []*websocket.Conn{otherB, otherC} {
				if got := read(t, conn); got != "to-bob" {
					t.Fatalf("bob got %q", got)
				}
			}
			nothingQueued(t, onC, "alice, for bob's publication")
			nothingQueued(t, carolB, "carol, for bob's publication")

			if n := publish(t, b, wssafe.Publication{Data: []byte("to-all")}); n != 2 {
				t.Fatalf("B's own sessions: %d, want 2", n)
			}
			for _, conn := range []*websocket.Conn{onA, onC, otherC, otherB, carolB} {
				if got := read(t, conn); got != "to-all" {
					t.Fatalf("everyone's publication: got %q", got)
				}
			}

			// Counted once Redis answered the write, maybe after delivery.
			eventually(t, 3*time.Second, "A counts its publications", func() bool { return a.ep.Stats().Backplane.Published >= 2 })
			if st := a.ep.Stats().Backplane; st == nil || st.Node != "a" || !st.Up {
				t.Fatalf("A's Stats().Backplane = %+v", st)
			}
			if st := cn.ep.Stats().Backplane; st.Received < 3 {
				t.Fatalf("C's Stats().Backplane = %+v", st)
			}
		})
	}
}

// MaxConnsPerSubject holds across the cluster: a sixth session anywhere
// is refused (429 at the handshake, 1008 after a first-message token),
// a session's end frees a place on another node, and with Redis down a
// new session is refused 503 with Retry-After while open ones stay.
func TestEndpointSubjectCapAcrossCluster(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	nodes := []*testNode{c.node("a", nil), c.node("b", nil), c.node("c", nil)}
	var open []*websocket.Conn
	for i := range 5 {
		open = append(open, c.dial(nodes[i%3], "alice"))
	}
	for _, n := range nodes {
		if resp := refused(t, n, c.token("alice", time.Now())); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("sixth session on %s: HTTP %d, want 429", n.id, resp.StatusCode)
		}
	}
	// A first-message token is admitted after the upgrade: closed 1008.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fm, _, err := websocket.Dial(ctx, nodes[2].url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fm.CloseNow()
	send(t, fm, c.token("alice", time.Now()))
	if code := closed(t, fm, 5*time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("sixth first-message session: close %d, want 1008", code)
	}

	// The end of a session on B frees a place on C.
	open[1].Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, "a place is freed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, nodes[2].url, bearer(c.token("alice", time.Now())))
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return false
		}
		open[1] = conn
		t.Cleanup(func() { conn.CloseNow() })
		return true
	})
	if resp := refused(t, nodes[0], c.token("alice", time.Now())); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the swap: HTTP %d, want 429", resp.StatusCode)
	}

	// Redis down: the cap cannot be checked; new sessions of any subject
	// wait, open ones go on.
	c.redis.Kill()
	resp := refused(t, nodes[0], c.token("dave", time.Now()))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: HTTP %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, conn := range open {
		nothingQueued(t, conn, "an open session during the outage")
	}
}

// Online counts every node's sessions; a graceful Shutdown removes its
// node's at once, a crashed node's stop counting within the presence TTL.
func TestEndpointPresence(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	a, b, cn := c.node("a", nil), c.node("b", nil), c.node("c", nil)
	for _, at := range []struct {
		n   *testNode
		sub string
	}{{a, "alice"}, {a, "alice"}, {b, "alice"}, {cn, "bob"}, {cn, "alice"}} {
		c.dial(at.n, at.sub).CloseRead(context.Background()) // answers the close at Shutdown
	}
	online := func(n *testNode) map[string]int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		on, err := n.ep.Hub().Online(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}
	if on := online(cn); on["alice"] != 4 || on["bob"] != 1 {
		t.Fatalf("Online = %v, want alice 4, bob 1", on)
	}

	b.shutdown(t)
	if on := online(a); on["alice"] != 3 {
		t.Fatalf("just after B's Shutdown, Online = %v, want alice 3", on)
	}

	cn.bp.crash() // the process dies: nothing is removed from Redis
	died := time.Now()
	eventually(t, c.bpOpt.PresenceTTL+time.Second, "the crashed node stops counting", func() bool {
		on := online(a)
		return on["alice"] == 2 && on["bob"] == 0
	})
	t.Logf("a crashed node stopped counting %v after it died (TTL %v)", time.Since(died).Round(time.Millisecond), c.bpOpt.PresenceTTL)
	if on := online(a); len(on) != 1 {
		t.Fatalf("Online = %v", on)
	}
}

// CloseSubject on A closes the subject's sessions on B and C within a
// second, and no one else's.
func TestEndpointCloseSubjectAcrossNodes(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	a, b, cn := c.node("a", nil), c.node("b", nil), c.node("c", nil)
	onA, onB, onC := c.dial(a, "alice"), c.dial(b, "alice"), c.dial(cn, "alice")
	bob := c.dial(b, "bob")
	eventually(t, 5*time.Second, "the nodes' links are up", func() bool {
		return b.ep.Stats().Backplane.Up && cn.ep.Stats().Backplane.Up
	})
	start := time.Now()
	if err := a.ep.Hub().CloseSubject("alice", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, conn := range []*websocket.Conn{onA, onB, onC} {
		wg.Go(func() {
			if code := closed(t, conn, time.Second); code != wssafe.StatusForbidden {
				t.Errorf("close %d, want 3003", code)
			}
		})
	}
	wg.Wait()
	t.Logf("closed on every node within %v", time.Since(start).Round(time.Millisecond))
	nothingQueued(t, bob, "another subject")
	// The revocation went with it: alice's old tokens are refused anywhere.
	if resp := refused(t, cn, c.token("alice", start.Add(-time.Minute))); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an old token after the revocation: HTTP %d, want 401", resp.StatusCode)
	}
}

// A revocation outlives its broadcast: a node started after it refuses
// the subject's old tokens (and tokens without iat) and admits new ones;
// a node that could not reach Redis at the time learns it when it can,
// and closes the sessions holding an older token.
func TestEndpointRevocationReachesLateNodes(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: c.redis.Addr()})
	defer admin.Close()
	// The node "away" logs in as its own ACL user, switched off for now:
	// it runs, but cannot reach Redis.
	if err := admin.Do(ctx, "ACL", "SETUSER", "away", "off", ">away-test-pass", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	away := c.node("away", func(w *wssafe.Options, o *Options) {
		o.URL = fmt.Sprintf("redis://away:away-test-pass@%s/0", c.redis.Addr())
		w.MaxConnsPerSubject = 0 // no cap: it admits alice while Redis is out of reach
	})
	oldIat := time.Now().Add(-time.Minute)
	held := c.dialToken(away, c.token("alice", oldIat))
	a := c.node("a", nil)
	if err := a.ep.Hub().CloseSubject("alice", nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	eventually(t, 5*time.Second, "the revocation is stored", func() bool { return a.bp.Stats().ControlsPending == 0 })

	late := c.node("late", nil)
	eventually(t, 5*time.Second, "the late node loads the revocation", func() bool {
		return late.ep.Stats().Backplane.Received > 0
	})
	if resp := refused(t, late, c.token("alice", oldIat)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an old token on a node started later: HTTP %d, want 401", resp.StatusCode)
	}
	noIat, err := jwt.NewBuilder().Subject("alice").Expiration(time.Now().Add(10 * time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Sign(noIat, jwt.WithKey(jwa.HS256(), c.secret))
	if err != nil {
		t.Fatal(err)
	}
	if resp := refused(t, late, string(raw)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a token without iat: HTTP %d, want 401", resp.StatusCode)
	}
	fresh := c.dialToken(late, c.token("alice", revokedAt.Add(time.Second)))
	nothingQueued(t, fresh, "a token issued after the revocation")
	nothingQueued(t, held, "the away node's session, before it reaches Redis")

	if err := admin.Do(ctx, "ACL", "SETUSER", "away", "on").Err(); err != nil {
		t.Fatal(err)
	}
	if code := closed(t, held, 10*time.Second); code != wssafe.StatusForbidden {
		t.Fatalf("the away node's old session: close %d, want 3003", code)
	}
	if resp := refused(t, away, c.token("alice", oldIat)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an old token on the node back in reach: HTTP %d, want 401", resp.StatusCode)
	}
}

// Redis stops for a few seconds and comes back: local delivery goes on,
// cross-node publications are dropped and counted, then delivery resumes
// within 5 s; the outage and the recovery are logged once each, by the
// Endpoint only.
func TestEndpointRedisOutage(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) { testEndpointRedisOutage(t, sharded) })
	}
}

func testEndpointRedisOutage(t *testing.T, sharded bool) {
	c := newTestCluster(t, redistest.Config{})
	c.bpOpt.Sharded = sharded
	a, b := c.node("a", nil), c.node("b", nil)
	a1, a2, b1 := c.dial(a, "alice"), c.dial(a, "bob"), c.dial(b, "carol")
	join(t, a1, "room")
	join(t, a2, "room")
	join(t, b1, "room")
	side := c.dial(a, "erin") // leaves during the outage
	join(t, side, "side")
	knows(t, "room", a, b)
	knows(t, "side", b)

	c.redis.Kill()
	eventually(t, 5*time.Second, "A notices the outage", func() bool { return !a.ep.Stats().Backplane.Up })
	eventually(t, 5*time.Second, "A's link for side fails", func() bool { return failing(a.bp, a.bp.linkFor("side")) })
	side.Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, "A leaves side", func() bool { return !slices.Contains(a.bp.topics.list(), "side") })
	n, err := a.ep.Hub().Publish(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: []byte("payload-5e1c")})
	if !errors.Is(err, wssafe.ErrDropped) || n != 2 {
		t.Fatalf("Publish during the outage = %d, %v; want 2 local, ErrDropped", n, err)
	}
	for _, conn := range []*websocket.Conn{a1, a2} {
		if got := read(t, conn); got != "payload-5e1c" {
			t.Fatalf("local delivery during the outage: %q", got)
		}
	}
	nothingQueued(t, a1, "local chat during the outage")
	nothingQueued(t, b1, "B during the outage")
	time.Sleep(2 * time.Second) // Redis stays away for a few seconds: the links retry meanwhile
	st := a.ep.Stats().Backplane
	if st.Dropped["down"] == 0 || st.Outages != 1 || st.Up {
		t.Fatalf("A's Stats().Backplane during the outage: %+v", st)
	}

	c.redis.Restart()
	restarted := time.Now()
	got := false
	for i := 0; !got; i++ {
		if time.Since(restarted) > 5*time.Second {
			t.Fatal("cross-node delivery did not resume within 5 s")
		}
		_, _ = a.ep.Hub().Publish(wssafe.Publication{Topic: "room", Type: wssafe.MessageText, Data: fmt.Appendf(nil, "again-%d", i)})
		marker := fmt.Sprintf("m-%d", i)
		send(t, b1, marker)
		for {
			m := read(t, b1)
			if strings.HasPrefix(m, "again-") {
				got = true
			}
			if m == "echo "+marker {
				break
			}
		}
		if !got {
			time.Sleep(50 * time.Millisecond) // the next try; the reconnect's backoff runs meanwhile
		}
	}
	t.Logf("cross-node delivery resumed %v after the restart", time.Since(restarted).Round(time.Millisecond))
	eventually(t, 5*time.Second, "A is up", func() bool { return a.ep.Stats().Backplane.Up })
	dave := c.dial(a, "dave") // a capped handshake: Acquire reaches Redis again
	nothingQueued(t, dave, "a new session after the recovery")

	logs := a.logs.String()
	down := strings.Count(logs, `"event":"backplane_down"`)
	ups := strings.Count(logs, `"event":"backplane_up"`)
	if down != 1 || ups != 2 {
		t.Fatalf("down logged %d times, up %d (want 1, and 2: at start and on recovery):\n%s", down, ups, logs)
	}
	if strings.Contains(logs, "wssafe/redis:") {
		t.Fatalf("the backplane logged beside the Endpoint:\n%s", logs)
	}
	if strings.Count(logs, `"event":"backplane_dropped"`) == 0 {
		t.Fatal("the drops were not logged")
	}
	if strings.Contains(logs, "payload-5e1c") {
		t.Fatal("a payload reached the log")
	}
	if st := a.ep.Stats().Backplane; st.Outages != 1 || !st.Up {
		t.Fatalf("after the recovery: %+v", st)
	}
}

// spy is a client of Redis that is not a node, subscribed to channel: it
// sees what the nodes send there and can publish into it.
func (c *testCluster) spy(channel string) (*goredis.Client, *goredis.PubSub) {
	t := c.t
	t.Helper()
	rc := goredis.NewClient(&goredis.Options{Addr: c.redis.Addr()})
	t.Cleanup(func() { rc.Close() })
	sub := rc.Subscribe(context.Background(), channel)
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.ReceiveTimeout(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return rc, sub
}

// An envelope forged without the cluster key, and a captured one
// published again, both straight into Redis, are refused, counted in the
// Endpoint's Stats and logged, and reach no session.
func TestEndpointForgedAndReplayedEnvelopes(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	a, b := c.node("a", nil), c.node("b", nil)
	alice := c.dial(b, "alice")
	ctx := context.Background()
	rc, spy := c.spy(a.bp.nodeChan)
	eventually(t, 5*time.Second, "B's link is up", func() bool { return b.ep.Stats().Backplane.Up })

	publish(t, a, wssafe.Publication{Data: []byte("genuine")})
	if got := read(t, alice); got != "genuine" {
		t.Fatalf("got %q", got)
	}
	var captured string
	for captured == "" {
		m, err := spy.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e, _, ok := decode([]byte(m.Payload)); ok && e.kind == kindPublication {
			captured = m.Payload
		}
	}
	forger := newSealer(mustKeyring(t, Key{ID: clusterKey.ID, Secret: []byte(strings.Repeat("x", 32))}), "a", time.Now)
	forgedPub := forger.seal(kindPublication, publication{Type: uint8(wssafe.MessageText), Data: []byte("forged-4b2d")}.append(nil))
	forgedClose := forger.seal(kindControl, controlOp{Kind: ctlCloseSubject, Subject: "alice"}.append(nil))
	for _, msg := range []any{forgedPub, forgedClose, captured} {
		if err := rc.Publish(ctx, a.bp.nodeChan, msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "B refuses all three", func() bool {
		r := b.ep.Stats().Backplane.Refused
		return r["bad_mac"] == 2 && r["replay"] == 1
	})
	nothingQueued(t, alice, "the forged and replayed envelopes")
	logs := b.logs.String()
	if strings.Count(logs, `"event":"backplane_refused"`) < 2 || !strings.Contains(logs, `"reason":"replay"`) {
		t.Fatalf("the refusals were not logged:\n%s", logs)
	}
	if strings.Contains(logs, "forged-4b2d") || strings.Contains(logs, "genuine") {
		t.Fatal("a payload reached the log")
	}
	if own := b.bp.Stats().Refused; own["bad_mac"] != 2 || own["replay"] != 1 {
		t.Fatalf("the backplane's own Stats: %v", own)
	}
}

// A node that starts after an envelope was sealed has no replay state
// for it: a publication and a close captured from Redis and published
// again to such a node are refused as sealed before it listened, and
// reach none of its sessions, while the nodes that were running refuse
// them as replays.
func TestEndpointReplayToANodeStartedLater(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	// A node takes a close sealed within MaxSkew before it listened (clocks
	// apart): a small skew, so that the capture is older than that soon.
	c.bpOpt.MaxSkew = 200 * time.Millisecond
	a, b := c.node("a", nil), c.node("b", nil)
	ctx := context.Background()
	rc, spy := c.spy(a.bp.nodeChan)
	onB := c.dial(b, "alice")
	eventually(t, 5*time.Second, "B's link is up", func() bool { return b.ep.Stats().Backplane.Up })
	publish(t, a, wssafe.Publication{Data: []byte("genuine")})
	if got := read(t, onB); got != "genuine" {
		t.Fatalf("got %q", got)
	}
	if err := a.ep.Hub().CloseSubject("alice", nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	if code := closed(t, onB, time.Second); code != wssafe.StatusForbidden {
		t.Fatalf("close %d, want 3003", code)
	}
	var captured []string // the publication, then the revocation and the close
	for len(captured) < 3 {
		m, err := spy.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e, _, ok := decode([]byte(m.Payload)); ok && (e.kind == kindPublication || e.kind == kindControl) {
			captured = append(captured, m.Payload)
		}
	}

	// Time must pass: the late node starts more than MaxSkew after the
	// capture, the case a rolling deploy makes.
	time.Sleep(2 * c.bpOpt.MaxSkew)
	late := c.node("late", nil)
	// On connecting, the late node re-reads the recent controls, the
	// revocation and the close among them: let it, so that a close it
	// performs there is not taken for the replay's.
	eventually(t, 5*time.Second, "the late node has re-read the recent controls", func() bool {
		return late.bp.Stats().ControlsReread == 2
	})
	fresh := c.dialToken(late, c.token("alice", revokedAt.Add(time.Second)))
	bob := c.dial(late, "bob")
	for _, msg := range captured {
		if err := rc.Publish(ctx, a.bp.nodeChan, msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the late node refuses all three", func() bool {
		return late.ep.Stats().Backplane.Refused["stale"] == 3
	})
	eventually(t, 5*time.Second, "the running node refuses all three as replays", func() bool {
		return b.ep.Stats().Backplane.Refused["replay"] == 3
	})
	nothingQueued(t, bob, "a replayed publication")
	nothingQueued(t, fresh, "a replayed close")
}

// A node that has just started asks the others for their topics, and
// they answer at once: an answer from a node whose clock lags by less
// than MaxSkew is taken, though sealed before the new node listened, so
// the new node's publications reach that node's subscribers at once, not
// after the next full refresh.
func TestEndpointLaggingClockStillAnnouncesInterest(t *testing.T) {
	c := newTestCluster(t, redistest.Config{})
	c.bpOpt.InterestRefresh = time.Hour // only the answer to the new node's request can tell it
	slow := c.node("slow", func(_ *wssafe.Options, o *Options) {
		o.now = func() time.Time { return time.Now().Add(-500 * time.Millisecond) }
	})
	onSlow := c.dial(slow, "alice")
	join(t, onSlow, "room")
	late := c.node("late", nil)
	knows(t, "room", late)
	publish(t, late, wssafe.Publication{Topic: "room", Data: []byte("from-late")})
	if got := read(t, onSlow); got != "from-late" {
		t.Fatalf("got %q", got)
	}
}

// rediss:// with an ACL user and password carries publications and
// presence end to end.
func TestEndpointRedissACL(t *testing.T) {
	cfg := redistest.Config{Password: "test-only-pass", User: "node", UserPass: "test-only-user-pass", TLS: true}
	c := newTestCluster(t, cfg)
	c.bpOpt.URL = fmt.Sprintf("rediss://%s:%s@localhost:%d/0", cfg.User, cfg.UserPass, c.redis.TLSPort)
	c.bpOpt.TLSConfig = c.redis.TLSConfig()
	a, b := c.node("a", nil), c.node("b", nil)
	onB := c.dial(b, "alice")
	join(t, onB, "room")
	c.dial(a, "alice")
	knows(t, "room", a)
	publish(t, a, wssafe.Publication{Topic: "room", Data: []byte("over-tls")})
	if got := read(t, onB); got != "over-tls" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	on, err := a.ep.Hub().Online(ctx)
	if err != nil || on["alice"] != 2 {
		t.Fatalf("Online = %v, %v", on, err)
	}
	var st wssafe.Stats = a.ep.Stats()
	if raw, _ := json.Marshal(st); strings.Contains(string(raw), cfg.UserPass) || strings.Contains(a.logs.String(), cfg.UserPass) {
		t.Fatal("the Redis password reached the stats or the log")
	}
}
