package wssafe_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

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
