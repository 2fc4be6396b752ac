package peers

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/wssafe/wssafe"
)

// Topic is the topic the load tool's subscribers join.
const Topic = "bench"

// WssafeTopicFanout is [WssafeFanout] through topics: every session
// joins topic when it opens, and Broadcast is Hub.Publish to that topic,
// which reaches the subscribers of every node of the cluster when bp is a
// backplane (nil: a single node). Broadcast returns the subscribers of
// this node that accepted the message; Dropped counts the publications
// the backplane dropped.
func WssafeTopicFanout(bp wssafe.Backplane, topic string) (*TopicFanout, error) {
	o := &wssafe.Options{
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MessageRate: wssafe.Rate{PerSecond: 1e9, Burst: 1e9},
		OnOpen:      func(s *wssafe.Session) error { return s.Join(topic) },
		Backplane:   bp,
	}
	ep, err := wssafe.New(wssafe.HandlerFunc(func(context.Context, *wssafe.Session, wssafe.Message) error { return nil }), o)
	if err != nil {
		return nil, err
	}
	return &TopicFanout{Endpoint: ep, topic: topic}, nil
}

// A TopicFanout is the [Fanout] of [WssafeTopicFanout].
type TopicFanout struct {
	*wssafe.Endpoint
	topic   string
	dropped atomic.Uint64
}

// Subscribers is the number of this node's sessions.
func (f *TopicFanout) Subscribers() int { return len(f.Hub().Sessions()) }

// Broadcast publishes p to the topic.
func (f *TopicFanout) Broadcast(p []byte) int {
	n, err := f.Hub().Publish(wssafe.Publication{Topic: f.topic, Type: wssafe.MessageBinary, Data: p})
	if err != nil {
		f.dropped.Add(1)
	}
	return n
}

// Dropped is the number of publications the backplane dropped.
func (f *TopicFanout) Dropped() uint64 { return f.dropped.Load() }
