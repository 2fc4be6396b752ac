package wssafe_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// The read side of compression: the limits count inflated bytes, a bomb
// is cut off without being inflated in full or even received in full,
// invalid data closes 1007, and each is logged, counted and observed.

// ReadLimit counts inflated bytes, and the inflation stops as soon as it
// passes: a bomb of 64 MiB of zeros (64 KiB on the wire) is answered with
// 1009 when its client has sent only its first 8 KiB (about 8 MiB
// inflated), so the server neither waited for nor inflated the rest.
func TestCompressedReadLimitStopsInflating(t *testing.T) {
	t.Parallel()
	logger, logs := newRecorder()
	ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true})
	c := dialDeflateRaw(t, url, offerNoContext)
	bomb := zeroBomb(64)
	sendPrefix(t, c.hostileConn, frame{op: opBinary, rsv: rsv1, data: bomb}, 8<<10)
	out := c.closed(t)
	assert.Equal(t, 1009, out.code, "close code (reason %q)", out.reason)
	assert.Equal(t, "message too big", out.reason)
	require.Eventually(t, func() bool { return logs.count(slog.LevelWarn, wssafe.EventMessageTooBig) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusMessageTooBig] == 1 }, 5*time.Second, 10*time.Millisecond)
}

// MaxInflationRatio cuts a bomb off once it passes the floor, when
// ReadLimit would let it through: 1 KiB of zeros' deflate inflating to
// 1 MiB closes 1009 after about the floor, well before 1 MiB, with a Warn
// line, a LimitHit and Closed[1009]. A bomb of 1 GiB whose client sends
// only its first 8 KiB is answered without the rest.
func TestInflationRatioCapsBombs(t *testing.T) {
	t.Parallel()
	for _, row := range []struct {
		name string
		bomb []byte
		send int // bytes of the payload sent; 0: all
	}{
		{"1 MiB from 1 KiB", zeroBomb(1), 0},
		{"1 GiB, first 8 KiB sent", zeroBomb(1024), 8 << 10},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newRecorder()
			var mu sync.Mutex
			var hits []string
			ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true, ReadLimit: 4 << 30,
				Observer: func(o wssafe.Observation) {
					if o.Kind == wssafe.LimitHit {
						mu.Lock()
						hits = append(hits, o.Reason)
						mu.Unlock()
					}
				}})
			bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
			c := dialDeflateRaw(t, url, offerNoContext)
			f := frame{op: opBinary, rsv: rsv1, data: row.bomb}
			if row.send > 0 {
				sendPrefix(t, c.hostileConn, f, row.send)
			} else {
				_, err := c.nc.Write(f.bytes())
				require.NoError(t, err)
			}
			out := c.closed(t)
			assert.Equal(t, 1009, out.code, "close code (reason %q)", out.reason)
			assert.Equal(t, "message too big", out.reason)
			require.Eventually(t, func() bool { return len(logs.linesOf(wssafe.EventInflationRatio)) == 1 }, 5*time.Second, 10*time.Millisecond)
			line := logs.linesOf(wssafe.EventInflationRatio)[0]
			inflated, _ := strconv.Atoi(line["inflated"])
			compressed, _ := strconv.Atoi(line["compressed"])
			t.Logf("cut off at %d bytes inflated from at most %d compressed", inflated, compressed)
			assert.Greater(t, inflated, wssafe.InflationRatioFloor)
			// The compressed count includes what coder's inflater has
			// buffered and not yet consumed (up to 4 KiB; see
			// inflateGuard.compressed): the cut comes within 100 times that,
			// plus one read, of the floor.
			assert.Greater(t, inflated, 100*compressed)
			assert.LessOrEqual(t, inflated, max(wssafe.InflationRatioFloor, 100*compressed)+16<<10)
			assert.Less(t, compressed, 8<<10)
			if row.send == 0 {
				assert.Less(t, inflated, 2*wssafe.InflationRatioFloor, "a bomb of 1 KiB inflated far past the floor")
			}
			assert.Equal(t, 1, logs.count(slog.LevelWarn, wssafe.EventInflationRatio))
			require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusMessageTooBig] == 1 }, 5*time.Second, 10*time.Millisecond)
			assert.Equal(t, uint64(1), ep.Stats().LimitHits[wssafe.EventInflationRatio])
			mu.Lock()
			assert.Equal(t, []string{wssafe.EventInflationRatio}, hits)
			mu.Unlock()
			assertAlive(t, bystander)
		})
	}
}

// Real JSON passes the ratio: a 200 KiB chat feed, which deflate shrinks
// about 5-10x, arrives whole with ReadLimit raised, from a raw client and
// from coder/websocket's own (which compresses it itself).
func TestInflationRatioPassesRealJSON(t *testing.T) {
	t.Parallel()
	doc := realJSON(200 << 10)
	wire := deflated(doc)
	ratio := float64(len(doc)) / float64(len(wire))
	t.Logf("%d bytes of JSON, %d compressed (%.1f:1)", len(doc), len(wire), ratio)
	require.Greater(t, ratio, 6.0, "the fixture should compress like real JSON")
	require.Less(t, ratio, 20.0)

	logger, logs := newRecorder()
	_, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true, ReadLimit: 1 << 20})
	c := dialDeflateRaw(t, url, offerNoContext)
	_, err := c.nc.Write(frame{op: opText, rsv: rsv1, data: wire}.bytes())
	require.NoError(t, err)
	_, err = c.nc.Write(closeFrame(1000, "").bytes())
	require.NoError(t, err)
	out, err := c.readDeflated(time.Now(), defaultBound)
	require.NoError(t, err)
	assert.Equal(t, 1000, out.code)
	require.Len(t, out.messages, 1)
	assert.Equal(t, string(doc), out.messages[0])

	cc, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)
	cc.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, cc.Write(ctx, websocket.MessageText, doc))
	_, got, err := cc.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, string(doc), string(got))
	assert.Empty(t, logs.linesOf(wssafe.EventInflationRatio))
}

// ByteRate spends inflated bytes: two messages of 20 KiB that take a few
// hundred bytes on the wire exhaust a burst of 32 KiB.
func TestByteRateCountsInflated(t *testing.T) {
	t.Parallel()
	logger, logs := newRecorder()
	ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true,
		ByteRate: wssafe.Rate{PerSecond: 1, Burst: 32 << 10}})
	c := dialDeflateRaw(t, url, offerNoContext)
	msg := frame{op: opBinary, rsv: rsv1, data: deflated(make([]byte, 20<<10))}
	require.Less(t, len(msg.data), 1024)
	_, err := c.nc.Write(append(msg.bytes(), msg.bytes()...))
	require.NoError(t, err)
	out := c.closed(t)
	assert.Equal(t, 1008, out.code, "close code (reason %q)", out.reason)
	assert.Len(t, out.messages, 1, "the first message is within the burst")
	require.Eventually(t, func() bool { return logs.count(slog.LevelWarn, wssafe.EventByteRate) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return ep.Stats().Traffic.BytesIn >= 20<<10 }, 5*time.Second, 10*time.Millisecond,
		"Traffic counts inflated bytes too")
}

// Invalid deflate data closes 1007 with wssafe's close frame, a Warn
// line, a ValidationFailed and Closed[1007]; so does a first message (the
// token of first-message authentication) that does not inflate.
func TestInvalidCompressedCounted(t *testing.T) {
	t.Parallel()
	logger, logs := newRecorder()
	var mu sync.Mutex
	var failed []string
	ep, url := server(t, mirrorHandler, &wssafe.Options{Logger: logger, Compression: true,
		Observer: func(o wssafe.Observation) {
			if o.Kind == wssafe.ValidationFailed {
				mu.Lock()
				failed = append(failed, o.Reason)
				mu.Unlock()
			}
		}})
	c := dialDeflateRaw(t, url, offerNoContext)
	_, err := c.nc.Write(frame{op: opText, rsv: rsv1, data: []byte{0xff, 0xff, 0xff, 0xff}}.bytes())
	require.NoError(t, err)
	out := c.closed(t)
	assert.Equal(t, 1007, out.code)
	assert.Equal(t, "invalid compressed data", out.reason)
	require.Eventually(t, func() bool { return ep.Stats().Closed[wssafe.StatusInvalidPayload] == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(1), ep.Stats().ValidationFailures[wssafe.EventInvalidCompressed])
	assert.Equal(t, 1, logs.count(slog.LevelWarn, wssafe.EventInvalidCompressed))
	mu.Lock()
	assert.Equal(t, []string{wssafe.EventInvalidCompressed}, failed)
	mu.Unlock()
	code, reason := wssafe.CloseFrame(wssafe.ErrInvalidCompressed)
	assert.Equal(t, wssafe.StatusInvalidPayload, code)
	assert.Equal(t, "invalid compressed data", reason)
}
