package redis

// Revocation records: <prefix>:r:<subject> holds the newest revocation of
// the subject, "<before>:<expiry>:<keyID>:<mac>" (before in Unix ns,
// expiry in Unix ms, when the last token it refuses would have expired
// anyway), signed under the cluster key so that a client of Redis without
// the key cannot lock a subject out; the key expires with the record.

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// revokeScript: KEYS[1] the record; ARGV before (Unix ns), expiry (Unix
// ms), the signed value. Keeps the record with the later before.
var revokeScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local curb = 0
if cur then curb = tonumber(string.match(cur, '^(%d+):')) or 0 end
if curb < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[2])
end
return 1
`)

func (b *Backplane) revocationKey(subject string) string { return b.opt.Prefix + ":r:" + subject }

// recordMAC is what a revocation record's MAC covers: the key's name, so
// that a record cannot be moved to another subject or cluster prefix.
func recordMAC(key, before, exp string) []byte {
	return []byte("wssafe/redis revocation\x00" + key + "\x00" + before + "\x00" + exp)
}

// storeRevocation writes op's record, kept until op.Before + op.TTL.
func (b *Backplane) storeRevocation(op controlOp) error {
	ctx, cancel := b.ctx()
	defer cancel()
	exp := op.Before.Add(op.TTL)
	if !exp.After(b.opt.now()) {
		return nil // every token it refuses has expired
	}
	key := b.revocationKey(op.Subject)
	before, expMs := strconv.FormatInt(op.Before.UnixNano(), 10), strconv.FormatInt(exp.UnixMilli(), 10)
	kr := b.seal.keys
	mac := hex.EncodeToString(kr.signers[kr.first].Sign(recordMAC(key, before, expMs)))
	value := before + ":" + expMs + ":" + kr.first + ":" + mac
	return revokeScript.Run(ctx, b.client, []string{key}, before, expMs, value).Err()
}

// openRecord verifies a record stored at key and returns its before and
// expiry; ok is false for a record not signed under a cluster key.
func (b *Backplane) openRecord(key, value string) (before, exp time.Time, ok bool) {
	parts := strings.Split(value, ":")
	if len(parts) != 4 {
		return before, exp, false
	}
	s := b.seal.keys.signers[parts[2]]
	mac, err := hex.DecodeString(parts[3])
	if s == nil || err != nil || !s.Verify(recordMAC(key, parts[0], parts[1]), mac) {
		return before, exp, false
	}
	ns, err1 := strconv.ParseInt(parts[0], 10, 64)
	ms, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return before, exp, false
	}
	return time.Unix(0, ns), time.UnixMilli(ms), true
}

// loadRevocations hands every stored revocation to the sink, with the
// time it has left: at start, and after each outage. A record that is not
// signed under a cluster key is refused and counted (bad_record).
func (b *Backplane) loadRevocations() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*writeTimeout)
	defer cancel()
	prefix := b.opt.Prefix + ":r:"
	return b.scanKeys(ctx, prefix, func(ctx context.Context, c goredis.UniversalClient, chunk []string) error {
		pipe := c.Pipeline()
		gets := make([]*goredis.StringCmd, len(chunk))
		for i, k := range chunk {
			gets[i] = pipe.Get(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
			return err
		}
		for i, k := range chunk {
			value, err := gets[i].Result()
			if err != nil {
				continue // expired since the scan
			}
			before, exp, ok := b.openRecord(k, value)
			if !ok {
				b.open.counts[refusedRecord].Add(1)
				b.refused(refusedRecord)
				continue
			}
			if !exp.After(b.opt.now()) {
				continue
			}
			// TTL counts from Before, as when it was sent; the signed
			// expiry bounds it, however long Redis keeps the key.
			b.sink.control(controlOp{Kind: ctlRevoke, Subject: strings.TrimPrefix(k, prefix),
				Before: before, TTL: exp.Sub(before)})
		}
		return nil
	})
}
