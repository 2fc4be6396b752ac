package wssafe

// The Hub: every live session, registration and admission under the caps,
// lookups, broadcast, revocation and the Backplane.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"

	"golang.org/x/time/rate"
)

// A Hub is the registry of an Endpoint's open sessions in this process:
// list them, find them by ID or subject, revoke a subject, broadcast to
// them. Broadcasts go through each session's bounded send queue (see
// [Session.Send]), so one slow reader never blocks a broadcast: it is
// closed as a slow consumer instead.
//
// A session is in the Hub from the handshake until it ends, once its
// subject, if the endpoint authenticates, is verified: a session still
// waiting for its first-message token is neither listed nor broadcast to.
// The Hub's methods act on this process, except [Hub.Publish] and
// [Hub.CloseSubject], which act on every node of a cluster through
// [Options.Backplane]. A Hub is safe for concurrent use.
type Hub struct {
	e  *Endpoint
	mu sync.Mutex

	reserved int                // connection slots held, before and after Accept (MaxConns)
	perIP    map[netip.Addr]int // slots per source, kept only when MaxConnsPerIP is set
	live     map[*Session]struct{}
	byID     map[string]*Session // the open sessions: live and admitted
	subjects map[string]*subjectEntry
}

// registration is a session's state in its Hub, guarded by Hub.mu. It
// takes two independent steps: the connection's phase (reserve, accept,
// end, release: see [regPhase.next]) and admission under the per-subject
// cap, which runs once the subject is known, before Accept or after it. A
// session is open (listed, found and broadcast to) while it is live and
// admitted: whichever of the two steps comes second opens it, ending it
// hides it.
type registration struct {
	phase    regPhase
	admitted bool   // passed the per-subject cap
	subject  string // the subject whose slot it holds, "" for none
}

// open reports whether the session is listed, found and broadcast to.
func (r *registration) open() bool { return r.phase == regLive && r.admitted }

// accepted reports whether the session completed its handshake and has
// not been released: it is in Hub.live, and Shutdown waits for it.
func (r *registration) accepted() bool { return r.phase == regLive || r.phase == regEnded }

// regPhase is where a session's connection stands in its Hub.
type regPhase uint8

const (
	regFree     regPhase = iota // holds nothing: not yet reserved, or released
	regReserved                 // holds a connection slot; the handshake is not complete
	regDropped                  // reserved, and ended before it was accepted: never opened
	regLive                     // accepted and not ended: Shutdown reaches it
	regEnded                    // accepted and ended: hidden at once, waited for until released
)

// regEvent is a step of a session's connection through its Hub.
type regEvent uint8

const (
	regReserve regEvent = iota + 1 // reserve: a connection slot under MaxConns and MaxConnsPerIP
	regAccept                      // track: the handshake completed before shutdown began
	regEnd                         // hide: the session is over
)

// next is the connection's whole lifecycle: the phase ev moves p to, and
// whether that move is legal; an illegal one leaves p as it is. Release
// returns any phase to regFree.
//
//	regFree     --reserve--> regReserved
//	regReserved --accept-->  regLive
//	regReserved --end-->     regDropped  (e.g. refused at shutdown after Accept)
//	regDropped  --accept-->  regEnded    (accepted, already over: never opened)
//	regLive     --end-->     regEnded
func (p regPhase) next(ev regEvent) (regPhase, bool) {
	switch {
	case p == regFree && ev == regReserve:
		return regReserved, true
	case p == regReserved && ev == regAccept:
		return regLive, true
	case p == regReserved && ev == regEnd:
		return regDropped, true
	case p == regDropped && ev == regAccept:
		return regEnded, true
	case p == regLive && ev == regEnd:
		return regEnded, true
	}
	return p, false
}

// step moves r through ev and reports whether the move was legal.
func (r *registration) step(ev regEvent) bool {
	p, ok := r.phase.next(ev)
	r.phase = p
	return ok
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
	s.reg.step(regReserve)
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

// open makes s visible if it is now open (live and admitted) and reports
// whether it is. Admission and acceptance each call it once, right after
// their step, so the second of the two opens s. h.mu is held.
func (h *Hub) open(s *Session) bool {
	if !s.reg.open() {
		return false
	}
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
	if s.reg.step(regAccept) { // always, after reserve: in Hub.live exactly while accepted
		h.live[s] = struct{}{}
	}
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
	wasLive := s.reg.accepted()
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
	if r.phase != regFree {
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
	if r.open() {
		delete(h.byID, s.id)
	}
	if r.accepted() {
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
	wasOpen := s.reg.open()
	s.reg.step(regEnd)
	if !wasOpen {
		return
	}
	delete(h.byID, s.id)
	if se := h.subjects[s.reg.subject]; se != nil {
		delete(se.sessions, s)
	}
}

// liveSessions returns the live sessions, open or not; h.mu is held.
func (h *Hub) liveSessions() []*Session {
	out := make([]*Session, 0, len(h.live))
	for s := range h.live {
		out = append(out, s)
	}
	return out
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

// CloseSubject revokes subject: it closes every open session of subject
// with the close code and reason [CloseFrame] assigns to err, on every node
// of the cluster through [Options.Backplane] (which carries it as an
// OpClose [HubOp]), or in this process when there is none. A nil err
// means [ErrForbidden], 3003 "forbidden": the application no longer
// accepts the identity (log-out, a disabled account, a ban). Pass
// [ErrTokenExpired] or [ErrInvalidToken] for 3000, or a [*CloseError] for
// a code of your own. The close handshakes run in the background; each
// node that closes sessions logs an Info line, event "subject_closed",
// with their number. An empty subject matches nothing. The error is the
// Backplane's, if any.
//
// Sessions still waiting for a first-message token have no subject yet;
// make AuthOptions.Authorize consult the same revocation list so that
// they, and new handshakes, are refused too. To close one session, call
// its [Session.Close] ([Hub.ByID] finds it).
func (h *Hub) CloseSubject(ctx context.Context, subject string, err error) error {
	if subject == "" {
		return nil
	}
	if err == nil {
		err = ErrForbidden
	}
	if bp := h.e.cfg.Backplane; bp != nil {
		code, reason := CloseFrame(err)
		return bp.Publish(ctx, HubOp{Kind: OpClose, Subject: subject, Code: code, Reason: reason})
	}
	h.closeSubject(subject, err)
	return nil
}

// closeSubject closes the open sessions of subject in this process and
// returns how many.
func (h *Hub) closeSubject(subject string, err error) int {
	ss := h.BySubject(subject)
	for _, s := range ss {
		s.fail(err)
	}
	if len(ss) > 0 {
		code, _ := CloseFrame(err)
		logEvent(context.Background(), h.e.log, slog.LevelInfo, EventSubjectClosed, "wssafe: closing the sessions of a subject",
			slog.String("subject", subject), slog.Int("sessions", len(ss)), slog.Int("code", int(code)))
	}
	return len(ss)
}

// Broadcast queues a message for the open sessions for which keep returns
// true (every open session when keep is nil) and returns how many accepted
// it. It never blocks on a session: one whose queue is full is closed as a
// slow consumer (see [Session.Send]). p is copied once, into the one
// encoded frame that every session's queue shares (see
// [PreparedMessage]). A message larger than SendQueueBytes reaches nobody. keep runs on the
// caller's goroutine, outside the Hub's lock.
func (h *Hub) Broadcast(typ MessageType, p []byte, keep func(*Session) bool) int {
	return sendAll(h.Sessions(), typ, p, keep)
}

// sendAll queues one message for the sessions of ss that keep accepts
// (all when keep is nil) and returns how many accepted it: every delivery
// of the Hub goes through it. The message is encoded once, and its frame
// shared by every queue.
func sendAll(ss []*Session, typ MessageType, p []byte, keep func(*Session) bool) int {
	if len(ss) == 0 || checkType(typ) != nil || len(p) > ss[0].ep.cfg.SendQueueBytes {
		return 0
	}
	m := NewPreparedMessage(typ, p)
	n := 0
	for _, s := range ss {
		if (keep == nil || keep(s)) && s.SendPrepared(m) == nil {
			n++
		}
	}
	return n
}

// A HubOpKind says what a [HubOp] does.
type HubOpKind uint8

// The kinds of [HubOp].
const (
	OpBroadcast HubOpKind = iota + 1 // queue Data for the addressed sessions: [Hub.Publish]
	OpClose                          // close the addressed sessions with Code and Reason: [Hub.CloseSubject]'s wire form
)

// A HubOp is one operation on the sessions of every node of a cluster,
// addressed to one session (SessionID), to one subject's sessions
// (Subject), or, for a broadcast only, to every session (neither). Its
// fields are plain data, so that a [Backplane] can encode it, e.g. as JSON.
// [Hub.Publish] sends broadcasts; [Hub.CloseSubject] sends closes.
type HubOp struct {
	Kind      HubOpKind   `json:"kind"`
	SessionID string      `json:"session_id,omitempty"`
	Subject   string      `json:"subject,omitempty"`
	Type      MessageType `json:"type,omitempty"`   // OpBroadcast
	Data      []byte      `json:"data,omitempty"`   // OpBroadcast
	Code      StatusCode  `json:"code,omitempty"`   // OpClose; zero means 1000
	Reason    string      `json:"reason,omitempty"` // OpClose: short and fixed, sent to the peers
}

// A Backplane carries [Hub.Publish] and [Hub.CloseSubject] to every node
// of a cluster, e.g. over Redis or NATS pub/sub: Publish must deliver op
// to each node, this one included, where the receiving side passes it to
// that node's [Hub.Apply]. Publish is called concurrently and should
// return quickly. Whatever a Backplane delivers is trusted as if this
// process had published it: authenticate its channel.
type Backplane interface {
	Publish(ctx context.Context, op HubOp) error
}

// Publish performs a broadcast (an OpBroadcast op) on every node of the
// cluster through [Options.Backplane]; without one it is [Hub.Apply] on
// this process. It refuses any other kind: close sessions with
// [Hub.CloseSubject] or [Session.Close].
func (h *Hub) Publish(ctx context.Context, op HubOp) error {
	if op.Kind != OpBroadcast {
		return errors.New("wssafe: Hub.Publish carries broadcasts only; close sessions with Hub.CloseSubject or Session.Close")
	}
	if bp := h.e.cfg.Backplane; bp != nil {
		return bp.Publish(ctx, op)
	}
	h.Apply(op)
	return nil
}

// Apply performs op, as a Backplane delivers it, on this process's
// sessions and returns how many it reached. A close addressed to nobody in
// particular is ignored: closing everything is [Endpoint.Shutdown]'s job.
func (h *Hub) Apply(op HubOp) int {
	switch op.Kind {
	case OpBroadcast:
		var ss []*Session
		switch {
		case op.SessionID != "":
			if s := h.ByID(op.SessionID); s != nil {
				ss = []*Session{s}
			}
		case op.Subject != "":
			ss = h.BySubject(op.Subject)
		default:
			ss = h.Sessions()
		}
		return sendAll(ss, op.Type, op.Data, nil)
	case OpClose:
		code := op.Code
		if code == 0 {
			code = StatusNormalClosure
		}
		ce := &CloseError{Code: code, Reason: op.Reason}
		switch {
		case op.SessionID != "":
			if s := h.ByID(op.SessionID); s != nil {
				s.fail(ce)
				return 1
			}
		case op.Subject != "":
			return h.closeSubject(op.Subject, ce)
		}
	}
	return 0
}
