package wssafe

// Topics: their names, a session's Join and Leave under the per-session
// cap, and the Hub's table of the sessions joined to each topic.

import (
	"errors"
	"fmt"
	"slices"
)

// DefaultMaxTopicsPerSession is the number of topics a session may be
// joined to when Options.MaxTopicsPerSession is zero.
const DefaultMaxTopicsPerSession = 16

// MaxTopicLength is the longest topic name, in bytes.
const MaxTopicLength = 128

var (
	// ErrInvalidTopic is returned by [Session.Join], [Session.Leave] and
	// [Hub.Publish] for a topic name that is empty, longer than
	// MaxTopicLength bytes, or holds a byte other than the ASCII letters,
	// digits and . _ : / -.
	ErrInvalidTopic = errors.New("wssafe: invalid topic name")
	// ErrTooManyTopics is returned by [Session.Join] when the session is
	// already joined to Options.MaxTopicsPerSession topics. The session
	// goes on; returned from a callback it is an unexpected error and
	// closes 1011, as the application decides who joins what.
	ErrTooManyTopics = errors.New("wssafe: too many topics for one session")
)

// checkTopic reports whether name is a valid topic name. The error never
// quotes the name, which an application may build from a client's input.
func checkTopic(name string) error {
	if name == "" || len(name) > MaxTopicLength {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidTopic, len(name), MaxTopicLength)
	}
	for i := 0; i < len(name); i++ {
		if !topicByte(name[i]) {
			return fmt.Errorf("%w: byte %d is not one of A-Z a-z 0-9 . _ : / -", ErrInvalidTopic, i)
		}
	}
	return nil
}

func topicByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// resolveTopics applies MaxTopicsPerSession's default.
func (c *config) resolveTopics() error {
	if c.MaxTopicsPerSession < 0 {
		return fmt.Errorf("wssafe: MaxTopicsPerSession must not be negative; leave it zero for %d, or write the most topics one session may join", DefaultMaxTopicsPerSession)
	}
	setDefault(&c.MaxTopicsPerSession, DefaultMaxTopicsPerSession)
	return nil
}

// Join subscribes the session to topic: from now on [Hub.Publish] to
// topic, from this node or any other of the cluster, reaches it through
// its bounded send queue. Joining is the server's decision, never the
// client's: wssafe has no client-driven subscribe, so call Join only for
// topics the session's subject may read (its own feed, a room it is a
// member of), and derive the name from what the server knows, not from
// what the client claims. A topic a session was never joined to never
// reaches it, on any node.
//
// Topic names are 1 to 128 bytes of A-Z a-z 0-9 . _ : / - ("room:42",
// "user/alice"); any other name is refused with [ErrInvalidTopic]. Joining
// a topic the session is already joined to does nothing. A session joined
// to Options.MaxTopicsPerSession topics (16 by default) gets
// [ErrTooManyTopics]; one that has ended, or is not yet open (still
// authenticating), gets [ErrSessionClosed]. A session leaves all its
// topics when it ends. Join is safe for concurrent use.
func (s *Session) Join(topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	return s.ep.hub.join(s, topic)
}

// Leave unsubscribes the session from topic. Leaving a topic the session
// is not joined to does nothing; an invalid name gets [ErrInvalidTopic].
// Leave is safe for concurrent use.
func (s *Session) Leave(topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	s.ep.hub.leave(s, topic)
	return nil
}

// Topics returns the topics the session is joined to, in the order it
// joined them; nil once it has ended.
func (s *Session) Topics() []string {
	h := s.ep.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.joined[s])
}

// subscribing takes the lock that keeps the Backplane's Subscribe and
// Unsubscribe calls in the order of the topic table's changes, when there
// is a Backplane, and returns its unlock. It is taken before h.mu.
func (h *Hub) subscribing() func() {
	if h.e.cfg.Backplane == nil {
		return func() {}
	}
	h.subMu.Lock()
	return h.subMu.Unlock
}

func (h *Hub) join(s *Session, topic string) error {
	defer h.subscribing()()
	h.mu.Lock()
	if !s.reg.open() {
		h.mu.Unlock()
		return ErrSessionClosed
	}
	ts := h.joined[s]
	if slices.Contains(ts, topic) {
		h.mu.Unlock()
		return nil
	}
	if len(ts) >= h.e.cfg.MaxTopicsPerSession {
		h.mu.Unlock()
		return ErrTooManyTopics
	}
	h.joined[s] = append(ts, topic)
	members := h.topics[topic]
	first := members == nil
	if first {
		members = make(map[*Session]struct{})
		h.topics[topic] = members
	}
	members[s] = struct{}{}
	h.mu.Unlock()
	if bp := h.e.cfg.Backplane; first && bp != nil {
		bp.Subscribe(topic)
	}
	return nil
}

func (h *Hub) leave(s *Session, topic string) {
	defer h.subscribing()()
	h.mu.Lock()
	ts := h.joined[s]
	i := slices.Index(ts, topic)
	if i < 0 {
		h.mu.Unlock()
		return
	}
	if ts = slices.Delete(ts, i, i+1); len(ts) == 0 {
		delete(h.joined, s)
	} else {
		h.joined[s] = ts
	}
	last := h.dropMember(topic, s)
	h.mu.Unlock()
	if last {
		h.unsubscribe([]string{topic})
	}
}

// dropMember takes s out of topic's members and reports whether it was
// the last; h.mu is held.
func (h *Hub) dropMember(topic string, s *Session) bool {
	members := h.topics[topic]
	delete(members, s)
	if len(members) > 0 {
		return false
	}
	delete(h.topics, topic)
	return true
}

// dropTopics takes an ending session out of every topic and returns the
// topics it was the last member of; h.mu is held.
func (h *Hub) dropTopics(s *Session) []string {
	ts := h.joined[s]
	if ts == nil {
		return nil
	}
	delete(h.joined, s)
	var last []string
	for _, t := range ts {
		if h.dropMember(t, s) {
			last = append(last, t)
		}
	}
	return last
}

// unsubscribe tells the Backplane, if any, that topics have no member
// left; h.subMu is held (see subscribing).
func (h *Hub) unsubscribe(topics []string) {
	if bp := h.e.cfg.Backplane; bp != nil {
		for _, t := range topics {
			bp.Unsubscribe(t)
		}
	}
}

// topicSessions returns the sessions joined to topic on this node.
func (h *Hub) topicSessions(topic string) []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	members := h.topics[topic]
	if len(members) == 0 {
		return nil
	}
	out := make([]*Session, 0, len(members))
	for s := range members {
		out = append(out, s)
	}
	return out
}
