package wssafe

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Changing a session's subject after admission would let it escape its
// subject's cap and index: the admission step refuses loudly.
func TestSubjectChangedAfterAdmission(t *testing.T) {
	e, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }), nil)
	require.NoError(t, err)
	s := newSession(e, httptest.NewRequest("GET", "/", nil))
	defer s.cancel(nil)
	s.subject = "alice"
	require.NoError(t, e.admit(s))
	require.NoError(t, e.admit(s), "admission is idempotent")
	s.subject = "mallory"
	assert.Panics(t, func() { e.admit(s) })
}

// The connection's lifecycle in the Hub is one table: every phase and
// event, the legal moves listed, every other move refused and harmless.
func TestRegistrationLifecycle(t *testing.T) {
	legal := map[[2]uint8]regPhase{
		{uint8(regFree), uint8(regReserve)}:    regReserved,
		{uint8(regReserved), uint8(regAccept)}: regLive,
		{uint8(regReserved), uint8(regEnd)}:    regDropped,
		{uint8(regDropped), uint8(regAccept)}:  regEnded,
		{uint8(regLive), uint8(regEnd)}:        regEnded,
	}
	for p := regFree; p <= regEnded; p++ {
		for ev := regReserve; ev <= regEnd; ev++ {
			got, ok := p.next(ev)
			want, isLegal := legal[[2]uint8{uint8(p), uint8(ev)}]
			if !isLegal {
				want = p
			}
			assert.Equal(t, isLegal, ok, "phase %d, event %d", p, ev)
			assert.Equal(t, want, got, "phase %d, event %d", p, ev)
		}
	}
}

// A session is open once it is both accepted and admitted, whichever comes
// second; one that ended before it was accepted is accepted (Shutdown
// waits for it) but never opened; release frees every slot.
func TestRegistrationOpensOnSecondStep(t *testing.T) {
	e, err := New(HandlerFunc(func(context.Context, *Session, Message) error { return nil }), &Options{MaxConns: 3})
	require.NoError(t, err)
	h := e.Hub()
	session := func(subject string) *Session {
		s := newSession(e, httptest.NewRequest("GET", "/", nil))
		t.Cleanup(func() { s.cancel(nil) })
		s.subject = subject
		_, ok := h.reserve(s)
		require.True(t, ok)
		return s
	}

	early := session("alice") // admitted at the handshake, then accepted
	require.NoError(t, e.admit(early))
	assert.Nil(t, h.ByID(early.id), "admitted but not accepted: not open")
	require.NoError(t, e.track(early))
	assert.Same(t, early, h.ByID(early.id), "accepted second: open")

	late := session("bob") // accepted, then admitted after a first-message token
	require.NoError(t, e.track(late))
	assert.Nil(t, h.ByID(late.id), "accepted but not admitted: not open")
	require.NoError(t, e.admit(late))
	assert.Same(t, late, h.ByID(late.id), "admitted second: open")
	assert.Len(t, h.BySubject("bob"), 1)

	dropped := session("carol") // ended before it was accepted
	h.hide(dropped)
	require.NoError(t, e.track(dropped))
	require.NoError(t, e.admit(dropped))
	assert.Nil(t, h.ByID(dropped.id), "ended before it was accepted: never opened")
	assert.Nil(t, h.BySubject("carol"))
	h.mu.Lock()
	assert.Len(t, h.liveSessions(), 3, "accepted, so Shutdown waits for it")
	h.mu.Unlock()

	h.hide(late)
	assert.Nil(t, h.ByID(late.id), "ending hides at once")
	assert.Len(t, h.Sessions(), 1)
	for _, s := range []*Session{early, late, dropped} {
		e.untrack(s)
		assert.Equal(t, regFree, s.reg.phase)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Zero(t, h.reserved)
	assert.Empty(t, h.live)
	assert.Empty(t, h.byID)
	assert.Empty(t, h.subjects)
}
