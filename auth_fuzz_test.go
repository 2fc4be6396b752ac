package wssafe_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/wssafe/wssafe"
)

// fuzzSecret verifies the fuzz corpus's signed seeds. It is a test value,
// never a real secret.
const fuzzSecret = "wssafe-fuzz-test-secret-not-real!"

// validCompact reports whether tok has the compact JWS shape the
// extractors promise: three base64url segments, nothing else.
func validCompact(tok []byte) bool {
	if bytes.Count(tok, []byte(".")) != 2 {
		return false
	}
	for _, c := range tok {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// FuzzTokenExtraction feeds hostile Authorization headers, subprotocol
// lists and first messages to the extractors: they must not panic, and
// whatever they return must be a well-formed candidate from the input.
func FuzzTokenExtraction(f *testing.F) {
	f.Add("Bearer a.b.c", "wssafe, bearer.a.b.c", []byte("a.b.c"))
	f.Fuzz(func(t *testing.T, header, protocols string, msg []byte) {
		if tok, ok, err := wssafe.BearerToken([]string{header}); ok {
			if err != nil || tok == "" || !strings.Contains(header, tok) {
				t.Fatalf("bearer %q -> %q, %v", header, tok, err)
			}
		}
		if tok, ok, err := wssafe.SubprotocolsToken([]string{protocols}); ok && (err != nil || tok == "") {
			t.Fatalf("subprotocols %q -> %q, %v", protocols, tok, err)
		}
		if tok, err := wssafe.FirstMessageToken(wssafe.MessageText, msg); err == nil && !validCompact(tok) {
			t.Fatalf("first message %q -> %q", msg, tok)
		}
		if hdr, payload, err := wssafe.SplitToken(msg); err == nil {
			wssafe.DecodeObject(hdr)
			if sub, err := wssafe.SubjectOf(payload, []string{"user_id", "sub"}); err == nil && sub == "" {
				t.Fatal("empty subject accepted")
			}
		}
	})
}

// FuzzVerify feeds mutated tokens to the full verifier: nothing may be
// accepted unless its signature is the HMAC of its first two segments
// under the configured secret (no "none", no algorithm confusion, no
// parser differential between the header check and jwx).
func FuzzVerify(f *testing.F) {
	verify, err := wssafe.Verifier(&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{
		HMACSecret:              []byte(fuzzSecret),
		SubjectClaims:           []string{"user_id", "sub"},
		InsecureAllowMissingExp: true, // the corpus must stay valid forever
		MaxTokenSize:            4096,
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		sub, err := verify(raw)
		if err != nil {
			return
		}
		i := bytes.LastIndexByte(raw, '.')
		mac := hmac.New(sha256.New, []byte(fuzzSecret))
		mac.Write(raw[:i])
		want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		if string(raw[i+1:]) != want || sub == "" {
			t.Fatalf("accepted %q (subject %q) without a valid HS256 signature", raw, sub)
		}
	})
}

// TestVerifierAcceptsSignedSeed proves FuzzVerify's verifier accepts a
// correctly signed token, so the fuzzer explores both sides of the line.
func TestVerifierAcceptsSignedSeed(t *testing.T) {
	t.Parallel()
	verify, err := wssafe.Verifier(&wssafe.Options{Logger: quiet(), Auth: &wssafe.AuthOptions{
		HMACSecret: []byte(fuzzSecret), SubjectClaims: []string{"user_id", "sub"}, InsecureAllowMissingExp: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(`{"user_id":42}`))
	mac := hmac.New(sha256.New, []byte(fuzzSecret))
	mac.Write([]byte(input))
	sub, err := verify([]byte(input + "." + enc.EncodeToString(mac.Sum(nil))))
	if err != nil || sub != "42" {
		t.Fatalf("signed seed: subject %q, error %v", sub, err)
	}
}
