package wssafe

import "time"

// A timer is the part of *time.Timer that wssafe uses, so that tests can
// inject a clock whose timers fire when the test says so.
type timer interface {
	Stop() bool
}

// afterFunc is time.AfterFunc behind the timer interface: the default for
// the unexported Options.afterFunc.
func afterFunc(d time.Duration, f func()) timer {
	return time.AfterFunc(d, f)
}
