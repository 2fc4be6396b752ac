package wssafe_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wssafe/wssafe"
)

// rooms is a protocol in which the server decides what a session joins:
// "join T", "leave T" and "topics" are the application's commands (a real
// one would check that the subject may read T); anything else is echoed.
var rooms = wssafe.HandlerFunc(func(ctx context.Context, s *wssafe.Session, m wssafe.Message) error {
	cmd, arg, _ := strings.Cut(m.Text(), " ")
	var err error
	switch cmd {
	case "join":
		err = s.Join(arg)
	case "leave":
		err = s.Leave(arg)
	case "topics":
		return s.WriteText(ctx, "topics:"+strings.Join(s.Topics(), ","))
	default:
		return echo(ctx, s, m)
	}
	switch {
	case errors.Is(err, wssafe.ErrInvalidTopic):
		return s.WriteText(ctx, "invalid")
	case errors.Is(err, wssafe.ErrTooManyTopics):
		return s.WriteText(ctx, "too many")
	case err != nil:
		return err
	}
	return s.WriteText(ctx, "ok")
})

// command sends a rooms command and returns the answer.
func command(t *testing.T, c *websocket.Conn, cmd string) string {
	t.Helper()
	return roundTrip(t, c, cmd)
}

func publishText(t *testing.T, h *wssafe.Hub, topic, msg string) int {
	t.Helper()
	n, err := h.Publish(wssafe.Publication{Topic: topic, Type: wssafe.MessageText, Data: []byte(msg)})
	require.NoError(t, err)
	return n
}

// A topic reaches the sessions joined to it and no other; leaving, and
// ending, stop it; a session's topics are capped.
func TestTopicJoinPublishLeave(t *testing.T) {
	t.Parallel()
	opened := make(chan *wssafe.Session, 3)
	ep, url := server(t, rooms, &wssafe.Options{MaxTopicsPerSession: 2, OnOpen: func(s *wssafe.Session) error {
		opened <- s
		return nil
	}})
	hub := ep.Hub()
	a := dial(t, url, nil)
	first := <-opened // a's: sessions open on goroutines of their own, so wait before the next dial
	b, c := dial(t, url, nil), dial(t, url, nil)
	<-opened
	<-opened
	assert.Equal(t, "ok", command(t, a, "join room:1"))
	assert.Equal(t, "ok", command(t, b, "join room:1"))
	assert.Equal(t, "ok", command(t, b, "join room:2"))
	assert.Equal(t, "ok", command(t, b, "join room:2"), "joining again does nothing")

	assert.Equal(t, 2, publishText(t, hub, "room:1", "one"))
	assert.Equal(t, "one", readText(t, a))
	assert.Equal(t, "one", readText(t, b))
	assert.Equal(t, 1, publishText(t, hub, "room:2", "two"))
	assert.Equal(t, "two", readText(t, b))
	assert.Zero(t, publishText(t, hub, "room:3", "nobody"))
	echoOnce(t, c, "c joined nothing and got nothing")
	echoOnce(t, a, "a got only room:1")

	// The cap: two topics; a third is refused, the session goes on.
	assert.Equal(t, "too many", command(t, b, "join room:3"))
	assert.Equal(t, "topics:room:1,room:2", command(t, b, "topics"))
	assert.Equal(t, "ok", command(t, b, "leave room:1"))
	assert.Equal(t, "ok", command(t, b, "leave room:1"), "leaving again does nothing")
	assert.Equal(t, "ok", command(t, b, "join room:3"))
	assert.Equal(t, "topics:room:2,room:3", command(t, b, "topics"))
	assert.Equal(t, 1, publishText(t, hub, "room:1", "a alone"))
	assert.Equal(t, "a alone", readText(t, a))
	echoOnce(t, b, "b left room:1")

	// Names are checked by Join and Leave as by Publish.
	assert.Equal(t, "invalid", command(t, a, "join room 1"))
	assert.Equal(t, "invalid", command(t, a, "leave "+strings.Repeat("x", 129)))

	// An ended session has left its topics, and cannot join again.
	require.NoError(t, a.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return len(hub.Sessions()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Zero(t, publishText(t, hub, "room:1", "gone"))
	assert.ErrorIs(t, first.Join("room:1"), wssafe.ErrSessionClosed)
	assert.Nil(t, first.Topics())
}

// Topic names are 1 to 128 bytes of A-Z a-z 0-9 . _ : / -.
func TestTopicNames(t *testing.T) {
	t.Parallel()
	ep, err := wssafe.New(echo, nil)
	require.NoError(t, err)
	hub := ep.Hub()
	for _, name := range []string{"a", "room:42", "user/alice", "A-Z_a.z:0/9", strings.Repeat("x", 128)} {
		_, err := hub.Publish(wssafe.Publication{Topic: name, Type: wssafe.MessageText})
		assert.NoError(t, err, "%q", name)
	}
	for _, name := range []string{strings.Repeat("x", 129), "room 1", "room\x00", "é", "room*", "a,b", "#", "room\n"} {
		_, err := hub.Publish(wssafe.Publication{Topic: name, Type: wssafe.MessageText})
		assert.ErrorIs(t, err, wssafe.ErrInvalidTopic, "%q", name)
		assert.NotContains(t, err.Error(), name, "the error does not quote the name")
	}
	// "" is no topic: everyone.
	_, err = hub.Publish(wssafe.Publication{Type: wssafe.MessageText})
	assert.NoError(t, err)
	_, err = hub.Publish(wssafe.Publication{Topic: "room", Subject: "alice", Type: wssafe.MessageText})
	assert.Error(t, err, "a topic or a subject, not both")
	_, err = hub.Publish(wssafe.Publication{Topic: "room"})
	assert.Error(t, err, "no message type")

	_, err = wssafe.New(echo, &wssafe.Options{MaxTopicsPerSession: -1})
	assert.ErrorContains(t, err, "MaxTopicsPerSession")
}

// Without a Backplane, Publish without a topic reaches every session, or
// one subject's.
func TestPublishLocal(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ep, url := f.server(t, echo, headerAuth(f))
	alice, bob := dialWith(t, url, f.as("alice")), dialWith(t, url, f.as("bob"))
	require.Eventually(t, func() bool { return len(ep.Hub().Sessions()) == 2 }, 5*time.Second, 5*time.Millisecond)
	n, err := ep.Hub().Publish(wssafe.Publication{Type: wssafe.MessageText, Data: []byte("all")})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, "all", readText(t, alice))
	assert.Equal(t, "all", readText(t, bob))
	n, err = ep.Hub().Publish(wssafe.Publication{Subject: "bob", Type: wssafe.MessageText, Data: []byte("bob")})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "bob", readText(t, bob))
	echoOnce(t, alice, "alice got only the first")
	online, err := ep.Hub().Online(context.Background())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"alice": 1, "bob": 1}, online)
	assert.Nil(t, ep.Stats().Backplane, "no Backplane, no backplane stats")
}
