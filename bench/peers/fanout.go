package peers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/wssafe/wssafe"
)

// A Fanout is a broadcast server: every connection made to it is a
// subscriber, and Broadcast sends one message to all of them, each written
// the way the library's own documentation or examples do it.
type Fanout interface {
	http.Handler
	// Broadcast sends p as a binary message to every subscriber and returns
	// how many it was queued for. It does not wait for the writes and
	// never blocks on a slow subscriber. The caller does not modify p
	// afterwards.
	Broadcast(p []byte) int
	// Subscribers is the number of subscribers Broadcast reaches now.
	Subscribers() int
}

// SubscriberQueue is the send queue of the implementations that need one
// written by hand (bare coder, gorilla): wssafe's default queue length.
// A subscriber whose queue is full is dropped, as wssafe drops a slow
// consumer. The load tool keeps far fewer messages in flight.
const SubscriberQueue = wssafe.DefaultSendQueueMessages

// Fanouts returns the broadcast servers by name; "nbio" is not among them
// (it brings its own HTTP engine: see ServeNbio).
func Fanouts() map[string]func() (Fanout, error) {
	return map[string]func() (Fanout, error){
		"wssafe": func() (Fanout, error) { return newWssafeFanout(nil) },
		// Compressed (see Deflate): Hub.Broadcast compresses once per parameter set.
		"wssafe-deflate":     func() (Fanout, error) { return newWssafeFanout(Deflate("wssafe-deflate")) },
		"wssafe-deflate-all": func() (Fanout, error) { return newWssafeFanout(Deflate("wssafe-deflate-all")) },
		"wssafe-deflate-ctx": func() (Fanout, error) { return newWssafeFanout(Deflate("wssafe-deflate-ctx")) },
		"coder":              func() (Fanout, error) { return newCoderFanout(), nil },
		"gorilla":            func() (Fanout, error) { return newGorillaFanout(), nil },
		"gws":                func() (Fanout, error) { return newGWSFanout(), nil },
	}
}

// WssafeFanout is the wssafe broadcast: the endpoint of [Wssafe] (every
// guard on), broadcast with Hub.Broadcast, which copies the payload once
// and queues it on each session's bounded send queue.
func WssafeFanout() (Fanout, error) { return newWssafeFanout(nil) }

// newWssafeFanout is [WssafeFanout] configured by more.
func newWssafeFanout(more func(*wssafe.Options)) (Fanout, error) {
	o := &wssafe.Options{
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MessageRate: wssafe.Rate{PerSecond: 1e9, Burst: 1e9},
	}
	if more != nil {
		more(o)
	}
	ep, err := wssafe.New(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { return nil }), o)
	if err != nil {
		return nil, err
	}
	return wssafeFanout{ep}, nil
}

type wssafeFanout struct{ *wssafe.Endpoint }

func (f wssafeFanout) Subscribers() int { return len(f.Hub().Sessions()) }

func (f wssafeFanout) Broadcast(p []byte) int {
	return f.Hub().Broadcast(wssafe.MessageBinary, p, nil)
}

// coderFanout is coder/websocket's chat example, without its per-message
// timeout context: a buffered channel per subscriber drained by the
// handler's goroutine with Conn.Write, CloseRead for the reads, a full
// channel drops the subscriber.
type coderFanout struct {
	mu   sync.Mutex
	subs map[*coderSub]struct{}
}

type coderSub struct {
	c    *websocket.Conn
	msgs chan []byte
}

func newCoderFanout() *coderFanout { return &coderFanout{subs: make(map[*coderSub]struct{})} }

func (f *coderFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(ReadLimit)
	s := &coderSub{c: c, msgs: make(chan []byte, SubscriberQueue)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()
	ctx := c.CloseRead(context.Background())
	for {
		select {
		case p := <-s.msgs:
			if err := c.Write(ctx, websocket.MessageBinary, p); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (f *coderFanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *coderFanout) Broadcast(p []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for s := range f.subs {
		select {
		case s.msgs <- p:
			n++
		default:
			go s.c.Close(websocket.StatusPolicyViolation, "slow consumer")
		}
	}
	return n
}

// gorillaFanout is gorilla/websocket's chat example with the message
// encoded once (NewPreparedMessage) and written with WritePreparedMessage
// by each client's write goroutine.
type gorillaFanout struct {
	up   gorilla.Upgrader
	mu   sync.Mutex
	subs map[*gorillaSub]struct{}
}

type gorillaSub struct {
	c    *gorilla.Conn
	send chan *gorilla.PreparedMessage
}

func newGorillaFanout() *gorillaFanout {
	return &gorillaFanout{
		up:   gorilla.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096},
		subs: make(map[*gorillaSub]struct{}),
	}
}

func (f *gorillaFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := f.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(ReadLimit)
	s := &gorillaSub{c: c, send: make(chan *gorilla.PreparedMessage, SubscriberQueue)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	go func() {
		for pm := range s.send {
			if err := c.WritePreparedMessage(pm); err != nil {
				c.Close()
				for range s.send { // until the read loop ends and closes it
				}
				return
			}
		}
	}()
	for {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	f.mu.Lock()
	delete(f.subs, s)
	close(s.send)
	f.mu.Unlock()
}

func (f *gorillaFanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *gorillaFanout) Broadcast(p []byte) int {
	pm, err := gorilla.NewPreparedMessage(gorilla.BinaryMessage, p)
	if err != nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for s := range f.subs {
		select {
		case s.send <- pm:
			n++
		default:
			go s.c.Close()
		}
	}
	return n
}

// gwsFanout is gws's Broadcaster: the frame encoded once, queued on each
// connection's own write queue (WriteAsync's).
type gwsFanout struct {
	gws.BuiltinEventHandler
	up   *gws.Upgrader
	mu   sync.Mutex
	subs map[*gws.Conn]struct{}
}

func newGWSFanout() *gwsFanout {
	f := &gwsFanout{subs: make(map[*gws.Conn]struct{})}
	f.up = gws.NewUpgrader(f, &gws.ServerOption{ReadMaxPayloadSize: ReadLimit})
	return f
}

func (f *gwsFanout) OnOpen(c *gws.Conn) {
	f.mu.Lock()
	f.subs[c] = struct{}{}
	f.mu.Unlock()
}

func (f *gwsFanout) OnClose(c *gws.Conn, _ error) {
	f.mu.Lock()
	delete(f.subs, c)
	f.mu.Unlock()
}

func (f *gwsFanout) OnMessage(_ *gws.Conn, m *gws.Message) { m.Close() }

func (f *gwsFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := f.up.Upgrade(w, r)
	if err != nil {
		return
	}
	c.ReadLoop()
}

func (f *gwsFanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *gwsFanout) Broadcast(p []byte) int {
	b := gws.NewBroadcaster(gws.OpcodeBinary, p)
	defer b.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for c := range f.subs {
		if b.Broadcast(c) == nil {
			n++
		}
	}
	return n
}
