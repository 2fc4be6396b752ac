package wssafe

// Compression: permessage-deflate (RFC 7692), negotiated by
// coder/websocket at the handshake, read (inflated and limited) by it, and
// written by wssafe on the direct path.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// The compression defaults (see Options.Compression).
const (
	DefaultCompressionThreshold = 512
	DefaultMaxInflationRatio    = 100
	// InflationRatioFloor is the inflated size of a message below which
	// MaxInflationRatio does not apply.
	InflationRatioFloor = 64 << 10
)

// resolveCompression checks and defaults the compression options.
func (c *config) resolveCompression() error {
	if c.CompressionThreshold < 0 {
		return errors.New("wssafe: CompressionThreshold must not be negative (zero means 512 bytes)")
	}
	if c.MaxInflationRatio < 0 {
		return errors.New("wssafe: MaxInflationRatio must not be negative (zero means 100)")
	}
	if !c.Compression {
		if c.CompressionThreshold != 0 || c.MaxInflationRatio != 0 || c.InsecureCompressionContextTakeover {
			return errors.New("wssafe: CompressionThreshold, MaxInflationRatio and InsecureCompressionContextTakeover need Compression: set Compression: true, or leave them zero")
		}
		return nil
	}
	setDefault(&c.CompressionThreshold, DefaultCompressionThreshold)
	setDefault(&c.MaxInflationRatio, DefaultMaxInflationRatio)
	if c.InsecureCompressionContextTakeover {
		logEvent(context.Background(), c.Logger, slog.LevelWarn, EventInsecureConfig,
			"wssafe: compression context takeover enabled; attacker-chosen text compressed with a secret in one session reveals the secret by its size (CRIME)")
	}
	return nil
}

// acceptCompression sets coder/websocket's negotiation from the options.
func (c *config) acceptCompression(o *websocket.AcceptOptions) {
	switch {
	case !c.Compression:
		o.CompressionMode = websocket.CompressionDisabled
	case c.InsecureCompressionContextTakeover:
		o.CompressionMode = websocket.CompressionContextTakeover
	default:
		o.CompressionMode = websocket.CompressionNoContextTakeover
	}
	o.CompressionThreshold = c.CompressionThreshold
}

// deflateParams are what a session negotiated, read from the handshake
// response coder/websocket wrote: on, and whether each side compresses
// every message on its own. wssafe writes with a window of 32 KiB, the
// only server_max_window_bits coder/websocket accepts.
type deflateParams struct {
	on              bool
	serverNoContext bool // the server's messages share no history: one compressed frame fits every such session
	clientNoContext bool // the client's messages share no history: inflating holds no window between messages
}

// negotiatedDeflate parses the Sec-WebSocket-Extensions response header
// coder/websocket set (it writes at most one permessage-deflate entry,
// with only the no_context_takeover parameters).
func negotiatedDeflate(h http.Header) deflateParams {
	v := h.Get("Sec-WebSocket-Extensions")
	if v == "" {
		return deflateParams{}
	}
	parts := strings.Split(v, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return deflateParams{}
	}
	d := deflateParams{on: true}
	for _, p := range parts[1:] {
		switch strings.TrimSpace(p) {
		case "server_no_context_takeover":
			d.serverNoContext = true
		case "client_no_context_takeover":
			d.clientNoContext = true
		}
	}
	return d
}

// Compressed reports whether the session negotiated permessage-deflate
// (see Options.Compression): its peer may send compressed messages, and
// messages of CompressionThreshold bytes or more are sent to it
// compressed.
func (s *Session) Compressed() bool { return s.dc != nil && s.dc.deflate.on }
