package redis

// The envelope: the authenticated wire form of everything one node sends
// another through Redis.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssafe/wssafe"
)

// envelopeVersion is the first byte of every envelope.
const envelopeVersion = 1

// Limits of the envelope's identifiers.
const (
	maxKeyIDLen  = 32
	maxNodeIDLen = 64
	bootIDLen    = 16
	macLen       = sha256.Size
)

// A kind says what an envelope's payload is.
type kind uint8

const (
	kindPublication kind = iota + 1 // a topic, subject or everyone publication
	kindControl                     // a close or revocation every node performs
	kindInterest                    // a node's topic subscriptions, for the interest table
	kindMax
)

// An envelope is one decoded, verified message between nodes. Its wire
// form, all integers big-endian:
//
//	version(1) kind(1) keyIDLen(1) keyID nodeLen(1) node boot(16)
//	seq(8) unixNano(8) payload... mac(32)
//
// mac is the HMAC-SHA256, under the key named by keyID, of every byte
// before it. The payload's length is what remains; the channel an envelope
// came on is not trusted for anything (the payload names its topic).
type envelope struct {
	kind    kind
	node    string
	boot    [bootIDLen]byte
	seq     uint64
	time    int64 // Unix nanoseconds, the sender's clock
	payload []byte
}

// A Key is one cluster key: every node of a cluster shares it. ID names it
// on the wire (1 to 32 bytes, not secret) so that keys can be rotated.
// Secret is at least 32 bytes from crypto/rand ([wssafe.MinSignerKeyLen]).
type Key struct {
	ID     string
	Secret []byte
}

// A keyring signs with its first key and verifies with any of them.
type keyring struct {
	first   string
	signers map[string]*wssafe.Signer
}

func newKeyring(keys []Key) (*keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("wssafe/redis: no cluster key: set Options.Keys to at least one Key with 32 random bytes, the same on every node")
	}
	kr := &keyring{first: keys[0].ID, signers: make(map[string]*wssafe.Signer, len(keys))}
	for _, k := range keys {
		if k.ID == "" || len(k.ID) > maxKeyIDLen {
			return nil, errors.New("wssafe/redis: a Key's ID must be 1 to 32 bytes")
		}
		if _, dup := kr.signers[k.ID]; dup {
			return nil, errors.New("wssafe/redis: two Keys have the same ID " + k.ID)
		}
		s, err := wssafe.NewSigner(k.Secret)
		if err != nil {
			return nil, errors.New("wssafe/redis: Key " + k.ID + ": the secret is shorter than 32 bytes (generate one with crypto/rand)")
		}
		kr.signers[k.ID] = s
	}
	return kr, nil
}

// A sealer writes this node's envelopes. It is safe for concurrent use.
type sealer struct {
	keys *keyring
	node string
	boot [bootIDLen]byte
	seq  atomic.Uint64
	now  func() time.Time
}

func newSealer(keys *keyring, node string, now func() time.Time) *sealer {
	s := &sealer{keys: keys, node: node, now: now}
	_, _ = rand.Read(s.boot[:]) // crypto/rand never fails on supported platforms
	return s
}

// seal returns the envelope of payload, with the next sequence number.
func (s *sealer) seal(k kind, payload []byte) []byte {
	b := make([]byte, 0, 3+len(s.keys.first)+1+len(s.node)+bootIDLen+16+len(payload)+macLen)
	b = append(b, envelopeVersion, byte(k), byte(len(s.keys.first)))
	b = append(b, s.keys.first...)
	b = append(b, byte(len(s.node)))
	b = append(b, s.node...)
	b = append(b, s.boot[:]...)
	b = binary.BigEndian.AppendUint64(b, s.seq.Add(1))
	b = binary.BigEndian.AppendUint64(b, uint64(s.now().UnixNano()))
	b = append(b, payload...)
	return append(b, s.keys.signers[s.keys.first].Sign(b)...)
}

// A verdict is what opening an envelope found.
type verdict uint8

const (
	verdictOK         verdict = iota
	verdictEcho               // this node's own envelope: dropped, not refused
	verdictSeen               // re-read: a control operation this node has already performed
	verdictEarlier            // re-read: sent while this node was receiving, so received then; or live: a publication in flight as this node subscribed
	refusedMalformed          // not an envelope of this version
	refusedUnknownKey         // signed under a key ID not in the keyring
	refusedMAC                // the MAC does not match: forged or altered
	refusedStale              // the timestamp is outside the window, or before this node listened on its channel
	refusedReplay             // this sender boot's sequence number was seen, or is too old
	refusedPeers              // too many sender boots in the window
	refusedRecord             // a stored revocation record not signed under a cluster key
	numVerdicts
)

// reasonNames are the refusal reasons as logged and counted.
var reasonNames = [numVerdicts]string{
	verdictOK: "ok", verdictEcho: "echo", verdictSeen: "seen", verdictEarlier: "earlier",
	refusedMalformed: "malformed", refusedUnknownKey: "unknown_key", refusedMAC: "bad_mac",
	refusedStale: "stale", refusedReplay: "replay", refusedPeers: "too_many_peers",
	refusedRecord: "bad_record",
}

// peerID is one boot of one sender.
type peerID struct {
	node string
	boot [bootIDLen]byte
}

// maxPeers bounds the anti-replay state: sender boots seen within the
// window. Only key holders can create state; this stops one that floods.
const maxPeers = 4096

// An opener verifies envelopes: MAC, key, freshness, replay. It is safe for
// concurrent use.
//
// Control operations are de-duplicated by MAC rather than by sequence
// number: a busy sender's publications (on other connections, in sharded
// mode) must not push a close out of the window, and a control operation
// re-read from the recent list after an outage is accepted up to that
// list's TTL, longer than maxAge. Their MACs are kept until that TTL has
// passed, so a control envelope is performed at most once per receiver
// boot, live or re-read.
//
// Freshness: an envelope is accepted when its timestamp t satisfies
// now-maxAge <= t <= now+maxSkew by this node's clock, and, received live,
// when it was not sealed before this node subscribed to the channel it
// came on (openOn's floor). An envelope published on a channel before
// this node listened there never reached it, so it has no replay state
// for it: without the floor, a node that started, reconnected or joined a
// topic within maxAge of a capture would take the captured envelope for a
// new one. One sealed more than maxSkew before the floor is refused
// (stale). Within maxSkew before it, clocks apart and envelopes in flight
// as the node subscribed make a genuine one indistinguishable from a
// replay: a publication is dropped without a refusal (verdictEarlier:
// delivery is at most once), while an interest announcement (it only
// states a sender's topics again) and a control operation (which must not
// be lost, and is de-duplicated by MAC from then on) are taken, so a
// control operation sealed in the maxSkew before a node subscribed can be
// replayed to it once. Control operations are also re-read from the
// recent list when the link connects (see reopen). A sender boot's
// replay state is kept until every envelope it accepted from that boot is
// stale, so a replayed envelope is refused by its sequence number while
// its timestamp could pass, and by its timestamp after. This also holds
// across a sender's restart: the new boot has its own state, the old
// boot's is kept or its envelopes are stale.
type opener struct {
	keys    *keyring
	node    string // envelopes from this node are echoes
	maxAge  time.Duration
	maxSkew time.Duration
	now     func() time.Time

	recentTTL time.Duration // how long control operations may be re-read

	mu        sync.Mutex
	peers     map[peerID]*replayWindow
	seen      map[[macLen]byte]int64 // control envelopes performed: MAC -> forget after (Unix ns)
	lastPrune time.Time

	counts [numVerdicts]atomic.Uint64
}

// maxSeen bounds the control envelopes remembered. Only key holders can
// add one; past the bound a live one is still performed (it was fresh)
// but not remembered, and a re-read one is skipped.
const maxSeen = 1 << 16

func newOpener(keys *keyring, node string, maxAge, maxSkew, recentTTL time.Duration, now func() time.Time) *opener {
	return &opener{keys: keys, node: node, maxAge: maxAge, maxSkew: maxSkew, recentTTL: max(recentTTL, maxAge), now: now,
		peers: map[peerID]*replayWindow{}, seen: map[[macLen]byte]int64{}}
}

// open decodes and verifies b, counting the verdict. The envelope's
// payload aliases b.
func (o *opener) open(b []byte) (envelope, verdict) {
	return o.openOn(b, time.Time{})
}

// openOn is open for an envelope received live on a channel this node
// subscribed to at floor (zero: no floor): one sealed before then is
// refused as stale.
func (o *opener) openOn(b []byte, floor time.Time) (envelope, verdict) {
	e, v := o.check(b, time.Time{}, floor)
	o.counts[v].Add(1)
	return e, v
}

// reopen opens a control envelope re-read from the recent list when the
// node link (re)connected; since is when that link last heard from Redis
// before, or when it started. The list holds what was sent while this
// node was connected too: one sent well before since was received then
// (verdictEarlier), one already performed is skipped (verdictSeen), and
// neither is a refusal. One sent after since is accepted up to recentTTL
// old, so that a node cut off for longer than maxAge still performs it.
func (o *opener) reopen(b []byte, since time.Time) (envelope, verdict) {
	e, v := o.check(b, since, time.Time{})
	o.counts[v].Add(1)
	return e, v
}

// check verifies b; since is zero for a live envelope, else reopen's, and
// floor is openOn's.
func (o *opener) check(b []byte, since, floor time.Time) (envelope, verdict) {
	e, keyID, ok := decode(b)
	if !ok {
		return e, refusedMalformed
	}
	signer := o.keys.signers[keyID]
	if signer == nil {
		return e, refusedUnknownKey
	}
	body, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !signer.Verify(body, mac) {
		return e, refusedMAC
	}
	if e.node == o.node {
		return e, verdictEcho
	}
	now := o.now()
	if e.time > now.Add(o.maxSkew).UnixNano() {
		return e, refusedStale
	}
	if since.IsZero() {
		if e.time < now.Add(-o.maxAge).UnixNano() {
			return e, refusedStale
		}
		if f := o.floorNow(floor, now); e.time < f {
			switch {
			case e.time < f-int64(o.maxSkew):
				return e, refusedStale
			case e.kind == kindPublication:
				return e, verdictEarlier // in flight as this node subscribed: dropped, not refused
			}
			// An interest announcement or a control operation sealed as
			// this node subscribed, on clocks up to maxSkew apart: taken.
		}
		if e.kind == kindControl {
			return e, o.rememberMAC(e, [macLen]byte(mac), now, false)
		}
		return e, o.remember(e, now)
	}
	if e.kind != kindControl {
		return e, refusedMalformed // the recent list holds control operations only
	}
	// Published within writeTimeout of being sealed, on clocks MaxSkew
	// apart: one sealed before this bound reached the link before it
	// last heard from Redis.
	if e.time < since.Add(-o.maxSkew-writeTimeout).UnixNano() {
		return e, verdictEarlier
	}
	if e.time < now.Add(-o.recentTTL).UnixNano() {
		return e, refusedStale // missed, and too old to perform now: counted
	}
	return e, o.rememberMAC(e, [macLen]byte(mac), now, true)
}

// floorNow is floor as the clock reads now, in Unix ns: taken through the
// monotonic clock when both readings have one, so that a step of the wall
// clock since neither refuses fresh envelopes nor lets older ones in.
// Zero floor: no bound.
func (o *opener) floorNow(floor, now time.Time) int64 {
	if floor.IsZero() {
		return 0
	}
	return now.Add(-now.Sub(floor)).UnixNano()
}

// rememberMAC records a control envelope performed; a second one with
// the same MAC is a replay live, and expected when re-read.
func (o *opener) rememberMAC(e envelope, mac [macLen]byte, now time.Time, reread bool) verdict {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prune(now)
	if _, dup := o.seen[mac]; dup {
		if reread {
			return verdictSeen
		}
		return refusedReplay
	}
	if len(o.seen) >= maxSeen {
		if reread {
			return verdictSeen
		}
		return verdictOK
	}
	o.seen[mac] = e.time + int64(o.recentTTL+o.maxSkew)
	return verdictOK
}

// remember records e's sequence number in its sender boot's window.
func (o *opener) remember(e envelope, now time.Time) verdict {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prune(now)
	id := peerID{node: e.node, boot: e.boot}
	w := o.peers[id]
	if w == nil {
		if len(o.peers) >= maxPeers {
			return refusedPeers
		}
		w = &replayWindow{}
		o.peers[id] = w
	}
	if !w.accept(e.seq) {
		return refusedReplay
	}
	w.maxTs = max(w.maxTs, e.time)
	return verdictOK
}

// prune drops the state of sender boots whose every accepted envelope is
// stale, at most a few times per window.
func (o *opener) prune(now time.Time) {
	if now.Sub(o.lastPrune) < o.maxAge/4 {
		return
	}
	o.lastPrune = now
	cutoff := now.Add(-o.maxAge).UnixNano()
	for id, w := range o.peers {
		if w.maxTs < cutoff {
			delete(o.peers, id)
		}
	}
	for mac, until := range o.seen {
		if until < now.UnixNano() {
			delete(o.seen, mac)
		}
	}
}

// peerCount is how many sender boots have replay state.
func (o *opener) peerCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.peers)
}

// decode parses b's fields without verifying anything.
func decode(b []byte) (e envelope, keyID string, ok bool) {
	if len(b) < 3 || b[0] != envelopeVersion {
		return e, "", false
	}
	e.kind = kind(b[1])
	if e.kind == 0 || e.kind >= kindMax {
		return e, "", false
	}
	kl := int(b[2])
	rest := b[3:]
	if kl == 0 || kl > maxKeyIDLen || len(rest) < kl+1 {
		return e, "", false
	}
	keyID, rest = string(rest[:kl]), rest[kl:]
	nl := int(rest[0])
	rest = rest[1:]
	if nl == 0 || nl > maxNodeIDLen || len(rest) < nl+bootIDLen+16+macLen {
		return e, "", false
	}
	e.node, rest = string(rest[:nl]), rest[nl:]
	copy(e.boot[:], rest)
	rest = rest[bootIDLen:]
	e.seq = binary.BigEndian.Uint64(rest)
	e.time = int64(binary.BigEndian.Uint64(rest[8:]))
	e.payload = rest[16 : len(rest)-macLen]
	return e, keyID, true
}
