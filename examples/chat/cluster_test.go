package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe/redis/redistest"
)

// testCluster is what every node of one test cluster shares: the Redis
// URL, the token secret and the cluster key (random per test).
type testCluster struct {
	url, jwtSecret, clusterKey string
	logs                       logBuffer
}

func newTestCluster(t *testing.T, srv *redistest.Server) *testCluster {
	random := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	return &testCluster{url: srv.URL(0), jwtSecret: random(), clusterKey: random()}
}

func (c *testCluster) getenv(k string) string {
	return map[string]string{secretEnv: c.jwtSecret, clusterKeyEnv: c.clusterKey}[k]
}

// chatNode runs one node of the cluster on httptest, its roster
// announced, until the test ends; it returns the app and its URL.
func (c *testCluster) chatNode(t *testing.T, name string) (*app, string) {
	t.Helper()
	cfg, err := parse([]string{"-redis", c.url, "-node", name}, c.getenv, io.Discard)
	require.NoError(t, err)
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(&c.logs, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	stop := a.announce(context.Background())
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.ep.Shutdown(ctx)
		srv.Close()
	})
	return a, srv.URL
}

// waitRoster reads c's messages until a roster from node for which ok
// holds arrives, within 10 s (a roster is renewed every rosterEvery), and
// returns it as subject -> name.
func waitRoster(t *testing.T, c *websocket.Conn, node string, ok func(online map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m := next(t, c, "presence")
		if m["node"] != node {
			continue
		}
		assert.Equal(t, float64(rosterLifetime/time.Second), m["expires_in"], "a roster outlives a lost renewal, not a dead node")
		online := map[string]string{}
		for _, u := range m["online"].([]any) {
			u := u.(map[string]any)
			online[u["subject"].(string)] = u["name"].(string)
		}
		if ok(online) {
			return online
		}
	}
	t.Fatalf("no roster from %s as expected within 10s", node)
	return nil
}

// TestClusterIsOneChat: two chat nodes on one Redis are one chat. What
// is said on one reaches the other's users, each node's users appear in
// the other's online list (by name), a user's sixth socket is refused on
// the node that holds none of the five, a slot freed on one node is free
// on the other, the panel counts the whole cluster, and a node that shuts
// down leaves the others' online lists. Neither the cluster key nor the
// Redis password reaches the log.
func TestClusterIsOneChat(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{Password: "test-only-redis-pass"})
	cl := newTestCluster(t, srv)
	_, base1 := cl.chatNode(t, "n1")
	a2, base2 := cl.chatNode(t, "n2")

	ann := login(t, base1, "Ann", "ann@example.com")
	bob := login(t, base2, "Bob", "bob@example.org")
	ca := connect(t, base1, ann.Token)
	cb := connect(t, base2, bob.Token)

	// Each sees the other, named, through the other node's roster.
	online := waitRoster(t, cb, "n1", func(o map[string]string) bool { return o[ann.Subject] != "" })
	assert.Equal(t, map[string]string{ann.Subject: "Ann"}, online, "n1's roster holds n1's users only")
	waitRoster(t, ca, "n2", func(o map[string]string) bool { return o[bob.Subject] == "Bob" })

	send(t, ca, `{"type":"say","text":"hi from n1"}`)
	said := waitType(t, cb, "said", "hi from n1")
	assert.Equal(t, ann.Subject, said["from"])
	assert.Equal(t, "Ann", said["name"])
	send(t, cb, `{"type":"say","text":"hi from n2"}`)
	assert.Equal(t, bob.Subject, waitType(t, ca, "said", "hi from n2")["from"])
	send(t, cb, `{"type":"rename","name":"Robert"}`)
	r := next(t, ca, "renamed")
	assert.Equal(t, []any{"Bob", "Robert"}, []any{r["old"], r["name"]})
	waitRoster(t, ca, "n2", func(o map[string]string) bool { return o[bob.Subject] == "Robert" })

	// Ann fills the per-subject cap of five on n1: the sixth is refused on
	// n2, which holds none of them, as on n1.
	tabs := []*websocket.Conn{ca}
	for range 4 {
		tabs = append(tabs, connect(t, base1, ann.Token))
	}
	for _, base := range []string{base2, base1} {
		_, resp, err := dial(t, base, ann.Token)
		require.Error(t, err)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the sixth tab, on %s", base)
	}
	// A tab closed on n1 frees a slot on n2 (the release reaches Redis in
	// the background: retry until it has).
	tabs[4].Close(websocket.StatusNormalClosure, "")
	var sixth *websocket.Conn
	require.Eventually(t, func() bool {
		c, resp, err := dial(t, base2, ann.Token)
		if err != nil {
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			return false
		}
		sixth = c
		return true
	}, 5*time.Second, 50*time.Millisecond, "a slot freed on n1 is free on n2")
	next(t, sixth, "presence")
	_, resp, err := dial(t, base1, ann.Token)
	require.Error(t, err)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "and it is taken again")

	// The panel: this node's sessions, its name, and the cluster's.
	resp, st := getStats(t, base2, bob.Token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "n2", st["node"])
	assert.Equal(t, float64(2), st["sessions"])
	assert.Equal(t, float64(6), st["cluster sessions"], "five of Ann's, one of Bob's")

	// n2 shuts down: its users leave n1's online list at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a2.ep.Shutdown(ctx))
	waitRoster(t, ca, "n2", func(o map[string]string) bool { return len(o) == 0 })

	logs := cl.logs.String()
	assert.Contains(t, logs, `"node":"n1"`)
	for _, secret := range []string{cl.clusterKey, cl.jwtSecret, "test-only-redis-pass"} {
		assert.NotContains(t, logs, secret, "no secret in the log")
	}
}

// TestClusterSettings: -redis needs the cluster key and the shared token
// secret; the errors say what to set and never quote a key.
func TestClusterSettings(t *testing.T) {
	key := strings.Repeat("ab", 32)
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	redisArgs := []string{"-redis", "redis://127.0.0.1:1/0"}
	for _, tc := range []struct {
		args   []string
		getenv func(string) string
		want   string
	}{
		{redisArgs, env(secretEnv, key), clusterKeyEnv},
		{redisArgs, env(secretEnv, key, clusterKeyEnv, key[:40]), "key 1 is not 32 or more bytes"},
		{redisArgs, env(secretEnv, key, clusterKeyEnv, key+",zz"+key), "key 2 is not"},
		{redisArgs, env(clusterKeyEnv, key), secretEnv},
		{[]string{"-node", "n1"}, env(), "-node needs -redis"},
		{append(redisArgs, "-node", "n 1"), env(secretEnv, key, clusterKeyEnv, key), "-node"},
	} {
		_, err := parse(tc.args, tc.getenv, io.Discard)
		require.ErrorContains(t, err, tc.want, tc.args)
		assert.NotContains(t, err.Error(), key[:16], "no key in an error")
	}

	cfg, err := parse(nil, env(redisEnv, "redis://127.0.0.1:1/0", secretEnv, key, clusterKeyEnv, key+", "+strings.Repeat("cd", 32)), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "redis://127.0.0.1:1/0", cfg.redisURL, "the URL may come from "+redisEnv)
	assert.Regexp(t, `^node-[0-9a-f]{12}$`, cfg.node, "a random node ID by default")
	require.Len(t, cfg.clusterKeys, 2, "old and new key during a rotation")
	assert.NotEqual(t, cfg.clusterKeys[0].ID, cfg.clusterKeys[1].ID)
	again, err := clusterKeys(key)
	require.NoError(t, err)
	assert.Equal(t, cfg.clusterKeys[0].ID, again[0].ID, "every node derives the same key ID")
	assert.NotContains(t, cfg.clusterKeys[0].ID, key[:8])

	cfg, err = parse(nil, env(), io.Discard)
	require.NoError(t, err)
	assert.Empty(t, cfg.redisURL, "a single node by default")
}
