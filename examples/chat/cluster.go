package main

// The chat as a cluster: several processes joined through Redis (the
// wssafe/redis backplane) are one chat. Every session joins the room's
// topic at OnOpen, and what the chat says goes to that topic, so it
// reaches every node. The online list is the union of the nodes'
// rosters: each node publishes its own (subject and name of its
// sessions) to the room on every change and every rosterEvery, marked
// with its node ID and a lifetime; the page merges them and drops a
// node's roster that has not been renewed within that lifetime, so a node
// that dies leaves the list within seconds, and one that shuts down
// empties its roster as its sessions close. A session's name is its
// node's: a rename reaches the user's tabs on the node where it is made.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/wssafe/wssafe"
	"github.com/wssafe/wssafe/redis"
)

const (
	// redisEnv may hold the -redis URL instead of the flag: a URL with a
	// password is better kept out of ps.
	redisEnv = "WSSAFE_REDIS_URL"
	// clusterKeyEnv holds the cluster key in hex, the same on every node:
	// it signs every message between nodes. Comma-separated keys rotate
	// it: the first signs, all verify.
	clusterKeyEnv = "WSSAFE_CLUSTER_KEY"
)

// roomTopic is the topic of the chat's one room: every session joins it.
const roomTopic = "chat:room"

// rosterEvery is how often a node of a cluster publishes its roster;
// rosterLifetime how long the page keeps a roster that is not renewed,
// enough to outlast one lost publication.
const (
	rosterEvery    = 2 * time.Second
	rosterLifetime = 3 * rosterEvery
)

var validNode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// parseCluster completes the cluster settings from the environment: with
// a Redis URL it needs the cluster key and a shared token secret, and
// picks a random node ID when none is given.
func (c *config) parseCluster(getenv func(string) string) error {
	if c.redisURL == "" {
		c.redisURL = getenv(redisEnv)
	}
	if c.redisURL == "" {
		if c.node != "" {
			return errors.New("-node needs -redis: a single node has no name")
		}
		return nil
	}
	if _, err := url.Parse(c.redisURL); err != nil {
		return errors.New("-redis: not a URL; write redis://host:6379/0 or rediss://user:password@host:6380/0")
	}
	if c.node == "" {
		b := make([]byte, 6)
		rand.Read(b)
		c.node = "node-" + hex.EncodeToString(b)
	}
	if !validNode.MatchString(c.node) {
		return errors.New("-node: 1 to 64 letters, digits, '_', '-' or '.'")
	}
	keys, err := clusterKeys(getenv(clusterKeyEnv))
	if err != nil {
		return err
	}
	c.clusterKeys = keys
	if getenv(secretEnv) == "" {
		return errors.New("-redis needs " + secretEnv + ", the same on every node, so that every node accepts the tokens any node issues")
	}
	return nil
}

// clusterKeys decodes the comma-separated hex keys of v. A key's ID, which
// travels with every message so that keys can rotate, is a short digest
// of the key: every node derives the same, and it tells nothing of it.
// The errors never quote v.
func clusterKeys(v string) ([]redis.Key, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("-redis needs " + clusterKeyEnv + ": 32 random bytes in hex, the same on every node (openssl rand -hex 32)")
	}
	var keys []redis.Key
	for i, h := range strings.Split(v, ",") {
		secret, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(secret) < wssafe.MinSignerKeyLen {
			return nil, fmt.Errorf("%s: key %d is not %d or more bytes in hex (openssl rand -hex 32)", clusterKeyEnv, i+1, wssafe.MinSignerKeyLen)
		}
		id := sha256.Sum256(append([]byte("wssafe-chat cluster key id\x00"), secret...))
		keys = append(keys, redis.Key{ID: "k" + hex.EncodeToString(id[:4]), Secret: secret})
	}
	return keys, nil
}

// backplane returns the Redis backplane the settings ask for, or nil for
// a single node. It connects when the endpoint starts it.
func (a *app) backplane() (wssafe.Backplane, error) {
	c := a.cfg
	if c.redisURL == "" {
		return nil, nil
	}
	bp, err := redis.New(redis.Options{URL: c.redisURL, Keys: c.clusterKeys, NodeID: c.node, Logger: a.log})
	if err != nil {
		return nil, err
	}
	host := ""
	if u, err := url.Parse(c.redisURL); err == nil {
		host = u.Host // never the URL: it may carry a password
	}
	a.log.Info("chat: joining the cluster", "event", "cluster", "node", c.node, "redis", host)
	return bp, nil
}

// roster is a node's part of the online list.
type roster struct {
	Type   string   `json:"type"` // "presence"
	Node   string   `json:"node,omitempty"`
	Online []member `json:"online"`
	// ExpiresIn is the roster's lifetime in seconds, after which the page
	// drops it unless renewed; zero (a single node) means until replaced.
	ExpiresIn int `json:"expires_in,omitempty"`
}

// announce publishes this node's roster every rosterEvery until ctx ends
// or stop is called, when the chat is a cluster; stop waits for it.
func (a *app) announce(ctx context.Context) (stop func()) {
	if a.cfg.redisURL == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(rosterEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.presence()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// clusterSessions is the number of sessions on every node, or -1 when the
// cluster cannot be asked.
func (a *app) clusterSessions(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	online, err := a.ep.Hub().Online(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, c := range online {
		n += c
	}
	return n
}
