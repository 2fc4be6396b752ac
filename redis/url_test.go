package redis

import (
	"strings"
	"testing"
)

// An invalid URL is refused without quoting it: the password in it must
// reach no error message (which ends up in logs).
func TestBadURLErrorHidesPassword(t *testing.T) {
	for _, url := range []string{
		"redis://u:pw-7f3a@h:6x/0",     // bad port: url.Parse's error quotes the URL
		"redis://u:pw-7f3a@h:6379/x",   // bad database
		"redis://u:pw-7f3a@h:6379/0/1", // bad path
		"ftp://u:pw-7f3a@h:6379/0",     // bad scheme
		"redis://u:pw-7f3a@h:6379/0?dial_timeout=pw-7f3a",
	} {
		_, err := New(Options{URL: url, Keys: []Key{clusterKey}})
		if err == nil {
			t.Fatalf("%s: accepted", url)
		}
		if msg := err.Error(); strings.Contains(msg, "pw-7f3a") || strings.Contains(msg, "u:") || !strings.Contains(msg, "redis://") {
			t.Fatalf("the error leaks the URL or says nothing useful: %q", msg)
		}
	}
}
