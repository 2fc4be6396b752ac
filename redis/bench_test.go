package redis

import (
	"log/slog"
	"testing"
	"time"
)

func benchBackplane(b *testing.B) *Backplane {
	bp, err := New(Options{URL: "redis://127.0.0.1:1/0", Keys: []Key{clusterKey}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bp.client.Close() })
	return bp
}

// BenchmarkPublishNoRemoteInterest is the backplane's cost for a topic no
// other node has a subscriber for: one table lookup.
func BenchmarkPublishNoRemoteInterest(b *testing.B) {
	bp := benchBackplane(b)
	bp.remote.apply("other", interest{Op: interestFullReset, Topics: []string{"room:1", "room:2"}}, time.Now(), time.Minute)
	p := publication{Topic: "room:3", Type: 1, Data: make([]byte, 128)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = bp.publish(p)
		}
	})
}

// BenchmarkPublishRemoteInterest is the caller's cost when another node
// has the topic: encode, seal (HMAC-SHA256) and queue.
func BenchmarkPublishRemoteInterest(b *testing.B) {
	bp := benchBackplane(b)
	bp.remote.apply("other", interest{Op: interestFullReset, Topics: []string{"room:1"}}, time.Now(), time.Minute)
	p := publication{Topic: "room:1", Type: 1, Data: make([]byte, 128)}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-bp.out:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	b.ReportAllocs()
	for b.Loop() {
		_ = bp.publish(p)
	}
}

// BenchmarkOpen is the receiver's cost per envelope: decode, MAC, window.
func BenchmarkOpen(b *testing.B) {
	kr, _ := newKeyring([]Key{clusterKey})
	s := newSealer(kr, "a", time.Now)
	o := newOpener(kr, "b", time.Minute, 5*time.Second, 0, time.Now)
	envs := make([][]byte, 4096)
	for i := range envs {
		envs[i] = s.seal(kindPublication, make([]byte, 128))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(envs) { // fresh sequence numbers, outside the timed loop's cost
			b.StopTimer()
			for j := range envs {
				envs[j] = s.seal(kindPublication, make([]byte, 128))
			}
			i = 0
			b.StartTimer()
		}
		_, _ = o.open(envs[i])
		i++
	}
}
