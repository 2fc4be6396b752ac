package redis

import (
	"bytes"
	"testing"
	"time"
)

// testKey returns a 32-byte key that is plainly a fixture.
func testKey(id string, fill byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1700000000, 0)} }
func mustKeyring(t *testing.T, keys ...Key) *keyring {
	t.Helper()
	kr, err := newKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestEnvelopeRoundTrip(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	o := newOpener(kr, "node-b", 30*time.Second, 5*time.Second, 0, clk.now)
	b := s.seal(kindPublication, []byte("payload"))
	e, v := o.open(b)
	if v != verdictOK || e.kind != kindPublication || e.node != "node-a" || e.boot != s.boot ||
		e.seq != 1 || e.time != clk.t.UnixNano() || string(e.payload) != "payload" {
		t.Fatalf("open = %+v, %s", e, reasonNames[v])
	}
	if _, v := o.open(b); v != refusedReplay {
		t.Fatalf("a replay: %s, want replay", reasonNames[v])
	}
	if o.counts[refusedReplay].Load() != 1 || o.counts[verdictOK].Load() != 1 {
		t.Fatal("verdicts not counted")
	}
}

func TestEnvelopeRefusals(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	o := newOpener(kr, "node-b", 30*time.Second, 5*time.Second, 0, clk.now)
	other := newSealer(mustKeyring(t, testKey("k1", 2)), "node-a", clk.now) // same ID, wrong secret
	unknown := newSealer(mustKeyring(t, testKey("k9", 1)), "node-a", clk.now)

	good := s.seal(kindControl, []byte("x"))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-macLen-1] ^= 1 // the payload
	for name, c := range map[string]struct {
		b    []byte
		want verdict
	}{
		"forged under another secret": {other.seal(kindControl, []byte("x")), refusedMAC},
		"unknown key ID":              {unknown.seal(kindControl, []byte("x")), refusedUnknownKey},
		"altered payload":             {flipped, refusedMAC},
		"truncated":                   {good[:len(good)-1], refusedMAC},
		"empty":                       {nil, refusedMalformed},
		"bad version":                 {append([]byte{9}, good[1:]...), refusedMalformed},
		"bad kind":                    {append([]byte{envelopeVersion, 0}, good[2:]...), refusedMalformed},
		"header only":                 {good[:20], refusedMalformed},
	} {
		if _, v := o.open(c.b); v != c.want {
			t.Errorf("%s: %s, want %s", name, reasonNames[v], reasonNames[c.want])
		}
	}
	if o.peerCount() != 0 {
		t.Fatal("refused envelopes created replay state")
	}
}

func TestEnvelopeFreshness(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	recvClk := newFakeClock()
	o := newOpener(kr, "node-b", 30*time.Second, 5*time.Second, 0, recvClk.now)

	old := s.seal(kindPublication, nil)
	recvClk.add(30*time.Second + time.Nanosecond)
	if _, v := o.open(old); v != refusedStale {
		t.Fatalf("31 s old: %s, want stale", reasonNames[v])
	}
	clk.t = recvClk.t.Add(5*time.Second + time.Nanosecond)
	if _, v := o.open(s.seal(kindPublication, nil)); v != refusedStale {
		t.Fatalf("from 5 s in the future: %s, want stale", reasonNames[v])
	}
	clk.t = recvClk.t.Add(5 * time.Second)
	if _, v := o.open(s.seal(kindPublication, nil)); v != verdictOK {
		t.Fatalf("within the skew: %s", reasonNames[v])
	}
}

// A node has no replay state for what was published on a channel before
// it listened there: received live, an envelope sealed more than maxSkew
// before the node asked to subscribe is refused, whatever its kind. One
// sealed within maxSkew before (clocks apart, in flight) is a publication
// dropped without a refusal, or an interest announcement or a control
// operation taken.
func TestEnvelopeSealedBeforeTheReceiverSubscribed(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	o := newOpener(kr, "node-b", 30*time.Second, 5*time.Second, 0, clk.now)
	captured := [][]byte{s.seal(kindPublication, []byte("hello")), s.seal(kindControl, []byte("close")), s.seal(kindInterest, nil)}
	clk.add(10 * time.Second)
	subscribed := clk.now()
	for _, b := range captured {
		if _, v := o.openOn(b, subscribed); v != refusedStale {
			t.Fatalf("sealed 10 s before the receiver subscribed: %s, want stale", reasonNames[v])
		}
	}
	lagging := newSealer(kr, "node-c", func() time.Time { return clk.now().Add(-time.Second) })
	for k, want := range map[kind]verdict{kindPublication: verdictEarlier, kindInterest: verdictOK, kindControl: verdictOK} {
		if _, v := o.openOn(lagging.seal(k, []byte{byte(k)}), subscribed); v != want {
			t.Fatalf("kind %d sealed 1 s before, by a lagging clock: %s, want %s", k, reasonNames[v], reasonNames[want])
		}
	}
	clk.add(2 * time.Second)
	for _, b := range [][]byte{s.seal(kindPublication, nil), s.seal(kindControl, nil), lagging.seal(kindPublication, nil)} {
		if _, v := o.openOn(b, subscribed); v != verdictOK {
			t.Fatalf("sealed after the receiver subscribed: %s", reasonNames[v])
		}
	}
	// Subscribed again, after a cut longer than the skew: what was sealed
	// before it is refused.
	before := s.seal(kindControl, []byte("before the cut"))
	clk.add(6 * time.Second)
	if _, v := o.openOn(before, clk.now()); v != refusedStale {
		t.Fatalf("sealed 6 s before the resubscription: %s, want stale", reasonNames[v])
	}
}

// Echoes are dropped, not refused; a forged echo is refused.
func TestEnvelopeEcho(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	o := newOpener(kr, "node-a", 30*time.Second, 5*time.Second, 0, clk.now)
	if _, v := o.open(s.seal(kindPublication, nil)); v != verdictEcho {
		t.Fatalf("own envelope: %s, want echo", reasonNames[v])
	}
	forged := newSealer(mustKeyring(t, testKey("k1", 2)), "node-a", clk.now)
	if _, v := o.open(forged.seal(kindPublication, nil)); v != refusedMAC {
		t.Fatalf("forged echo: %s, want bad_mac", reasonNames[v])
	}
}

// Rotation: a node that signs with the new key and still accepts the old
// one talks to nodes on either.
func TestEnvelopeKeyRotation(t *testing.T) {
	clk := newFakeClock()
	old, neu := testKey("2024", 1), testKey("2025", 2)
	oldNode := newSealer(mustKeyring(t, old), "old", clk.now)
	both := mustKeyring(t, neu, old)
	rolled := newSealer(both, "rolled", clk.now)
	o := newOpener(both, "me", 30*time.Second, 5*time.Second, 0, clk.now)
	if _, v := o.open(oldNode.seal(kindControl, nil)); v != verdictOK {
		t.Fatalf("old key: %s", reasonNames[v])
	}
	oOld := newOpener(mustKeyring(t, old, neu), "me", 30*time.Second, 5*time.Second, 0, clk.now)
	if _, v := oOld.open(rolled.seal(kindControl, nil)); v != verdictOK {
		t.Fatalf("new key on a node that lists it second: %s", reasonNames[v])
	}
	oRetired := newOpener(mustKeyring(t, neu), "me", 30*time.Second, 5*time.Second, 0, clk.now)
	if _, v := oRetired.open(oldNode.seal(kindControl, nil)); v != refusedUnknownKey {
		t.Fatalf("retired key: %s, want unknown_key", reasonNames[v])
	}
}

// A sender's restart resets its sequence: the new boot is accepted from
// one, and the old boot's envelopes still refused while fresh, then stale.
func TestEnvelopeReplayAcrossRestart(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	o := newOpener(kr, "me", 30*time.Second, 5*time.Second, 0, clk.now)
	boot1 := newSealer(kr, "node-a", clk.now)
	captured := [][]byte{boot1.seal(kindPublication, []byte("close"))}
	for range 10 {
		captured = append(captured, boot1.seal(kindPublication, nil))
	}
	for _, b := range captured {
		if _, v := o.open(b); v != verdictOK {
			t.Fatal(reasonNames[v])
		}
	}
	clk.add(10 * time.Second)
	boot2 := newSealer(kr, "node-a", clk.now) // restarted: seq from 1
	if e, v := o.open(boot2.seal(kindPublication, nil)); v != verdictOK || e.seq != 1 {
		t.Fatalf("new boot: %s seq %d", reasonNames[v], e.seq)
	}
	if _, v := o.open(captured[0]); v != refusedReplay {
		t.Fatalf("old boot replayed within the window: %s", reasonNames[v])
	}
	for range 4 { // pruning runs; the old boot's state goes once stale
		clk.add(8 * time.Second)
		_, _ = o.open(boot2.seal(kindPublication, nil))
	}
	if _, v := o.open(captured[0]); v != refusedStale {
		t.Fatalf("old boot replayed after the window: %s", reasonNames[v])
	}
	if n := o.peerCount(); n != 1 {
		t.Fatalf("%d sender boots kept, want 1 (the old one pruned)", n)
	}
}

// Reordering within the window, as sharded channels do, loses nothing.
func TestEnvelopeReorder(t *testing.T) {
	clk := newFakeClock()
	kr := mustKeyring(t, testKey("k1", 1))
	s := newSealer(kr, "node-a", clk.now)
	o := newOpener(kr, "me", 30*time.Second, 5*time.Second, 0, clk.now)
	var bs [][]byte
	for range 500 {
		bs = append(bs, s.seal(kindPublication, nil))
	}
	for i := len(bs) - 1; i >= 0; i-- {
		if _, v := o.open(bs[i]); v != verdictOK {
			t.Fatalf("envelope %d: %s", i, reasonNames[v])
		}
	}
}

func TestKeyringRefuses(t *testing.T) {
	for name, keys := range map[string][]Key{
		"none":      nil,
		"short":     {{ID: "k", Secret: make([]byte, 31)}},
		"no ID":     {{Secret: make([]byte, 32)}},
		"long ID":   {{ID: string(make([]byte, 33)), Secret: make([]byte, 32)}},
		"duplicate": {testKey("k", 1), testKey("k", 2)},
	} {
		if _, err := newKeyring(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzOpen: no input panics, and only envelopes sealed under the key are
// accepted, each once.
func FuzzOpen(f *testing.F) {
	clk := newFakeClock()
	kr, _ := newKeyring([]Key{testKey("k1", 1)})
	s := newSealer(kr, "node-a", clk.now)
	f.Add(s.seal(kindPublication, []byte("hello")))
	f.Add(s.seal(kindControl, nil))
	f.Add([]byte{envelopeVersion, 1, 1, 'k'})
	f.Fuzz(func(t *testing.T, b []byte) {
		o := newOpener(kr, "me", 30*time.Second, 5*time.Second, 0, clk.now)
		e, v := o.open(b)
		if v == verdictOK {
			if e.node == "" || e.kind == 0 || e.kind >= kindMax {
				t.Fatalf("accepted a malformed envelope: %+v", e)
			}
			if _, v2 := o.open(b); v2 != refusedReplay {
				t.Fatalf("accepted twice: %s", reasonNames[v2])
			}
		}
		_, _, _ = decode(b)
	})
}
