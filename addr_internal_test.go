package wssafe

import (
	"log/slog"
	"net/http/httptest"
	"testing"
)

// Without a forwarding header, noting one costs no allocation.
func TestNoteUntrustedForwardingFree(t *testing.T) {
	e, err := New(HandlerFunc(nil), &Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	ip := peerAddr(r)
	if n := testing.AllocsPerRun(100, func() { e.noteUntrustedForwarding(r, ip) }); n != 0 {
		t.Errorf("%v allocations per request without a forwarding header", n)
	}
}
