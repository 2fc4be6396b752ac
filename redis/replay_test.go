package redis

import (
	"math/rand/v2"
	"testing"
)

// The window agrees with a plain set of every number seen, for numbers
// within the window, under random reordering and duplication.
func TestReplayWindowMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var w replayWindow
	seen := map[uint64]bool{}
	var top uint64
	for i := range 200000 {
		var seq uint64
		switch r.IntN(4) {
		case 0: // a jump ahead, sometimes past the window
			seq = top + 1 + uint64(r.IntN(3*replayWindowSize))
		default: // something near the top, old or duplicated
			seq = top + 5 - uint64(r.IntN(replayWindowSize+200))
			if seq > top+5 { // wrapped below zero
				seq = 1
			}
		}
		got := w.accept(seq)
		want := seq != 0 && !seen[seq] && (seq > top || top-seq < replayWindowSize)
		if got != want {
			t.Fatalf("step %d: accept(%d) with top %d = %v, want %v", i, seq, top, got, want)
		}
		if got {
			seen[seq] = true
			top = max(top, seq)
		}
	}
}

func TestReplayWindowEdges(t *testing.T) {
	var w replayWindow
	if w.accept(0) {
		t.Fatal("sequence 0 accepted")
	}
	for _, c := range []struct {
		seq  uint64
		want bool
	}{
		{1, true}, {1, false}, {3, true}, {2, true}, {2, false},
		{3 + replayWindowSize, true}, {4, true}, {3, false}, // 3 fell off the window: refused as too old
		{3 + replayWindowSize, false}, {10 * replayWindowSize, true}, {9 * replayWindowSize, false},
	} {
		if got := w.accept(c.seq); got != c.want {
			t.Fatalf("accept(%d) = %v, want %v", c.seq, got, c.want)
		}
	}
}
