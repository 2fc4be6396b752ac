package wssafe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// The hostile suite for permessage-deflate (RFC 7692), after the case
// groups 12 and 13 of the Autobahn|Testsuite and its bombs: hand-built
// compressed frames over a raw connection that negotiated the extension
// (see hostile_test.go for the harness). Every row runs on both write
// paths, asserts the close code, the log event and that a compressed
// bystander session goes on.

// zeroBomb is a deflate stream (tail stripped) of n MiB of zeros, about
// 1 KiB per MiB: separately flushed streams concatenate into one.
func zeroBomb(mib int) []byte {
	chunk := deflated(make([]byte, 1<<20))
	chunk = append(chunk, 0, 0, 0xff, 0xff) // each piece keeps its flush but the last
	return bytes.TrimSuffix(bytes.Repeat(chunk, mib), []byte{0, 0, 0xff, 0xff})
}

// fragments splits a compressed payload into n frames of op, RSV1 on the
// first only.
func fragments(op byte, p []byte, n int) []frame {
	var fs []frame
	size := (len(p) + n - 1) / n
	for i := 0; i < n; i++ {
		part := p[min(i*size, len(p)):min((i+1)*size, len(p))]
		f := frame{op: opCont, data: part, more: i < n-1}
		if i == 0 {
			f.op, f.rsv = op, rsv1
		}
		fs = append(fs, f)
	}
	return fs
}

// realJSON is about n bytes of a chat feed as JSON: varied names, rooms,
// ids, times and short chat lines, which deflate compresses about 8-10x.
func realJSON(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	phrases := []string{"ok", "lol", "see you at 5", "on my way", "thanks!", "who is in?", "running late, start without me",
		"did you see the game last night", "can you send me the file", "sounds good", "brb", "haha yes",
		"meeting moved to 3pm", "where are we meeting", "I'll bring snacks", "nice one", "not sure yet",
		"let me check and get back to you", "happy birthday!", "good morning everyone"}
	type msg struct {
		ID     string `json:"id"`
		Room   string `json:"room"`
		User   string `json:"user"`
		At     int64  `json:"at"`
		Text   string `json:"text"`
		Likes  int    `json:"likes"`
		Edited bool   `json:"edited"`
	}
	var out []msg
	size := 2
	for size < n {
		var text []string
		for range 1 + rng.IntN(3) {
			text = append(text, phrases[rng.IntN(len(phrases))])
		}
		m := msg{ID: "m" + strconv.Itoa(100000+len(out)), Room: "room-" + strconv.Itoa(rng.IntN(8)),
			User: "user" + strconv.Itoa(rng.IntN(40)), At: 1767225600000 + int64(len(out))*1500 + rng.Int64N(1000),
			Text: strings.Join(text, " "), Likes: rng.IntN(300), Edited: rng.IntN(5) == 0}
		b, _ := json.Marshal(m)
		size += len(b) + 1
		out = append(out, m)
	}
	b, _ := json.Marshal(out)
	return b
}

type compressRow struct {
	group    string
	name     string
	opts     func(*wssafe.Options)
	plain    bool // the client does not offer the extension
	send     []frame
	code     int
	reason   string   // "" : not checked
	messages []string // echoed before the close
	event    string
}

func compressRows() []compressRow {
	withLimit := func(n int64) func(*wssafe.Options) { return func(o *wssafe.Options) { o.ReadLimit = n } }
	bye := closeFrame(1000, "")
	var rows []compressRow
	// 12.x: compressed messages of every size, echoed.
	for _, n := range []int{1, 16, 125, 126, 4096, 32 << 10, 64 << 10, 128 << 10} {
		p := string(realJSON(n))[:n]
		rows = append(rows, compressRow{group: "12 compressed", name: fmt.Sprintf("text %d bytes", n), opts: withLimit(256 << 10),
			send: []frame{compressedText(p), bye}, code: 1000, messages: []string{p}})
	}
	json64 := string(realJSON(64 << 10))
	bin := make([]byte, 10000)
	rand.NewChaCha8([32]byte{1}).Read(bin) // incompressible: deflate stores it
	rows = append(rows,
		compressRow{group: "12 compressed", name: "binary, incompressible", send: []frame{{op: opBinary, rsv: rsv1, data: deflated(bin)}, bye},
			code: 1000, messages: []string{string(bin)}},
		compressRow{group: "12 compressed", name: "final block, nothing after", send: []frame{{op: opText, rsv: rsv1, data: deflatedFinal([]byte("ends with BFINAL"))}, bye},
			code: 1000, messages: []string{"ends with BFINAL"}},
		compressRow{group: "12 compressed", name: "compressed and plain messages mixed", send: []frame{compressedText("one"), textFrame("two"), compressedText("three"), bye},
			code: 1000, messages: []string{"one", "two", "three"}},
		// 13.x: fragmented compressed messages.
		compressRow{group: "13 fragmented", name: "3 fragments, RSV1 on the first", opts: withLimit(128 << 10),
			send: append(fragments(opText, deflated([]byte(json64)), 3), bye), code: 1000, messages: []string{json64}},
		compressRow{group: "13 fragmented", name: "100 fragments with a ping between", opts: withLimit(128 << 10),
			send: append(append(fragments(opText, deflated([]byte(json64)), 50), frame{op: opPing, data: []byte("p")}), bye), code: 1000, messages: nil},
		compressRow{group: "13 fragmented", name: "RSV1 on a continuation frame",
			send: []frame{{op: opText, rsv: rsv1, data: deflated([]byte("abc")), more: true}, {op: opCont, rsv: rsv1, data: deflated([]byte("def"))}},
			code: 1002, reason: "protocol error", event: wssafe.EventProtocolError},
		compressRow{group: "13 fragmented", name: "RSV1 on a control frame", send: []frame{{op: opPing, rsv: rsv1, data: []byte("p")}},
			code: 1002, reason: "protocol error", event: wssafe.EventProtocolError},
		compressRow{group: "13 fragmented", name: "compressed frame, extension not negotiated", plain: true,
			send: []frame{compressedText("hello")}, code: 1002, reason: "protocol error", event: wssafe.EventProtocolError},
		// Bombs.
		compressRow{group: "bombs", name: "1 KiB inflating past ReadLimit", send: []frame{{op: opBinary, rsv: rsv1, data: zeroBomb(1)}},
			code: 1009, reason: "message too big", event: wssafe.EventMessageTooBig},
		compressRow{group: "bombs", name: "1 KiB inflating past ReadLimit, in 8 fragments", send: fragments(opBinary, zeroBomb(1), 8),
			code: 1009, reason: "message too big", event: wssafe.EventMessageTooBig},
		compressRow{group: "bombs", name: "1 KiB inflating to 1 MiB, over the ratio", opts: withLimit(16 << 20),
			send: []frame{{op: opBinary, rsv: rsv1, data: zeroBomb(1)}}, code: 1009, reason: "message too big", event: wssafe.EventInflationRatio},
		compressRow{group: "bombs", name: "over the ratio, in 8 fragments", opts: withLimit(16 << 20),
			send: fragments(opBinary, zeroBomb(1), 8), code: 1009, reason: "message too big", event: wssafe.EventInflationRatio},
		// Invalid deflate data.
		compressRow{group: "invalid", name: "garbage", send: []frame{{op: opText, rsv: rsv1, data: []byte("this is not deflate data at all!!")}},
			code: 1007, reason: "invalid compressed data", event: wssafe.EventInvalidCompressed},
		compressRow{group: "invalid", name: "reserved block type", send: []frame{{op: opText, rsv: rsv1, data: []byte{0x07, 0x00}}},
			code: 1007, reason: "invalid compressed data", event: wssafe.EventInvalidCompressed},
		compressRow{group: "invalid", name: "truncated stream", send: []frame{{op: opText, rsv: rsv1, data: truncated()}},
			code: 1007, reason: "invalid compressed data", event: wssafe.EventInvalidCompressed},
		// 10000 bytes after the final block: more than coder's inflater
		// reads ahead (4 KiB), so coder stops inside the frame and wssafe
		// sees it. Fewer bytes, all read ahead with the final block, are
		// not seen: compress_read_test.go pins what becomes of them.
		compressRow{group: "invalid", name: "10000 bytes after the final block, past coder's 4 KiB read-ahead", send: []frame{{op: opText, rsv: rsv1, data: append(deflatedFinal([]byte("hi")), make([]byte, 10000)...)}},
			code: 1007, reason: "invalid compressed data", event: wssafe.EventInvalidCompressed},
		compressRow{group: "invalid", name: "fragments after the final block", send: []frame{{op: opText, rsv: rsv1, data: deflatedFinal([]byte("hi")), more: true}, {op: opCont, data: []byte("more")}},
			code: 1007, reason: "invalid compressed data", event: wssafe.EventInvalidCompressed},
	)
	return rows
}

// truncated is a compressed message cut in half, inside a block, where
// the 00 00 ff ff that the receiver appends does not decode. (A cut that
// still decodes, with the appended bytes read as codes, is the shorter
// message it decodes to: deflate has no length or checksum, and
// coder/websocket's inflater cannot tell it from a flushed end.)
func truncated() []byte {
	p := deflated(bytes.Repeat([]byte(`{"user":"alice","text":"hello there, how are you"}`), 40))
	return p[:len(p)/2]
}

func TestHostileCompression(t *testing.T) {
	t.Parallel()
	for _, path := range []struct {
		name  string
		hooks wssafe.Hooks
	}{{"direct writes", wssafe.Hooks{}}, {"coder writes", wssafe.Hooks{CoderWrites: true}}} {
		for _, row := range compressRows() {
			t.Run(path.name+"/"+row.group+"/"+row.name, func(t *testing.T) {
				t.Parallel()
				logger, logs := newLogger()
				opts := &wssafe.Options{Logger: logger, Compression: !row.plain}
				if row.opts != nil {
					row.opts(opts)
				}
				_, url := serverWith(t, mirrorHandler, opts, path.hooks)
				bystander, _ := dialDeflate(t, url, websocket.CompressionNoContextTakeover)

				offer := offerNoContext
				if row.plain {
					offer = ""
				}
				c := dialDeflateRaw(t, url, offer)
				start := time.Now()
				var wg sync.WaitGroup
				wg.Go(func() {
					for _, f := range row.send {
						if _, err := c.nc.Write(f.bytes()); err != nil {
							return
						}
					}
				})
				out, err := c.readDeflated(start, defaultBound+5*time.Second)
				c.nc.SetWriteDeadline(time.Now())
				wg.Wait()
				require.NoError(t, err)
				require.Equal(t, row.code, out.code, "close code (reason %q)", out.reason)
				assert.LessOrEqual(t, out.elapsed, defaultBound)
				if row.reason != "" {
					assert.Equal(t, row.reason, out.reason)
				}
				if row.messages != nil || row.code != 1000 {
					assert.Equal(t, row.messages, out.messages, "echoed messages")
				}
				if row.event != "" {
					assert.Eventually(t, func() bool { return strings.Contains(logs.String(), `"event":"`+row.event+`"`) },
						5*time.Second, 10*time.Millisecond, "log event %s", row.event)
				}
				assertAlive(t, bystander)
			})
		}
	}
}
