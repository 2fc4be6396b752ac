package wssafe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

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

// A backplane's error may quote the broker's URL with its password: the
// log names only its kind, for an outage and for a failed Stop.
func TestBackplaneCauseNotLogged(t *testing.T) {
	t.Parallel()
	const secret = "fake-pw-0123"
	cause := fmt.Errorf("dial redis://default:%s@broker:6379: %w", secret, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	c := newFakeCluster()
	f := newAuthFixture(t)
	opts := f.options(nil)
	logs := f.logs
	ep, _, bp := c.node(t, f, "n1", opts)
	bp.node.SetUp(false, cause)
	bp.node.SetUp(true, nil)
	bp.node.SetUp(false, fmt.Errorf("redis://u:%s@h: %w", secret, context.DeadlineExceeded))
	bp.stopErr = errors.New("closing redis://u:" + secret + "@h")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ep.Shutdown(ctx)
	out := logs.String()
	assert.NotContains(t, out, secret)
	assert.Contains(t, out, `"event":"backplane_down","node":"n1","cause":"network"`)
	assert.Contains(t, out, `"event":"backplane_down","node":"n1","cause":"timeout"`)
	assert.Contains(t, out, `"wssafe: stopping the backplane failed","event":"backplane_down","cause":"other"`)
	assert.Equal(t, uint64(2), ep.Stats().Backplane.Outages)
}
