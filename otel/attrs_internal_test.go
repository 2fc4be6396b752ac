package wsotel

import (
	"testing"

	"github.com/wssafe/wssafe"
)

// Every limit and validation event of the core is an attribute value of
// its own: the compression ones too, not "other".
func TestEveryReadEventBounded(t *testing.T) {
	for _, c := range []struct {
		known map[string]bool
		event string
	}{
		{limitReasons, wssafe.EventMessageTooBig},
		{limitReasons, wssafe.EventInflationRatio},
		{validationReasons, wssafe.EventInvalidUTF8},
		{validationReasons, wssafe.EventInvalidCompressed},
	} {
		if got := bound(c.known, c.event); got != c.event {
			t.Errorf("%s is counted as %q", c.event, got)
		}
	}
}
