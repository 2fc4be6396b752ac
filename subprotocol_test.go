package wssafe_test

import (
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"

	"github.com/wssafe/wssafe"
)

// TestSubprotocolNegotiation pins what Options.Subprotocols documents: the
// server's order wins, matching ignores case and echoes the client's
// spelling, and no match (or no list) still opens the socket with "".
func TestSubprotocolNegotiation(t *testing.T) {
	t.Parallel()
	_, url := server(t, echo, &wssafe.Options{Subprotocols: []string{"chat.v2", "chat.v1"}})
	_, none := server(t, echo, nil)
	for _, row := range []struct {
		url     string
		offered []string
		want    string
	}{
		{url, []string{"chat.v1", "chat.v2"}, "chat.v2"}, // the server's preference, not the client's
		{url, []string{"CHAT.V1"}, "CHAT.V1"},            // case-insensitive, the client's spelling
		{url, []string{"chat.v3"}, ""},                   // no match: no subprotocol, the socket opens
		{url, nil, ""},
		{none, []string{"chat.v1"}, ""}, // zero Subprotocols selects none
	} {
		c := dial(t, row.url, &websocket.DialOptions{Subprotocols: row.offered})
		assert.Equal(t, row.want, c.Subprotocol(), "offered %q", row.offered)
		c.CloseNow()
	}
}
