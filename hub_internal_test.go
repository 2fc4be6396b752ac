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
