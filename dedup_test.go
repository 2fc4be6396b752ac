package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

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
