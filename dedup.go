package wssafe

// Dedup, the middleware that refuses replayed messages, and its bounded
// digest store.

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// Defaults for [DedupOptions] fields left at zero.
const (
	DefaultDedupWindow     = time.Minute
	DefaultDedupMaxEntries = 10000
)

// DedupOptions configures [Dedup]. The zero value is per-session
// de-duplication over one minute, remembering at most 10000 messages.
type DedupOptions struct {
	// Window is how long a message's digest is remembered. Zero means one
	// minute.
	Window time.Duration
	// MaxEntries bounds the digests remembered, across all sessions, so
	// memory stays bounded (about 100 bytes each) whatever the traffic.
	// When it is reached the oldest digest is forgotten early, and a replay
	// of that message within its window then goes unnoticed: size it above
	// the messages expected per window, and rate-limit sessions. Zero means
	// 10000.
	MaxEntries int
	// AcrossSessions makes a message seen in one session a replay in every
	// other. Zero scopes de-duplication to each session, so two users who
	// both send "hi" are not each other's replays. Enable it for messages
	// that carry their own nonce or ID, where any duplicate is an attack.
	AcrossSessions bool
}

// Dedup returns a Middleware that refuses a message whose SHA-256 digest
// (of its type and bytes, and the session unless AcrossSessions) was
// already seen within the window, with a "replayed" reply that counts
// against the invalid-message budget. The first copy is recorded before
// the next handler runs, so concurrent duplicates are caught too. A nil
// opts means the zero [DedupOptions]. The Middleware is safe for
// concurrent use; its memory is shared by every handler it wraps.
func Dedup(opts *DedupOptions) Middleware {
	d := newReplayStore(opts)
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, m Message) error {
			if d.seen(d.key(s, m), s.now()) {
				return &MessageError{Code: CodeReplayed, Message: "message was already received", Rule: "dedup"}
			}
			return next.ServeMessage(ctx, s, m)
		})
	}
}

type replayEntry struct {
	key [sha256.Size]byte
	at  time.Time
}

// replayStore remembers digests in arrival order: with one window for all,
// the oldest entry always expires first, so expiry and eviction both pop
// from the front of the queue.
type replayStore struct {
	window  time.Duration
	max     int
	global  bool
	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time
	queue   []replayEntry
}

func newReplayStore(opts *DedupOptions) *replayStore {
	var o DedupOptions
	if opts != nil {
		o = *opts
	}
	setDefault(&o.Window, DefaultDedupWindow)
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultDedupMaxEntries
	}
	return &replayStore{window: o.Window, max: o.MaxEntries, global: o.AcrossSessions,
		entries: make(map[[sha256.Size]byte]time.Time)}
}

// key is the digest that identifies m for de-duplication.
func (d *replayStore) key(s *Session, m Message) [sha256.Size]byte {
	h := sha256.New()
	if !d.global && s != nil {
		h.Write([]byte(s.id))
	}
	h.Write([]byte{0, byte(m.Type)})
	h.Write(m.Data)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// seen records k, seen at now, and reports whether it was already recorded
// within the window.
func (d *replayStore) seen(k [sha256.Size]byte, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if at, ok := d.entries[k]; ok && now.Sub(at) < d.window {
		return true
	}
	if len(d.queue) >= d.max {
		d.drop()
	}
	d.entries[k] = now
	d.queue = append(d.queue, replayEntry{key: k, at: now})
	return false
}

func (d *replayStore) expire(now time.Time) {
	for len(d.queue) > 0 && now.Sub(d.queue[0].at) >= d.window {
		d.drop()
	}
}

// drop forgets the oldest entry. The map entry goes only if it is still
// that one: a key seen again after expiring has a newer entry of its own.
func (d *replayStore) drop() {
	e := d.queue[0]
	d.queue = d.queue[1:]
	if at, ok := d.entries[e.key]; ok && at.Equal(e.at) {
		delete(d.entries, e.key)
	}
}
