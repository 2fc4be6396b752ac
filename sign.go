package wssafe

// Signer (HMAC-SHA256), the signed envelope and the Integrity middleware.

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
)

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

// signedEnvelope is the wire form [Integrity] checks: msg is any JSON value,
// signed as the exact bytes that appear on the wire.
type signedEnvelope struct {
	Msg json.RawMessage `json:"msg"`
	Sig string          `json:"sig"`
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
