package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe/redis/redistest"
)

// A revocation record written into Redis by a client without the cluster
// key (a bare time, a made-up MAC, a genuine record copied to another
// subject) is refused and counted: it cannot lock a subject out. The
// genuine record loads.
func TestForgedRevocationRecordsRefused(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	opt := testOptions(srv.URL(0))
	a, _ := startNode(t, opt, "a")
	before := time.Now()
	if err := a.control(controlOp{Kind: ctlRevoke, Subject: "mallory", Before: before, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "the record is written", func() bool { return a.Stats().ControlsPending == 0 })

	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx := context.Background()
	genuine, err := rc.Get(ctx, a.revocationKey("mallory")).Result()
	if err != nil {
		t.Fatal(err)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).UnixNano(), 10)
	expMs := strconv.FormatInt(time.Now().Add(2*time.Hour).UnixMilli(), 10)
	for subject, value := range map[string]string{
		"alice": future,                                                   // the unsigned form
		"bob":   future + ":" + expMs + ":k1:" + strings.Repeat("ab", 32), // a made-up MAC
		"carol": genuine,                                                  // mallory's, moved
		"dave":  future + ":" + expMs + ":nokey:" + strings.Repeat("ab", 32),
	} {
		if err := rc.Set(ctx, a.revocationKey(subject), value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}

	late, ls := startNode(t, opt, "late")
	op := recvCtl(t, ls, 3*time.Second)
	if op.Subject != "mallory" || !op.Before.Equal(time.Unix(0, before.UnixNano())) {
		t.Fatalf("loaded %+v", op)
	}
	eventually(t, 3*time.Second, "the forged records are refused", func() bool { return late.Stats().Refused["bad_record"] == 4 })
	for len(ls.ctls) > 0 { // mallory again, from the recent control list
		if op := <-ls.ctls; op.Subject != "mallory" {
			t.Fatalf("a forged record was loaded: %+v", op)
		}
	}
}
