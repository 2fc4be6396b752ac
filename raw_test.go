package wssafe_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawConn adapts the hostile suite's hand-made client (hostile_test.go) to
// the shape the core's tests use: one frame at a time.
type rawConn struct {
	*hostileConn
	t testing.TB
}

// dialRaw performs a real opening handshake on a plain TCP connection.
func dialRaw(t *testing.T, wsURL string, _ http.Header) *rawConn {
	return &rawConn{hostileConn: hostileDial(t, wsURL), t: t}
}

// frame writes one masked frame.
func (c *rawConn) frame(fin bool, op byte, payload []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(frame{op: op, data: payload, more: !fin}.bytes())
	return err
}

// serverFrame is a frame read from the server.
type serverFrame struct {
	op      byte
	payload []byte
}

func (c *rawConn) readFrame() (serverFrame, error) {
	op, _, p, err := c.hostileConn.readFrame()
	return serverFrame{op: op, payload: p}, err
}

// closeCode returns the code and reason of the server's close frame,
// failing the test if none arrives within d.
func (c *rawConn) closeCode(d time.Duration) (int, string) {
	c.t.Helper()
	out := c.readUntilClose(time.Now(), d)
	require.Positive(c.t, out.code, "no close frame from the server")
	return out.code, out.reason
}
