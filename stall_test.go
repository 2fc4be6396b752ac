package wssafe_test

import (
	"crypto/rand"
	"io"
	"strings"
	"time"

	"github.com/wssafe/wssafe"
)

// Stalls inside a frame: its header (first byte, extended length, masking
// key), a control frame's payload, or a message trickled a byte per TCP
// segment. A frame that has started must complete within MessageTimeout
// (a control frame within min(MessageTimeout, 4 s)), whatever frame it is,
// and the session closes 1008 "message timeout".

// cut returns the first n bytes of f as sent on the wire.
func cut(f frame, n int) []byte { return f.bytes()[:n] }

// wire concatenates frames as sent on the wire.
func wire(fs ...frame) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.bytes()...)
	}
	return b
}

// raw returns a sender that writes b and then goes silent.
func raw(b []byte) sender {
	return func(_ <-chan struct{}, w io.Writer) { w.Write(b) }
}

// trickle writes b one byte per write, every period. Go sets TCP_NODELAY,
// so each byte is its own TCP segment.
func trickle(b []byte, every time.Duration) sender {
	return func(stop <-chan struct{}, w io.Writer) {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range b {
			if _, err := w.Write(b[i : i+1]); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}
}

// paced writes parts with the given pauses between them: pauses[i] follows
// parts[i]. The pauses are the attack's timing, not synchronization.
func paced(parts [][]byte, pauses ...time.Duration) sender {
	return func(stop <-chan struct{}, w io.Writer) {
		for i, p := range parts {
			if _, err := w.Write(p); err != nil {
				return
			}
			if i < len(pauses) {
				select {
				case <-stop:
					return
				case <-time.After(pauses[i]):
				}
			}
		}
	}
}

func stallRows() []hostileRow {
	const mt = 300 * time.Millisecond
	long := strings.Repeat("a", 125)
	ping := frame{op: opPing, data: []byte(long)}
	stall := func(name string, b []byte) hostileRow {
		return hostileRow{group: "5 fragmentation", name: name, opts: withMessageTimeout(mt), send: raw(b),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: mt, bound: mt + defaultBound}
	}
	// With a masking key of 0xFF every masked ASCII byte is >= 0x80: read
	// back still masked, the partial message is never valid UTF-8.
	ffKey := &[4]byte{0xFF, 0xFF, 0xFF, 0xFF}
	trickled := "a valid message, one byte per TCP segment"
	split := frame{op: opPing, data: []byte("hi")}.bytes()
	return []hostileRow{
		stall("stall after the first header byte", cut(textFrame("hello"), 1)),
		stall("stall inside a 16-bit extended length", cut(textFrame(long+"b"), 3)),
		stall("stall inside a 64-bit extended length", cut(frame{op: opBinary, length: lenOf(70000)}, 6)),
		stall("stall inside the masking key", cut(textFrame("hello"), 4)),
		stall("stall inside a 125-byte ping's payload", cut(ping, 6+10)),
		stall("stall inside a close frame's payload", cut(closeFrame(1000, "bye"), 6+3)),
		stall("stall inside a data frame's payload", cut(binFrame(make([]byte, 100)), 6+50)),
		{group: "5 fragmentation", name: "valid message trickled past the timeout", opts: withMessageTimeout(mt),
			send: trickle(frame{op: opText, data: []byte(trickled), key: ffKey}.bytes(), 15*time.Millisecond),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: mt, bound: mt + defaultBound},
		// coder/websocket gives a control frame's payload 5 s, then closes
		// the socket without a close frame: wssafe's 4 s comes first, even
		// under the default 10 s MessageTimeout.
		{group: "5 fragmentation", name: "stalled ping under the default timeout", send: raw(cut(ping, 6+10)),
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: 4 * time.Second, bound: 4*time.Second + defaultBound},

		// A stalled first message is a stalled frame too, not a missing
		// token: it closes 1008 at MessageTimeout, long before AuthTimeout.
		{group: "5 fragmentation", name: "stall inside the first-message token's header", opts: firstMessageAuth(mt),
			send: raw(cut(textFrame("eyJhbGciOi"), 1)), alone: true,
			code: 1008, event: wssafe.EventMessageTimeout, atLeast: mt, bound: mt + defaultBound},

		// What the bounds must not catch.
		{group: "5 fragmentation", name: "valid message trickled within the timeout", opts: withMessageTimeout(2 * time.Second),
			send: trickle(wire(textFrame("slow but in time"), closeFrame(1000, "")), 5*time.Millisecond),
			code: 1000, messages: []string{"slow but in time"}, bound: 2 * time.Second},
		{group: "5 fragmentation", name: "split ping, then idle past the timeout", opts: withMessageTimeout(mt),
			send: paced([][]byte{split[:3], split[3:], wire(textFrame("after"), closeFrame(1000, ""))}, 50*time.Millisecond, 2*mt),
			code: 1000, pongs: []string{"hi"}, messages: []string{"after"}, bound: 3*mt + defaultBound},
	}
}

// firstMessageAuth expects the token as the first message, under a message
// timeout of mt and the default 10 s AuthTimeout.
func firstMessageAuth(mt time.Duration) func(*wssafe.Options) {
	return func(o *wssafe.Options) {
		secret := make([]byte, 32)
		rand.Read(secret)
		o.MessageTimeout = mt
		o.Auth = &wssafe.AuthOptions{HMACSecret: secret, Sources: wssafe.FromFirstMessage}
	}
}
