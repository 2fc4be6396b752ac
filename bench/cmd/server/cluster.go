package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/wssafe/wssafe/bench/peers"
	"github.com/wssafe/wssafe/redis"
)

// ClusterKeyEnv names the environment variable that carries the cluster
// key (hex, at least 32 bytes) to the nodes of a -redis run: the load tool
// draws one at random for each run.
const ClusterKeyEnv = "WSSAFE_BENCH_CLUSTER_KEY"

// clusterNode is one node of a topic fan-out (-topic): every connection
// joins peers.Topic; with redisURL the node joins the others through a
// Redis backplane.
type clusterNode struct {
	f  *peers.TopicFanout
	bp *redis.Backplane // nil without -redis
}

func newClusterNode(redisURL, node, prefix string) (*clusterNode, error) {
	n := &clusterNode{}
	if redisURL != "" {
		secret, err := hex.DecodeString(os.Getenv(ClusterKeyEnv))
		if err != nil || len(secret) < 32 {
			return nil, errors.New("-redis: set " + ClusterKeyEnv + " to a hex cluster key of at least 32 bytes, the same for every node")
		}
		n.bp, err = redis.New(redis.Options{
			URL:    redisURL,
			Keys:   []redis.Key{{ID: "bench", Secret: secret}},
			NodeID: node,
			Prefix: prefix,
			Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			return nil, err
		}
	}
	var err error
	if n.bp != nil {
		n.f, err = peers.WssafeTopicFanout(n.bp, peers.Topic)
	} else {
		n.f, err = peers.WssafeTopicFanout(nil, peers.Topic)
	}
	return n, err
}

// routes adds the node's debug routes to mux: /broadcast (see
// broadcastControl), /probe and /backplane.
//
// GET /probe publishes one 16-byte message to the topic whose sequence
// number is ^0: the load tool repeats it until every subscriber, on every
// node, has seen one, which tells it that the nodes' interest in the topic
// has reached this one. GET /backplane reports the backplane's counters
// as JSON (an empty object without one).
func (n *clusterNode) routes(mux *http.ServeMux) {
	mux.Handle("/broadcast", broadcastControl(n.f))
	mux.HandleFunc("/probe", func(w http.ResponseWriter, _ *http.Request) {
		p := binary.BigEndian.AppendUint64(nil, math.MaxUint64)
		p = binary.BigEndian.AppendUint64(p, uint64(time.Now().UnixNano()))
		n.f.Broadcast(p)
	})
	mux.HandleFunc("/backplane", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		out := map[string]any{}
		if n.bp != nil {
			st := n.bp.Stats()
			out = map[string]any{"published": st.Published, "dropped": st.Dropped, "received": st.Received,
				"remote_nodes": st.RemoteNodes, "down": st.Down, "publish_errors": n.f.Dropped()}
		}
		json.NewEncoder(w).Encode(out)
	})
}

// stop leaves the cluster: the backplane's presence and interest go at once.
func (n *clusterNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n.f.Shutdown(ctx)
}
