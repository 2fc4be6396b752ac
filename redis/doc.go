// Package redis is a Redis backplane for wssafe: it carries topic
// publications, subject and everyone publications, and control operations
// (closes, revocations) between the nodes of a cluster, and keeps
// cluster-wide presence counts for the per-subject cap. It is its own
// module, so that the core never depends on a Redis client.
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
// A client of Redis without the key can therefore inject no broadcast and
// no close. What it can do: read every payload (use rediss:// and ACLs),
// drop or delay messages, and alter presence counts and revocation
// records, which are not signed (it could lift a cap or a revocation,
// or refuse users). Keys rotate: deploy [new, old], then [new].
//
// # Delivery
//
// At most once. Publications are dropped (counted in Stats.Dropped, logged
// rate-limited) when the bounded outbound queue is full or Redis is
// unreachable; the caller never blocks. Control operations are kept while
// Redis is unreachable (up to MaxPendingControls) and sent on recovery;
// each is also appended to a short list that a node re-reads when its
// link reconnects, so a node that was not subscribed at the time still
// gets it; revocations are stored with a TTL and loaded by every node at
// start and after each outage.
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
