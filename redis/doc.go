// Package redis is a Redis backplane for wssafe: it carries topic
// publications, subject and everyone publications, and control operations
// (closes, revocations) between the nodes of a cluster, and keeps
// cluster-wide presence counts for the per-subject cap. It is its own
// module, so that the core never depends on a Redis client.
//
//	bp, err := redis.New(redis.Options{
//		URL:    "rediss://node:PASSWORD@redis.internal:6379/0",
//		Keys:   []redis.Key{{ID: "2026-01", Secret: clusterKey}}, // 32+ random bytes, the same on every node
//		NodeID: hostname,                                        // unique in the cluster
//	})
//	if err != nil { ... }
//	ep, err := wssafe.New(h, &wssafe.Options{Auth: auth, MaxConnsPerSubject: 5, Backplane: bp})
//
// wssafe.New starts it (and fails if it cannot), Endpoint.Shutdown stops
// it. Started by an Endpoint, it reports through the Endpoint: outages,
// drops and refusals are logged by the Endpoint's logger (events
// backplane_down, backplane_up, backplane_dropped, backplane_refused,
// each rate-limited or once per change) and counted in
// Endpoint.Stats().Backplane; [Backplane.Stats] has the same counters and
// a few more for direct use.
//
// # Failure modes
//
// Redis unreachable: every node goes on alone. Local delivery, local caps
// and local revocation keep working; publications for other nodes are
// dropped at once ([wssafe.ErrDropped]), never queued behind the outage;
// control operations are kept and sent on recovery; a new session of a
// subject under MaxConnsPerSubject gets HTTP 503 with Retry-After (close
// 1013 after a first-message token), because the cap cannot be checked:
// fail closed, unless [Options.InsecureFailOpen]. Sessions already open
// are never touched. The receiving side reconnects with backoff (50 ms to
// 2 s, jittered) and resubscribes; presence is written again and the
// revocations re-read. A node that dies keeps counting for at most
// PresenceTTL; a node that shuts down removes its counts at once. If Redis
// restarts empty, the counts are rewritten within a refresh (until every
// node's are, a node that is back admits against the counts of those that
// are: a subject can exceed MaxConnsPerSubject for those seconds), but the
// revocation records are gone for nodes started afterwards (the nodes
// running keep theirs in memory): run Redis with persistence (appendonly)
// if that matters. go-redis logs its own connection-pool errors through
// its global logger (see go-redis's SetLogger), once per dial attempt.
//
// # What the client should do
//
// Delivery across nodes is at most once: a publication dropped during an
// outage, a full queue, or while the client was reconnecting is not sent
// again. A client that must not miss messages resynchronises on reconnect:
// it fetches what it missed since the last message it saw (by a sequence
// number or time the application puts in its messages) from the
// application's own store, and the server joins it to its topics again.
//
// # Security
//
// Every message between nodes is an envelope authenticated with
// HMAC-SHA256 under a cluster key ([Options.Keys]), carrying the sender's
// node ID, a random per-boot ID, a sequence number and a timestamp. A
// receiver refuses, counts and logs (rate-limited) an envelope that is
// forged, altered, signed under an unknown key, older than MaxAge or more
// than MaxSkew in the future, or replayed: per sender boot, an IPsec-style
// window of 1024 sequence numbers (sharded channels reorder) is kept until
// every envelope it accepted is stale, so a replay is refused by its
// sequence number, then by its timestamp, also after the sender restarted.
// A node has no such record of what was published on a channel before it
// listened there, so it refuses (as stale) every live envelope sealed more
// than MaxSkew before it asked to subscribe to the channel it came on, as
// it started, reconnected or joined a topic: a replay to a node that
// restarted, joined the cluster, came back from an outage or joined the
// topic since the capture is refused too. Within MaxSkew before (clocks
// apart, envelopes in flight) a genuine envelope cannot be told from a
// replay: a publication is dropped without a refusal, while an interest
// announcement (which only states a sender's topics again) and a control
// operation (which must not be lost) are taken, so a control operation
// sealed in the MaxSkew before a node subscribed can be replayed to it
// once. The bound is taken on the monotonic clock, so a step of the wall
// clock does not move it.
// Control operations are de-duplicated by MAC instead, remembered for as
// long as they can be re-read (10 minutes, or MaxAge if longer), so that a
// busy sender's publications cannot push a close out of the window and a
// close is performed at most once, live or re-read. A client of Redis
// without the key can therefore inject no broadcast and no close. One
// that can write the recent list can make a reconnecting node perform
// again, once per node boot, a close sent within those 10 minutes while
// it was disconnected, and no other. Revocation records are signed too (before, expiry and key
// name, under the cluster key): a record that does not verify is refused
// and counted (bad_record), so a client of Redis cannot lock a subject
// out. What it can do: read every payload, topic, subject and session ID
// (use rediss:// and an ACL user of its own per cluster), drop or delay
// messages, delete revocation records (a node started afterwards then
// admits the revoked subject's old tokens) and alter presence counts,
// which are not signed (the cap script runs in Redis, which could not
// check a signature, and deleting is always possible): it can lift the
// per-subject cap or refuse a subject's new sessions. Keys rotate: deploy
// [new, old] everywhere, then [new].
//
// # Delivery
//
// At most once. Publications are dropped (counted in Stats.Dropped, logged
// rate-limited) when the bounded outbound queue is full or Redis is
// unreachable; the caller never blocks. Control operations are kept while
// Redis is unreachable (up to MaxPendingControls) and sent on recovery;
// each is also appended to a short list (the last 1000, for 10 minutes)
// that a node re-reads when its link reconnects: a close sent since that
// link last heard from Redis (or started) and not performed yet is
// performed then, even after a cut longer than MaxAge, and counted in
// Stats.ControlsReread; one older than the list's 10 minutes is refused
// and counted (stale). Revocations are stored with a TTL and loaded by
// every node at start and after each outage.
//
// A node publishes to a topic's channel only when another node announced
// a subscriber for it (the interest table, fed by Subscribe/Unsubscribe
// announcements on the node-wide channel, re-sent in full on reconnect
// and every InterestRefresh): a publication to a topic nobody else has
// costs one lock-free map lookup.
//
// # Presence and the cap
//
// Each subject has one hash, <prefix>:p:<subject>, with one entry per node
// boot: its session count and an expiry (PresenceTTL, refreshed every
// PresenceRefresh). Acquire runs one Lua script on that key that drops
// expired entries, sums the others and this node's count, and increments
// only below the cap: atomic across nodes, and valid on Redis Cluster.
// Acquires of one subject on one node are serialised. The race window: a
// Release (or an Acquire raced by one) is written in the background, so
// for the time of one round trip Redis may count one session too many
// (refusing one handshake near the cap) or, after an interleaved
// Acquire and Release, one too few (admitting one more) until the rewrite
// that follows at once. A node that dies keeps counting for at most
// PresenceTTL; one that stops gracefully removes its entries at once.
// After Redis lost its data, every node writes its counts again on
// recovery and at each refresh. When Redis cannot be asked, Acquire
// returns an error (fail closed) unless InsecureFailOpen.
//
// Redis 7.0 or later is required (sharded pub/sub, PEXPIRETIME).
package redis
