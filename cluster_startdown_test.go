package wssafe_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/wssafe/wssafe"
)

// A broker unreachable from the start is an outage like one that goes
// away: logged once, counted, and its end logged once.
func TestClusterDownFromStart(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	c.setDown(true)
	f := newAuthFixture(t)
	logger, rec := newRecorder()
	opts := f.options(nil)
	opts.Logger = logger
	ep, _, _ := c.node(t, f, "n1", opts)
	c.setDown(true) // reported again: not logged again
	st := ep.Stats().Backplane
	assert.False(t, st.Up)
	assert.Equal(t, uint64(1), st.Outages)
	assert.Equal(t, 1, rec.count(slog.LevelWarn, wssafe.EventBackplaneDown))

	c.setDown(false)
	assert.True(t, ep.Stats().Backplane.Up)
	assert.Equal(t, uint64(1), ep.Stats().Backplane.Outages)
	assert.Equal(t, 1, rec.count(slog.LevelInfo, wssafe.EventBackplaneUp))
	assert.Equal(t, 1, rec.count(slog.LevelWarn, wssafe.EventBackplaneDown))
}
