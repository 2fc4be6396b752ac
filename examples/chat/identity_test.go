package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logBuffer collects log output written from the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records returns the JSON log records with the given event.
func (l *logBuffer) records(t *testing.T, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec["event"] == event {
			out = append(out, rec)
		}
	}
	return out
}

// dial opens a socket with token and returns the handshake's outcome.
func dial(t *testing.T, base, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws", &websocket.DialOptions{
		Subprotocols: []string{"chat.v1", "bearer." + token},
	})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

func TestSignInWithSomeoneElsesEmailIsAnotherUser(t *testing.T) {
	var logs logBuffer
	a, base := chatServerWith(t, func(a *app) { a.log = slog.New(slog.NewJSONHandler(&logs, nil)) })
	victim := login(t, base, "Victim", "victim@example.com")
	mallory := login(t, base, "Mallory", "victim@EXAMPLE.com")
	again := login(t, base, "Victim", "victim@example.com")
	bob := login(t, base, "Bob", "bob@example.org")
	subjects := map[string]bool{victim.Subject: true, mallory.Subject: true, again.Subject: true, bob.Subject: true}
	assert.Len(t, subjects, 4, "every sign-in is a new subject, whatever the email")
	for s := range subjects {
		assert.Regexp(t, `^u-[0-9a-f]{24}$`, s)
	}
	assert.Equal(t, 15*60, victim.ExpiresIn)

	// The keyed fingerprint of the canonical email links the sign-ins of
	// one address in the log, without the address.
	recs := logs.records(t, "signed_in")
	require.Len(t, recs, 4)
	for i, tr := range []tokenReply{victim, mallory, again, bob} {
		assert.Equal(t, tr.Subject, recs[i]["subject"])
	}
	assert.Equal(t, recs[0]["email_fp"], recs[1]["email_fp"], "case does not matter")
	assert.Equal(t, recs[0]["email_fp"], recs[2]["email_fp"])
	assert.NotEqual(t, recs[0]["email_fp"], recs[3]["email_fp"])
	assert.NotContains(t, strings.ToLower(logs.String()), "example.com")

	cv := connect(t, base, victim.Token)
	next(t, cv, "presence")
	// Mallory opens the per-subject cap of five sockets. Were her subject
	// the victim's, the fifth would be refused: the victim holds one.
	var cm []*websocket.Conn
	for range 5 {
		cm = append(cm, connect(t, base, mallory.Token))
	}
	_, resp, err := dial(t, base, mallory.Token)
	require.Error(t, err)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the cap is Mallory's own")
	cv2, _, err := dial(t, base, victim.Token)
	require.NoError(t, err, "the victim is not locked out")
	next(t, cv2, "presence") // its OnOpen has run: it is in the Hub
	require.Len(t, a.ep.Hub().BySubject(victim.Subject), 2)
	for _, s := range a.ep.Hub().BySubject(victim.Subject) {
		assert.Equal(t, "Victim", name(s), "what is addressed to the victim reaches the victim's sockets only")
	}

	// Mallory renames herself to the victim's name: it is her subject that
	// is renamed, and the victim's sockets keep theirs.
	send(t, cm[0], `{"type":"rename","name":"Victim"}`)
	r := next(t, cv, "renamed")
	assert.Equal(t, mallory.Subject, r["from"])
	assert.Equal(t, "Mallory", r["old"])
	p := next(t, cv, "presence")
	online := map[string]string{}
	for _, m := range p["online"].([]any) {
		m := m.(map[string]any)
		online[m["subject"].(string)] = m["name"].(string)
	}
	assert.Equal(t, map[string]string{victim.Subject: "Victim", mallory.Subject: "Victim"}, online,
		"two users of one name, told apart by their subjects")

	// The victim's words arrive under the victim's subject, at Mallory too.
	send(t, cv2, `{"type":"say","text":"it is me"}`)
	said := next(t, cm[0], "said")
	assert.Equal(t, victim.Subject, said["from"])
	assert.Equal(t, "it is me", said["text"])
	// Mallory's own refresh token cannot take over the victim's session:
	// it is the refresh of another subject, closed 3003.
	send(t, cv, `{"type":"refresh","token":"`+mallory.Token+`"}`)
	assert.Equal(t, websocket.StatusCode(3003), closeCode(t, cv))
}

// closeCode reads past any queued messages to the close and returns its code.
func closeCode(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// The in-band refresh is recognised only by its exact member names; any
// other spelling is an ordinary message, answered by the router.
func TestOnlyTheExactRefreshFormRefreshes(t *testing.T) {
	_, base := chatServer(t)
	ann := login(t, base, "Ann", "ann@example.com")
	bob := login(t, base, "Bob", "bob@example.org")
	c := connect(t, base, ann.Token)
	next(t, c, "presence")
	resp, fresh := post(t, base+"/api/refresh", ann.Token, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, msg := range []string{
		`{"TYPE":"refresh","Token":"` + fresh["token"].(string) + `"}`,
		`{"Type":"refresh","token":"` + fresh["token"].(string) + `"}`,
		// Another subject's token would close 3003 as a refresh.
		`{"TYPE":"refresh","Token":"` + bob.Token + `"}`,
	} {
		send(t, c, msg)
		m := next(t, c, "error", "refreshed")
		assert.Equal(t, "error", m["type"], "%s is not a refresh", msg)
	}
	send(t, c, `{"type":"say","text":"still open"}`)
	assert.Equal(t, "still open", next(t, c, "said")["text"])

	send(t, c, `{"type":"refresh","token":"`+fresh["token"].(string)+`"}`)
	assert.NotNil(t, next(t, c, "refreshed")["exp"], "the exact form refreshes")
}
