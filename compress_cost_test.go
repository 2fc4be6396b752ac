package wssafe_test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// chatFeed is n bytes of chat lines like the chat example's: users, ids,
// times, and texts of words drawn unevenly from a few hundred, with
// capitals, punctuation and the odd emoji, so that deflate's literal
// alphabet is wide, as in bench/'s chat workload.
func chatFeed(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	words := make([]string, 400)
	for i := range words {
		w := make([]byte, 2+rng.IntN(8))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(words)-1))
	extras := []string{"😀", "👍", "🎉", "é", "ü", "!", "?", ",", "42", "https://example.com/x"}
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		var text strings.Builder
		for k := range 1 + rng.IntN(20) {
			w := words[zipf.Uint64()]
			if k == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			text.WriteString(w)
			if rng.IntN(6) == 0 {
				text.WriteString(extras[rng.IntN(len(extras))])
			}
			text.WriteByte(' ')
		}
		fmt.Fprintf(&b, `{"at":%d,"from":"u-%024x","id":"%012x","name":"User %d","text":%q,"type":"said"},`,
			1700000000000+i*7919, rng.Uint64()%40, rng.Uint64()&0xffffffffffff, rng.IntN(40), text.String())
	}
	return b.Bytes()[:n]
}

// BenchmarkCompressedEcho is the echo of 1 KiB of chat JSON over a real
// connection, plain and compressed side by side: the client's copy
// compressed at zlib's default level (as browsers send it), the echo
// compressed by wssafe. The raw client sends prebuilt frames, 16
// different messages in turn, and skips the answer, so allocs/op (and
// mallocs/msg, the same count not rounded down) are the server's.
// wssafe's part (its read loop, dispatch and compressed write) allocates
// nothing; what the compressed echo allocates (about 0.6 a message here,
// 1 with bench/'s chat pages) is compress/flate's inflater, reached
// through coder/websocket's read path: huffmanDecoder.init (inflate.go)
// makes its overflow link tables afresh for every dynamic Huffman block
// whose longest code is over 9 bits.
func BenchmarkCompressedEcho(b *testing.B) {
	feed := chatFeed(16 << 10)
	var plain, deflate [][]byte
	for i := range 16 {
		msg := feed[i*1024 : (i+1)*1024]
		plain = append(plain, textFrame(string(msg)).bytes())
		deflate = append(deflate, frame{op: opText, rsv: rsv1, data: deflatedAt(flate.DefaultCompression, msg)}.bytes())
	}
	for _, bc := range []struct {
		name   string
		offer  string
		frames [][]byte
	}{
		{"plain", "x-none", plain},
		{"deflate", offerNoContext, deflate},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ep, err := wssafe.New(mirrorHandler, &wssafe.Options{Compression: true, Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			nc, br := benchRaw(b, benchServe(b, ep), bc.offer)
			echo := func(i int) error {
				if _, err := nc.Write(bc.frames[i%len(bc.frames)]); err != nil {
					return err
				}
				_, err := benchFrame(br)
				return err
			}
			for i := range 256 { // warm the pools
				require.NoError(b, echo(i))
			}
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for i := range b.N {
				if err := echo(i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "mallocs/msg") // allocs/op, not rounded down
		})
	}
}
