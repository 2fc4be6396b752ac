package redis

// Presence: per subject, this node's session count in one Redis hash per
// subject, with an expiry per entry refreshed by a heartbeat; the
// cluster-wide cap is checked and incremented by one script on that one
// key, so it works on Redis Cluster too.

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The hash at <prefix>:p:<subject> has one field per node boot,
// "<node>/<boot>", whose value is "<count>:<expiresUnixMs>:<version>".
// Entries past their expiry count nothing and are deleted by the next
// script that reads the hash; the key itself expires with its newest
// entry. Versions order one boot's writes: a write older than the stored
// one is ignored.

// acquireScript: KEYS[1] the hash; ARGV field, mine (this node's count),
// max (<= 0: no cap), ttl ms, version. Returns {admitted, total}.
var acquireScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = 0
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv, 2 do
  local n, exp = string.match(kv[i+1], '^(%d+):(%d+):')
  n = tonumber(n); exp = tonumber(exp)
  if n == nil or exp <= now then
    redis.call('HDEL', KEYS[1], kv[i])
  elseif kv[i] ~= ARGV[1] then
    total = total + n
  end
end
local mine = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
if max > 0 and total + mine >= max then
  return {0, total + mine}
end
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], (mine + 1) .. ':' .. (now + ttl) .. ':' .. ARGV[5])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, total + mine + 1}
`)

// setScript: KEYS[1] the hash; ARGV field, count, ttl ms, version. Writes
// the count unless a newer version is stored. A zero count stays as an
// entry (so that its version still orders later writes) and expires.
var setScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local v = tonumber(string.match(cur, ':(%d+)$'))
  if v and v > tonumber(ARGV[4]) then return 0 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. (now + ttl) .. ':' .. ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// countScript: KEYS[1] the hash. Returns the live total.
var countScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = 0
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv, 2 do
  local n, exp = string.match(kv[i+1], '^(%d+):(%d+):')
  n = tonumber(n); exp = tonumber(exp)
  if n and exp > now then total = total + n end
end
return total
`)

// presence keeps this node's counts, the truth that Redis mirrors.
type presence struct {
	b     *Backplane
	field string
	ver   atomic.Uint64

	mu    sync.Mutex
	subs  map[string]*subjectEntry
	dirty map[string]struct{}
	all   map[string]struct{} // every subject written since start, for Stop
	wake  chan struct{}
	regen chan struct{} // re-register everything: Redis may have lost it
}

type subjectEntry struct {
	acq     sync.Mutex // serialises this subject's Acquires on this node
	n       int        // under presence.mu
	refs    int        // Acquires in flight, under presence.mu
	release uint64     // Releases so far, under presence.mu
}

func newPresence(b *Backplane) *presence {
	p := &presence{b: b, field: b.opt.NodeID + "/" + hex.EncodeToString(b.seal.boot[:]),
		subs: map[string]*subjectEntry{}, dirty: map[string]struct{}{}, all: map[string]struct{}{},
		wake: make(chan struct{}, 1), regen: make(chan struct{}, 1)}
	b.health.onUp = append(b.health.onUp, func() { signal(p.regen) })
	return p
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *presence) key(subject string) string { return p.b.opt.Prefix + ":p:" + subject }

// Acquire counts one more session of subject on this node if the
// cluster-wide count is below max (max <= 0: no cap) and reports whether
// it did. The check and the increment are one script on one key, atomic
// across nodes. An error means Redis could not be asked; with
// InsecureFailOpen it admits and counts locally instead.
func (b *Backplane) Acquire(ctx context.Context, subject string, max int) (bool, error) {
	return b.pres.acquire(ctx, subject, max)
}

// Release undoes one Acquire. It never blocks: Redis is updated in the
// background.
func (b *Backplane) Release(subject string) { b.pres.releaseOne(subject) }

func (p *presence) acquire(ctx context.Context, subject string, max int) (bool, error) {
	select {
	case <-p.b.stopping:
		return false, errStopped
	default:
	}
	p.mu.Lock()
	e := p.subs[subject]
	if e == nil {
		e = &subjectEntry{}
		p.subs[subject] = e
	}
	e.refs++
	p.mu.Unlock()

	e.acq.Lock()
	defer e.acq.Unlock()
	p.mu.Lock()
	mine, releases := e.n, e.release
	p.mu.Unlock()

	var res []int64
	err := errUnavailable
	if !p.b.down() {
		res, err = acquireScript.Run(ctx, p.b.client, []string{p.key(subject)},
			p.field, mine, max, p.b.opt.PresenceTTL.Milliseconds(), p.ver.Add(1)).Int64Slice()
		if err == nil && len(res) != 2 {
			err = errors.New("wssafe/redis: unexpected reply from the presence script")
		}
	}
	admitted := err == nil && res[0] == 1
	if err != nil && p.b.opt.InsecureFailOpen {
		admitted, err = true, nil
		releases = ^uint64(0) // written by the heartbeat when Redis is back
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e.refs--
	if admitted {
		e.n++
		p.all[subject] = struct{}{}
		if e.release != releases { // a Release raced this Acquire's write: rewrite
			p.dirty[subject] = struct{}{}
			signal(p.wake)
		}
	}
	p.cleanup(subject, e)
	return admitted, err
}

func (p *presence) releaseOne(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.subs[subject]
	if e == nil || e.n == 0 {
		return
	}
	e.n--
	e.release++
	p.dirty[subject] = struct{}{}
	p.cleanup(subject, e)
	signal(p.wake)
}

// cleanup forgets an entry nothing refers to; its count is zero, which is
// what a missing entry means. Under p.mu.
func (p *presence) cleanup(subject string, e *subjectEntry) {
	if e.n == 0 && e.refs == 0 {
		delete(p.subs, subject)
	}
}

// run writes released counts at once and every count each refresh.
func (p *presence) run() {
	defer p.b.wg.Done()
	t := time.NewTicker(p.b.opt.PresenceRefresh)
	defer t.Stop()
	loaded := p.b.loadRevocations() == nil
	for {
		select {
		case <-p.b.stopping:
			return
		case <-p.wake:
			p.write(p.take(false))
		case <-t.C:
			p.write(p.take(true))
			if !loaded {
				loaded = p.b.loadRevocations() == nil
			}
		case <-p.regen:
			// Redis is back, maybe empty: write every count, and re-read
			// the revocations this node may have missed.
			p.write(p.take(true))
			loaded = p.b.loadRevocations() == nil
		}
	}
}

type countSnap struct {
	subject string
	n       int
	ver     uint64
}

// take snapshots the dirty counts, or all of them, with fresh versions.
func (p *presence) take(all bool) []countSnap {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []countSnap
	add := func(s string) {
		n := 0
		if e := p.subs[s]; e != nil {
			n = e.n
		}
		out = append(out, countSnap{s, n, p.ver.Add(1)})
	}
	if all {
		for s, e := range p.subs {
			if _, dirty := p.dirty[s]; !dirty && e.n > 0 {
				add(s)
			}
		}
	}
	for s := range p.dirty {
		add(s)
	}
	clear(p.dirty)
	return out
}

func (p *presence) write(snaps []countSnap) {
	if len(snaps) == 0 {
		return
	}
	ctx, cancel := p.b.ctx()
	defer cancel()
	err := setScript.Load(ctx, p.b.client).Err()
	if err == nil {
		pipe := p.b.client.Pipeline()
		ttl := p.b.opt.PresenceTTL.Milliseconds()
		for _, s := range snaps {
			setScript.EvalSha(ctx, pipe, []string{p.key(s.subject)}, p.field, s.n, ttl, s.ver)
		}
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		p.mu.Lock()
		for _, s := range snaps {
			p.dirty[s.subject] = struct{}{}
		}
		p.mu.Unlock()
		p.b.health.fail(p, err)
		return
	}
	p.b.health.ok(p)
}

// removeAll deletes this node's entries: it is leaving.
func (p *presence) removeAll(ctx context.Context) error {
	p.mu.Lock()
	subjects := make([]string, 0, len(p.all))
	for s := range p.all {
		subjects = append(subjects, s)
	}
	p.mu.Unlock()
	if len(subjects) == 0 {
		return nil
	}
	pipe := p.b.client.Pipeline()
	for _, s := range subjects {
		pipe.HDel(ctx, p.key(s), p.field)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Online returns the cluster-wide number of sessions per subject, from
// every node's live entries. It scans the presence keys: its cost grows
// with the number of connected subjects.
func (b *Backplane) Online(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	var mu sync.Mutex // ForEachMaster scans the masters at once
	prefix := b.opt.Prefix + ":p:"
	err := b.scanKeys(ctx, prefix, func(ctx context.Context, c goredis.UniversalClient, chunk []string) error {
		pipe := c.Pipeline()
		cmds := make([]*goredis.Cmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = countScript.Eval(ctx, pipe, []string{k})
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for i, k := range chunk {
			if n, err := cmds[i].Int(); err == nil && n > 0 {
				out[strings.TrimPrefix(k, prefix)] += n
			}
		}
		return nil
	})
	return out, err
}

// scanKeys calls fn with the keys that start with prefix, 512 at a time,
// on every master (Redis Cluster) or on the one server; fn may run on
// several masters at once.
func (b *Backplane) scanKeys(ctx context.Context, prefix string, fn func(ctx context.Context, c goredis.UniversalClient, chunk []string) error) error {
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
			if err := fn(ctx, c, chunk); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, b.client)
}

// localCount is this node's count for subject (tests).
func (p *presence) localCount(subject string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.subs[subject]; e != nil {
		return e.n
	}
	return 0
}
