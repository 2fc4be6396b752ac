package wssafe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

func TestDigest(t *testing.T) {
	t.Parallel()
	// FIPS 180-2 test vector.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	d := wssafe.Digest("abc")
	assert.Equal(t, abc, hex.EncodeToString(d[:]))
	m := wssafe.Message{Type: wssafe.MessageText, Data: []byte("abc")}
	assert.Equal(t, d, wssafe.Digest(m.Data))
}

// signHex is a signature as the wire carries it.
func signHex(s *wssafe.Signer, p []byte) string { return hex.EncodeToString(s.Sign(p)) }

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func TestSigner(t *testing.T) {
	t.Parallel()
	_, err := wssafe.NewSigner([]byte("test-key-too-short"))
	assert.ErrorContains(t, err, "shorter than 32 bytes", "the error says what is wrong")

	// RFC 4231 test case 6: a 131-byte key.
	key := bytes.Repeat([]byte{0xaa}, 131)
	s, err := wssafe.NewSigner(key)
	require.NoError(t, err)
	data := []byte("Test Using Larger Than Block-Size Key - Hash Key First")
	const want = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
	assert.Equal(t, want, signHex(s, data))
	key[0] = 0 // the Signer keeps its own copy
	assert.Equal(t, want, signHex(s, data))

	sig := s.Sign(data)
	assert.True(t, s.Verify(data, sig))
	upper, err := hex.DecodeString(strings.ToUpper(want))
	require.NoError(t, err)
	assert.True(t, s.Verify(data, upper))
	tampered := append([]byte(nil), data...)
	tampered[0] ^= 1
	assert.False(t, s.Verify(tampered, sig))
	assert.False(t, s.Verify(data, sig[:31]), "a truncated signature")
	assert.False(t, s.Verify(data, nil))

	other, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	assert.False(t, other.Verify(data, sig), "another key")
}

func TestSignerConcurrent(t *testing.T) {
	t.Parallel()
	s, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	want := signHex(s, []byte("x"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				assert.Equal(t, want, signHex(s, []byte("x")))
			}
		})
	}
	wg.Wait()
}

func TestSeal(t *testing.T) {
	t.Parallel()
	s, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	_, err = s.Seal([]byte(`{"a":`))
	assert.Error(t, err)
	env, err := s.Seal([]byte(`{"type":"join","room":"go"}`))
	require.NoError(t, err)
	assert.Equal(t, `{"msg":{"type":"join","room":"go"},"sig":"`+signHex(s, []byte(`{"type":"join","room":"go"}`))+`"}`, string(env))

	// Whitespace inside msg is signed as is; around it, it is not part of
	// the value the receiver sees.
	spaced := " {\"type\": \"join\",\n \"room\": \"go\"}\n"
	env, err = s.Seal([]byte(spaced))
	require.NoError(t, err)
	assert.Equal(t, `{"msg":`+strings.TrimSpace(spaced)+`,"sig":"`+signHex(s, []byte(strings.TrimSpace(spaced)))+`"}`, string(env))
	_, url := server(t, wssafe.Chain(chatRouter(), wssafe.Integrity(s)), nil)
	assert.Equal(t, "joined go", roundTrip(t, dial(t, url, nil), string(env)))
}

func TestIntegrityEndToEnd(t *testing.T) {
	t.Parallel()
	signer, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	log, buf := newLogger()
	// Every line, not one per second per client: the test asserts on a later one.
	_, url := server(t, wssafe.Chain(chatRouter(), wssafe.Integrity(signer)), &wssafe.Options{Logger: log, SecurityLogInterval: -1})
	c := dial(t, url, nil)

	env, err := signer.Seal([]byte(`{"type":"join","room":"go"}`))
	require.NoError(t, err)
	assert.Equal(t, "joined go", roundTrip(t, c, string(env)))

	// Signed bytes are the bytes on the wire: whitespace inside msg is fine.
	msg := `{ "type": "say", "room": "go", "text": "hi" }`
	assert.Equal(t, "go: hi", roundTrip(t, c, `{"sig":"`+signHex(signer, []byte(msg))+`", "msg":`+msg+`}`))

	wrongKey, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	forged, err := wrongKey.Seal([]byte(`{"type":"join","room":"go"}`))
	require.NoError(t, err)

	for name, m := range map[string]string{
		"altered payload": strings.Replace(string(env), `"room":"go"`, `"room":"gp"`, 1),
		"altered spacing": strings.Replace(string(env), `"room":"go"`, `"room": "go"`, 1),
		"wrong key":       string(forged),
		"no signature":    `{"msg":{"type":"join","room":"go"}}`,
		"empty signature": `{"msg":{"type":"join","room":"go"},"sig":""}`,
		"not hex":         `{"msg":{"type":"join","room":"go"},"sig":"` + strings.Repeat("z", 64) + `"}`,
		"unsigned":        `{"type":"join","room":"go"}`,
		"extra member":    strings.Replace(string(env), `{"msg"`, `{"admin":true,"msg"`, 1),
		"duplicate msg":   strings.Replace(string(env), `,"sig"`, `,"msg":{"type":"join","room":"admin"},"sig"`, 1),
	} {
		r := sendInvalid(t, c, m)
		if name == "duplicate msg" {
			assert.Equal(t, wssafe.CodeInvalidJSON, r.Code, name)
			continue
		}
		assert.Equal(t, wssafe.CodeTampered, r.Code, name)
	}
	assert.Equal(t, "joined go", roundTrip(t, c, string(env)), "the session stays open")
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	assert.Contains(t, buf.String(), `"code":"tampered"`)
}

func TestIntegrityNeedsSigner(t *testing.T) {
	t.Parallel()
	assert.Panics(t, func() { wssafe.Integrity(nil) })
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	ep, err := wssafe.New(echo, &wssafe.Options{FingerprintKey: key})
	require.NoError(t, err)
	same, err := wssafe.New(echo, &wssafe.Options{FingerprintKey: key})
	require.NoError(t, err)
	other, err := wssafe.New(echo, nil)
	require.NoError(t, err)

	secret := []byte("1234") // a short secret a plain hash would give away
	fp := ep.Fingerprint(secret)
	assert.Len(t, fp, 16)
	assert.Equal(t, fp, same.Fingerprint(secret), "one key, one fingerprint")
	assert.NotEqual(t, fp, other.Fingerprint(secret), "fingerprints are keyed")
	d := wssafe.Digest(secret)
	assert.NotEqual(t, fp, hex.EncodeToString(d[:8]), "a fingerprint is not a plain hash")
	assert.NotEqual(t, fp, ep.Fingerprint([]byte("1235")))

}

func TestDedup(t *testing.T) {
	t.Parallel()
	// Dedup keeps time on the clock of the session's endpoint.
	clock := newFakeClock()
	opened := make(chan *wssafe.Session, 1)
	_, url := serverWith(t, echo, &wssafe.Options{OnOpen: func(s *wssafe.Session) error { opened <- s; return nil }}, wssafe.Hooks{Clock: clock})
	dial(t, url, nil)
	sess := <-opened
	opts := &wssafe.DedupOptions{Window: time.Minute, MaxEntries: 3}
	var delivered []string
	h := wssafe.Chain(wssafe.HandlerFunc(func(_ context.Context, _ *wssafe.Session, m wssafe.Message) error {
		delivered = append(delivered, m.Text())
		return nil
	}), wssafe.Dedup(opts))
	serve := func(typ wssafe.MessageType, s string) string {
		err := h.ServeMessage(context.Background(), sess, wssafe.Message{Type: typ, Data: []byte(s)})
		if err == nil {
			return ""
		}
		me := asMessageError(t, err)
		assert.Equal(t, "dedup", me.Rule)
		return me.Code
	}
	text := func(s string) string { return serve(wssafe.MessageText, s) }

	assert.Empty(t, text("a"))
	assert.Equal(t, wssafe.CodeReplayed, text("a"))
	assert.Empty(t, serve(wssafe.MessageBinary, "a"), "the type is part of the digest")
	clock.Advance(59 * time.Second)
	assert.Equal(t, wssafe.CodeReplayed, text("a"), "still within the window")
	clock.Advance(time.Second)
	assert.Empty(t, text("a"), "the window has passed")

	// Bounded memory: with room for three, a fourth digest pushes out the
	// oldest ("a" text, now forgotten early), the others are still known.
	assert.Empty(t, text("b"))
	assert.Empty(t, text("c"))
	assert.Empty(t, text("d"))
	assert.Empty(t, text("a"), "forgotten early: MaxEntries bounds memory")
	assert.Equal(t, wssafe.CodeReplayed, text("d"))
	assert.Equal(t, []string{"a", "a", "a", "b", "c", "d", "a"}, delivered)
}

func TestDedupEndToEnd(t *testing.T) {
	t.Parallel()
	for _, across := range []bool{false, true} {
		_, url := server(t, wssafe.Chain(echo, wssafe.Dedup(&wssafe.DedupOptions{AcrossSessions: across})), nil)
		c1, c2 := dial(t, url, nil), dial(t, url, nil)
		assert.Equal(t, "Server received: hi", roundTrip(t, c1, "hi"))
		assert.Equal(t, wssafe.CodeReplayed, sendInvalid(t, c1, "hi").Code, "a replay in the same session")
		if across {
			assert.Equal(t, wssafe.CodeReplayed, sendInvalid(t, c2, "hi").Code, "a replay in another session")
		} else {
			assert.Equal(t, "Server received: hi", roundTrip(t, c2, "hi"), "sessions are separate by default")
		}
		assert.Equal(t, "Server received: bye", roundTrip(t, c1, "bye"))
	}
}

func TestIntegrityThenDedupRefusesReplayedSignedMessage(t *testing.T) {
	t.Parallel()
	signer, err := wssafe.NewSigner(newKey(t))
	require.NoError(t, err)
	_, url := server(t, wssafe.Chain(chatRouter(), wssafe.Integrity(signer), wssafe.Dedup(&wssafe.DedupOptions{AcrossSessions: true})), nil)
	env, err := signer.Seal([]byte(`{"type":"join","room":"go","nonce":"n-1"}`))
	require.NoError(t, err)
	c1, c2 := dial(t, url, nil), dial(t, url, nil)
	r := sendInvalid(t, c1, string(env))
	assert.Equal(t, wssafe.CodeUnknownField, r.Code, "the signed payload still goes through the router's checks")
	env, err = signer.Seal([]byte(`{"type":"join","room":"go"}`))
	require.NoError(t, err)
	assert.Equal(t, "joined go", roundTrip(t, c1, string(env)))
	assert.Equal(t, wssafe.CodeReplayed, sendInvalid(t, c2, string(env)).Code, "a captured signed message replayed elsewhere")
}
