package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe/redis/redistest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeSink records what a node receives.
type fakeSink struct {
	pubs chan publication
	ctls chan controlOp
}

func newSink() *fakeSink {
	return &fakeSink{pubs: make(chan publication, 1024), ctls: make(chan controlOp, 1024)}
}
func (s *fakeSink) deliver(p publication) { s.pubs <- p }
func (s *fakeSink) control(op controlOp)  { s.ctls <- op }

var clusterKey = testKey("k1", 7)

// testOptions are quick timings for tests.
func testOptions(url string) Options {
	return Options{
		URL: url, Keys: []Key{clusterKey}, Logger: slog.New(slog.DiscardHandler),
		PresenceTTL: 1500 * time.Millisecond, PresenceRefresh: 300 * time.Millisecond,
		InterestRefresh: time.Second,
	}
}

// startNode starts a backplane named id and stops it when t ends.
func startNode(t *testing.T, opt Options, id string) (*Backplane, *fakeSink) {
	t.Helper()
	opt.NodeID = id
	b, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink()
	if err := b.start(s, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	})
	return b, s
}

// eventually polls cond: state in another process, with no event to wait on.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recvPub(t *testing.T, s *fakeSink, d time.Duration) publication {
	t.Helper()
	select {
	case p := <-s.pubs:
		return p
	case <-time.After(d):
		t.Fatal("no publication arrived")
		return publication{}
	}
}

func noPub(t *testing.T, s *fakeSink, d time.Duration) {
	t.Helper()
	select {
	case p := <-s.pubs:
		t.Fatalf("unexpected publication %+v", p)
	case <-time.After(d):
	}
}

func recvCtl(t *testing.T, s *fakeSink, d time.Duration) controlOp {
	t.Helper()
	select {
	case op := <-s.ctls:
		return op
	case <-time.After(d):
		t.Fatal("no control operation arrived")
		return controlOp{}
	}
}

func TestTopicsAcrossNodes(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) {
			srv := redistest.Start(t, redistest.Config{})
			opt := testOptions(srv.URL(0))
			opt.Sharded = sharded
			a, as := startNode(t, opt, "a")
			b, bs := startNode(t, opt, "b")
			c, cs := startNode(t, opt, "c")
			b.Subscribe("room")
			eventually(t, 3*time.Second, "a learns b's topic", func() bool { return a.remote.has("room") })
			if a.remote.has("lobby") || c.topics.list() != nil && len(c.topics.list()) != 0 {
				t.Fatal("a topic nobody joined is in the table")
			}
			if err := a.publish(publication{Topic: "room", Type: 1, Data: []byte("hi")}); err != nil {
				t.Fatal(err)
			}
			if p := recvPub(t, bs, 3*time.Second); p.Topic != "room" || string(p.Data) != "hi" {
				t.Fatalf("b got %+v", p)
			}
			noPub(t, cs, 200*time.Millisecond) // c never joined room
			noPub(t, as, 0)                    // no echo

			// A topic no other node has costs no write at all.
			before := a.Stats().Published
			_ = a.publish(publication{Topic: "lobby", Data: []byte("x")})
			if a.Stats().Published != before {
				t.Fatal("a publication to a topic nobody else has was written")
			}

			// Subject and everyone publications reach every other node.
			_ = a.publish(publication{Subject: "alice", Data: []byte("s")})
			for _, s := range []*fakeSink{bs, cs} {
				if p := recvPub(t, s, 3*time.Second); p.Subject != "alice" {
					t.Fatalf("got %+v", p)
				}
			}

			// Leaving stops delivery: the table forgets b's topic.
			b.Unsubscribe("room")
			eventually(t, 3*time.Second, "a forgets b's topic", func() bool { return !a.remote.has("room") })

			// A node that joins late learns the others' topics (its sync).
			c.Subscribe("late")
			d, _ := startNode(t, opt, "d")
			eventually(t, 3*time.Second, "d learns c's topic", func() bool { return d.remote.has("late") })
			if a.Stats().Echoes == 0 && b.Stats().Echoes == 0 {
				t.Fatal("no echo was recognised")
			}
		})
	}
}

// A client of Redis without the cluster key cannot inject anything, and
// a captured envelope published again is refused.
func TestForgedAndReplayedEnvelopesRefused(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	a, _ := startNode(t, opt, "a")
	b, bs := startNode(t, opt, "b")
	eventually(t, 3*time.Second, "a and b see each other", func() bool { return a.remote.nodes() == 1 && b.remote.nodes() == 1 })

	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx := context.Background()
	spy := rc.Subscribe(ctx, a.nodeChan)
	defer spy.Close()
	if _, err := spy.ReceiveTimeout(ctx, 3*time.Second); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}

	_ = a.control(controlOp{Kind: ctlCloseSubject, Subject: "alice", Code: 3003, Reason: "forbidden"})
	if op := recvCtl(t, bs, 3*time.Second); op.Subject != "alice" {
		t.Fatalf("b got %+v", op)
	}
	var captured string
	for captured == "" {
		m, err := spy.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e, _, ok := decode([]byte(m.Payload)); ok && e.kind == kindControl {
			captured = m.Payload
		}
	}

	forger := newSealer(mustKeyring(t, testKey("k1", 8)), "a", time.Now) // a's name, not its key
	forged := forger.seal(kindControl, controlOp{Kind: ctlCloseSubject, Subject: "bob"}.append(nil))
	for _, msg := range []any{forged, captured, "not an envelope"} {
		if err := rc.Publish(ctx, a.nodeChan, msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 3*time.Second, "b refuses all three", func() bool {
		r := b.Stats().Refused
		return r["bad_mac"] == 1 && r["replay"] == 1 && r["malformed"] == 1
	})
	select {
	case op := <-bs.ctls:
		t.Fatalf("a refused envelope was delivered: %+v", op)
	default:
	}
}

// Redis goes away mid-test and comes back empty: publishing drops and
// counts, control operations wait, the links reconnect and resubscribe,
// the interest table and presence are rebuilt, and nothing leaks. A
// topic left during the outage (in sharded mode: a link with nothing left
// to receive) does not keep the node down.
func TestRedisRestart(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) { testRedisRestart(t, sharded) })
	}
}

func testRedisRestart(t *testing.T, sharded bool) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	opt.Sharded = sharded
	var logs lockedBuffer
	aopt := opt
	aopt.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	a, _ := startNode(t, aopt, "a")
	b, bs := startNode(t, opt, "b")
	b.Subscribe("room")
	a.Subscribe("side")
	eventually(t, 3*time.Second, "a learns b's topic", func() bool { return a.remote.has("room") })
	eventually(t, 3*time.Second, "b learns a's topic", func() bool { return b.remote.has("side") })
	if ok, err := b.Acquire(context.Background(), "alice", 0); !ok || err != nil {
		t.Fatal(ok, err)
	}

	srv.Kill()
	eventually(t, 5*time.Second, "a notices the outage", func() bool { return a.Stats().Down })
	eventually(t, 5*time.Second, "a's link for side fails", func() bool { return failing(a, a.linkFor("side")) })
	a.Unsubscribe("side") // its link has nothing left to receive
	if err := a.publish(publication{Topic: "room", Data: []byte("payload-7f3a")}); err == nil {
		t.Fatal("a publication during the outage was not dropped")
	}
	if a.Stats().Dropped == 0 {
		t.Fatal("the drop was not counted")
	}
	if err := a.control(controlOp{Kind: ctlCloseSubject, Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(context.Background(), "bob", 5); err == nil {
		t.Fatal("Acquire succeeded with Redis down (fail-closed is the default)")
	}

	srv.Restart()
	start := time.Now()
	if op := recvCtl(t, bs, 5*time.Second); op.Subject != "alice" {
		t.Fatalf("the kept control operation: %+v", op)
	}
	eventually(t, 5*time.Second, "cross-node delivery resumes", func() bool {
		_ = a.publish(publication{Topic: "room", Data: []byte("again")})
		select {
		case p := <-bs.pubs:
			return string(p.Data) == "again"
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	t.Logf("delivery resumed %v after the restart", time.Since(start).Round(time.Millisecond))
	eventually(t, 5*time.Second, "b re-registers its presence", func() bool {
		on, err := a.Online(context.Background())
		return err == nil && on["alice"] == 1
	})
	eventually(t, 5*time.Second, "a is up again", func() bool { return !a.Stats().Down })
	if ok, err := a.Acquire(context.Background(), "bob", 5); !ok || err != nil {
		t.Fatalf("Acquire after the recovery: %v, %v", ok, err)
	}
	st := a.Stats()
	if st.Outages != 1 || st.Down || st.ControlsPending != 0 {
		t.Fatalf("stats after recovery: %+v", st)
	}
	out := logs.String()
	if n, m := strings.Count(out, `"event":"backplane_down"`), strings.Count(out, `"event":"backplane_up"`); n != 1 || m != 1 {
		t.Fatalf("outage logged %d times, recovery %d times, want once each:\n%s", n, m, out)
	}
	if strings.Contains(out, "payload-7f3a") {
		t.Fatal("a payload reached the log")
	}
}

// failing reports whether b's health counts part as failing.
func failing(b *Backplane, part any) bool {
	b.health.mu.Lock()
	defer b.health.mu.Unlock()
	return b.health.failed[part]
}

func TestPresenceCapAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	a, _ := startNode(t, opt, "a")
	b, _ := startNode(t, opt, "b")
	ctx := context.Background()

	// 2 nodes x 20 concurrent handshakes, cap 5: exactly 5 admitted.
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for i := range 40 {
		n := []*Backplane{a, b}[i%2]
		wg.Go(func() {
			ok, err := n.Acquire(ctx, "alice", 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted != 5 {
		t.Fatalf("%d admitted, want 5", admitted)
	}
	on, err := a.Online(ctx)
	if err != nil || on["alice"] != 5 {
		t.Fatalf("Online = %v, %v", on, err)
	}
	if got := a.pres.localCount("alice") + b.pres.localCount("alice"); got != 5 {
		t.Fatalf("local counts sum to %d", got)
	}

	// A release frees a place for either node.
	if a.pres.localCount("alice") > 0 {
		a.Release("alice")
	} else {
		b.Release("alice")
	}
	eventually(t, 3*time.Second, "the release reaches Redis", func() bool {
		ok, _ := b.Acquire(ctx, "alice", 5)
		return ok
	})

	// Graceful stop removes b's counts at once.
	nb := b.pres.localCount("alice")
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	on, _ = a.Online(ctx)
	if on["alice"] != 5-nb {
		t.Fatalf("after b's Stop, Online = %v, want %d", on, 5-nb)
	}
}

// A node that dies without Stop stops counting within the presence TTL.
func TestPresenceExpiresWithDeadNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	a, _ := startNode(t, opt, "a")
	opt.NodeID = "dead"
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(newSink(), nil, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if ok, err := d.Acquire(ctx, "carol", 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if ok, _ := a.Acquire(ctx, "carol", 3); !ok {
		t.Fatal("third session refused")
	}
	if ok, _ := a.Acquire(ctx, "carol", 3); ok {
		t.Fatal("fourth session admitted over the cap")
	}
	d.crash()
	died := time.Now()
	eventually(t, 3*time.Second, "the dead node's sessions stop counting", func() bool {
		on, _ := a.Online(ctx)
		return on["carol"] == 1
	})
	if since := time.Since(died); since > opt.PresenceTTL+500*time.Millisecond {
		t.Fatalf("took %v, TTL %v", since, opt.PresenceTTL)
	}
	if ok, _ := a.Acquire(ctx, "carol", 3); !ok {
		t.Fatal("a place freed by the dead node was not available")
	}
}

// A revocation is stored: a node started later, or one that was away
// during an outage, learns it.
func TestRevocationOutlivesBroadcast(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	a, _ := startNode(t, opt, "a")
	before := time.Now()
	if err := a.control(controlOp{Kind: ctlRevoke, Subject: "mallory", Before: before, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the record is written", func() bool { return a.Stats().ControlsPending == 0 })

	_, ls := startNode(t, opt, "late")
	op := recvCtl(t, ls, 3*time.Second)
	if op.Kind != ctlRevoke || op.Subject != "mallory" || !op.Before.Equal(time.Unix(0, before.UnixNano())) ||
		op.Before.Add(op.TTL).Before(before.Add(time.Hour-time.Second)) {
		t.Fatalf("a late node loaded %+v", op)
	}

	// Sent during an outage, after which Redis is empty: kept, stored and
	// sent on recovery.
	srv.Kill()
	eventually(t, 5*time.Second, "a notices the outage", func() bool { return a.Stats().Down })
	_ = a.control(controlOp{Kind: ctlRevoke, Subject: "trudy", Before: time.Now(), TTL: time.Hour})
	srv.Restart()
	seen := map[string]bool{}
	for !seen["trudy"] {
		seen[recvCtl(t, ls, 5*time.Second).Subject] = true
	}
	_, ns := startNode(t, opt, "newer")
	if op := recvCtl(t, ns, 3*time.Second); op.Subject != "trudy" {
		t.Fatalf("loaded %+v", op)
	}
}

func TestURLs(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{Password: "test-only-pass", User: "node", UserPass: "test-only-user-pass", TLS: true})
	for name, opt := range map[string]Options{
		"password": testOptions(srv.URL(0)),
		"ACL user": testOptions(srv.UserURL(2)),
		"rediss":   func() Options { o := testOptions(srv.TLSURL(1)); o.TLSConfig = srv.TLSConfig(); return o }(),
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := startNode(t, opt, "n")
			if ok, err := b.Acquire(context.Background(), "alice", 1); !ok || err != nil {
				t.Fatal(ok, err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		b, _ := startNode(t, testOptions("redis://:wrong@"+srv.Addr()+"/0"), "n")
		if _, err := b.Acquire(context.Background(), "alice", 1); err == nil {
			t.Fatal("Acquire worked with a wrong password")
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		b, _ := startNode(t, testOptions(srv.TLSURL(0)), "n") // system roots
		if _, err := b.Acquire(context.Background(), "alice", 1); err == nil {
			t.Fatal("Acquire worked against a certificate from an untrusted CA")
		}
	})
}
