package redis

// Revocation records: <prefix>:r:<subject> holds the newest "issued
// before" time (Unix ns) of the subject's revocations and expires when
// the last token it refuses would have expired anyway.

import (
	"context"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// revokeScript: KEYS[1] the record; ARGV before (Unix ns), expiry (Unix
// ms). Keeps the later before and the later expiry.
var revokeScript = goredis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local before = tonumber(ARGV[1])
local exp = tonumber(ARGV[2])
local curexp = redis.call('PEXPIRETIME', KEYS[1])
if cur < before then redis.call('SET', KEYS[1], ARGV[1]) end
if curexp < exp then redis.call('PEXPIREAT', KEYS[1], exp) else redis.call('PEXPIREAT', KEYS[1], curexp) end
return 1
`)

func (b *Backplane) revocationKey(subject string) string { return b.opt.Prefix + ":r:" + subject }

// storeRevocation writes op's record, kept until op.Before + op.TTL.
func (b *Backplane) storeRevocation(op controlOp) error {
	ctx, cancel := b.ctx()
	defer cancel()
	exp := op.Before.Add(op.TTL)
	if !exp.After(b.opt.now()) {
		return nil // every token it refuses has expired
	}
	return revokeScript.Run(ctx, b.client, []string{b.revocationKey(op.Subject)},
		strconv.FormatInt(op.Before.UnixNano(), 10), exp.UnixMilli()).Err()
}

// loadRevocations hands every stored revocation to the sink, with the
// time it has left: at start, and after each outage.
func (b *Backplane) loadRevocations() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*writeTimeout)
	defer cancel()
	prefix := b.opt.Prefix + ":r:"
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		it := c.Scan(ctx, 0, prefix+"*", 512).Iterator()
		var keys []string
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			return err
		}
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), 512)]
			keys = keys[len(chunk):]
			pipe := c.Pipeline()
			gets := make([]*goredis.StringCmd, len(chunk))
			ttls := make([]*goredis.DurationCmd, len(chunk))
			for i, k := range chunk {
				gets[i], ttls[i] = pipe.Get(ctx, k), pipe.PTTL(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
				return err
			}
			for i, k := range chunk {
				ns, err := gets[i].Int64()
				left := ttls[i].Val()
				if err != nil || left <= 0 {
					continue
				}
				// TTL counts from Before, as when it was sent, so that the
				// record is kept at least as long however it is read.
				before := time.Unix(0, ns)
				b.sink.control(controlOp{Kind: ctlRevoke, Subject: strings.TrimPrefix(k, prefix),
					Before: before, TTL: b.opt.now().Add(left).Sub(before)})
			}
		}
		return nil
	}
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, b.client)
}
