package wssafe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// A sockReader hands out exactly the bytes the peer sent, in order, in
// reads of every size, holds a buffer only while bytes are unread, and
// reports EOF and deadlines as a net.Conn does.
func TestSockReaderBorrowsOnlyWhileBytesAreUnread(t *testing.T) {
	server, client := tcpPair(t)
	pool := newReadPool(256)
	r := newSockReader(server, pool)
	if r == nil {
		t.Skip("no raw socket reads on this platform")
	}
	if r.buf != nil {
		t.Fatal("a new connection holds a buffer")
	}

	sent := make([]byte, 10000)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	go func() {
		for off := 0; off < len(sent); off += 1000 {
			client.Write(sent[off : off+1000])
		}
	}()
	var got []byte
	for i := 0; len(got) < len(sent); i++ {
		p := make([]byte, []int{1, 14, 100, 255, 256, 3000}[i%6]) // below, at and above the pool's size
		n, err := r.read(server, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("the bytes read differ from the bytes sent")
	}
	if r.buf != nil {
		t.Fatal("every byte is read, yet the connection still holds a buffer")
	}

	// A short read keeps the rest, and only the rest.
	client.Write([]byte("abcdef"))
	p := make([]byte, 2)
	if n, err := r.read(server, p); err != nil || string(p[:n]) != "ab" {
		t.Fatalf("read %q, %v", p[:n], err)
	}
	if r.buf == nil || r.w-r.r != 4 {
		t.Fatal("the unread bytes were not kept")
	}
	p = make([]byte, 10)
	if n, _ := r.read(server, p); string(p[:n]) != "cdef" || r.buf != nil {
		t.Fatalf("read %q; buffer held: %v", p[:n], r.buf != nil)
	}

	// A deadline interrupts the wait, which holds no buffer.
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.read(server, make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if r.buf != nil {
		t.Fatal("a timed-out wait holds a buffer")
	}
	server.SetReadDeadline(time.Time{})

	client.Close()
	if _, err := r.read(server, make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
}

// Only a bare socket reads through borrowed buffers: a wrapped connection
// may hold bytes of its own.
func TestSockReaderOnlyOnBareSockets(t *testing.T) {
	server, _ := tcpPair(t)
	pool := newReadPool(256)
	if newSockReader(struct{ net.Conn }{server}, pool) != nil {
		t.Fatal("a wrapped connection reads from its file descriptor")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if newSockReader(a, pool) != nil {
		t.Fatal("a pipe reads through a sockReader")
	}
}

// A read that finds bytes waiting allocates nothing.
func TestSockReaderAllocationFree(t *testing.T) {
	server, client := tcpPair(t)
	r := newSockReader(server, newReadPool(4096))
	if r == nil {
		t.Skip("no raw socket reads on this platform")
	}
	msg := make([]byte, 64)
	p := make([]byte, 64)
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	allocs := testing.AllocsPerRun(200, func() {
		client.Write(msg)
		for n := 0; n < len(msg); {
			m, err := r.read(server, p[n:])
			if err != nil {
				t.Fatal(err)
			}
			n += m
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per read", allocs)
	}
}
