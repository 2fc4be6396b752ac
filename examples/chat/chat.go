package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/wssafe/wssafe"
)

// nameKey stores a session's display name in its value store.
type nameKey struct{}

// seqKey stores a session's message counter, for message IDs.
type seqKey struct{}

// Client messages, decoded strictly by the router: a member the type does
// not declare is refused.
type (
	say struct {
		Text string `json:"text"`
	}
	typing struct{}
	rename struct {
		Name string `json:"name"`
	}
)

// Validate bounds a chat line: 1 to 500 characters, no control characters
// but newlines.
func (m say) Validate() error {
	if err := wssafe.Length("text", strings.TrimSpace(m.Text), 1, 500); err != nil {
		return err
	}
	return wssafe.Chars("text", m.Text, func(r rune) bool { return r == '\n' || unicode.IsPrint(r) })
}

// Validate applies the sign-in rules to a new name.
func (m rename) Validate() error { return validName("name", m.Name) }

// member is one user in the online list.
type member struct {
	Subject string `json:"subject"`
	Name    string `json:"name"`
}

// router maps the client's message types to typed handlers. Unknown types
// and invalid fields get wssafe's error reply; the session stays open
// within its invalid-message budget.
func (a *app) router() wssafe.Handler {
	r := wssafe.NewRouter()
	wssafe.Route(r, "say", a.say)
	wssafe.Route(r, "typing", a.typing)
	wssafe.Route(r, "rename", a.rename)
	return r
}

func (a *app) say(ctx context.Context, s *wssafe.Session, m say) error {
	seq := s.Value(seqKey{}).(*atomic.Uint64).Add(1)
	// A server-assigned ID: a digest of who said what when, short enough to show.
	d := wssafe.Digest(fmt.Sprintf("%s|%d|%s", s.ID(), seq, m.Text))
	id := hex.EncodeToString(d[:6])
	a.broadcast(map[string]any{
		"type": "said", "id": id, "from": s.Subject(), "name": name(s),
		"text": m.Text, "at": time.Now().UTC().Format(time.RFC3339),
	})
	return nil
}

func (a *app) typing(ctx context.Context, s *wssafe.Session, _ typing) error {
	// The page ignores its own user's typing: the topic reaches everyone.
	a.broadcast(map[string]any{"type": "typing", "from": s.Subject(), "name": name(s)})
	return nil
}

func (a *app) rename(ctx context.Context, s *wssafe.Session, m rename) error {
	old := name(s)
	for _, o := range a.ep.Hub().BySubject(s.Subject()) { // every tab of this user
		o.Set(nameKey{}, m.Name)
	}
	a.broadcast(map[string]any{"type": "renamed", "from": s.Subject(), "old": old, "name": m.Name})
	a.presence()
	return nil
}

// joined runs when a verified session opens: it takes the name from the
// token, joins the session to the room, and tells everyone.
func (a *app) joined(s *wssafe.Session) error {
	var n string
	if err := s.Claims().Get("name", &n); err != nil || validName("name", n) != nil {
		return wssafe.ErrInvalidToken
	}
	if err := s.Join(roomTopic); err != nil {
		return err
	}
	for _, o := range a.ep.Hub().BySubject(s.Subject()) {
		if on := name(o); o != s && on != "" {
			n = on // a second tab keeps the current name
		}
	}
	s.Set(nameKey{}, n)
	s.Set(seqKey{}, new(atomic.Uint64))
	a.broadcast(map[string]any{"type": "joined", "from": s.Subject(), "name": n})
	a.presence()
	return nil
}

// left tells everyone a session ended. Its own Hub entry is already gone.
func (a *app) left(s *wssafe.Session, err error) {
	if n := name(s); n != "" {
		a.broadcast(map[string]any{"type": "left", "from": s.Subject(), "name": n})
		a.presence()
	}
}

// presence tells everyone who is online on this node, one entry per
// user: the page merges the rosters of every node (see cluster.go).
func (a *app) presence() {
	seen := map[string]bool{}
	list := []member{}
	for _, s := range a.ep.Hub().Sessions() {
		if n := name(s); n != "" && !seen[s.Subject()] {
			seen[s.Subject()] = true
			list = append(list, member{Subject: s.Subject(), Name: n})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	r := roster{Type: "presence", Online: list}
	if a.cfg.redisURL != "" {
		r.Node, r.ExpiresIn = a.cfg.node, int(rosterLifetime/time.Second)
	}
	a.broadcast(r)
}

// broadcast sends v to every session in the room, on every node, through
// their bounded send queues: a slow reader is cut, never waited for. This
// node's sessions get it at once; the other nodes' at most once (a
// publication the backplane cannot send is dropped and counted).
func (a *app) broadcast(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.Error("chat: encoding a broadcast failed", "error", err)
		return
	}
	_, err = a.ep.Hub().Publish(wssafe.Publication{Topic: roomTopic, Type: wssafe.MessageText, Data: b})
	if err != nil && !errors.Is(err, wssafe.ErrDropped) {
		a.log.Error("chat: publishing failed", "error", err)
	}
}

func name(s *wssafe.Session) string {
	n, _ := s.Value(nameKey{}).(string)
	return n
}

// panelStats is what the page's Server panel shows, and all that the public
// listener tells about the endpoint: per-reason refusals, auth details and
// the rest of Stats stay on -stats-addr.
type panelStats struct {
	Sessions        int    `json:"sessions"`
	MessagesIn      int64  `json:"messages in"`
	MessagesOut     int64  `json:"messages out"`
	InvalidMessages uint64 `json:"invalid messages"`
	LimitsHit       uint64 `json:"limits hit"`
	AuthFailures    uint64 `json:"auth failures"`
	Refused         uint64 `json:"refused handshakes"`
	// In a cluster only: this node's ID, and the sessions on every node
	// (absent while Redis cannot be asked).
	Node            string `json:"node,omitempty"`
	ClusterSessions *int   `json:"cluster sessions,omitempty"`
}

// stats serves the panel's summary of the endpoint's counters to a
// signed-in user: the request must carry a valid token, as the page sends
// it (Authorization: Bearer), or it gets 401.
func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	skipBody(w, r)
	if _, _, err := a.tokens.verify(r); err != nil {
		unauthorized(w)
		return
	}
	st := a.ep.Stats()
	panel := panelStats{
		Sessions:        st.Active,
		MessagesIn:      st.Traffic.MessagesIn,
		MessagesOut:     st.Traffic.MessagesOut,
		InvalidMessages: sum(st.ValidationFailures),
		LimitsHit:       sum(st.LimitHits),
		AuthFailures:    sum(st.AuthFailed),
		Refused:         sum(st.Refused),
	}
	if a.cfg.redisURL != "" {
		panel.Node = a.cfg.node
		if n := a.clusterSessions(r.Context()); n >= 0 {
			panel.ClusterSessions = &n
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, panel)
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
