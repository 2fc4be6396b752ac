package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wssafe/wssafe/bench/internal/chatload"
)

// broadcaster is what broadcastControl drives: a peers.Fanout, or nbio's
// server in its fanout mode.
type broadcaster interface {
	Broadcast(p []byte) int
	Subscribers() int
}

// maxWindow bounds the messages in flight the load tool may ask for (its
// ring of per-message counters is larger).
const maxWindow = 1024

// broadcastControl drives one broadcast run over the hijacked connection
// of GET /broadcast?size=BYTES&rate=MSGS_PER_S&window=N&subs=N[&payload=chat]:
//
//   - it waits (up to 10 s) until subs subscribers are registered, then
//     writes "ready\n";
//   - it broadcasts messages of size bytes, the first 8 holding their
//     sequence number from 0 and the next 8 the sending time (Unix
//     nanoseconds), the rest zeros or, with payload=chat, the chat
//     example's JSON messages of chatload.Corpus.Messages(size) in turn
//     after the 16 bytes (the message is then longer than size), at rate
//     messages per second (0: as fast as the window
//     allows), never more than window messages ahead of the last one every
//     subscriber has received;
//   - the load tool writes that last sequence number (8 bytes, big endian)
//     whenever it advances, and ^0 to stop; the server then writes how many
//     messages it broadcast (8 bytes) and closes.
func broadcastControl(b broadcaster) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, err1 := strconv.Atoi(q.Get("size"))
		rate, err2 := strconv.ParseFloat(q.Get("rate"), 64)
		window, err3 := strconv.Atoi(q.Get("window"))
		subs, err4 := strconv.Atoi(q.Get("subs"))
		if err := errors.Join(err1, err2, err3, err4); err != nil || size < 16 || rate < 0 || window < 1 || window > maxWindow {
			http.Error(w, "want size >= 16, rate >= 0, 1 <= window <= 1024, subs", http.StatusBadRequest)
			return
		}
		for deadline := time.Now().Add(10 * time.Second); b.Subscribers() < subs; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				http.Error(w, fmt.Sprintf("%d of %d subscribers registered", b.Subscribers(), subs), http.StatusServiceUnavailable)
				return
			}
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := io.WriteString(nc, "ready\n"); err != nil {
			return
		}
		var chat [][]byte
		if q.Get("payload") == "chat" {
			chat = chatload.New(4096, 1).Messages(size, 512)
		}
		sent := broadcastRun(b, brw.Reader, size, rate, window, chat)
		nc.Write(binary.BigEndian.AppendUint64(nil, uint64(sent)))
	}
}

// broadcastRun broadcasts until acks says stop (or fails) and returns how many
// messages it broadcast.
func broadcastRun(b broadcaster, acks *bufio.Reader, size int, rate float64, window int, chat [][]byte) int64 {
	var acked atomic.Int64 // the last message every subscriber has
	acked.Store(-1)
	wake := make(chan struct{}, 1)
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		var v [8]byte
		for {
			if _, err := io.ReadFull(acks, v[:]); err != nil {
				return
			}
			a := binary.BigEndian.Uint64(v[:])
			if a == math.MaxUint64 {
				return
			}
			acked.Store(int64(a))
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	t := time.NewTimer(0)
	<-t.C
	start := time.Now()
	var seq int64
	for {
		for seq > acked.Load()+int64(window) {
			select {
			case <-wake:
			case <-stop:
				return seq
			}
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-stop:
					return seq
				}
			}
		}
		select {
		case <-stop:
			return seq
		default:
		}
		p := make([]byte, size)
		if chat != nil {
			m := chat[seq%int64(len(chat))]
			p = append(make([]byte, 16, 16+len(m)), m...)
		}
		binary.BigEndian.PutUint64(p, uint64(seq))
		binary.BigEndian.PutUint64(p[8:], uint64(time.Now().UnixNano()))
		b.Broadcast(p)
		seq++
	}
}
