package sourcemap

import (
	"testing"
	"time"
)

// The map never holds more than its bound, keeps an entry in use across a
// generation change, and forgets one unused for two generations.
func TestMapBounded(t *testing.T) {
	now := time.Unix(0, 0)
	m := New[int, *int](8, time.Minute)
	keep := m.Get(now, -1, func() *int { v := -1; return &v })
	for i := range 1000 {
		m.Get(now, i, func() *int { v := i; return &v })
		if m.Len() > 8 {
			t.Fatalf("after %d keys: %d entries, bound 8", i+1, m.Len())
		}
		if i%3 == 0 && m.Get(now, -1, nil) != keep {
			t.Fatalf("an entry in use was dropped after %d keys", i+1)
		}
	}
	m.Get(now.Add(time.Minute), 2000, func() *int { return new(int) })
	m.Get(now.Add(2*time.Minute), 2001, func() *int { return new(int) })
	made := false
	m.Get(now.Add(2*time.Minute), -1, func() *int { made = true; return new(int) })
	if !made {
		t.Fatal("an entry unused for two generations was kept")
	}
}
