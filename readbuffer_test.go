package wssafe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// mirror echoes every message as it came, type included.
var mirror = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	return s.Write(ctx, m.Type, m.Data)
})

// pipelinedDial writes a handshake request and first, the client's first
// frames, in one write: the server's net/http reads part of the frames
// with the request, before the upgrade.
func pipelinedDial(t *testing.T, wsURL string, first []byte) *hostileConn {
	t.Helper()
	c, key := hostileRequestThen(t, wsURL, http.MethodGet, nil, first)
	return hostileUpgraded(t, c, key)
}

// readEcho reads the next data message and requires it to be want.
func readEcho(t *testing.T, c *hostileConn, op byte, want []byte) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	gotOp, fin, got, err := c.readFrame()
	require.NoError(t, err)
	require.True(t, fin)
	require.Equal(t, op, gotOp)
	require.True(t, bytes.Equal(want, got), "echo of %d bytes differs (got %d bytes)", len(want), len(got))
}

// Every read buffer size, below net/http's 4 KiB and above it, reads
// messages larger than itself, and keeps the frames a client sent in the
// same write as its handshake request: a small one, one larger than the
// smallest buffer that net/http holds whole, and one that net/http holds
// only the start of.
func TestReadBufferSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{256, 0, 8 << 10, 32 << 10} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			t.Parallel()
			_, url := server(t, mirror, &wssafe.Options{ReadBufferSize: size, ReadLimit: 64 << 10})
			small := []byte("first")
			mid := bytes.Repeat([]byte("m"), 3000)
			straddling := bytes.Repeat([]byte("s"), 10000)
			first := append(textFrame(string(small)).bytes(), binFrame(mid).bytes()...)
			first = append(first, textFrame(string(straddling)).bytes()...)
			c := pipelinedDial(t, url, first)
			readEcho(t, c, opText, small)
			readEcho(t, c, opBinary, mid)
			readEcho(t, c, opText, straddling)

			// After the handshake: larger than every buffer, whole and
			// in fragments.
			large := make([]byte, 40<<10)
			rand.Read(large)
			_, err := c.nc.Write(binFrame(large).bytes())
			require.NoError(t, err)
			readEcho(t, c, opBinary, large)
			var frags []byte
			for i := 0; i < len(large); i += 10 << 10 {
				f := frame{op: opCont, data: large[i : i+10<<10], more: i+10<<10 < len(large)}
				if i == 0 {
					f.op = opBinary
				}
				frags = append(frags, f.bytes()...)
			}
			_, err = c.nc.Write(frags)
			require.NoError(t, err)
			readEcho(t, c, opBinary, large)
		})
	}
}

func TestReadBufferSizeBounds(t *testing.T) {
	t.Parallel()
	for _, ok := range []int{0, 256, 4 << 10, 32 << 10, 1 << 20} {
		_, err := wssafe.New(echo, &wssafe.Options{ReadBufferSize: ok})
		assert.NoError(t, err, "ReadBufferSize %d", ok)
	}
	for size, want := range map[int][]string{
		-1:        {"ReadBufferSize must not be negative", "leave it zero for 4096 bytes"},
		255:       {"ReadBufferSize 255 is below 256 bytes", "write ReadBufferSize: 256 or more"},
		1<<20 + 1: {"ReadBufferSize 1048577 is above 1048576 bytes", "write ReadBufferSize: 1048576 or less"},
	} {
		_, err := wssafe.New(echo, &wssafe.Options{ReadBufferSize: size})
		require.Error(t, err, "ReadBufferSize %d", size)
		for _, w := range want {
			assert.Contains(t, err.Error(), w)
		}
	}
}
