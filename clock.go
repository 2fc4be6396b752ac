package wssafe

// The endpoint's one clock (now, monotonic now, timers) and its real
// implementation.

import (
	"time"
)

// A clock is an endpoint's time. Every limiter, timer and ticker, and every
// "now" that a duration is measured or logged from, reads the endpoint's one
// clock (config.clock), so that a test can drive them all with one fake
// clock. Socket deadlines do not: the kernel knows only the real clock, so
// they are set from time.Now where they are set (deadline.go, authsession.go,
// close.go, guard.go, shutdown.go).
type clock interface {
	// now returns the time, wall and monotonic.
	now() time.Time
	// mono returns a time for measuring intervals only, comparable with
	// other mono readings of the same clock: the per-message and per-frame
	// limiters read it once per message, and it costs half of now (see
	// realClock.mono).
	mono() time.Time
	// nanos returns mono as nanoseconds since a fixed origin of the
	// clock's, for the per-session buckets (limit.go bucket) and the
	// Observer's message timing (chain.go dispatch), which need no
	// time.Time.
	nanos() int64
	// afterFunc calls f on its own goroutine once d has passed, like
	// time.AfterFunc.
	afterFunc(d time.Duration, f func()) timer
}

// A timer is the part of *time.Timer that wssafe uses, so that a fake
// clock's timers can stand in for it.
type timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// realClock is the clock of every endpoint outside tests.
type realClock struct {
	origin time.Time // mono's fixed origin
}

func newRealClock() *realClock { return &realClock{origin: time.Now()} }

func (*realClock) now() time.Time { return time.Now() }

// mono reads the monotonic clock alone, as time.Since does, on a fixed
// origin. time.Now reads the wall clock as well, which costs as much again
// (twice the ~25 ns of a monotonic read on a VM) and which the limiters,
// measuring only intervals, do not need.
func (c *realClock) mono() time.Time { return c.origin.Add(time.Since(c.origin)) }

// nanos is mono without the time.Time: time.Since reads the monotonic
// clock alone, and the origin is in the past, so it never goes below zero.
func (c *realClock) nanos() int64 { return int64(time.Since(c.origin)) }

func (*realClock) afterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

// now is the time on the session's endpoint clock, for middleware that
// keeps time (Dedup). Without a session (a handler chain called directly,
// as in a unit test of it) there is no endpoint: the real clock.
func (s *Session) now() time.Time {
	if s == nil {
		return time.Now()
	}
	return s.ep.cfg.clock.now()
}
