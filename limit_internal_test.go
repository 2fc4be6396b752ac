package wssafe

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// A bucketStep is one request of a script: the fake clock moves by dt,
// then n events are asked for.
type bucketStep struct {
	dt time.Duration
	n  int
}

// driveBoth asks a bucket and a rate.Limiter of rate r for the same
// requests at the same times of one fake clock, and fails at the first
// decision, or the first count of tokens, in which they differ: the
// bucket must be rate.Limiter for a single caller, bit for bit.
func driveBoth(t *testing.T, r Rate, steps []bucketStep) {
	t.Helper()
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	lim := rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
	b := newBucket(r)
	for i, s := range steps {
		clock.Advance(s.dt)
		mono, nanos := clock.mono(), clock.nanos()
		want := lim.AllowN(mono, s.n)
		if got := b.allowN(r, nanos, s.n); got != want {
			t.Fatalf("%+v, step %d (%+v at %v): bucket allowed %v, rate.Limiter %v", r, i, s, time.Duration(nanos), got, want)
		}
		if got, want := b.advance(r, nanos), lim.TokensAt(mono); got != want {
			t.Fatalf("%+v, step %d (%+v at %v): bucket has %v tokens, rate.Limiter %v", r, i, s, time.Duration(nanos), got, want)
		}
	}
}

// tokenPeriod is the time one token takes to refill at r, rounded down.
func tokenPeriod(r Rate) time.Duration { return time.Duration(float64(time.Second) / r.PerSecond) }

func TestBucketIsRateLimiter(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		r     Rate
		steps func(p time.Duration) []bucketStep
	}{
		"burst, then one per period": {Rate{PerSecond: 1, Burst: 3}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 1}, {0, 1}, {0, 1}, {0, 1}, {p - 1, 1}, {1, 1}, {0, 1}, {3 * p, 1}, {0, 3}, {0, 1}}
		}},
		"a refill one nanosecond early and on time": {Rate{PerSecond: 3, Burst: 1}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 1}, {p - 1, 1}, {1, 1}, {p, 1}, {p + 1, 1}, {p - 2, 1}, {2, 1}}
		}},
		"a request larger than the burst is refused, even when full": {Rate{PerSecond: 10, Burst: 5}, func(p time.Duration) []bucketStep {
			return []bucketStep{{time.Hour, 6}, {0, 5}, {0, 1}, {5 * p, 6}, {0, 5}}
		}},
		"a refusal spends nothing": {Rate{PerSecond: 2, Burst: 4}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 3}, {0, 2}, {0, 1}, {0, 1}, {p, 2}, {0, 1}}
		}},
		"zero events": {Rate{PerSecond: 1, Burst: 1}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 1}, {0, 0}, {p / 2, 0}, {p / 2, 1}, {0, 0}}
		}},
		"a fractional rate (InvalidMessages' default)": {Rate{PerSecond: 10.0 / 60, Burst: 10}, func(p time.Duration) []bucketStep {
			s := []bucketStep{{0, 10}}
			for range 20 {
				s = append(s, bucketStep{p - 1, 1}, bucketStep{1, 1})
			}
			return s
		}},
		"bytes (ByteRate with the default ReadLimit)": {Rate{PerSecond: 1 << 20, Burst: DefaultReadLimit}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, DefaultReadLimit}, {0, 1}, {100 * p, 100}, {0, 1}, {time.Millisecond, 1000}, {0, 48}, {0, 1},
				{time.Second, DefaultReadLimit + 1}, {0, DefaultReadLimit}}
		}},
		"the slowest rate": {Rate{PerSecond: minRate, Burst: 1}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 1}, {p - 1, 1}, {1, 1}, {0, 1}, {p, 1}}
		}},
		"a fast rate, a nanosecond a token": {Rate{PerSecond: 1e9, Burst: 1e9}, func(p time.Duration) []bucketStep {
			return []bucketStep{{0, 1e9}, {0, 1}, {1, 1}, {1, 2}, {10, 10}, {0, 1}, {time.Second, 1e9}}
		}},
	} {
		t.Run(name, func(t *testing.T) { driveBoth(t, tc.r, tc.steps(tokenPeriod(tc.r))) })
	}
}

// TestBucketProperty drives a bucket and a rate.Limiter with random
// scripts whose times cluster around refill boundaries (whole periods,
// give or take a few nanoseconds), where float64 rounding decides.
func TestBucketProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(12, 5))
	rates := []float64{minRate, 10.0 / 60, 0.5, 1, 3, 7, 10, 100, 1000, 1e6, 1 << 20, 1e9, 1e300}
	for range 2000 {
		perSecond := rates[rng.IntN(len(rates))]
		if rng.IntN(3) == 0 {
			perSecond = math.Exp(rng.Float64()*40 - 11) // from minRate to 2e12 per second
		}
		r, err := Rate{PerSecond: perSecond, Burst: rng.IntN(4) * rng.IntN(1000)}.resolve(rateField{name: "R"})
		if err != nil {
			t.Fatal(err)
		}
		driveBoth(t, r, randomSteps(rng, r, 50))
	}
}

// randomSteps is a script of n requests at rate r, for TestBucketProperty.
func randomSteps(rng *rand.Rand, r Rate, n int) []bucketStep {
	p := tokenPeriod(r)
	steps := make([]bucketStep, n)
	for i := range steps {
		s := &steps[i]
		switch rng.IntN(5) {
		case 0: // at once
		case 1: // within a period
			s.dt = time.Duration(rng.Int64N(int64(p) + 1))
		case 2: // whole periods, give or take a few nanoseconds
			s.dt = max(time.Duration(rng.IntN(4))*p+time.Duration(rng.IntN(7)-3), 0)
		case 3: // a long pause
			s.dt = time.Duration(rng.Int64N(int64(time.Hour)))
		case 4: // the clock goes back, which rate.Limiter tolerates
			s.dt = -time.Duration(rng.Int64N(int64(p) + 1))
		}
		switch rng.IntN(4) {
		case 0:
			s.n = 1
		case 1:
			s.n = rng.IntN(r.Burst + 2) // the burst, and one past it, included
		case 2:
			s.n = r.Burst + rng.IntN(2)
		case 3:
			s.n = 0
		}
	}
	return steps
}

// FuzzBucket drives a bucket and a rate.Limiter with any rate New accepts
// and any script of requests.
func FuzzBucket(f *testing.F) {
	f.Add(1.0, 3, []byte{0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 2, 1, 1})
	f.Add(3.0, 1, []byte{0, 0, 1, 2, 1, 1, 1, 0xff, 0xff, 0x03, 1})
	f.Add(1e9, int(1e9), []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x03, 1, 1, 1})
	f.Add(10.0/60, 0, []byte{0, 0, 1, 2, 6, 1, 3, 0, 0})
	f.Fuzz(func(t *testing.T, perSecond float64, burst int, script []byte) {
		r, err := Rate{PerSecond: perSecond, Burst: burst}.resolve(rateField{name: "R"})
		if err != nil || r == (Rate{}) {
			return // a rate New refuses
		}
		driveBoth(t, r, decodeSteps(r, script))
	})
}

// decodeSteps reads a script from a fuzzer's bytes: per step a mode byte,
// then uvarints (an amount of time and a count of events).
func decodeSteps(r Rate, b []byte) []bucketStep {
	p := tokenPeriod(r)
	var steps []bucketStep
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	for len(b) > 0 && len(steps) < 1000 {
		mode := b[0]
		b = b[1:]
		var s bucketStep
		t := uvarint()
		switch mode % 4 {
		case 0: // nanoseconds
			s.dt = time.Duration(t & math.MaxInt32)
		case 1: // nanoseconds back
			s.dt = -time.Duration(t & math.MaxInt32)
		case 2: // whole periods, give or take a few nanoseconds
			s.dt = max(time.Duration(t%8)*p+time.Duration(t/8%7)-3, 0)
		case 3: // seconds
			s.dt = time.Duration(t%100_000) * time.Second
		}
		s.n = int(uvarint() % (uint64(r.Burst) + 2))
		steps = append(steps, s)
	}
	return steps
}

// BenchmarkBucket compares one allowed request of a session's bucket with
// one of rate.Limiter, the clock reading excluded.
func BenchmarkBucket(b *testing.B) {
	r := Rate{PerSecond: 1e9, Burst: 1e9}
	b.Run("bucket", func(b *testing.B) {
		bk := newBucket(r)
		var now int64
		for b.Loop() {
			now += 10
			if !bk.allowN(r, now, 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("rate.Limiter", func(b *testing.B) {
		lim := rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
		now := time.Now()
		for b.Loop() {
			now = now.Add(10)
			if !lim.AllowN(now, 1) {
				b.Fatal("refused")
			}
		}
	})
}
