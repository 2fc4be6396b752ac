package redis

// The interest table: which topics the other nodes have subscribers for,
// so that a publication to a topic nobody else has costs one map lookup.

import (
	"sync"
	"time"
)

// An interestTable is built from the other nodes' interest messages. It
// is safe for concurrent use; has is the publish path's only cost.
type interestTable struct {
	live   sync.Map // topic -> struct{}: the topics of count, read without a lock
	mu     sync.RWMutex
	count  map[string]int // topic -> how many other nodes have it
	byNode map[string]*nodeInterest
	pruned time.Time
}

type nodeInterest struct {
	topics map[string]struct{}
	seen   time.Time
}

func (t *interestTable) init() {
	t.count = map[string]int{}
	t.byNode = map[string]*nodeInterest{}
}

// has reports whether another node has a subscriber for topic.
func (t *interestTable) has(topic string) bool {
	_, ok := t.live.Load(topic)
	return ok
}

func (t *interestTable) nodes() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byNode)
}

// apply records node's message and reports whether node asked every
// other node for its full set. Nodes not heard from within expire are
// forgotten (a node sends its full set every InterestRefresh).
func (t *interestTable) apply(node string, in interest, now time.Time, expire time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.pruned) > expire/4 {
		t.pruned = now
		for id, ni := range t.byNode {
			if now.Sub(ni.seen) > expire {
				t.forget(id, ni)
			}
		}
	}
	ni := t.byNode[node]
	if ni == nil {
		ni = &nodeInterest{topics: map[string]struct{}{}}
		t.byNode[node] = ni
	}
	ni.seen = now
	switch in.Op {
	case interestSync, interestFullReset:
		for topic := range ni.topics {
			t.remove(ni, topic)
		}
		fallthrough
	case interestFull, interestSubscribe:
		for _, topic := range in.Topics {
			if _, ok := ni.topics[topic]; !ok {
				ni.topics[topic] = struct{}{}
				if t.count[topic]++; t.count[topic] == 1 {
					t.live.Store(topic, struct{}{})
				}
			}
		}
	case interestUnsubscribe:
		for _, topic := range in.Topics {
			t.remove(ni, topic)
		}
	case interestLeave:
		t.forget(node, ni)
	}
	return in.Op == interestSync
}

func (t *interestTable) remove(ni *nodeInterest, topic string) {
	if _, ok := ni.topics[topic]; !ok {
		return
	}
	delete(ni.topics, topic)
	if t.count[topic]--; t.count[topic] <= 0 {
		delete(t.count, topic)
		t.live.Delete(topic)
	}
}

func (t *interestTable) forget(node string, ni *nodeInterest) {
	for topic := range ni.topics {
		t.remove(ni, topic)
	}
	delete(t.byNode, node)
}
