package wssafe_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/wssafe/wssafe"
)

// A close code from another node that no close frame may carry (coder
// would end the session without one) closes the sessions 3003
// "forbidden" instead, and the op is counted as malformed; a valid one is
// sent as it came.
func TestControlCloseCodeChecked(t *testing.T) {
	t.Parallel()
	for _, code := range []wssafe.StatusCode{1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		c := newFakeCluster()
		f := newAuthFixture(t)
		ep, url, bp := c.node(t, f, "n1", nil)
		alice := dial(t, url, bearer(f.token(nil)))
		bob := dial(t, url, bearer(f.token(claims{"sub": "bob"})))
		waitOpen(t, ep, 2)
		bp.node.Control(wssafe.ControlOp{Kind: wssafe.ControlCloseSubject, Subject: "alice", Code: code, Reason: "x"})
		closedWith(t, alice, wssafe.StatusForbidden, "forbidden")
		s := ep.Hub().BySubject("bob")
		if assert.Len(t, s, 1, "code %d", code) {
			bp.node.Control(wssafe.ControlOp{Kind: wssafe.ControlCloseSession, SessionID: s[0].ID(), Code: code})
		}
		closedWith(t, bob, wssafe.StatusForbidden, "forbidden")
		assert.Equal(t, uint64(2), ep.Stats().Backplane.Refused["malformed"], "code %d", code)
	}
	for _, code := range []wssafe.StatusCode{1000, 1003, 1007, 1014, 3000, 4999} {
		c := newFakeCluster()
		f := newAuthFixture(t)
		ep, url, bp := c.node(t, f, "n1", nil)
		alice := dial(t, url, bearer(f.token(nil)))
		waitOpen(t, ep, 1)
		bp.node.Control(wssafe.ControlOp{Kind: wssafe.ControlCloseSubject, Subject: "alice", Code: code, Reason: "bye"})
		closedWith(t, alice, code, "bye")
		assert.Zero(t, ep.Stats().Backplane.Refused["malformed"], "code %d", code)
	}
}
