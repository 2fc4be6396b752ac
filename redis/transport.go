package redis

// The transport: the writer goroutine that publishes, and the receiving
// links that subscribe, reconnect with backoff and resubscribe.

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe"
)

// Timing of the transport.
const (
	writeTimeout = 2 * time.Second
	maxBatch     = 256
	minBackoff   = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
	pingEvery    = 3 * time.Second
	chunkBytes   = 32 << 10 // an interest message's topics
)

// backoff returns the wait before attempt n (from 0): doubling, capped,
// with jitter so that nodes do not reconnect in step.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 8 {
		d = min(maxBackoff, minBackoff<<n)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until the backplane stops, and reports whether it runs.
func (b *Backplane) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.stopping:
		return false
	}
}

func (b *Backplane) ping() error {
	ctx, cancel := b.ctx()
	defer cancel()
	return b.client.Ping(ctx).Err()
}

func (b *Backplane) wakeWriter() {
	select {
	case b.wakeW <- struct{}{}:
	default:
	}
}

// topicChannel is the Redis channel of topic.
func (b *Backplane) topicChannel(topic string) string {
	if !b.opt.Sharded {
		return b.opt.Prefix + ":t:" + topic
	}
	return "{" + b.opt.Prefix + ":" + strconv.Itoa(b.partition(topic)) + "}:t:" + topic
}

func (b *Backplane) partition(topic string) int {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return int(h.Sum32() % uint32(b.opt.Partitions))
}

// publish seals p and queues it, or drops it: never blocks.
func (b *Backplane) publish(p publication) error {
	ch := b.nodeChan
	if p.Topic != "" {
		if !b.remote.has(p.Topic) {
			return nil // no other node has a subscriber: nothing to send
		}
		ch = b.topicChannel(p.Topic)
	}
	if b.down() {
		b.drop(1, dropDown)
		return errDropped
	}
	return b.enqueue(ch, b.seal.seal(kindPublication, p.append(nil)))
}

func (b *Backplane) enqueue(ch string, msg []byte) error {
	select {
	case b.out <- outMsg{ch, msg}:
		return nil
	default:
		b.dropMsgs([]outMsg{{ch, msg}}, dropQueueFull)
		return errDropped
	}
}

// control keeps op until it is sent (and, for a revocation, stored).
func (b *Backplane) control(op controlOp) error {
	select {
	case <-b.stopping:
		return errStopped
	default:
	}
	if !b.controls.push(op, b.opt.MaxPendingControls) {
		b.st.controlsDropped.Add(1)
		if n := b.node; n != nil {
			n.Count(wssafe.BackplaneDropped, dropControls)
		} else {
			b.log.LogAttrs(context.Background(), slog.LevelError, "wssafe/redis: control operation lost: too many waiting for Redis",
				slog.String("event", EventDropped), slog.Int("pending", b.controls.len()))
		}
		return errDropped
	}
	b.wakeWriter()
	return nil
}

// writer is the one goroutine that writes to Redis: interest messages and
// control operations first, then publications, pipelined.
func (b *Backplane) writer() {
	defer b.wg.Done()
	refresh := time.NewTicker(b.opt.InterestRefresh)
	defer refresh.Stop()
	batch := make([]outMsg, 0, maxBatch)
	fails := 0
	for {
		batch = batch[:0]
		select {
		case <-b.stopping:
			b.flushOnStop(batch)
			return
		case m := <-b.out:
			batch = append(batch, m)
		case <-b.wakeW:
		case <-refresh.C:
			b.needFull.Store(true)
		}
		batch = b.drain(batch)
		err := b.writeOnce(batch)
		if err == nil {
			fails = 0
			b.health.ok(b)
			continue
		}
		b.health.fail(b, err)
		if !b.sleep(backoff(fails)) {
			b.flushOnStop(nil)
			return
		}
		fails++
		if b.ping() == nil {
			b.health.ok(b)
		}
		b.wakeWriter() // send what waits, or keep probing
	}
}

func (b *Backplane) drain(batch []outMsg) []outMsg {
	for len(batch) < maxBatch {
		select {
		case m := <-b.out:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// ctx bounds one call to Redis.
func (b *Backplane) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), writeTimeout)
}

// writeOnce sends what is due. Publications that fail are dropped;
// interest and controls stay due.
func (b *Backplane) writeOnce(batch []outMsg) error {
	if b.down() && len(batch) > 0 {
		b.dropMsgs(batch, dropDown) // queued before the outage was known
		batch = batch[:0]
	}
	if err := b.sendInterest(); err != nil {
		b.dropMsgs(batch, dropDown)
		return err
	}
	if err := b.sendControls(); err != nil {
		b.dropMsgs(batch, dropDown)
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	if err := b.pipelinePublish(context.Background(), batch); err != nil {
		b.dropMsgs(batch, dropWriteFailed)
		return err
	}
	return nil
}

func (b *Backplane) pipelinePublish(ctx context.Context, msgs []outMsg) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	for _, m := range msgs {
		if b.opt.Sharded {
			pipe.SPublish(ctx, m.channel, m.msg)
		} else {
			pipe.Publish(ctx, m.channel, m.msg)
		}
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		b.st.published.Add(uint64(len(msgs)))
		if n := b.node; n != nil {
			for _, m := range msgs {
				if msgKind(m.msg) == kindPublication {
					n.Count(wssafe.BackplanePublished, "")
				}
			}
		}
	}
	return err
}

// sendInterest sends a sync or the full topic set when one is due.
func (b *Backplane) sendInterest() error {
	op := interestFullReset
	switch {
	case b.needSync.Load():
		op = interestSync
	case b.needFull.Load():
	default:
		return nil
	}
	var msgs []outMsg
	for i, chunk := range chunkTopics(b.topics.list()) {
		o := interestFull
		if i == 0 {
			o = op
		}
		msgs = append(msgs, outMsg{b.nodeChan, b.seal.seal(kindInterest, interest{Op: o, Topics: chunk}.append(nil))})
	}
	if err := b.pipelinePublish(context.Background(), msgs); err != nil {
		return err
	}
	if op == interestSync {
		b.needSync.Store(false)
	}
	b.needFull.Store(false)
	return nil
}

// chunkTopics splits topics into messages of about chunkBytes; there is
// always at least one, maybe empty.
func chunkTopics(topics []string) [][]string {
	out := [][]string{nil}
	size := 0
	for _, t := range topics {
		if size+len(t) > chunkBytes && len(out[len(out)-1]) > 0 {
			out = append(out, nil)
			size = 0
		}
		out[len(out)-1] = append(out[len(out)-1], t)
		size += len(t) + 2
	}
	return out
}

// announce tells the other nodes about a change of this node's topics.
// If it is dropped, the next full set repairs the tables.
func (b *Backplane) announce(op interestOp, topics ...string) {
	if len(topics) == 0 {
		return
	}
	if b.down() || b.enqueue(b.nodeChan, b.seal.seal(kindInterest, interest{Op: op, Topics: topics}.append(nil))) != nil {
		b.needFull.Store(true)
	}
}

// flushOnStop sends what is queued and a leave message within Stop's ctx.
func (b *Backplane) flushOnStop(batch []outMsg) {
	if b.down() || b.crashed {
		return
	}
	batch = b.drain(batch)
	batch = append(batch, outMsg{b.nodeChan, b.seal.seal(kindInterest, interest{Op: interestLeave}.append(nil))})
	_ = b.sendControls()
	if err := b.pipelinePublish(b.stopCtx, batch); err != nil {
		b.dropMsgs(batch, dropStopping)
	}
}

// A controlQueue keeps control operations, in order, until sent.
type controlQueue struct {
	mu  sync.Mutex
	ops []pendingControl
}

type pendingControl struct {
	op     controlOp
	stored bool // a revocation's record is in Redis
}

func (q *controlQueue) push(op controlOp, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ops) >= limit {
		return false
	}
	q.ops = append(q.ops, pendingControl{op: op})
	return true
}

func (q *controlQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ops)
}

func (q *controlQueue) peek() (pendingControl, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ops) == 0 {
		return pendingControl{}, false
	}
	return q.ops[0], true
}

func (q *controlQueue) markStored() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ops[0].stored = true
}

func (q *controlQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ops = slices.Delete(q.ops, 0, 1)
}

// sendControls stores and publishes the pending control operations, in
// order, each sealed now (a fresh timestamp after an outage).
func (b *Backplane) sendControls() error {
	for {
		pc, ok := b.controls.peek()
		if !ok {
			return nil
		}
		if pc.op.Kind == ctlRevoke && !pc.stored {
			if err := b.storeRevocation(pc.op); err != nil {
				return err
			}
			b.controls.markStored()
		}
		if err := b.sendControl(b.seal.seal(kindControl, pc.op.append(nil))); err != nil {
			return err
		}
		b.controls.pop()
	}
}

// recentControls bounds the list of recent control envelopes, and
// recentControlsTTL (or MaxAge, if longer) is how long it lives after the
// last one and how old one may be when re-read.
const (
	recentControls    = 1000
	recentControlsTTL = 10 * time.Minute
)

// sendControl publishes env and appends it to the list of recent control
// envelopes, which a node re-reads when its link reconnects: a control
// operation published while that node was not subscribed still reaches
// it, up to recentControlsTTL later. Receivers remember the control
// envelopes they performed for as long (by MAC), so reading one twice is
// harmless.
func (b *Backplane) sendControl(env []byte) error {
	ctx, cancel := b.ctx()
	defer cancel()
	key := b.controlsKey()
	pipe := b.client.TxPipeline()
	pipe.RPush(ctx, key, env)
	pipe.LTrim(ctx, key, -recentControls, -1)
	pipe.PExpire(ctx, key, b.open.recentTTL)
	if b.opt.Sharded {
		pipe.SPublish(ctx, b.nodeChan, env)
	} else {
		pipe.Publish(ctx, b.nodeChan, env)
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		b.st.published.Add(1)
		if n := b.node; n != nil {
			n.Count(wssafe.BackplanePublished, "")
		}
	}
	return err
}

// controlsKey shares the node channel's hash slot.
func (b *Backplane) controlsKey() string { return b.nodeChan + ":recent" }

// rereadControls performs the recent control envelopes sent since the
// node link last heard from Redis (or started) that it has not performed.
func (b *Backplane) rereadControls(since time.Time) {
	ctx, cancel := b.ctx()
	defer cancel()
	envs, err := b.client.LRange(ctx, b.controlsKey(), 0, -1).Result()
	if err != nil {
		return // the next reconnect tries again; revocations are also reloaded
	}
	for _, env := range envs {
		e, v := b.open.reopen([]byte(env), since)
		if v == verdictOK {
			b.st.recovered.Add(1)
		}
		b.dispatch(e, v)
	}
}

// A topicSet is this node's topics with local subscribers.
type topicSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (s *topicSet) init() { s.m = map[string]struct{}{} }

func (s *topicSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for t := range s.m {
		out = append(out, t)
	}
	return out
}

// Subscribe tells the backplane this node now has a subscriber for topic:
// its link subscribes to the topic's channel, then the other nodes are
// told. It does not block on the network.
func (b *Backplane) Subscribe(topic string) {
	b.topics.mu.Lock()
	_, had := b.topics.m[topic]
	b.topics.m[topic] = struct{}{}
	b.topics.mu.Unlock()
	if !had {
		b.linkFor(topic).want(b.topicChannel(topic), topic, true)
	}
}

// Unsubscribe tells the backplane this node has no subscriber left for
// topic. It does not block on the network.
func (b *Backplane) Unsubscribe(topic string) {
	b.topics.mu.Lock()
	_, had := b.topics.m[topic]
	delete(b.topics.m, topic)
	b.topics.mu.Unlock()
	if had {
		b.announce(interestUnsubscribe, topic)
		b.linkFor(topic).want(b.topicChannel(topic), topic, false)
	}
}

func (b *Backplane) linkFor(topic string) *link {
	if !b.opt.Sharded {
		return b.links[0]
	}
	return b.links[1+b.partition(topic)]
}

// A link is one receiving connection (a go-redis PubSub) and the channels
// it should be subscribed to. Its goroutine reconciles the subscription
// with the wanted set, reconnects with backoff when the connection fails,
// and then resubscribes everything.
type link struct {
	b      *Backplane
	node   bool // carries the node-wide channel
	mu     sync.Mutex
	wanted map[string]string // channel -> topic ("" for the node channel)
	fresh  map[string]bool   // topics joined since the last reconcile: to announce
	wake   chan struct{}
	ps     *goredis.PubSub
	closed bool
	heard  atomic.Int64         // when the link last received anything (Unix ns; at first, its start)
	subAt  map[string]time.Time // channel -> when this connection asked to subscribe: nothing sealed before is taken live (opener.openOn)
}

func newLinks(b *Backplane) []*link {
	n := 1
	if b.opt.Sharded {
		n += b.opt.Partitions
	}
	ls := make([]*link, n)
	for i := range ls {
		ls[i] = &link{b: b, wanted: map[string]string{}, fresh: map[string]bool{}, subAt: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	}
	ls[0].node = true
	ls[0].wanted[b.nodeChan] = ""
	return ls
}

func (l *link) want(ch, topic string, on bool) {
	l.mu.Lock()
	if on {
		l.wanted[ch] = topic
		l.fresh[topic] = true
	} else {
		delete(l.wanted, ch)
		delete(l.fresh, topic)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	ps := l.ps
	l.mu.Unlock()
	if ps != nil {
		_ = ps.Close() // unblocks the reader
	}
}

func (l *link) run() {
	defer l.b.wg.Done()
	l.heard.Store(l.b.opt.now().UnixNano())
	attempt := 0
	for {
		if !l.waitWanted() {
			return
		}
		if g := l.b.opt.linkGate; g != nil {
			g(l.node)
		}
		connected, err := l.session()
		if err == nil {
			return // stopped
		}
		l.b.health.fail(l, err)
		if connected {
			attempt = 0
		}
		if !l.b.sleep(backoff(attempt)) {
			return
		}
		attempt = min(attempt+1, 16)
	}
}

// waitWanted waits, without a connection, until the link has a channel to
// subscribe to, and reports whether the backplane still runs.
func (l *link) waitWanted() bool {
	for {
		l.mu.Lock()
		n := len(l.wanted)
		l.mu.Unlock()
		if n > 0 {
			return true
		}
		// Nothing to receive, no connection: this link is not failing,
		// whatever its last connection did. (Else a link whose last topic
		// left during an outage would keep the backplane down.)
		l.b.health.forget(l)
		select {
		case <-l.wake:
		case <-l.b.stopping:
			return false
		}
	}
}

// session runs one connection until it fails (the error) or the
// backplane stops (nil), and reports whether it got subscribed.
func (l *link) session() (connected bool, err error) {
	b := l.b
	var ps *goredis.PubSub
	if b.opt.Sharded {
		ps = b.client.SSubscribe(context.Background())
	} else {
		ps = b.client.Subscribe(context.Background())
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = ps.Close()
		return false, nil
	}
	l.ps = ps
	clear(l.subAt) // a new connection: reconcile subscribes to every wanted channel again
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.ps = nil
		l.mu.Unlock()
		_ = ps.Close()
	}()

	since := time.Unix(0, l.heard.Load()) // what the link missed began after this
	subscribed := map[string]bool{}
	readErr := make(chan error, 1)
	confirmed := make(chan struct{}, 1)
	if err := l.reconcile(ps, subscribed); err != nil {
		return false, err
	}
	go l.read(ps, readErr, confirmed)
	for {
		select {
		case <-b.stopping:
			_ = ps.Close()
			<-readErr
			return connected, nil
		case err := <-readErr:
			return connected, err
		case <-confirmed:
			connected = true
			// Connected and subscribed (again): the others may have missed
			// this node's changes, and it theirs.
			b.health.ok(l)
			if l.node {
				b.needSync.Store(true)
				b.rereadControls(since)
			} else {
				b.needFull.Store(true)
			}
			b.wakeWriter()
		case <-l.wake:
			if err := l.reconcile(ps, subscribed); err != nil {
				_ = ps.Close()
				<-readErr
				return connected, err
			}
		}
	}
}

// reconcile subscribes to the wanted channels the connection lacks and
// unsubscribes from the others, then announces the new topics.
func (l *link) reconcile(ps *goredis.PubSub, subscribed map[string]bool) error {
	l.mu.Lock()
	var add, del, topics []string
	for ch := range l.wanted {
		if !subscribed[ch] {
			add = append(add, ch)
		}
	}
	for topic := range l.fresh {
		topics = append(topics, topic)
	}
	clear(l.fresh)
	for ch := range subscribed {
		if _, ok := l.wanted[ch]; !ok {
			del = append(del, ch)
		}
	}
	l.mu.Unlock()
	ctx, cancel := l.b.ctx()
	defer cancel()
	sub, unsub := ps.Subscribe, ps.Unsubscribe
	if l.b.opt.Sharded {
		sub, unsub = ps.SSubscribe, ps.SUnsubscribe
	}
	if len(add) > 0 {
		// Before asking: a message can arrive as soon as Redis has it.
		at := l.b.opt.now()
		l.mu.Lock()
		for _, ch := range add {
			l.subAt[ch] = at
		}
		l.mu.Unlock()
		if err := sub(ctx, add...); err != nil {
			return err
		}
		for _, ch := range add {
			subscribed[ch] = true
		}
	}
	l.b.announce(interestSubscribe, topics...) // after subscribing: no gap
	if len(del) > 0 {
		if err := unsub(ctx, del...); err != nil {
			return err
		}
		l.mu.Lock()
		for _, ch := range del {
			delete(subscribed, ch)
			delete(l.subAt, ch)
		}
		l.mu.Unlock()
	}
	return nil
}

// read receives until the connection fails; a quiet connection is pinged
// so that a dead server is noticed.
func (l *link) read(ps *goredis.PubSub, errc chan<- error, confirmed chan<- struct{}) {
	idle := 0
	for {
		m, err := ps.ReceiveTimeout(context.Background(), pingEvery)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && idle < 2 {
				idle++
				ctx, cancel := l.b.ctx()
				perr := ps.Ping(ctx)
				cancel()
				if perr == nil {
					continue
				}
			}
			errc <- err
			return
		}
		idle = 0
		l.heard.Store(l.b.opt.now().UnixNano())
		switch m := m.(type) {
		case *goredis.Message:
			l.b.receive(m.Payload, l.floor(m.Channel))
		case *goredis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				select {
				case confirmed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// receive verifies and dispatches one envelope received live.
func (b *Backplane) receive(payload string, floor time.Time) {
	e, v := b.open.openOn([]byte(payload), floor)
	b.dispatch(e, v)
}

// floor is when this connection asked to subscribe to channel, or zero
// (no floor) for one it has just unsubscribed from: Redis delivers
// nothing more there, but what it had sent is still arriving, and is
// neither a replay nor worth a refusal.
func (l *link) floor(channel string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subAt[channel]
}

// dispatch hands an opened envelope to the sink, or counts its refusal.
func (b *Backplane) dispatch(e envelope, v verdict) {
	switch v {
	case verdictOK:
	case verdictEcho, verdictSeen, verdictEarlier:
		return
	default:
		b.refused(v)
		return
	}
	b.st.received.Add(1)
	var err error
	switch e.kind {
	case kindPublication:
		var p publication
		if p, err = decodePublication(e.payload); err == nil {
			b.sink.deliver(p)
		}
	case kindControl:
		var op controlOp
		if op, err = decodeControl(e.payload); err == nil {
			b.sink.control(op)
		}
	case kindInterest:
		var in interest
		if in, err = decodeInterest(e.payload); err == nil {
			if b.remote.apply(e.node, in, b.opt.now(), 3*b.opt.InterestRefresh) {
				b.needFull.Store(true)
				b.wakeWriter()
			}
		}
	}
	if err != nil { // signed by a key holder, yet malformed: a bug or a version skew
		b.open.counts[refusedMalformed].Add(1)
		b.refused(refusedMalformed)
	}
}

func (b *Backplane) refused(v verdict) {
	if n := b.node; n != nil {
		n.Count(wssafe.BackplaneRefused, reasonNames[v]) // counts and logs, rate-limited
		return
	}
	if b.every(&b.st.lastRefuseLog) {
		b.log.LogAttrs(context.Background(), slog.LevelWarn, "wssafe/redis: envelope refused: not from a node of this cluster, or replayed",
			slog.String("event", EventRefused), slog.String("reason", reasonNames[v]))
	}
}
