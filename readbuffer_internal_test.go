package wssafe

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHijackSizesReader checks what hijackCapture hands coder/websocket:
// a reader of ReadBufferSize bytes (net/http's own when the size is its
// 4 KiB) that yields first the bytes net/http read past the request, then
// the connection's, whether or not the reader is reset the way
// coder/websocket's Accept resets it.
func TestHijackSizesReader(t *testing.T) {
	t.Parallel()
	early := bytes.Repeat([]byte("e"), 3000) // sent with the request
	later := bytes.Repeat([]byte("l"), 50000)
	for _, size := range []int{256, DefaultReadBufferSize, 32 << 10} {
		for _, tc := range []struct{ coderReset, borrow bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
			coderReset := tc.coderReset
			if !coderReset && !tc.borrow && size == DefaultReadBufferSize {
				continue // net/http's reader, untouched
			}
			t.Run(fmt.Sprintf("size=%d/reset=%v/borrow=%v", size, coderReset, tc.borrow), func(t *testing.T) {
				t.Parallel()
				type result struct {
					size, early int
					got         []byte
					err         error
				}
				res := make(chan result, 1)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					cfg := &config{Options: Options{ReadBufferSize: size}}
					if tc.borrow { // a bare socket: the reader shrinks, reads borrow their buffers
						cfg.readPool = newReadPool(size)
					}
					h := &hijackCapture{ResponseWriter: w, cfg: cfg}
					conn, brw, err := h.Hijack()
					if err != nil {
						res <- result{err: err}
						return
					}
					defer conn.Close()
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					out := result{size: brw.Reader.Size(), early: brw.Reader.Buffered()}
					if coderReset { // as coder/websocket's Accept does
						b, _ := brw.Reader.Peek(brw.Reader.Buffered())
						brw.Reader.Reset(io.MultiReader(bytes.NewReader(b), conn))
					}
					conn.Write([]byte("go\n")) // the client sends the rest
					out.got = make([]byte, len(early)+len(later))
					_, out.err = io.ReadFull(brw.Reader, out.got)
					res <- out
				}))
				defer srv.Close()
				nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				req := "GET / HTTP/1.1\r\nHost: test\r\n\r\n"
				if _, err := nc.Write(append([]byte(req), early...)); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(nc, make([]byte, 3)); err != nil {
					t.Fatal(err)
				}
				if _, err := nc.Write(later); err != nil {
					t.Fatal(err)
				}
				out := <-res
				if out.err != nil {
					t.Fatal(out.err)
				}
				want := max(size, out.early)
				if tc.borrow {
					want = max(borrowReaderSize, out.early)
				}
				if out.size != want {
					t.Errorf("reader of %d bytes, want %d", out.size, want)
				}
				if out.early == 0 {
					t.Log("net/http had read nothing past the request; only the later bytes were checked")
				}
				if !bytes.Equal(out.got, append(early, later...)) {
					t.Errorf("the reader's bytes differ from the client's")
				}
			})
		}
	}
}
