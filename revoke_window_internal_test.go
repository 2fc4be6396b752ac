package wssafe

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A close is recorded only while a session is opening, refuses only the
// sessions that began before it, and is dropped once no session is
// opening (or, under constant load, by the sweep once none that began
// before it is): the records do not grow with the closes.
func TestClosingsKeptWhileOpening(t *testing.T) {
	e, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }), nil)
	require.NoError(t, err)
	h := e.Hub()
	opening := func(subject string) *Session {
		s := newSession(e, httptest.NewRequest("GET", "/", nil))
		t.Cleanup(func() { s.cancel(nil) })
		s.subject = subject
		_, ok := h.reserve(s)
		require.True(t, ok)
		h.beginOpening(s)
		return s
	}
	records := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.closings.last)
	}

	h.closeSubject("alice", nil)
	assert.Zero(t, records(), "no session opening: nothing to record")

	early, early2 := opening("alice"), opening("bob")
	h.closeSubject("alice", ErrForbidden)
	late := opening("alice") // began after the close
	assert.Equal(t, 1, records())
	h.mu.Lock()
	assert.ErrorIs(t, h.stale(early), ErrForbidden)
	assert.NoError(t, h.stale(late))
	h.release(early)
	h.mu.Unlock()
	assert.Equal(t, 1, records(), "kept while a session that began before it is opening")
	h.mu.Lock()
	h.release(early2)
	h.release(late)
	h.mu.Unlock()
	assert.Zero(t, records(), "no session opening: dropped")
}
