package wssafe_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

func TestRedactedLogsLengthAndFingerprintOnly(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	key := []byte("test-only fingerprint key, 32 b!")
	done := make(chan struct{})
	ep, url := server(t, wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
		s.Logger().Info("got", "payload", s.Redact(m.Data))
		s.Logger().Info("again", "payload", s.Redact([]byte(m.Text())))
		close(done)
		return nil
	}), &wssafe.Options{Logger: log, FingerprintKey: key})
	c := dial(t, url, nil)
	require.NoError(t, c.Write(ctxT(t), websocket.MessageText, []byte("card-XJQZW-kept")))
	<-done
	out := logs.String()
	assert.NotContains(t, out, "XJQZW")
	assert.Contains(t, out, `"payload":{"len":15,"fp":"`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var fps []string
	for _, l := range lines {
		if i := strings.Index(l, `"fp":"`); i >= 0 {
			fps = append(fps, l[i+6:i+6+16])
		}
	}
	require.Len(t, fps, 2)
	assert.Equal(t, fps[0], fps[1], "equal bytes, equal fingerprints")
	assert.Equal(t, ep.Fingerprint([]byte("card-XJQZW-kept")), fps[0], "the endpoint's fingerprint, keyed by FingerprintKey")
	c.Close(websocket.StatusNormalClosure, "")
}

func TestRedactedHidesFromFmt(t *testing.T) {
	t.Parallel()
	var r wssafe.Redacted
	assert.Equal(t, "[redacted]", r.String())
}
