package wssafe_test

import (
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// The idle deadline is renewed lazily (deadline.go): a session that keeps
// sending is never idle however long it lasts, and one that falls silent
// is closed 3008 "idle timeout" between IdleTimeout and 1.25 x IdleTimeout
// later.
func TestIdleTimeoutLazyRenewal(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	_, url := server(t, mirrorHandler, &wssafe.Options{IdleTimeout: idle, PingInterval: -1})
	c := dial(t, url, nil)
	start := time.Now()
	for time.Since(start) < 3*idle {
		mirrorOnce(t, c, "busy")
		// Pacing a busy client, not synchronization.
		time.Sleep(idle / 10)
	}
	silent := time.Now()
	ce := readClose(t, c)
	took := time.Since(silent)
	assert.Equal(t, wssafe.StatusCode(3008), ce.Code)
	assert.Equal(t, "idle timeout", ce.Reason)
	assert.GreaterOrEqual(t, took, idle/2, "about IdleTimeout after the last message, sooner only by a late tick")
	assert.Less(t, took, idle*5/4+defaultBound, "by 1.25 x IdleTimeout")
}

// The idle deadline does not apply while a message is open: a message that
// takes longer than IdleTimeout to arrive, within MessageTimeout, is read.
func TestIdleTimeoutSparesAMessageInProgress(t *testing.T) {
	t.Parallel()
	const idle = 150 * time.Millisecond
	_, url := server(t, mirrorHandler, &wssafe.Options{IdleTimeout: idle, PingInterval: -1})
	c := hostileDial(t, url)
	_, err := c.nc.Write(frame{op: opText, data: []byte("slow "), more: true}.bytes())
	require.NoError(t, err)
	// Longer than 1.25 x IdleTimeout mid-message: waiting is the point.
	time.Sleep(3 * idle)
	_, err = c.nc.Write(frame{op: opCont, data: []byte("message")}.bytes())
	require.NoError(t, err)
	out := c.readUntilClose(time.Now(), 2*idle+defaultBound)
	assert.Equal(t, []string{"slow message"}, out.messages)
	assert.Equal(t, 3008, out.code, "and then, silent, the session is idle")
	assert.Equal(t, "idle timeout", out.reason)
}

func TestIdleTimeoutCloses3008(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, url, nil)
	ce := readClose(t, c)
	assert.Equal(t, websocket.StatusCode(3008), ce.Code)
	assert.Equal(t, "idle timeout", ce.Reason)
}
