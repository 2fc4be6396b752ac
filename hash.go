package wssafe

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"sync"
	"time"
)

// Digest returns the SHA-256 digest of p, a message's Data or a string.
// For the hex form, like Python's hashlib.sha256(p).hexdigest(), encode
// it: d := Digest(p); hex.EncodeToString(d[:]).
//
// Digests identify content: de-duplication ([Dedup]), cache keys,
// comparing a payload with a known one. HMAC-SHA256 ([Signer]) proves that
// a message was made by someone holding a key and not altered since. Keyed
// fingerprints ([Endpoint.Fingerprint]) let logs correlate secrets without
// containing them.
//
// Hashing is NOT:
//   - password storage. SHA-256 and HMAC are fast by design, so a leaked
//     table of password hashes falls to a GPU in hours. Store passwords
//     with a slow, salted KDF: golang.org/x/crypto/argon2 (argon2id) or
//     golang.org/x/crypto/bcrypt.
//   - encryption. A digest hides nothing from someone who can guess the
//     input, and an HMAC leaves the message readable. Confidentiality in
//     transit is TLS: serve wss:// and set [Options.RequireTLS] so that a
//     deployment cannot silently run in the clear.
func Digest[T ~string | ~[]byte](p T) [sha256.Size]byte {
	return sha256.Sum256([]byte(p))
}

// Fingerprint returns a keyed fingerprint of p (16 hex digits of
// HMAC-SHA256 under the endpoint's [Options.FingerprintKey]) to log in
// place of a secret. Equal inputs give equal fingerprints within the
// endpoint, so log lines about one token can be matched; without the key,
// a fingerprint cannot be brute-forced back into a short secret, as a
// plain hash of a PIN or a low-entropy token could. It is safe for
// concurrent use.
func (e *Endpoint) Fingerprint(p []byte) string { return e.fp.sum(p) }

// MinSignerKeyLen is the shortest key [NewSigner] accepts, in bytes: the
// hash's output size, as RFC 2104 recommends.
const MinSignerKeyLen = 32

// errWeakKey is returned by [NewSigner] for a key shorter than
// [MinSignerKeyLen].
var errWeakKey = errors.New("wssafe: NewSigner: the HMAC key is shorter than 32 bytes (generate one with crypto/rand)")

// A Signer computes and verifies HMAC-SHA256 signatures under one key. It
// is safe for concurrent use.
//
// Use a key for this purpose only, from crypto/rand, kept on servers (or
// devices) you trust: a key shipped to a browser is known to its user, so
// a signature then proves nothing about who wrote the message.
type Signer struct {
	pool sync.Pool // of hash.Hash, keyed
}

// NewSigner returns a Signer for key, which it copies. It refuses keys
// shorter than [MinSignerKeyLen] with an error that says so.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinSignerKeyLen {
		return nil, errWeakKey
	}
	k := append([]byte(nil), key...)
	s := &Signer{}
	s.pool.New = func() any { return hmac.New(sha256.New, k) }
	return s, nil
}

// Sign returns the 32-byte HMAC-SHA256 of p. For the hex form, encode it
// with hex.EncodeToString.
func (s *Signer) Sign(p []byte) []byte {
	h := s.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(p)
	sum := h.Sum(nil)
	s.pool.Put(h)
	return sum
}

// Verify reports whether sig is the HMAC-SHA256 of p. The comparison takes
// the same time whatever the bytes, so an attacker cannot find a valid
// signature byte by byte by timing refusals. Decode a hex signature with
// hex.DecodeString first, and refuse it if that fails.
func (s *Signer) Verify(p, sig []byte) bool {
	return hmac.Equal(s.Sign(p), sig)
}

// verifyHex is Verify for a hex-encoded signature.
func (s *Signer) verifyHex(p []byte, sig string) bool {
	raw, err := hex.DecodeString(sig)
	return err == nil && s.Verify(p, raw)
}

// signedEnvelope is the wire form [Integrity] checks: msg is any JSON value,
// signed as the exact bytes that appear on the wire.
type signedEnvelope struct {
	Msg json.RawMessage `json:"msg"`
	Sig string          `json:"sig"`
}

// Seal wraps msg, which must be one JSON value, in the envelope [Integrity]
// checks:
//
//	{"msg":<msg>,"sig":"<hex HMAC-SHA256 of msg's bytes>"}
//
// Signing the exact bytes of msg, not a re-encoding, means any client can
// build the envelope with string concatenation and no canonical JSON.
func (s *Signer) Seal(msg []byte) ([]byte, error) {
	if !json.Valid(msg) {
		return nil, errors.New("wssafe: Seal: msg is not a JSON value")
	}
	// The receiver sees msg without surrounding whitespace; sign that.
	// json.Marshal would compact msg, so the envelope is assembled by hand.
	msg = bytes.TrimSpace(msg)
	env := make([]byte, 0, len(msg)+2*sha256.Size+17)
	env = append(env, `{"msg":`...)
	env = append(env, msg...)
	env = append(env, `,"sig":"`...)
	env = hex.AppendEncode(env, s.Sign(msg))
	return append(env, `"}`...), nil
}

// Integrity returns a Middleware that accepts only messages sealed by
// signer (see [Signer.Seal]) and passes the next handler the inner msg,
// verified. A message without a valid signature, or with any member besides
// msg and sig, is answered with a "tampered" reply and counts against the
// invalid-message budget; the next handler never sees it. The envelope is
// bounded by [Options.JSONLimits], as [JSON] bounds a message.
//
// A signature proves origin and integrity, not freshness: a captured
// message verifies again when replayed. Put [Dedup] after Integrity, and a
// timestamp or nonce in the messages, to refuse replays.
func Integrity(signer *Signer) Middleware {
	if signer == nil {
		panic("wssafe: Integrity needs a Signer")
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, m Message) error {
			msg, me := openEnvelope(signer, m.Data, jsonLimits(s))
			if me != nil {
				return me
			}
			return next.ServeMessage(ctx, s, Message{Type: m.Type, Data: msg})
		})
	}
}

func openEnvelope(signer *Signer, data []byte, limits JSONLimits) ([]byte, *MessageError) {
	if me := scanJSON(data, limits, true); me != nil {
		return nil, me
	}
	env, err := decodeStrict[signedEnvelope](data)
	if err != nil || env.Msg == nil {
		return nil, &MessageError{Code: CodeTampered, Message: "message is not a signed envelope", Rule: "envelope"}
	}
	if len(env.Sig) != 2*sha256.Size || !signer.verifyHex(env.Msg, env.Sig) {
		return nil, &MessageError{Code: CodeTampered, Field: "sig", Message: "signature does not match", Rule: "hmac"}
	}
	return env.Msg, nil
}

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
