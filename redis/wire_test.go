package redis

import (
	"testing"

	"github.com/wssafe/wssafe"
)

// Every core ControlKind has a wire kind and maps back to itself; an
// unknown kind maps to zero both ways, which a Node refuses as malformed.
func TestControlKindMapping(t *testing.T) {
	for _, k := range []wssafe.ControlKind{wssafe.ControlCloseSubject, wssafe.ControlCloseSession, wssafe.ControlRevoke} {
		w := wireKind(k)
		if w == 0 || coreKind(w) != k {
			t.Fatalf("kind %d: wire %d, back %d", k, w, coreKind(w))
		}
	}
	if wireKind(99) != 0 || coreKind(99) != 0 {
		t.Fatal("an unknown kind was mapped")
	}
}
