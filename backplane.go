package wssafe

// The Backplane that joins the nodes of a cluster, what crosses it
// (Publication, ControlOp), and Node, this node's side of it: delivery,
// control, presence and the backplane's counters; Hub.Publish and
// Hub.Online.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// A Backplane joins the Endpoints of several processes (nodes) into one
// cluster, e.g. over Redis pub/sub (github.com/wssafe/wssafe/redis). It
// carries [Hub.Publish] to the nodes that have subscribers, the control
// operations of [Hub.CloseSubject] and [Hub.CloseSession] to every node,
// and counts presence for [Options.MaxConnsPerSubject] and [Hub.Online].
// Without one (the zero [Options]) an Endpoint is a single node and
// everything is local.
//
// The core relies on these rules, and a Backplane must keep them:
//
//   - A node delivers to its own sessions first and at once, never
//     through the broker, then hands the publication to Publish; the
//     backplane drops its own echoes by NodeID.
//   - A topic reaches only the sessions the receiving node's own topic
//     table holds ([Node.Deliver] checks it): nothing a sender claims
//     about sessions is trusted.
//   - Nothing a Backplane does may block a handler, a handshake beyond
//     Acquire's deadline, or panic: an unreachable broker degrades the
//     cluster to independent nodes (local delivery, local caps, local
//     revocation) and fails admission under a cluster-wide cap closed.
//
// Whatever a Backplane delivers is trusted as if this process had sent it:
// authenticate every envelope (wssafe's redis module signs them with
// [Signer] under a cluster key) and refuse replays, counting each refusal
// through [Node.Count]. Every method is called from many goroutines at
// once.
type Backplane interface {
	// NodeID names this node, unique in the cluster and fixed for the
	// process's life. New refuses an empty one.
	NodeID() string

	// Start connects the backplane to this node. New calls it once, after
	// the Endpoint is built, and fails if it returns an error, which it
	// wraps and returns to the application, which is likely to log it:
	// it must carry no secrets (a broker URL with its password), nor
	// should the causes handed to n.SetUp and Stop's error, of which the
	// core logs only the kind. It returns
	// quickly: connecting, subscribing and loading durable control records
	// happen in the background, retried with backoff for as long as the
	// backplane runs. From then on it hands what other nodes send to n.
	Start(n *Node) error
	// Stop leaves the cluster: this node's presence entries are removed at
	// once (a rolling deploy must not leave stale counts), receiving stops,
	// the outbound queue is flushed within ctx. Endpoint.Shutdown calls it
	// once, after its sessions have closed (or its deadline has passed).
	Stop(ctx context.Context) error

	// Subscribe: this node now has a session joined to topic; Unsubscribe:
	// it has none left. The Hub calls them on the first join and the last
	// leave, one call at a time and in the order of those changes, outside
	// the Hub's lock (they may call n.Topics). They must not block on the
	// network: queue and return. After a reconnect the backplane
	// resubscribes by itself from n.Topics().
	Subscribe(topic string)
	Unsubscribe(topic string)

	// Publish sends p to the other nodes: to those subscribed to p.Topic,
	// or to every node for a subject or everyone. At most once: it never
	// blocks; when the link is down or its bounded outbound queue is full
	// it drops p, counts it (n.Count(BackplaneDropped, reason)) and returns
	// [ErrDropped]. p.Data is valid only until Publish returns: a
	// backplane that keeps it past that (a queue of raw publications)
	// copies it; one that encodes it before returning needs no copy.
	Publish(p Publication) error
	// Control sends op to every other node. Unlike Publish it is not
	// dropped during an outage: it is kept and sent on recovery, and a
	// ControlRevoke is stored durably for op.TTL, so that nodes started
	// later, or down at the time, still learn it (through n.Control when
	// they load the records).
	Control(op ControlOp) error

	// Acquire counts one more session of subject on this node if the
	// cluster-wide count is below max (max <= 0: no cap, count only) and
	// reports whether it did. The core calls it at admission of every
	// session with a subject, with a deadline of a few seconds. An error
	// means the cluster could not be asked: under a cap
	// (MaxConnsPerSubject set) the core refuses that new session
	// ([ErrUnavailable]: HTTP 503 with Retry-After, or close 1013), never
	// one already open; without a cap it admits the session uncounted
	// (Release is not called for it; n.Subjects still lists it). A
	// backplane may offer a fail-open option that returns true, nil and
	// counts locally. Release undoes one successful Acquire; it never
	// blocks (queue and retry).
	Acquire(ctx context.Context, subject string, max int) (bool, error)
	Release(subject string)
	// Online returns the cluster-wide number of sessions per subject
	// (those of a node that died stop counting within the presence TTL).
	Online(ctx context.Context) (map[string]int, error)
}

// ErrDropped is returned by [Backplane.Publish], and so by [Hub.Publish],
// for a publication the backplane could not send to the other nodes (the
// link is down, or its outbound queue is full). This node's own sessions
// got it all the same: delivery is at most once across nodes.
var ErrDropped = errors.New("wssafe: publication dropped by the backplane")

// ErrUnavailable refuses a new session because the cluster could not be
// asked whether its subject is under [Options.MaxConnsPerSubject]
// ([Backplane.Acquire] failed or timed out): the per-subject cap fails
// closed. Before the upgrade it is answered with HTTP 503 and Retry-After;
// once the session is open (first-message auth) it closes 1013 "try again
// later". Sessions already open are never affected.
var ErrUnavailable = errors.New("wssafe: cluster unavailable")

// A Publication is a message for sessions on every node of a cluster, as
// [Hub.Publish] sends it and [Node.Deliver] receives it. Its fields are
// plain data, so that a [Backplane] can encode them.
type Publication struct {
	// Topic addresses the sessions joined to it (see [Session.Join]).
	// Empty: by Subject, or every session when Subject is empty too.
	Topic string `json:"topic,omitempty"`
	// Subject addresses one subject's sessions; only with an empty Topic.
	Subject string      `json:"subject,omitempty"`
	Type    MessageType `json:"type"`
	Data    []byte      `json:"data,omitempty"`
}

// check reports what is wrong with p, or nil.
func (p *Publication) check() error {
	if p.Type != MessageText && p.Type != MessageBinary {
		return fmt.Errorf("wssafe: Publication.Type %d is neither MessageText nor MessageBinary", int(p.Type))
	}
	if p.Topic != "" {
		if p.Subject != "" {
			return errors.New("wssafe: a Publication addresses a Topic or a Subject, not both")
		}
		return checkTopic(p.Topic)
	}
	return nil
}

// A ControlKind says what a [ControlOp] does.
type ControlKind uint8

// The kinds of [ControlOp].
const (
	// ControlCloseSubject closes the sessions of Subject with Code and
	// Reason ([Hub.CloseSubject]).
	ControlCloseSubject ControlKind = iota + 1
	// ControlCloseSession closes the session SessionID with Code and
	// Reason ([Hub.CloseSession]).
	ControlCloseSession
	// ControlRevoke records that Subject's tokens issued before Before
	// (and its tokens without iat) are refused for TTL, and closes the
	// open sessions of Subject that hold such a token, with Code and
	// Reason ([Hub.CloseSubject] with [AuthOptions.MaxTokenLifetime]).
	ControlRevoke
)

// A ControlOp is an operation every node of a cluster performs: a close or
// a revocation. Its fields are plain data, so that a [Backplane] can
// encode them.
type ControlOp struct {
	Kind      ControlKind `json:"kind"`
	Subject   string      `json:"subject,omitempty"`
	SessionID string      `json:"session_id,omitempty"`
	// Code and Reason are the close frame of the sessions closed; zero
	// means 3003 "forbidden". Reason is sent to the peers: short, fixed.
	Code   StatusCode `json:"code,omitempty"`
	Reason string     `json:"reason,omitempty"`
	// Before and TTL: ControlRevoke's record.
	Before time.Time     `json:"before,omitzero"`
	TTL    time.Duration `json:"ttl,omitempty"`
}

// closeError is the error the sessions op closes end with. A Code that
// cannot go on the wire (see codeOK) means 3003 "forbidden".
func (op *ControlOp) closeError() error {
	if !op.codeOK() || op.Code == 0 {
		return ErrForbidden
	}
	reason := op.Reason
	if !utf8.ValidString(reason) {
		reason = ""
	}
	return &CloseError{Code: op.Code, Reason: truncate(reason, maxCloseReason)}
}

// codeOK reports whether op's Code is zero or one a close frame may carry:
// coder/websocket ends a session without a close frame for any other
// (below 1000, 1004 to 1006, 1015 to 2999, above 4999).
func (op *ControlOp) codeOK() bool { return op.Code == 0 || wireCloseCode(op.Code) }

// wireCloseCode reports whether a close frame may carry code (RFC 6455
// 7.4 and the IANA registry, as coder/websocket checks it): 1000 to 1003,
// 1007 to 1014, 3000 to 4999.
func wireCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// A BackplaneEvent is what a [Backplane] counts through [Node.Count].
type BackplaneEvent uint8

// The events a [Backplane] counts. They are shown in [Stats].Backplane.
const (
	// BackplanePublished: a publication or control operation was sent to
	// the broker.
	BackplanePublished BackplaneEvent = iota + 1
	// BackplaneDropped: a publication was dropped (link down, outbound
	// queue full). The core logs it at Warn, event "backplane_dropped",
	// rate-limited.
	BackplaneDropped
	// BackplaneRefused: an envelope from the broker was refused (forged,
	// unsigned, replayed, out of its time window). The core logs it at
	// Warn, event "backplane_refused", rate-limited, with the reason.
	BackplaneRefused
)

// BackplaneStats is the part of [Stats] a [Backplane] reports through its
// [Node]; nil in Stats without a Backplane.
type BackplaneStats struct {
	Node      string            `json:"node"`      // Backplane.NodeID
	Up        bool              `json:"up"`        // connected to the broker (see Node.SetUp)
	Outages   uint64            `json:"outages"`   // times the link went down
	Published uint64            `json:"published"` // publications and control operations sent
	Received  uint64            `json:"received"`  // publications and control operations handed to this node
	Dropped   map[string]uint64 `json:"dropped"`   // publications dropped, by reason (down, queue_full ...)
	Refused   map[string]uint64 `json:"refused"`   // envelopes refused, by reason (forged, replayed ...)
}

// A Node is this node's side of the [Backplane], handed to its Start: what
// other nodes send is delivered through it, and the backplane reports its
// state and counts through it. Its methods never block for long and are
// safe for concurrent use.
type Node struct {
	e        *Endpoint
	id       string
	up       atomic.Bool
	reported atomic.Bool // SetUp was called
	outages  atomic.Uint64
	sent     atomic.Uint64
	received atomic.Uint64
	dropped  counters[string]
	refused  counters[string]
}

func newNode(e *Endpoint, id string) *Node {
	return &Node{e: e, id: id}
}

// Deliver hands a publication from another node to this node's sessions
// and returns how many accepted it. A topic reaches only the sessions this
// node has joined to it; a publication that is not well formed (a topic
// name that is not valid, a Topic with a Subject, an unknown Type)
// reaches nobody and is counted as refused, reason "malformed".
func (n *Node) Deliver(p Publication) int {
	n.received.Add(1)
	if p.check() != nil {
		n.Count(BackplaneRefused, "malformed")
		return 0
	}
	return n.e.hub.deliver(p)
}

// Control performs op, an operation another node sent (or a durable
// record the backplane loaded), on this node. It is idempotent: a close
// of sessions already closed, or a revocation already recorded, does
// nothing more. An op that is not well formed is counted as refused,
// reason "malformed"; one whose only fault is a Code no close frame may
// carry is performed with 3003 "forbidden" all the same.
func (n *Node) Control(op ControlOp) {
	n.received.Add(1)
	if !n.e.hub.control(op) {
		n.Count(BackplaneRefused, "malformed")
	}
}

// Topics returns the topics this node's sessions are joined to, sorted:
// what to subscribe to after a reconnect.
func (n *Node) Topics() []string { return n.e.hub.localTopics() }

// Subjects returns this node's admitted sessions per subject: the truth
// this node's presence entries should converge to, to register again
// when the broker lost them, or on each heartbeat (it includes sessions
// admitted uncounted while the broker was unreachable without a cap).
func (n *Node) Subjects() map[string]int { return n.e.hub.localOnline() }

// Logger returns the endpoint's logger.
func (n *Node) Logger() *slog.Logger { return n.e.log }

// Count counts one ev, with a short fixed reason for BackplaneDropped and
// BackplaneRefused (never a payload or a peer's text), and logs those two
// at Warn, rate-limited per event and reason.
func (n *Node) Count(ev BackplaneEvent, reason string) {
	switch ev {
	case BackplanePublished:
		n.sent.Add(1)
	case BackplaneDropped:
		n.dropped.inc(reason)
		n.warn(EventBackplaneDropped, "wssafe: backplane dropped a publication", reason)
	case BackplaneRefused:
		n.refused.inc(reason)
		n.warn(EventBackplaneRefused, "wssafe: backplane envelope refused", reason)
	}
}

// warn writes a Warn line for event, limited like a security event of one
// client address (see Options.SecurityLogInterval), with the count of the
// lines suppressed since the last.
func (n *Node) warn(event, msg, reason string) {
	e := n.e
	e.writeLimited(context.Background(), e.log, slog.LevelWarn, netip.Addr{}, event, e.logs.every(), msg,
		[]slog.Attr{slog.String("reason", reason), slog.String("node", n.id)})
}

// SetUp reports the link to the broker up or down. The first report of
// each change is logged once: Warn "backplane_down" with the kind of
// cause (see [errorKind]: "timeout", "network", "other"), Info
// "backplane_up"; [Stats] shows the state and counts the outages. A
// first report of down (the broker unreachable from the start) is an
// outage too. cause's text is never logged, since a client library's
// error may quote the broker's URL and its password; a Backplane must
// keep secrets out of its errors all the same.
func (n *Node) SetUp(up bool, cause error) {
	first := !n.reported.Swap(true)
	if n.up.Swap(up) == up && (up || !first) {
		return
	}
	if up {
		logEvent(context.Background(), n.e.log, slog.LevelInfo, EventBackplaneUp, "wssafe: backplane connected",
			slog.String("node", n.id))
		return
	}
	n.outages.Add(1)
	attrs := []slog.Attr{slog.String("event", EventBackplaneDown), slog.String("node", n.id)}
	if cause != nil {
		attrs = append(attrs, slog.String("cause", errorKind(cause)))
	}
	n.e.log.LogAttrs(context.Background(), slog.LevelWarn, "wssafe: backplane down; this node serves its own sessions only", attrs...)
}

// errorKind is what the log says of a Backplane's error, whose text may
// carry credentials: "timeout" (a deadline or a network timeout),
// "network" (any other net.Error), or "other".
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case ne != nil:
		return "network"
	}
	return "other"
}

func (n *Node) stats() *BackplaneStats {
	return &BackplaneStats{
		Node: n.id, Up: n.up.Load(), Outages: n.outages.Load(),
		Published: n.sent.Load(), Received: n.received.Load(),
		Dropped: n.dropped.snapshot(), Refused: n.refused.snapshot(),
	}
}

// acquireTimeout bounds [Backplane.Acquire] at admission: a handshake
// waits at most this long for the cluster before it is refused.
const acquireTimeout = 2 * time.Second

// unavailableRetry is the Retry-After of a handshake refused because the
// cluster could not be asked.
const unavailableRetry = 5 * time.Second

// startBackplane connects the configured backplane, if any, to e.
func (e *Endpoint) startBackplane() error {
	bp := e.cfg.Backplane
	if bp == nil {
		return nil
	}
	id := bp.NodeID()
	if id == "" {
		return errors.New("wssafe: Backplane.NodeID is empty; give every node a unique, fixed ID")
	}
	e.node = newNode(e, id)
	e.bpStopped = make(chan struct{})
	if err := bp.Start(e.node); err != nil {
		return fmt.Errorf("wssafe: starting the Backplane: %w", err)
	}
	return nil
}

// stopBackplane stops the backplane once: the first caller runs Stop
// under its ctx, later ones wait for it within theirs.
func (e *Endpoint) stopBackplane(ctx context.Context) {
	bp := e.cfg.Backplane
	if bp == nil {
		return
	}
	first := false
	e.bpStop.Do(func() { first = true })
	if !first {
		select {
		case <-e.bpStopped:
		case <-ctx.Done():
		}
		return
	}
	defer close(e.bpStopped)
	if err := bp.Stop(ctx); err != nil {
		e.log.LogAttrs(ctx, slog.LevelWarn, "wssafe: stopping the backplane failed",
			slog.String("event", EventBackplaneDown), slog.String("cause", errorKind(err)))
	}
}

// acquire asks the cluster for a slot of s's subject under
// MaxConnsPerSubject, within acquireTimeout.
func (h *Hub) acquire(bp Backplane, s *Session) error {
	ctx, cancel := context.WithTimeout(s.ctx, acquireTimeout)
	defer cancel()
	ok, err := bp.Acquire(ctx, s.subject, h.e.cfg.MaxConnsPerSubject)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case !ok:
		return ErrTooManyConnections
	}
	return nil
}

// deliver queues p for this node's sessions it addresses and returns how
// many accepted it; p is well formed.
func (h *Hub) deliver(p Publication) int {
	var ss []*Session
	switch {
	case p.Topic != "":
		ss = h.topicSessions(p.Topic)
	case p.Subject != "":
		ss = h.BySubject(p.Subject)
	default:
		ss = h.Sessions()
	}
	if len(ss) == 0 {
		return 0
	}
	return sendAll(ss, p.Type, p.Data, nil)
}

// control performs op on this node and reports whether it was well formed.
// An op whose close frame is not (see closeError) is still performed,
// with 3003 "forbidden".
func (h *Hub) control(op ControlOp) bool {
	closeErr := op.closeError()
	switch op.Kind {
	case ControlCloseSubject:
		if op.Subject == "" {
			return false
		}
		h.closeSubject(op.Subject, closeErr)
	case ControlCloseSession:
		if op.SessionID == "" {
			return false
		}
		if s := h.ByID(op.SessionID); s != nil {
			s.fail(closeErr)
		}
	case ControlRevoke:
		if op.Subject == "" || op.Before.IsZero() || op.TTL <= 0 {
			return false
		}
		h.revoke(op.Subject, op.Before, op.TTL, closeErr)
	default:
		return false
	}
	return op.codeOK()
}

// Publish sends p to every node of the cluster: it queues p for this
// node's sessions at once (the ones joined to p.Topic, or p.Subject's, or
// all), through their bounded send queues like [Hub.Broadcast], and
// returns how many accepted it; then it hands p to [Options.Backplane], if
// any, for the other nodes. A Backplane that cannot send it returns
// [ErrDropped]: across nodes delivery is at most once, and a client that
// must not miss a message should fetch what it missed when it
// reconnects. p.Data is not retained. Publish never blocks on a session or on
// the network. It returns an error, and sends nothing, for a topic name
// that is not valid (see [Session.Join]), a Topic together with a
// Subject, or a Type other than MessageText and MessageBinary.
func (h *Hub) Publish(p Publication) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	n := h.deliver(p)
	bp := h.e.cfg.Backplane
	if bp == nil {
		return n, nil
	}
	return n, bp.Publish(p) // p.Data is the caller's: see Backplane.Publish
}

// Online returns the number of sessions per subject (unauthenticated
// sessions are not counted): across the cluster through
// [Options.Backplane] (whose error it returns, e.g. when the broker is
// unreachable), or on this node without one.
func (h *Hub) Online(ctx context.Context) (map[string]int, error) {
	if bp := h.e.cfg.Backplane; bp != nil {
		return bp.Online(ctx)
	}
	return h.localOnline(), nil
}

// localOnline is the admitted sessions per subject on this node.
func (h *Hub) localOnline() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.subjects))
	for sub, se := range h.subjects {
		out[sub] = se.conns
	}
	return out
}

// localTopics is the topics with sessions joined on this node, sorted.
func (h *Hub) localTopics() []string {
	h.mu.Lock()
	out := make([]string, 0, len(h.topics))
	for t := range h.topics {
		out = append(out, t)
	}
	h.mu.Unlock()
	sort.Strings(out)
	return out
}
