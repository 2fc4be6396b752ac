package wssafe_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

// Stats counts the traffic of live sessions too.
func TestStatsLive(t *testing.T) {
	t.Parallel()
	ep, url := server(t, echo, nil)
	c := dialWith(t, url, nil)
	echoOnce(t, c, "abc")
	require.Eventually(t, func() bool { return ep.Stats().Traffic.MessagesOut == 1 }, 5*time.Second, 10*time.Millisecond)
	st := ep.Stats()
	assert.Equal(t, 1, st.Active)
	assert.Equal(t, wssafe.Traffic{MessagesIn: 1, BytesIn: 3, MessagesOut: 1, BytesOut: int64(len("Server received: abc"))}, st.Traffic)

	b, err := json.Marshal(st)
	require.NoError(t, err)
	for _, key := range []string{`"active":1`, `"accepted":1`, `"closed":{}`, `"traffic":{"messages_in":1`} {
		assert.Contains(t, string(b), key)
	}
}
