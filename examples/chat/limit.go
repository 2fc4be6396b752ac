package main

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wssafe/wssafe"
)

// defaultMaxKeys bounds each keyedLimiter's table: about 2 MB at most.
const defaultMaxKeys = 10000

// keyedLimiter is a token bucket per key (a client address, a subject) in
// bounded memory. A key unused for as long as its bucket takes to refill
// is dropped, which forgets nothing: it would start full again anyway. At
// maxKeys live keys the least recently used one is dropped, so a flood of
// fresh keys costs the flooder's oldest keys their state, never memory and
// never a refusal of everyone. Safe for concurrent use.
type keyedLimiter struct {
	limit   rate.Limit
	burst   int
	idle    time.Duration // time for an empty bucket to refill
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	lru  *list.List // of *keyedEntry, most recently used first
	keys map[string]*list.Element
}

type keyedEntry struct {
	key  string
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(every time.Duration, burst, maxKeys int, now func() time.Time) *keyedLimiter {
	return &keyedLimiter{
		limit:   rate.Every(every),
		burst:   burst,
		idle:    every * time.Duration(burst),
		maxKeys: maxKeys,
		now:     now,
		lru:     list.New(),
		keys:    map[string]*list.Element{},
	}
}

// allow takes a token from key's bucket. When there is none it takes
// nothing and returns how long until there is one.
func (k *keyedLimiter) allow(key string) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	for el := k.lru.Back(); el != nil && now.Sub(el.Value.(*keyedEntry).last) >= k.idle; el = k.lru.Back() {
		k.drop(el)
	}
	el, ok := k.keys[key]
	if ok {
		k.lru.MoveToFront(el)
	} else {
		if k.lru.Len() >= k.maxKeys {
			k.drop(k.lru.Back())
		}
		el = k.lru.PushFront(&keyedEntry{key: key, lim: rate.NewLimiter(k.limit, k.burst)})
		k.keys[key] = el
	}
	e := el.Value.(*keyedEntry)
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (k *keyedLimiter) drop(el *list.Element) {
	k.lru.Remove(el)
	delete(k.keys, el.Value.(*keyedEntry).key)
}

// len returns the number of keys held.
func (k *keyedLimiter) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lru.Len()
}

// tooMany answers 429 with Retry-After in whole seconds, rounded up.
func tooMany(w http.ResponseWriter, retry time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
	writeError(w, http.StatusTooManyRequests, &wssafe.MessageError{Code: "rate_limited", Message: "too many requests; try again later"})
}

// clientKey is the rate-limit key of r's client: the address wssafe itself
// derives (the peer's, or what the trusted proxies in front report), so the
// API's limits and the socket's agree on who the client is. An IPv6 client
// is keyed by its /64, which one host usually holds entirely.
func (a *app) clientKey(r *http.Request) string {
	addr := a.ep.ClientIP(r)
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}
