package wssafe

// Digest and keyed fingerprints (Endpoint.Fingerprint, Redacted) for logs.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
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

// fingerprinter computes keyed fingerprints: HMAC-SHA256 under a key that
// never leaves the process, so a fingerprint in a log cannot be brute-forced
// back into a short secret, yet equal inputs still correlate.
type fingerprinter struct {
	pool sync.Pool // of hash.Hash
}

func newFingerprinter(key []byte) *fingerprinter {
	k := append([]byte(nil), key...)
	f := &fingerprinter{}
	f.pool.New = func() any { return hmac.New(sha256.New, k) }
	return f
}

// sum returns the first 8 bytes of the keyed hash of b, hex encoded.
func (f *fingerprinter) sum(b []byte) string {
	h := f.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(b)
	var out [sha256.Size]byte
	s := hex.EncodeToString(h.Sum(out[:0])[:8])
	f.pool.Put(h)
	return s
}
