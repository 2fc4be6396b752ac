package rawread

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
)

// Conn is a hijacked server connection: the Reader on net/http's bufio
// reader, and frames written with one Write each.
type Conn struct {
	*Reader
	nc  net.Conn
	out []byte
}

// Upgrade completes the handshake (version 13, no subprotocol, no
// extension) and hijacks the connection.
func Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		!headerHas(r.Header, "Connection", "upgrade") || r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return nil, ErrNotWebSocket
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return nil, err
	}
	c := &Conn{Reader: NewReader(brw.Reader), nc: nc}
	c.Control = func(op byte, p []byte) error {
		if op == OpPing {
			return c.WriteMessage(OpPong, p)
		}
		return nil
	}
	return c, nil
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// WriteMessage writes p as one unmasked frame in one Write.
func (c *Conn) WriteMessage(op byte, p []byte) error {
	c.out = AppendFrame(c.out[:0], op, p)
	_, err := c.nc.Write(c.out)
	return err
}

// Close sends a close frame with code (and, for a remote close, echoes the
// peer's code) and closes the connection.
func (c *Conn) Close(code uint16) error {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], code)
	c.WriteMessage(OpClose, p[:])
	return c.nc.Close()
}

// Echo is the prototype's echo server, the way the other peers echo:
// messages read into a reused buffer and written back; limit is the read
// limit, with UTF-8 checked as wssafe does.
func Echo(limit int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r)
		if err != nil {
			return
		}
		c.Limit, c.CheckUTF8 = limit, true
		var buf []byte
		for {
			op, data, err := c.ReadMessage(buf)
			if err != nil {
				c.closeFor(err)
				return
			}
			buf = data
			if err := c.WriteMessage(op, data); err != nil {
				c.nc.Close()
				return
			}
		}
	})
}

// closeFor ends the connection after a read error.
func (c *Conn) closeFor(err error) {
	var ce *CloseError
	switch {
	case errors.As(err, &ce) && ce.Remote && ce.Code == 1005:
		c.Close(CloseNormal)
	case errors.As(err, &ce):
		c.Close(ce.Code)
	default:
		c.nc.Close()
	}
}
