package wssafe

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"golang.org/x/time/rate"
)

// A Hub is the registry of an Endpoint's open sessions in this process:
// count them, list them, find them by ID or subject, close them, broadcast
// to them. Broadcasts go through each session's bounded send queue (see
// [Session.Send]), so one slow reader never blocks a broadcast: it is
// closed as a slow consumer instead.
//
// A session is in the Hub from the handshake until it ends, once its
// subject, if the endpoint authenticates, is verified: a session still
// waiting for its first-message token is neither listed nor broadcast to.
// The Hub's methods act on this process; [Hub.Publish] acts on every node
// of a cluster through [Options.Backplane]. A Hub is safe for concurrent use.
type Hub struct {
	e  *Endpoint
	mu sync.Mutex

	reserved int                // connection slots held, before and after Accept (MaxConns)
	perIP    map[netip.Addr]int // slots per source, kept only when MaxConnsPerIP is set
	live     map[*Session]struct{}
	byID     map[string]*Session // the open sessions: live and admitted
	subjects map[string]*subjectEntry
}

// registration is a session's state in its Hub, guarded by Hub.mu.
type registration struct {
	reserved bool   // holds a connection slot
	admitted bool   // passed the per-subject cap
	subject  string // the subject whose slot it holds, "" for none
	live     bool   // accepted and not yet ended: Shutdown reaches it
	open     bool   // live and admitted: listed, found and broadcast to
	ended    bool   // the session is over: never (re)opened
}

// subjectEntry is what the Hub keeps per subject; it exists while the
// subject has at least one admitted session.
type subjectEntry struct {
	conns    int                   // admitted sessions, open or about to be
	sessions map[*Session]struct{} // the open ones
	limiter  *rate.Limiter         // SubjectMessageRate, shared by the sessions; nil when off
}

func newHub(e *Endpoint) *Hub {
	h := &Hub{
		e:        e,
		live:     make(map[*Session]struct{}),
		byID:     make(map[string]*Session),
		subjects: make(map[string]*subjectEntry),
	}
	if e.cfg.MaxConnsPerIP > 0 {
		h.perIP = make(map[netip.Addr]int)
	}
	return h
}

// Hub returns the endpoint's session registry.
func (e *Endpoint) Hub() *Hub { return e.hub }

// CloseSubject closes every open session of subject in this process with
// the close code [CloseFrame] assigns to err (e.g. [ErrForbidden] for a ban,
// [ErrTokenExpired] for a revoked token) and returns how many it closed. The
// close handshakes run in the background. An empty subject matches nothing.
//
// Sessions still waiting for a first-message token have no subject yet;
// make AuthOptions.Authorize consult the same revocation list so that they,
// and new handshakes, are refused too.
func (e *Endpoint) CloseSubject(subject string, err error) int {
	n := e.hub.CloseSubject(subject, err)
	if n > 0 {
		code, _ := CloseFrame(err)
		logEvent(context.Background(), e.log, slog.LevelInfo, EventSubjectClosed, "wssafe: closing the sessions of a subject",
			slog.String("subject", subject), slog.Int("sessions", n), slog.Int("code", int(code)))
	}
	return n
}

// reserve takes a connection slot for s under MaxConns and MaxConnsPerIP.
func (h *Hub) reserve(s *Session) (refusal, bool) {
	cfg := h.e.cfg
	h.mu.Lock()
	defer h.mu.Unlock()
	if cfg.MaxConns > 0 && h.reserved >= cfg.MaxConns {
		return refuseCapacity, false
	}
	if h.perIP != nil {
		src := sourceKey(s.ip)
		if h.perIP[src] >= cfg.MaxConnsPerIP {
			return refusePerIP, false
		}
		h.perIP[src]++
	}
	h.reserved++
	s.reg.reserved = true
	return refusal{}, true
}

// admit is the admission step that runs once a session's subject is known
// ("" without authentication): it takes a slot under MaxConnsPerSubject,
// attaches the subject's shared message budget, and opens the session in
// the Hub as soon as it is also live. It returns [ErrTooManyConnections]
// when the subject is at its cap.
//
// Call it on the session's own goroutine, after setting s.subject and
// before the first message reaches the callback: before Accept through
// admitEarly (the refusal is then HTTP 429), or after it by returning its
// error from the serve loop (close 1008). The serve loop calls it before
// OnOpen, so first-message authentication must set the subject before
// that; later calls are no-ops, and a subject changed after admission
// panics, as that session would escape its subject's cap.
func (e *Endpoint) admit(s *Session) error {
	opened, err := e.hub.admit(s)
	if opened {
		e.record(Observation{Kind: SessionOpened, Session: s, ClientIP: s.ip})
	}
	return err
}

func (h *Hub) admit(s *Session) (opened bool, err error) {
	cfg := h.e.cfg
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.reg.admitted {
		if s.subject != s.reg.subject {
			// The session would escape its subject's cap and index, and its
			// subject would race with readers: a bug in the caller.
			panic("wssafe: internal error: session subject set after admission")
		}
		return false, nil
	}
	if sub := s.subject; sub != "" {
		se := h.subjects[sub]
		if se != nil && cfg.MaxConnsPerSubject > 0 && se.conns >= cfg.MaxConnsPerSubject {
			return false, ErrTooManyConnections
		}
		if se == nil {
			se = &subjectEntry{sessions: make(map[*Session]struct{}), limiter: newLimiter(cfg.SubjectMessageRate)}
			h.subjects[sub] = se
		}
		se.conns++
		s.limits.subject = se.limiter
		s.reg.subject = sub
	}
	s.reg.admitted = true
	return h.open(s), nil
}

// open makes a live, admitted session visible and reports whether it did.
// h.mu is held.
func (h *Hub) open(s *Session) bool {
	if !s.reg.live || !s.reg.admitted || s.reg.open || s.reg.ended {
		return false
	}
	s.reg.open = true
	h.byID[s.id] = s
	if s.reg.subject != "" {
		h.subjects[s.reg.subject].sessions[s] = struct{}{}
	}
	return true
}

// track registers an accepted session; it fails once shutdown has begun.
func (e *Endpoint) track(s *Session) bool {
	h := e.hub
	h.mu.Lock()
	if e.closing.Load() {
		h.mu.Unlock()
		return false
	}
	h.live[s] = struct{}{}
	s.reg.live = true
	opened := h.open(s)
	h.mu.Unlock()
	e.record(Observation{Kind: HandshakeAccepted, Session: s, ClientIP: s.ip})
	if opened {
		e.record(Observation{Kind: SessionOpened, Session: s, ClientIP: s.ip})
	}
	return true
}

// untrack releases everything s holds in the Hub. ServeHTTP defers it as
// soon as s holds a connection slot, so it runs on every path.
func (e *Endpoint) untrack(s *Session) {
	h := e.hub
	h.mu.Lock()
	wasLive := s.reg.live
	h.release(s)
	last := wasLive && len(h.live) == 0
	h.mu.Unlock()
	if !wasLive {
		return
	}
	err := context.Cause(s.ctx)
	e.record(Observation{Kind: SessionClosed, Session: s, ClientIP: s.ip, Code: closeCode(err),
		Duration: e.cfg.clock.now().Sub(s.start), Traffic: s.traffic.snapshot()})
	if last && e.closing.Load() {
		// Shutdown returns only once the last close has been recorded.
		h.mu.Lock()
		if len(h.live) == 0 {
			e.closeDone()
		}
		h.mu.Unlock()
	}
}

// release undoes reserve, admit, track and open; h.mu is held.
func (h *Hub) release(s *Session) {
	r := &s.reg
	if r.reserved {
		h.reserved--
		if h.perIP != nil {
			src := sourceKey(s.ip)
			if h.perIP[src]--; h.perIP[src] <= 0 {
				delete(h.perIP, src)
			}
		}
	}
	if se := h.subjects[r.subject]; r.subject != "" && se != nil {
		delete(se.sessions, s)
		if se.conns--; se.conns <= 0 {
			delete(h.subjects, r.subject)
		}
	}
	if r.open {
		delete(h.byID, s.id)
	}
	if r.live {
		delete(h.live, s)
		h.e.stats.traffic.add(s.traffic.snapshot()) // under h.mu, so Stats never counts a session twice
	}
	*r = registration{}
}

// hide takes an ending session out of the lookups and broadcasts at once,
// before its close handshake completes; release frees its slots later.
func (h *Hub) hide(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.reg.ended = true
	if !s.reg.open {
		return
	}
	delete(h.byID, s.id)
	if se := h.subjects[s.reg.subject]; se != nil {
		delete(se.sessions, s)
	}
	s.reg.open = false
}

// liveSessions returns the live sessions, open or not; h.mu is held.
func (h *Hub) liveSessions() []*Session {
	out := make([]*Session, 0, len(h.live))
	for s := range h.live {
		out = append(out, s)
	}
	return out
}

// Count returns the number of open sessions.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byID)
}

// Sessions returns the open sessions, in no particular order. It is a
// snapshot: sessions may end at any time after it is taken.
func (h *Hub) Sessions() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, 0, len(h.byID))
	for _, s := range h.byID {
		out = append(out, s)
	}
	return out
}

// ByID returns the open session with the given ID, or nil.
func (h *Hub) ByID(id string) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[id]
}

// BySubject returns the open sessions of subject, or nil. An empty subject
// matches nothing: unauthenticated sessions have no subject to share.
func (h *Hub) BySubject(subject string) []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	se := h.subjects[subject]
	if subject == "" || se == nil || len(se.sessions) == 0 {
		return nil
	}
	out := make([]*Session, 0, len(se.sessions))
	for s := range se.sessions {
		out = append(out, s)
	}
	return out
}

// Close closes the open session with the given ID with the close code
// [CloseFrame] assigns to err, in the background, and reports whether
// there was one.
func (h *Hub) Close(id string, err error) bool {
	s := h.ByID(id)
	if s != nil {
		s.fail(err)
	}
	return s != nil
}

// CloseSubject closes every open session of subject with the close code
// [CloseFrame] assigns to err (logout, revocation, ban; nil means
// ErrForbidden, 3003), in the background, and returns how many it closed.
// An empty subject matches nothing.
func (h *Hub) CloseSubject(subject string, err error) int {
	if err == nil {
		err = ErrForbidden
	}
	ss := h.BySubject(subject)
	for _, s := range ss {
		s.fail(err)
	}
	return len(ss)
}

// Broadcast queues a message for every open session and returns how many
// accepted it. It never blocks on a session: one whose queue is full is
// closed as a slow consumer (see [Session.Send]). p is copied once and
// shared. A message larger than SendQueueBytes reaches nobody.
func (h *Hub) Broadcast(typ MessageType, p []byte) int {
	return h.BroadcastFunc(typ, p, nil)
}

// BroadcastFunc is Broadcast to the open sessions for which keep returns
// true; a nil keep keeps all. keep runs on the caller's goroutine, outside
// the Hub's lock.
func (h *Hub) BroadcastFunc(typ MessageType, p []byte, keep func(*Session) bool) int {
	return sendAll(h.Sessions(), typ, p, keep)
}

func sendAll(ss []*Session, typ MessageType, p []byte, keep func(*Session) bool) int {
	shared := bytes.Clone(p)
	n := 0
	for _, s := range ss {
		if (keep == nil || keep(s)) && s.enqueue(typ, shared) == nil {
			n++
		}
	}
	return n
}

// A HubOpKind says what a [HubOp] does.
type HubOpKind uint8

// The kinds of [HubOp].
const (
	OpBroadcast HubOpKind = iota + 1 // queue Data for the addressed sessions
	OpClose                          // close the addressed sessions with Code and Reason
)

// A HubOp is one operation on the sessions of every node of a cluster,
// addressed to one session (SessionID), to one subject's sessions
// (Subject), or, for a broadcast only, to every session (neither). Its
// fields are plain data, so that a [Backplane] can encode it, e.g. as JSON.
type HubOp struct {
	Kind      HubOpKind   `json:"kind"`
	SessionID string      `json:"session_id,omitempty"`
	Subject   string      `json:"subject,omitempty"`
	Type      MessageType `json:"type,omitempty"`   // OpBroadcast
	Data      []byte      `json:"data,omitempty"`   // OpBroadcast
	Code      StatusCode  `json:"code,omitempty"`   // OpClose; zero means 1000
	Reason    string      `json:"reason,omitempty"` // OpClose: short and fixed, sent to the peers
}

// A Backplane carries [Hub.Publish] to every node of a cluster, e.g. over
// Redis or NATS pub/sub: Publish must deliver op to each node, this one
// included, where the receiving side passes it to that node's
// [Hub.Apply]. Publish is called concurrently and should return quickly.
// Whatever a Backplane delivers is trusted as if this process had published
// it: authenticate its channel.
type Backplane interface {
	Publish(ctx context.Context, op HubOp) error
}

// Publish performs op on every node of the cluster through
// [Options.Backplane]; without one it is [Hub.Apply] on this process.
func (h *Hub) Publish(ctx context.Context, op HubOp) error {
	if bp := h.e.cfg.Backplane; bp != nil {
		return bp.Publish(ctx, op)
	}
	h.Apply(op)
	return nil
}

// Apply performs op on this process's sessions and returns how many it
// reached. A close addressed to nobody in particular is ignored: closing
// everything is [Endpoint.Shutdown]'s job.
func (h *Hub) Apply(op HubOp) int {
	var ss []*Session
	switch {
	case op.SessionID != "":
		if s := h.ByID(op.SessionID); s != nil {
			ss = []*Session{s}
		}
	case op.Subject != "":
		ss = h.BySubject(op.Subject)
	case op.Kind == OpBroadcast:
		ss = h.Sessions()
	}
	switch op.Kind {
	case OpBroadcast:
		return sendAll(ss, op.Type, op.Data, nil)
	case OpClose:
		code := op.Code
		if code == 0 {
			code = StatusNormalClosure
		}
		for _, s := range ss {
			s.fail(&CloseError{Code: code, Reason: truncate(op.Reason, 123)})
		}
		return len(ss)
	}
	return 0
}
