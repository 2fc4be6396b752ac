package wssafe

import (
	"compress/flate"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The memory a message costs while it is read: the buffer grows by
// doubling up to ReadLimit+1 bytes (what coder/websocket's read limit lets
// through) and never past it, so a session in a message of ReadLimit
// bytes holds about ReadLimit, and allocates about twice that in all
// while growing (append's 1.25x steps allocated about five times it). On
// a compressed session ReadLimit/MaxInflationRatio bytes of wire reach it.

// limitedReader yields n bytes in reads of at most 16 KiB, then, as
// coder's limit reader does for a limit of n-1, fails once past the limit;
// with eof it ends at n bytes instead.
type limitedReader struct {
	n   int
	eof bool
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		if r.eof {
			return 0, io.EOF
		}
		return 0, websocket.ErrMessageTooBig
	}
	k := min(len(p), r.n, 16<<10)
	r.n -= k
	return k, nil
}

func TestReadAllGrowsToTheLimitOnly(t *testing.T) {
	for _, limit := range []int64{100000, 1 << 20, 3 << 20} {
		// A message of exactly limit bytes.
		b, err := readAll(&limitedReader{n: int(limit), eof: true}, make([]byte, 0, 1024), false, limit)
		if err != nil || int64(len(b)) != limit {
			t.Fatalf("limit %d: %d bytes, %v", limit, len(b), err)
		}
		if int64(cap(b)) > limit+1 {
			t.Errorf("limit %d: the buffer grew to %d bytes, past limit+1", limit, cap(b))
		}
		// One byte over: coder's reader fails at its next read.
		b, err = readAll(&limitedReader{n: int(limit) + 1}, make([]byte, 0, 1024), false, limit)
		if !errors.Is(err, websocket.ErrMessageTooBig) {
			t.Errorf("limit %d: over the limit read as %v", limit, err)
		}
		if int64(cap(b)) > limit+1 {
			t.Errorf("limit %d: over the limit, the buffer grew to %d bytes", limit, cap(b))
		}
	}
	// A reader that does not fail past the limit cannot loop.
	_, err := readAll(zeroReader{}, nil, false, 10)
	if !errors.Is(err, websocket.ErrMessageTooBig) {
		t.Errorf("a reader past the limit read as %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A compressed message of nearly ReadLimit (4 MiB) inflated bytes, from
// about an eighth of that on the wire, allocates at most about twice
// ReadLimit on the server while it is read (buffer growth included), and
// the session is not left holding more than ReadLimit+1 for it.
func TestCompressedMessageMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("the race detector allocates for itself; -short skips the 4 MiB message")
	}
	const limit = 4 << 20
	got := make(chan int, 1)
	ep, err := New(HandlerFunc(func(ctx context.Context, s *Session, m Message) error {
		got <- cap(m.Data)
		return s.WriteText(ctx, "ok")
	}), &Options{Compression: true, ReadLimit: limit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveForMemory(t, ep)
	defer srv.close()
	doc := make([]byte, 0, limit)
	for chunk := 0; len(doc) < limit-64<<10; chunk++ {
		for i := 0; i < 1000; i++ {
			doc = append(doc, `{"id":"m`...)
			doc = append(doc, byte('0'+(chunk+i)%10), byte('0'+i%7), byte('0'+(i*chunk)%9))
			doc = append(doc, `","text":"see you at `...)
			doc = append(doc, byte('0'+i%10), byte('0'+chunk%10), '"', '}', ',')
		}
	}
	payload := syncDeflated(flate.BestSpeed, doc)
	if r := len(doc) / len(payload); r > 50 {
		t.Fatalf("the fixture compresses %d:1, past what the ratio cap lets through", r)
	}
	frame := clientFrame(0x80|rsvDeflate|0x1, payload)

	c, br, _ := rawHandshake(t, srv.addr, "permessage-deflate; client_no_context_takeover; server_no_context_takeover", nil)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	held := <-got
	reply := make([]byte, 4)
	if _, err := io.ReadFull(br, reply); err != nil || string(reply[2:]) != "ok" {
		t.Fatalf("reply % x %v", reply, err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes inflated from %d: the message buffer holds %d bytes; %d bytes allocated in all (%.2f x ReadLimit)",
		len(doc), len(payload), held, alloc, float64(alloc)/limit)
	if held > limit+1 {
		t.Errorf("the message buffer holds %d bytes, past ReadLimit+1", held)
	}
	if alloc > 2*limit+512<<10 {
		t.Errorf("reading the message allocated %d bytes, more than twice ReadLimit", alloc)
	}
}
