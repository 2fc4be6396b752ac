package wssafe

// Rate and its resolution, the per-session message limits, and the bounded
// per-source handshake limiter.

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/wssafe/wssafe/internal/sourcemap"
	"golang.org/x/time/rate"
)

// Rate is a token-bucket limit: Burst events at once, refilled at PerSecond
// events per second. Every Rate field of [Options] follows the same rules:
//
//   - The zero Rate{} means the field's default: off for HandshakeRate,
//     MessageRate, SubjectMessageRate and ByteRate; 5/s with a burst of 20
//     for PingRate; 10 per minute with a burst of 10 for InvalidMessages.
//   - A zero Burst means PerSecond rounded up, and never less than the
//     smallest burst that lets one event through (one, or ReadLimit for
//     ByteRate): Rate{PerSecond: 10} is 10/s with a burst of 10.
//   - PerSecond must be a finite number of at least one a day (1.0/86400);
//     Burst must not be negative, nor set without PerSecond. [New] refuses
//     anything else with an error that says what to write.
//
// A negative value is never an off switch: the limits that are on by
// default are turned off, or made strict, by named Options fields
// (InsecureNoPingLimit, CloseOnInvalidMessage).
type Rate struct {
	PerSecond float64
	Burst     int
}

// resolveRates applies [Rate]'s rules to every Rate field, through one
// function, and the two named switches of the limits that are on by
// default.
func (c *config) resolveRates() error {
	const offByDefault = "a zero Rate leaves the limit off"
	var err error
	if c.HandshakeRate, err = c.HandshakeRate.resolve(rateField{name: "HandshakeRate", off: offByDefault}); err != nil {
		return err
	}
	if c.MessageRate, err = c.MessageRate.resolve(rateField{name: "MessageRate", off: offByDefault}); err != nil {
		return err
	}
	if c.SubjectMessageRate, err = c.SubjectMessageRate.resolve(rateField{name: "SubjectMessageRate", off: offByDefault}); err != nil {
		return err
	}
	if c.ByteRate, err = c.ByteRate.resolve(rateField{name: "ByteRate", minBurst: c.ReadLimit, off: offByDefault}); err != nil {
		return err
	}
	switch {
	case c.InsecureNoPingLimit && c.PingRate != (Rate{}):
		return errors.New("wssafe: PingRate and InsecureNoPingLimit contradict each other: leave PingRate zero to turn the ping limit off, or unset InsecureNoPingLimit")
	case !c.InsecureNoPingLimit:
		c.PingRate, err = c.PingRate.resolve(rateField{name: "PingRate", def: Rate{PerSecond: DefaultPingRate, Burst: DefaultPingBurst},
			off: "a zero Rate means 5/s with a burst of 20; to turn the ping limit off, set InsecureNoPingLimit instead"})
		if err != nil {
			return err
		}
	}
	if c.CloseOnInvalidMessage {
		if c.InvalidMessages != (Rate{}) {
			return errors.New("wssafe: InvalidMessages and CloseOnInvalidMessage contradict each other: leave InvalidMessages zero to close at the first invalid message, or unset CloseOnInvalidMessage")
		}
		c.strictMode = true
		return nil
	}
	c.InvalidMessages, err = c.InvalidMessages.resolve(rateField{name: "InvalidMessages", def: Rate{PerSecond: 10.0 / 60, Burst: 10},
		off: "a zero Rate means 10 per minute with a burst of 10; to close at the first invalid message, set CloseOnInvalidMessage instead"})
	return err
}

// minRate is the slowest refill a Rate may have: one event a day. Below
// it a bucket, once spent, never refills within any session or within
// the life of the handshake limiter's per-address state.
const minRate = 1.0 / 86400

// A rateField is what resolve needs to know about one Rate field.
type rateField struct {
	name     string
	def      Rate   // what a zero Rate means; Rate{} is off
	minBurst int64  // the smallest usable burst beyond one (ByteRate: ReadLimit)
	off      string // what to write instead of an off switch, for errors
}

// resolve validates r under [Rate]'s rules and fills in a zero Burst: the
// rate rounded up, at least one, at least f.minBurst.
func (r Rate) resolve(f rateField) (Rate, error) {
	switch {
	case r == Rate{}:
		return f.def, nil
	case math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0):
		return r, fmt.Errorf("wssafe: %s.PerSecond is %v; write a finite number of events per second, e.g. Rate{PerSecond: 10} (%s)", f.name, r.PerSecond, f.off)
	case r.PerSecond < 0:
		return r, fmt.Errorf("wssafe: %s.PerSecond must not be negative; write the events allowed per second, e.g. Rate{PerSecond: 10} (%s)", f.name, f.off)
	case r.PerSecond == 0:
		return r, fmt.Errorf("wssafe: %s.Burst is set without PerSecond, a bucket that never refills; write both, e.g. Rate{PerSecond: 1, Burst: %d} (%s)", f.name, max(r.Burst, 1), f.off)
	case r.PerSecond < minRate:
		return r, fmt.Errorf("wssafe: %s.PerSecond %g never refills in practice; write at least one a day, PerSecond: 1.0/86400 (%s)", f.name, r.PerSecond, f.off)
	case r.Burst < 0:
		return r, fmt.Errorf("wssafe: %s.Burst must not be negative; zero means PerSecond rounded up (%s)", f.name, f.off)
	case r.Burst == 0:
		r.Burst = int(min(max(math.Ceil(r.PerSecond), 1, float64(f.minBurst)), math.MaxInt32))
	case int64(r.Burst) < f.minBurst:
		return r, fmt.Errorf("wssafe: %s.Burst must be at least ReadLimit (%d), or no full-size message could pass; write Burst: %d, or leave it zero", f.name, f.minBurst, f.minBurst)
	}
	return r, nil
}

func newLimiter(r Rate) *rate.Limiter {
	if r == (Rate{}) {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

// messageLimits are a session's message-rate limits. msgs and bytes are
// the session's own, spent only by its read goroutine: buckets without a
// lock, of the endpoint's MessageRate and ByteRate. subject is shared by
// every session of its subject and is set at admission: a rate.Limiter,
// whose lock it needs; nil is off.
type messageLimits struct {
	msgs, bytes bucket
	subject     *rate.Limiter
}

func (c *config) limitsMessages() bool {
	return c.MessageRate != (Rate{}) || c.SubjectMessageRate != (Rate{}) || c.ByteRate != (Rate{})
}

func (e *Endpoint) newLimits() messageLimits {
	return messageLimits{msgs: newBucket(e.cfg.MessageRate), bytes: newBucket(e.cfg.ByteRate)}
}

// checkLimits spends one message and n bytes from the session's budgets
// at now, the endpoint clock's nanos read once per message by dispatch.
// Exceeding one ends the session with 1008 "rate limit exceeded".
func (s *Session) checkLimits(now int64, n int) error {
	cfg := s.ep.cfg
	var event string
	switch l := &s.limits; {
	case !l.msgs.allowN(cfg.MessageRate, now, 1):
		event = EventMessageRate
	case l.subject != nil && !l.subject.AllowN(cfg.clock.mono(), 1):
		event = EventSubjectRate
	case !l.bytes.allowN(cfg.ByteRate, now, n):
		event = EventByteRate
	default:
		return nil
	}
	logEvent(s.ctx, s.log, slog.LevelWarn, event, "wssafe: message rate exceeded")
	return ErrRateLimited
}

// bucket is a token bucket for one caller: rate.Limiter's AllowN without
// its lock and without time.Time, on the nanoseconds of the endpoint's
// monotonic clock (clock.nanos). Its decisions are rate.Limiter's, bit for
// bit (limit_internal_test.go drives both with the same requests): it does
// the same float64 arithmetic on the same elapsed durations, because an
// integer bucket cannot be: rate.Limiter keeps fractional tokens in a
// float64, whose rounding decides requests that arrive on a refill's
// boundary, and it allows a request that is short by less than one
// nanosecond of refill. What it saves is the mutex, the time.Time
// comparisons and subtractions and the Reservation; the arithmetic costs
// a few nanoseconds (BenchmarkBucket).
//
// A bucket holds only the state; its rate, the same for every session,
// is passed in (the endpoint's resolved Rate: PerSecond finite and at
// least minRate, or the zero Rate, which allows everything). Only one
// goroutine may use a bucket.
type bucket struct {
	tokens float64 // at last
	last   int64   // clock.nanos of the last allowed request
}

// newBucket returns a full bucket of rate r.
func newBucket(r Rate) bucket { return bucket{tokens: float64(r.Burst)} }

// allowN reports whether n events may happen at now, and spends them if
// so: rate.Limiter.AllowN(now, n), step for step (see advance and
// reserveN in golang.org/x/time/rate). A request larger than the burst is
// refused, and a refusal spends nothing.
func (b *bucket) allowN(r Rate, now int64, n int) bool {
	if r.PerSecond == 0 {
		return true
	}
	tokens := b.advance(r, now) - float64(n)
	// rate.Limiter waits time.Duration(-tokens/limit*1e9) for the missing
	// tokens, truncated, and allows the request if that wait is zero.
	if n > r.Burst || tokens < 0 && (-tokens/r.PerSecond)*float64(time.Second) >= 1 {
		return false
	}
	b.tokens, b.last = tokens, now
	return true
}

// advance returns the tokens in the bucket at now: rate.Limiter's advance.
func (b *bucket) advance(r Rate, now int64) float64 {
	elapsed := now - b.last
	if elapsed < 0 { // a clock that went back: no refill, as rate.Limiter
		elapsed = 0
	}
	delta := time.Duration(elapsed).Seconds() * r.PerSecond
	tokens := b.tokens + delta
	if burst := float64(r.Burst); tokens > burst {
		tokens = burst
	}
	return tokens
}

// defaultMaxSources bounds the per-address state kept by the handshake
// limiter and by the log limiter: about 100 bytes an entry.
const defaultMaxSources = 1 << 14

// sourceLimiter is a token bucket per client source (see sourceKey), for
// the handshake rate. A nil *sourceLimiter allows everything.
type sourceLimiter struct {
	r  Rate
	mu sync.Mutex
	m  sourcemap.Map[netip.Addr, *rate.Limiter]
}

// newSourceLimiter returns nil for a zero (disabled) rate. An entry may
// expire once its bucket would have refilled completely: forgetting it then
// changes nothing. Under a flood of new sources, entries are dropped sooner,
// which only ever makes the limit more lenient, never memory larger.
func newSourceLimiter(r Rate, maxSources int) *sourceLimiter {
	if r == (Rate{}) {
		return nil
	}
	refill := time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))
	return &sourceLimiter{r: r, m: sourcemap.New[netip.Addr, *rate.Limiter](maxSources, max(refill, time.Second))}
}

// allow takes a token from src's bucket, or says how long until one is
// available.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m.Get(now, src, func() *rate.Limiter {
		return rate.NewLimiter(rate.Limit(l.r.PerSecond), l.r.Burst)
	})
	if lim.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - lim.TokensAt(now)) / l.r.PerSecond
	return false, max(time.Duration(math.Ceil(wait*float64(time.Second))), time.Second)
}

func (l *sourceLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Len()
}
