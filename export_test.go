package wssafe

import "time"

// SetDedupClock injects a clock into o, for tests of the replay window.
func SetDedupClock(o *DedupOptions, now func() time.Time) { o.now = now }
