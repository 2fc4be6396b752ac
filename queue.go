package wssafe

// A session's bounded send queue: Send, and the drain goroutine that writes
// it in order with Write.

import (
	"bytes"
	"context"
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

// An outItem is a message queued by Send, or a Write waiting its turn.
type outItem struct {
	typ MessageType
	p   []byte
	w   *waiter
}

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
// use.
func (s *Session) Send(typ MessageType, p []byte) error {
	if len(p) > s.ep.cfg.SendQueueBytes {
		return ErrSendTooLarge
	}
	return s.enqueue(typ, bytes.Clone(p))
}

// enqueue queues p, which it may share with other sessions and never
// modifies, or closes the session as a slow consumer.
func (s *Session) enqueue(typ MessageType, p []byte) error {
	cfg := s.ep.cfg
	if len(p) > cfg.SendQueueBytes {
		return ErrSendTooLarge
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
	start := q.push(outItem{typ: typ, p: p})
	q.mu.Unlock()
	if start {
		go s.drain()
	}
	return nil
}

// writeQueued is Write's path when messages are queued: it takes a place
// behind them and waits for its turn. It is not bounded by the queue
// limits: each waiter is a blocked caller, not memory a peer can grow.
func (s *Session) writeQueued(ctx, wctx context.Context, typ MessageType, p []byte) error {
	w := &waiter{ctx: wctx, done: make(chan error, 1)}
	q := &s.out
	q.mu.Lock()
	if q.closed != nil {
		q.mu.Unlock()
		return ErrSessionClosed
	}
	start := q.push(outItem{typ: typ, p: p, w: w})
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

// drain writes the queued messages in order. It exits when the queue is
// empty, or drops what is left once the session is ending.
func (s *Session) drain() {
	q := &s.out
	for {
		q.mu.Lock()
		if q.head == len(q.items) || q.closed != nil || s.ctx.Err() != nil {
			q.stop()
			q.mu.Unlock()
			return
		}
		it := q.items[q.head]
		q.mu.Unlock()
		s.writeItem(it)
	}
}

// writeItem writes the head of the queue, then removes it, both under the
// write lock (see sendQueue.pending).
func (s *Session) writeItem(it outItem) {
	q := &s.out
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	switch {
	case it.w == nil:
		err = s.writeLocked(context.Background(), it.typ, it.p)
	case it.w.state.CompareAndSwap(waiting, writing):
		err = s.writeLocked(it.w.ctx, it.typ, it.p)
		it.w.done <- err
	}
	q.mu.Lock()
	q.items[q.head] = outItem{}
	q.head++
	if it.w == nil {
		q.bytes -= len(it.p)
	}
	if err != nil && q.closed == nil {
		q.closed = ErrSessionClosed // a failed write leaves the connection unusable
	}
	q.pending.Add(-1)
	q.mu.Unlock()
}

// stop empties the queue, failing the Writes still waiting, and marks the
// drain goroutine gone. q.mu is held.
func (q *sendQueue) stop() {
	for _, it := range q.items[q.head:] {
		if it.w != nil && it.w.state.CompareAndSwap(waiting, abandoned) {
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
}
