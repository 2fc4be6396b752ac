package wssafe

// A session's bounded send queue: Send, and the drain goroutine that writes
// it in order with Write.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
)

// sendQueue is a session's bounded outbound queue.
//
// [Session.Write] stays a direct write on the caller's goroutine: the
// callback's reply path has no hand-off and no allocation. [Session.Send]
// and the Hub's broadcasts append here instead, and a drain goroutine,
// started when the queue becomes non-empty and gone when it is empty again,
// writes the messages in order. An idle session owns no goroutine, and a
// peer that does not read fills its own queue, not the broadcaster's time.
type sendQueue struct {
	// pending counts the queued messages not yet written, the one being
	// written included. The drain goroutine decrements it while it holds
	// the write lock, so a Write that holds the lock and reads zero knows
	// that every message queued before it is on the wire.
	pending atomic.Int32

	mu      sync.Mutex
	items   []outItem // items[head:] are pending
	head    int
	bytes   int   // payload bytes of the pending Send items
	running bool  // a drain goroutine is running
	closed  error // once set, nothing more is queued: the session is ending
}

// An outItem is a message queued by Send, or a Write waiting its turn. A
// queued message is its encoded frame, b, which Hub broadcasts share
// between sessions and nothing modifies; a waiter's b is its payload. On
// a compressed session the frame is compressed as it is written (see
// writeBatch), or taken from pm, compressed once for every session.
type outItem struct {
	typ   MessageType
	hlen  uint8 // b[hlen:] is the payload: the frame header's length, or 0 for a waiter
	plain bool  // sent uncompressed on a compressed session (WriteUncompressed, SendUncompressed)
	b     []byte
	pm    *PreparedMessage // the message b is the frame of, for SendPrepared; else nil
	w     *waiter
}

// payload returns the message's payload.
func (it *outItem) payload() []byte { return it.b[it.hlen:] }

// A waiter is a Write that found queued messages ahead of it. Its state
// decides, exactly once, whether the drain goroutine writes it or the
// writer gave up (its context ended).
type waiter struct {
	ctx   context.Context
	state atomic.Int32
	done  chan error // buffered: the drain goroutine never blocks on it
}

const (
	waiting int32 = iota
	writing
	abandoned
)

// Send queues one message for the peer and returns at once, without waiting
// for it to be written; p is copied. Use it to push to a session from
// outside its callback. Messages sent from one goroutine arrive in order,
// and a Write after a Send from the same goroutine arrives after it.
//
// Send never blocks. When the session's queue is full (see
// [Options.SendQueueMessages] and [Options.SendQueueBytes]) the peer is not
// keeping up: the session is closed with 1008 "slow consumer" and Send
// returns [ErrSlowConsumer]. A message larger than SendQueueBytes is
// refused with [ErrSendTooLarge] and the session goes on. Once the session
// has ended, Send returns [ErrSessionClosed]. Send is safe for concurrent
// use. On a compressed session the message is compressed as
// [Session.Write] compresses, when it is written; [Session.SendUncompressed]
// queues one to be sent plain.
func (s *Session) Send(typ MessageType, p []byte) error {
	return s.send(typ, p, false)
}

// send is Send, or SendUncompressed when plain is set.
func (s *Session) send(typ MessageType, p []byte, plain bool) error {
	if len(p) > s.ep.cfg.SendQueueBytes {
		return ErrSendTooLarge
	}
	if err := checkType(typ); err != nil {
		return err
	}
	b, n := encode(typ, p)
	return s.enqueue(outItem{typ: typ, hlen: n, plain: plain, b: b})
}

// SendPrepared is [Session.Send] of a message encoded once for many
// sessions (see [PreparedMessage]): m is queued as it is, neither copied
// nor encoded again. It counts against the send queue like Send's
// message, by the length of its payload. A nil m, or one not made by
// [NewPreparedMessage] (the zero PreparedMessage), is refused with an
// error, and the session goes on. On a compressed session without
// context takeover m is sent compressed as Send's message would be, and
// compressed only once for all the sessions it is sent to.
func (s *Session) SendPrepared(m *PreparedMessage) error {
	if m == nil {
		return errNilPrepared
	}
	return s.enqueue(outItem{typ: m.typ, hlen: m.hlen, b: m.frame, pm: m})
}

// errNilPrepared refuses SendPrepared(nil).
var errNilPrepared = errors.New("wssafe: SendPrepared of a nil *PreparedMessage; make one with NewPreparedMessage")

// enqueue queues the frame it.b, which it may share with other sessions
// and never modifies, or closes the session as a slow consumer.
func (s *Session) enqueue(it outItem) error {
	cfg := s.ep.cfg
	p := it.payload()
	if len(p) > cfg.SendQueueBytes {
		return ErrSendTooLarge
	}
	if err := checkType(it.typ); err != nil {
		return err
	}
	if s.ctx.Err() != nil {
		return ErrSessionClosed
	}
	q := &s.out
	q.mu.Lock()
	if err := q.closed; err != nil {
		q.mu.Unlock()
		return err
	}
	if n := len(q.items) - q.head; n >= cfg.SendQueueMessages || q.bytes+len(p) > cfg.SendQueueBytes {
		q.closed = ErrSlowConsumer
		b := q.bytes
		q.mu.Unlock()
		logEvent(s.ctx, s.log, slog.LevelWarn, EventSlowConsumer, "wssafe: send queue full; closing a slow consumer",
			slog.Int("queued", n), slog.Int("queued_bytes", b))
		s.fail(ErrSlowConsumer)
		return ErrSlowConsumer
	}
	q.bytes += len(p)
	start := q.push(it)
	q.mu.Unlock()
	if start {
		go s.drain()
	}
	return nil
}

// writeQueued is Write's path when messages are queued: it takes a place
// behind them and waits for its turn. It is not bounded by the queue
// limits: each waiter is a blocked caller, not memory a peer can grow.
func (s *Session) writeQueued(ctx, wctx context.Context, typ MessageType, p []byte, plain bool) error {
	w := &waiter{ctx: wctx, done: make(chan error, 1)}
	q := &s.out
	q.mu.Lock()
	if q.closed != nil {
		q.mu.Unlock()
		return ErrSessionClosed
	}
	start := q.push(outItem{typ: typ, plain: plain, b: p, w: w})
	q.mu.Unlock()
	if start {
		go s.drain()
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		if !w.state.CompareAndSwap(waiting, abandoned) {
			return <-w.done // being written: the write timeout bounds the wait
		}
		if s.ctx.Err() != nil {
			return ErrSessionClosed
		}
		return ctx.Err()
	}
}

// push appends it and reports whether a drain goroutine must be started.
// q.mu is held.
func (q *sendQueue) push(it outItem) bool {
	if q.head > 0 && len(q.items) == cap(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, it)
	q.pending.Add(1)
	start := !q.running
	q.running = true
	return start
}

// A drain writes up to maxBatch queued messages, or maxBatchBytes of
// their frames (but at least one message), in one writev. Messages beyond
// go in the next: a batch holds the write lock for one write timeout at
// most, and the iovecs Go caches per connection stay within maxBatch.
const (
	maxBatch      = 64
	maxBatchBytes = 256 << 10
)

// A batch is the messages one writeBatch writes, and their frames.
type batch struct {
	items  []outItem
	frames [][]byte
}

var batchPool = sync.Pool{New: func() any {
	return &batch{items: make([]outItem, 0, maxBatch), frames: make([][]byte, 0, maxBatch)}
}}

// drain writes the queued messages in order, those queued by Send several
// at a time on the direct path (see writeBatch), a waiting Write alone. It
// exits when the queue is empty, or drops what is left once the session
// is ending.
func (s *Session) drain() {
	q := &s.out
	for {
		q.mu.Lock()
		if q.head == len(q.items) || q.closed != nil || s.ctx.Err() != nil {
			dropped := q.stop()
			q.mu.Unlock()
			s.countDropped(dropped)
			return
		}
		it := q.items[q.head]
		if !s.dc.wire.direct || it.w != nil {
			q.mu.Unlock()
			s.writeItem(it)
			continue
		}
		b, size := batchPool.Get().(*batch), 0
		for _, x := range q.items[q.head:] {
			if x.w != nil || len(b.items) == maxBatch || len(b.items) > 0 && size+len(x.b) > maxBatchBytes {
				break
			}
			b.items = append(b.items, x)
			size += len(x.b)
		}
		q.mu.Unlock()
		s.writeBatch(b)
		clear(b.items)
		b.items = b.items[:0]
		batchPool.Put(b)
	}
}

// writeItem writes the head of the queue, a waiting Write or, on the
// fallback path, a queued message, then removes it, both under the write
// lock (see sendQueue.pending).
func (s *Session) writeItem(it outItem) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	if it.w != nil {
		if it.w.state.CompareAndSwap(waiting, writing) {
			err = s.writeLocked(it.w.ctx, it.typ, it.b, it.plain)
			it.w.done <- err
		}
	} else {
		err = s.writeLocked(context.Background(), it.typ, it.payload(), it.plain)
	}
	s.countDropped(s.out.written(1, err))
}

// writeBatch writes b's messages, those at the head of the queue, in one
// writev, then removes them, both under the write lock (see
// sendQueue.pending). On a compressed session it compresses them here, in
// write order, as context takeover needs: a PreparedMessage's compressed
// frame is shared (without takeover), the others are compressed into one
// buffer for the batch.
func (s *Session) writeBatch(b *batch) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	frames := b.frames[:0]
	var d *deflater
	var spans [maxBatch][2]int // where in d.buf a frame compressed here lies
	for i, it := range b.items {
		f := it.b
		if !it.plain && s.compresses(len(it.payload())) {
			if it.pm != nil && !s.takeover() {
				if z := it.pm.deflated(); z != nil {
					f = z
				}
			} else {
				if d == nil {
					d = s.sessionDeflater()
					defer s.doneDeflater(d)
				}
				if start, end, ok := d.appendFrame(it.typ, it.payload(), s.takeover()); ok {
					spans[i], f = [2]int{start, end}, nil
				}
			}
		}
		frames = append(frames, f)
	}
	for i, f := range frames {
		if f == nil { // d.buf may have moved as it grew: slice it only now
			frames[i] = d.buf[spans[i][0]:spans[i][1]]
		}
	}
	n := len(frames)
	s.countDropped(s.out.written(n, s.sentFrames(n, s.dc.writeFrames(context.Background(), frames))))
	b.frames = frames[:0]
}

// sentFrames counts the n messages at the head of the queue as sent, or
// handles the failure err of their write; s.wmu is held.
func (s *Session) sentFrames(n int, err error) error {
	if err != nil {
		return s.writeFailed(err)
	}
	q := &s.out
	q.mu.Lock()
	for _, it := range q.items[q.head : q.head+n] {
		s.traffic.sent(len(it.payload()))
	}
	q.mu.Unlock()
	return nil
}

// written removes the n messages at the head of the queue, written or
// failed (err), as one, and returns how many queued messages (not Writes)
// a failure dropped; s.wmu is held.
func (q *sendQueue) written(n int, err error) (dropped int) {
	q.mu.Lock()
	for range n {
		if it := &q.items[q.head]; it.w == nil {
			q.bytes -= len(it.payload())
			if err != nil {
				dropped++
			}
		}
		q.items[q.head] = outItem{}
		q.head++
	}
	if err != nil && q.closed == nil {
		q.closed = ErrSessionClosed // a failed write leaves the connection unusable
	}
	q.pending.Add(int32(-n))
	q.mu.Unlock()
	return dropped
}

// countDropped adds n queued messages that were never written to
// Stats.SendDropped.
func (s *Session) countDropped(n int) {
	if n > 0 {
		s.ep.stats.sendDropped.Add(uint64(n))
	}
}

// stop empties the queue, failing the Writes still waiting, and marks the
// drain goroutine gone. It returns the number of queued messages (not
// Writes, which learn their fate) it dropped unwritten. q.mu is held.
func (q *sendQueue) stop() (dropped int) {
	for _, it := range q.items[q.head:] {
		if it.w == nil {
			dropped++
		} else if it.w.state.CompareAndSwap(waiting, abandoned) {
			it.w.done <- ErrSessionClosed
		}
	}
	q.pending.Add(-int32(len(q.items) - q.head))
	clear(q.items)
	if cap(q.items) > 64 {
		q.items = nil // a burst's backlog is not kept for an idle session
	} else {
		q.items = q.items[:0]
	}
	q.head, q.bytes, q.running = 0, 0, false
	return dropped
}
