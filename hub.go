package wssafe

// The Hub: every live session, registration and admission under the caps,
// lookups, broadcast, and closing a subject's sessions.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"

	"golang.org/x/time/rate"
)

// A Hub is the registry of an Endpoint's open sessions in this process:
// list them, find them by ID or subject, close a subject's sessions,
// broadcast to them, publish to the topics they joined. Broadcasts go
// through each session's bounded send queue (see [Session.Send]), so one
// slow reader never blocks a broadcast: it is closed as a slow consumer
// instead.
//
// A session is in the Hub from the handshake until it ends, once its
// subject, if the endpoint authenticates, is verified: a session still
// waiting for its first-message token is neither listed nor broadcast to.
// The Hub's methods act on this node, except [Hub.Publish],
// [Hub.CloseSubject], [Hub.CloseSession] and [Hub.Online], which act on
// every node of a cluster through [Options.Backplane] (and on this node
// alone without one). A Hub is safe for concurrent use.
type Hub struct {
	e     *Endpoint
	subMu sync.Mutex // orders the Backplane's Subscribe and Unsubscribe calls; taken before mu (see subscribing)
	mu    sync.Mutex

	reserved int                // connection slots held, before and after Accept (MaxConns)
	perIP    map[netip.Addr]int // slots per source, kept only when MaxConnsPerIP is set
	live     map[*Session]struct{}
	byID     map[string]*Session // the open sessions: live and admitted
	subjects map[string]*subjectEntry
	topics   map[string]map[*Session]struct{} // the sessions joined to each topic (topic.go)
	joined   map[*Session][]string            // the topics of each session that joined one

	revoked  revocations // revoke.go; its own lock
	closings closings    // revoke.go; guarded by mu
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
	acquired bool   // Backplane.Acquire counted it: Release it at the end
	opening  bool   // authorized and not yet open: a close of its subject must reach it (see Hub.beginOpening)
	subject  string // the subject whose slot it holds, "" for none
	since    uint64 // closings.seq when it began opening
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
		topics:   make(map[string]map[*Session]struct{}),
		joined:   make(map[*Session][]string),
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
// on this node and, with a Backplane, across the cluster
// ([Backplane.Acquire]), attaches the subject's shared message budget,
// and opens the session in the Hub as soon as it is also live. It returns
// [ErrTooManyConnections] when the subject is at its cap, and
// [ErrUnavailable] when the Backplane could not be asked.
//
// Call it on the session's own goroutine, after setting s.subject and
// before the first message reaches the callback: before Accept through
// admitEarly (the refusal is then HTTP 429, or 503), or after it by
// returning its error from the serve loop (close 1008, or 1013), which is
// then reported here: counted in Stats.Refused and logged rate-limited.
// The serve loop calls it before OnOpen, so first-message authentication
// must set the subject before that; later calls are no-ops, and a subject
// changed after admission panics, as that session would escape its
// subject's cap.
func (e *Endpoint) admit(s *Session) error {
	opened, err := e.hub.admit(s)
	if opened {
		e.record(Observation{Kind: SessionOpened, Session: s, ClientIP: s.ip})
	}
	if err != nil && e.reportStale(s, err) {
		return err
	}
	if err != nil && s.conn != nil {
		event, msg := EventSubjectConnLimit, refuseSubject.msg
		if errors.Is(err, ErrUnavailable) {
			event, msg = EventClusterUnavailable, refuseUnavailable.msg
		}
		e.securityEvent(s.ctx, s.log, slog.LevelWarn, Observation{Kind: HandshakeRefused, Reason: event, Session: s, ClientIP: s.ip},
			event, msg)
	}
	return err
}

func (h *Hub) admit(s *Session) (opened bool, err error) {
	h.mu.Lock()
	done, err := h.admitted(s)
	h.mu.Unlock()
	if done || err != nil {
		return false, err
	}
	bp := h.e.cfg.Backplane
	acquired := false
	if bp != nil && s.subject != "" {
		// Outside the lock: a network round trip, bounded by acquireTimeout.
		err := h.acquire(bp, s)
		switch {
		case err == nil:
			acquired = true
		case errors.Is(err, ErrUnavailable) && h.e.cfg.MaxConnsPerSubject <= 0:
			// No cap to keep: presence alone never refuses a session.
		default:
			return false, err
		}
	}
	h.mu.Lock()
	opened, err = h.admitLocked(s)
	s.reg.acquired = acquired && err == nil
	h.mu.Unlock()
	if err != nil && acquired {
		bp.Release(s.subject)
	}
	return opened, err
}

// admitted reports whether s is already admitted (the call is then a
// no-op), or an error if this node alone puts its subject over the cap;
// h.mu is held.
func (h *Hub) admitted(s *Session) (bool, error) {
	if s.reg.admitted {
		if s.subject != s.reg.subject {
			// The session would escape its subject's cap and index, and its
			// subject would race with readers: a bug in the caller.
			panic("wssafe: internal error: session subject set after admission")
		}
		return true, nil
	}
	if se := h.subjects[s.subject]; s.subject != "" && se != nil && h.overCap(se) {
		return false, ErrTooManyConnections
	}
	return false, nil
}

func (h *Hub) overCap(se *subjectEntry) bool {
	limit := h.e.cfg.MaxConnsPerSubject
	return limit > 0 && se.conns >= limit
}

// admitLocked admits s on this node; h.mu is held. The local cap is
// checked again: another session of the subject may have been admitted
// while the cluster was asked, and a fail-open Backplane counts nothing.
func (h *Hub) admitLocked(s *Session) (opened bool, err error) {
	cfg := h.e.cfg
	if err := h.stale(s); err != nil {
		return false, err
	}
	if sub := s.subject; sub != "" {
		se := h.subjects[sub]
		if se != nil && h.overCap(se) {
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
	h.endOpening(s)
	return true
}

// track registers an accepted session. It fails with ErrShutdown once
// shutdown has begun, and with the error of [Hub.stale] when the admitted
// session's subject was closed or its token revoked since it was
// authorized: the session is then not live, and the caller closes it.
func (e *Endpoint) track(s *Session) error {
	h := e.hub
	h.mu.Lock()
	if e.closing.Load() {
		h.mu.Unlock()
		return ErrShutdown
	}
	if s.reg.admitted {
		if err := h.stale(s); err != nil {
			h.mu.Unlock()
			return err
		}
	}
	if s.reg.step(regAccept) { // always, after reserve: in Hub.live exactly while accepted
		h.live[s] = struct{}{}
	}
	opened := h.open(s)
	h.mu.Unlock()
	e.record(Observation{Kind: HandshakeAccepted, Session: s, ClientIP: s.ip, Duration: e.sinceHandshake(s.ctx)})
	if opened {
		e.record(Observation{Kind: SessionOpened, Session: s, ClientIP: s.ip})
	}
	return nil
}

// untrack releases everything s holds in the Hub. ServeHTTP defers it (and
// run, once the session is its own) as soon as s holds a connection slot,
// so it runs on every path.
func (e *Endpoint) untrack(s *Session) {
	h := e.hub
	h.mu.Lock()
	wasLive := s.reg.accepted()
	var acquired string // the subject Acquire counted s under
	if s.reg.acquired {
		acquired = s.reg.subject
	}
	h.release(s)
	last := wasLive && len(h.live) == 0
	h.mu.Unlock()
	if bp := e.cfg.Backplane; bp != nil && acquired != "" {
		bp.Release(acquired)
	}
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
	h.endOpening(s)
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

// hide takes an ending session out of the lookups, broadcasts and topics
// at once, before its close handshake completes; release frees its slots
// later. Only an open session can have joined a topic, and every session
// that opened is hidden when it ends, before it is released.
func (h *Hub) hide(s *Session) {
	defer h.subscribing()()
	h.mu.Lock()
	wasOpen := s.reg.open()
	s.reg.step(regEnd)
	var last []string
	if wasOpen {
		delete(h.byID, s.id)
		if se := h.subjects[s.reg.subject]; se != nil {
			delete(se.sessions, s)
		}
		last = h.dropTopics(s)
	}
	h.mu.Unlock()
	h.unsubscribe(last)
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
	return h.bySubject(subject)
}

// bySubject is BySubject; h.mu is held.
func (h *Hub) bySubject(subject string) []*Session {
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

// CloseSubject logs subject out everywhere: it closes every open session
// of subject on this node at once, with the close code and reason
// [CloseFrame] assigns to err, and sends the close to every other node
// through [Options.Backplane] (a [ControlCloseSubject] op, which a
// Backplane keeps through an outage and sends on recovery). A nil err
// means [ErrForbidden], 3003 "forbidden": the application no longer
// accepts the identity (log-out, a disabled account, a ban). Pass
// [ErrTokenExpired] or [ErrInvalidToken] for 3000, or a [*CloseError] for
// a code of your own. The close handshakes run in the background; each
// node that closes sessions logs an Info line, event "subject_closed",
// with their number. A session of subject that a node was still opening
// when the close reached it (in AuthOptions.Authorize, Backplane.Acquire
// or the 101 response) does not open either: it is refused with HTTP 403
// before the upgrade (401 for ErrInvalidToken or ErrTokenExpired), or
// closed like the others after it. An empty subject matches nothing. The error is the
// Backplane's, if any; the local close has happened all the same.
//
// With [AuthOptions.MaxTokenLifetime] set, CloseSubject also revokes the
// subject's tokens: every node (this one at once, the others through a
// [ControlRevoke] op, which the Backplane stores for nodes that start
// later or were down) refuses, for MaxTokenLifetime plus twice
// AcceptableSkew, the subject's tokens issued before now and its tokens
// without iat: HTTP 401 at the handshake, close 3000 from the first
// message or on a refresh, reason "revoked" in the log and in
// Stats.AuthFailed. Tokens the issuer mints afterwards, with a later iat
// (a second later at least: iat has whole seconds), are accepted.
// Without MaxTokenLifetime nothing bounds how long an old token lives,
// so nothing is recorded: make AuthOptions.Authorize consult your own
// revocation list so that new handshakes are refused too.
//
// To close one session, call its [Session.Close] ([Hub.ByID] finds it)
// or, on any node, [Hub.CloseSession].
func (h *Hub) CloseSubject(subject string, err error) error {
	if subject == "" {
		return nil
	}
	if err == nil {
		err = ErrForbidden
	}
	cfg := h.e.cfg
	code, reason := CloseFrame(err)
	var errs []error
	bp := cfg.Backplane
	// The revocation goes first, here and to the other nodes, so that a
	// client that reconnects the moment its session is closed, with its
	// old token, finds the revocation already recorded on every node.
	if ttl := cfg.revocationTTL(); ttl > 0 {
		rev := ControlOp{Kind: ControlRevoke, Subject: subject, Code: code, Reason: reason, Before: cfg.clock.now(), TTL: ttl}
		h.revoke(subject, rev.Before, ttl, err)
		if bp != nil {
			errs = append(errs, bp.Control(rev))
		}
	}
	h.closeSubject(subject, err)
	if bp != nil {
		errs = append(errs, bp.Control(ControlOp{Kind: ControlCloseSubject, Subject: subject, Code: code, Reason: reason}))
	}
	return errors.Join(errs...)
}

// CloseSession closes the open session id, wherever it is: at once when
// it is on this node, else on every other node through
// [Options.Backplane] (a [ControlCloseSession] op). The close code and
// reason are those [CloseFrame] assigns to err, nil meaning 3003
// "forbidden" as for [Hub.CloseSubject]. An empty id matches nothing; an
// id no node has is ignored. The error is the Backplane's, if any.
func (h *Hub) CloseSession(id string, err error) error {
	if id == "" {
		return nil
	}
	if err == nil {
		err = ErrForbidden
	}
	if s := h.ByID(id); s != nil {
		s.fail(err)
		return nil
	}
	bp := h.e.cfg.Backplane
	if bp == nil {
		return nil
	}
	code, reason := CloseFrame(err)
	return bp.Control(ControlOp{Kind: ControlCloseSession, SessionID: id, Code: code, Reason: reason})
}

// closeSubject closes the open sessions of subject on this node and
// returns how many. A session of subject authorized before it but not yet
// open is refused when it would open (see [Hub.stale]).
func (h *Hub) closeSubject(subject string, err error) int {
	h.mu.Lock()
	h.closings.add(subject, err)
	ss := h.bySubject(subject)
	h.mu.Unlock()
	h.closeSessions(subject, ss, err)
	return len(ss)
}

// closeSessions closes ss, sessions of subject, with err, and logs how
// many it closed.
func (h *Hub) closeSessions(subject string, ss []*Session, err error) {
	for _, s := range ss {
		s.fail(err)
	}
	if len(ss) > 0 {
		code, _ := CloseFrame(err)
		logEvent(context.Background(), h.e.log, slog.LevelInfo, EventSubjectClosed, "wssafe: closing the sessions of a subject",
			slog.String("subject", subject), slog.Int("sessions", len(ss)), slog.Int("code", int(code)))
	}
}

// Broadcast queues a message for this node's open sessions for which keep
// returns true (every open session when keep is nil) and returns how many
// accepted it; [Hub.Publish] reaches every node. It never blocks on a
// session: one whose queue is full is closed as a slow consumer (see
// [Session.Send]). p is copied once, into the one encoded frame that every
// session's queue shares (see [PreparedMessage]). A message larger than
// SendQueueBytes reaches nobody. keep runs on the caller's goroutine,
// outside the Hub's lock.
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
