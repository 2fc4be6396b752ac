package wssafe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// MessageHandled's Duration is the time the handler chain took, on the
// endpoint's clock, with a message limit (whose clock reading starts the
// interval) and without, and every Observer of a fan-out is told the same.
func TestMessageHandledDuration(t *testing.T) {
	t.Parallel()
	for name, rate := range map[string]wssafe.Rate{"unlimited": {}, "limited": {PerSecond: 100, Burst: 100}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			var first, second recorder
			slow := wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
				clock.Advance(time.Duration(len(m.Data)) * time.Millisecond)
				return echo(ctx, s, m)
			})
			opts := &wssafe.Options{Observer: wssafe.Observers(first.Observe, second.Observe), MessageRate: rate}
			_, url := serverWith(t, slow, opts, wssafe.Hooks{Clock: clock})
			c := dial(t, url, nil)
			echoOnce(t, c, "abc")   // 3 ms
			echoOnce(t, c, "")      // none
			echoOnce(t, c, "abcde") // 5 ms
			handled := func(r *recorder) []time.Duration {
				var out []time.Duration
				for _, o := range r.all() {
					if o.Kind == wssafe.MessageHandled {
						out = append(out, o.Duration)
					}
				}
				return out
			}
			require.Eventually(t, func() bool { return len(handled(&second)) == 3 }, 5*time.Second, 5*time.Millisecond)
			want := []time.Duration{3 * time.Millisecond, 0, 5 * time.Millisecond}
			assert.Equal(t, want, handled(&first))
			assert.Equal(t, want, handled(&second))
		})
	}
}
