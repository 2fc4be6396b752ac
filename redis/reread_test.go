package redis

// Control operations re-read from the recent list after a reconnect.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe/redis/redistest"
)

// Control envelopes are de-duplicated by MAC, live and re-read: a re-read
// one performed already is skipped, one sent before the link last heard
// from Redis was received then, one missed is accepted up to the list's
// TTL, and a live replay is refused. A busy sender's publications do not
// push a control out of reach.
func TestOpenerControls(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	o := newOpener(kr, "me", 30*time.Second, 5*time.Second, 10*time.Minute, clk.now)
	s := newSealer(kr, "a", clk.now)
	live := s.seal(kindControl, []byte("live"))
	if _, v := o.open(live); v != verdictOK {
		t.Fatal(reasonNames[v])
	}
	since := clk.now()
	clk.add(time.Minute)
	missed := s.seal(kindControl, []byte("missed"))
	for range 5000 { // the same sender's publications, received on other links
		if _, v := o.open(s.seal(kindPublication, nil)); v != verdictOK {
			t.Fatal(reasonNames[v])
		}
	}
	clk.add(5 * time.Minute) // longer than maxAge, within the list's TTL
	if _, v := o.reopen(live, since); v != verdictSeen {
		t.Fatalf("a re-read of what was performed: %s", reasonNames[v])
	}
	if _, v := o.reopen(missed, since); v != verdictOK {
		t.Fatalf("a missed control, re-read: %s", reasonNames[v])
	}
	if _, v := o.reopen(missed, since); v != verdictSeen {
		t.Fatalf("a second re-read: %s", reasonNames[v])
	}
	if _, v := o.reopen(live, clk.now()); v != verdictEarlier {
		t.Fatalf("sent before the link last heard from Redis: %s", reasonNames[v])
	}
	clk.add(-5 * time.Minute)
	if _, v := o.open(missed); v != refusedReplay {
		t.Fatalf("a live replay of a performed control: %s", reasonNames[v])
	}
	clk.add(10 * time.Minute)
	if _, v := o.reopen(s.seal(kindPublication, nil), since); v != refusedMalformed {
		t.Fatalf("a publication in the recent list: %s", reasonNames[v])
	}
	old := s.seal(kindControl, []byte("old"))
	clk.add(11 * time.Minute)
	if _, v := o.reopen(old, since); v != refusedStale {
		t.Fatalf("missed, older than the list's TTL: %s", reasonNames[v])
	}
}

// cutNode gives b a node link that can be held off Redis: hold makes its
// next connection wait until release. Cut it with CLIENT KILL (kill).
type cutNode struct {
	held atomic.Pointer[chan struct{}]
}

func (c *cutNode) gate(node bool) {
	if ch := c.held.Load(); node && ch != nil {
		<-*ch
	}
}

func (c *cutNode) hold() {
	ch := make(chan struct{})
	c.held.Store(&ch)
}

func (c *cutNode) release() {
	if ch := c.held.Swap(nil); ch != nil {
		close(*ch)
	}
}

// kill cuts the pub/sub connections of the client named name.
func kill(t *testing.T, rc *goredis.Client, name string) {
	t.Helper()
	list, err := rc.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["name"] == name && strings.Contains(f["flags"], "P") {
			if err := rc.Do(context.Background(), "CLIENT", "KILL", "ID", f["id"]).Err(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no pub/sub connection of %s to cut:\n%s", name, list)
	}
}

// A close sent while a's node link is cut reaches a when it reconnects,
// although 2000 of the sender's publications reached a meanwhile (on its
// topic's link: sharded) and pushed the close's sequence number out of
// the anti-replay window.
func TestControlRereadAfterBusySender(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	var cut cutNode
	aopt := testOptions(srv.URL(0) + "?client_name=a")
	aopt.Sharded, aopt.linkGate = true, cut.gate
	a, as := startNode(t, aopt, "a")
	t.Cleanup(cut.release)
	bopt := testOptions(srv.URL(0))
	bopt.Sharded = true
	b, _ := startNode(t, bopt, "b")
	a.Subscribe("room")
	eventually(t, 3*time.Second, "b learns a's topic", func() bool { return b.remote.has("room") })

	cut.hold()
	kill(t, rc, "a")
	eventually(t, 5*time.Second, "a's node link is cut", func() bool { return failing(a, a.links[0]) })
	if err := b.control(controlOp{Kind: ctlCloseSubject, Subject: "alice", Code: 3003, Reason: "gone"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "b sends the close", func() bool { return b.Stats().ControlsPending == 0 })
	// a's topic link reconnects at once: publish until a gets them.
	got := 0
	eventually(t, 5*time.Second, "a receives 2000 of b's publications", func() bool {
		for range 500 {
			_ = b.publish(publication{Topic: "room", Data: []byte("x")})
		}
		for {
			select {
			case <-as.pubs:
				got++
				continue
			case <-time.After(100 * time.Millisecond):
			}
			return got >= 2000
		}
	})
	select {
	case op := <-as.ctls:
		t.Fatalf("a got %+v while its node link was cut", op)
	default:
	}
	cut.release()
	if op := recvCtl(t, as, 5*time.Second); op.Subject != "alice" || op.Code != 3003 {
		t.Fatalf("a got %+v", op)
	}
	if st := a.Stats(); st.ControlsReread != 1 || st.Refused["replay"] != 0 || st.Refused["stale"] != 0 {
		t.Fatalf("a's stats: %+v", st)
	}
}

// A node cut off for longer than MaxAge still performs the close sent
// meanwhile, once, when it reconnects; the next reconnect re-reads it
// again and skips it.
func TestControlRereadAfterLongCut(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "pubsub", true: "sharded"}[sharded], func(t *testing.T) {
			srv := redistest.Start(t, redistest.Config{})
			rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			defer rc.Close()
			var offset atomic.Int64 // the nodes' shared clock, moved on by the test
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			var cut cutNode
			opt := testOptions(srv.URL(0) + "?client_name=a")
			opt.Sharded, opt.now, opt.MaxAge, opt.MaxSkew = sharded, now, 2*time.Second, time.Second
			aopt := opt
			aopt.linkGate = cut.gate
			a, as := startNode(t, aopt, "a")
			t.Cleanup(cut.release)
			b, _ := startNode(t, opt, "b")
			eventually(t, 3*time.Second, "a and b see each other", func() bool { return a.remote.nodes() == 1 && b.remote.nodes() == 1 })

			cut.hold()
			kill(t, rc, "a")
			eventually(t, 5*time.Second, "a's node link is cut", func() bool { return failing(a, a.links[0]) })
			if err := b.control(controlOp{Kind: ctlCloseSession, Subject: "alice", SessionID: "s-1"}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Second, "b sends the close", func() bool { return b.Stats().ControlsPending == 0 })
			offset.Add(int64(3 * opt.MaxAge)) // a stays cut off for longer than MaxAge
			cut.release()
			if op := recvCtl(t, as, 5*time.Second); op.SessionID != "s-1" {
				t.Fatalf("a got %+v", op)
			}
			if st := a.Stats(); st.ControlsReread != 1 || st.Refused["stale"] != 0 {
				t.Fatalf("a's stats: %+v", st)
			}

			// Cut again: the close is in the list still, re-read and skipped.
			skipped := func() uint64 { return a.open.counts[verdictSeen].Load() + a.open.counts[verdictEarlier].Load() }
			before := skipped()
			kill(t, rc, "a")
			eventually(t, 5*time.Second, "a re-reads the list again", func() bool { return skipped() > before })
			select {
			case op := <-as.ctls:
				t.Fatalf("a performed %+v again", op)
			default:
			}
			if st := a.Stats(); st.ControlsReread != 1 {
				t.Fatalf("a's stats: %+v", st)
			}
		})
	}
}
