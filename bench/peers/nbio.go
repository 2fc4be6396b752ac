package peers

import (
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// Nbio is a github.com/lesismal/nbio server: its own HTTP engine on epoll
// (nbhttp, non-blocking mode), no goroutine per connection, the WebSocket
// upgrader of nbhttp/websocket. It is the floor of the idle-memory
// comparison: a connection costs its socket, its parser state and nothing
// else. It serves either the echo or, with fanout, the broadcast.
type Nbio struct {
	engine *nbhttp.Engine
	mu     sync.Mutex
	subs   map[*websocket.Conn]struct{} // fanout only
}

// StartNbio serves on ln until Stop; fanout chooses the broadcast server
// (Broadcast reaches every connection) over the echo.
func StartNbio(ln net.Listener, fanout bool) (*Nbio, error) {
	// nbio logs to stdout at Info; cmd/server's stdout is the load tool's.
	logging.Output = os.Stderr
	logging.SetLevel(logging.LevelError)
	n := &Nbio{}
	u := websocket.NewUpgrader()
	u.MessageLengthLimit = ReadLimit
	if fanout {
		n.subs = make(map[*websocket.Conn]struct{})
		u.OnOpen(func(c *websocket.Conn) {
			n.mu.Lock()
			n.subs[c] = struct{}{}
			n.mu.Unlock()
		})
		u.OnClose(func(c *websocket.Conn, _ error) {
			n.mu.Lock()
			delete(n.subs, c)
			n.mu.Unlock()
		})
		u.OnMessage(func(*websocket.Conn, websocket.MessageType, []byte) {})
	} else {
		u.OnMessage(func(c *websocket.Conn, typ websocket.MessageType, p []byte) {
			c.WriteMessage(typ, p)
		})
	}
	n.engine = nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{ln.Addr().String()},
		Listen:                  func(string, string) (net.Listener, error) { return ln, nil },
		ReleaseWebsocketPayload: true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.Upgrade(w, r, nil)
		}),
	})
	if err := n.engine.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// Broadcast writes p as a binary message to every subscriber: nbio's
// WriteMessage encodes the frame per connection and writes it at once,
// keeping what the socket does not take in the connection's buffer.
func (n *Nbio) Broadcast(p []byte) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for c := range n.subs {
		if c.WriteMessage(websocket.BinaryMessage, p) == nil {
			k++
		}
	}
	return k
}

// Subscribers is the number of connections Broadcast reaches now.
func (n *Nbio) Subscribers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

// Stop stops the engine and closes its connections.
func (n *Nbio) Stop() { n.engine.Stop() }
