package redis

// The Backplane: options, construction, lifecycle, health and statistics.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wssafe/wssafe"
)

// Options configure a [Backplane]. The zero value of every field but URL
// (or Client) and Keys is a default.
type Options struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS (verified against the system roots, or TLSConfig).
	// Ignored when Client is set.
	URL string
	// TLSConfig, when set, replaces the TLS configuration of a rediss://
	// URL (e.g. RootCAs for a private CA). Its ServerName defaults to the
	// URL's host.
	TLSConfig *tls.Config
	// Client is a go-redis client to use instead of URL, e.g. a
	// *ClusterClient for Redis Cluster (then set Sharded). Stop does not
	// close it.
	Client goredis.UniversalClient

	// Keys are the cluster keys: the first signs what this node sends,
	// all of them verify what it receives. To rotate, deploy [new, old]
	// everywhere, then [new]. Required: a node without the key cannot
	// send anything the others accept, whatever its access to Redis.
	Keys []Key

	// NodeID names this node, 1 to 64 bytes, unique in the cluster. Zero
	// means a random ID. Envelopes carrying it are this node's echoes.
	NodeID string
	// Prefix starts every channel and key name: letters, digits, '_', '-',
	// '.'. Zero means "wssafe". Clusters sharing one Redis need their own.
	Prefix string

	// Sharded uses sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+), for
	// Redis Cluster: topic channels are spread over Partitions hash slots,
	// each received on its own connection. Zero: plain PUBLISH/SUBSCRIBE.
	Sharded bool
	// Partitions is the number of sharded channel groups. Zero means 16.
	Partitions int

	// QueueSize bounds the outbound queue of publications. When it is
	// full, or Redis is unreachable, Publish drops and counts. Zero means
	// 4096.
	QueueSize int
	// MaxPendingControls bounds the control operations kept for sending
	// while Redis is unreachable. Zero means 10000.
	MaxPendingControls int

	// MaxAge is how old an envelope may be, by the receiver's clock, and
	// MaxSkew how far in the future: nodes' clocks must agree within
	// MaxSkew. Zero means 30 s and 5 s. A captured envelope can be replayed
	// to nobody: the anti-replay window holds for MaxAge, and a node
	// refuses what was sealed on a channel more than MaxSkew before it
	// subscribed there (see the package doc for the MaxSkew just before). A control
	// operation re-read after a reconnect may be older: up to 10 minutes
	// (or MaxAge if longer), de-duplicated by MAC for as long.
	MaxAge  time.Duration
	MaxSkew time.Duration

	// PresenceTTL is how long a node's presence counts live without a
	// refresh, so how long a crashed node's sessions keep counting;
	// PresenceRefresh how often they are refreshed. Zero means 15 s and
	// 5 s.
	PresenceTTL     time.Duration
	PresenceRefresh time.Duration
	// InterestRefresh is how often a node sends its full topic set, so
	// that a table that missed a change heals. Zero means 30 s.
	InterestRefresh time.Duration

	// InsecureFailOpen makes Acquire admit (and count locally) when Redis
	// cannot be asked, rather than return an error (the core then answers
	// 503): a cap that holds per node only during an outage. Zero: closed.
	InsecureFailOpen bool

	// Logger receives this package's log lines. Zero means the
	// Endpoint's logger once Start is called by wssafe.New, else
	// slog.Default(). Started by an Endpoint, the outage, recovery, drop
	// and refusal lines are the Endpoint's (events backplane_down,
	// backplane_up, backplane_dropped, backplane_refused, through its
	// Node), counted in its Stats().Backplane, and not logged here again.
	Logger *slog.Logger

	now      func() time.Time // tests
	linkGate func(node bool)  // tests: runs before each connection of a link
}

// Wire kinds of control operations; the wiring maps the core's kinds.
const (
	ctlCloseSubject uint8 = iota + 1
	ctlCloseSession
	ctlRevoke
)

// Log events, the stable "event" attribute of this package's log lines.
const (
	EventDown    = "backplane_down"    // Redis became unreachable: publishing drops, receiving reconnects
	EventUp      = "backplane_up"      // Redis is reachable again
	EventDropped = "backplane_dropped" // publications dropped (rate-limited)
	EventRefused = "backplane_refused" // an envelope was refused: forged, replayed, stale (rate-limited)
)

var (
	errDropped     = errors.New("wssafe/redis: publication dropped: Redis unreachable or the outbound queue full")
	errUnavailable = errors.New("wssafe/redis: Redis unreachable")
	errStopped     = errors.New("wssafe/redis: backplane stopped")
	errURL         = errors.New("wssafe/redis: Options.URL is not a valid Redis URL: write redis://[user:password@]host:port/db, or rediss:// for TLS")
	validPrefix    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// A sink receives what other nodes send: the core's *Node, through the
// wiring. Its methods must not block for long.
type sink interface {
	deliver(p publication)
	control(op controlOp)
}

// A Backplane connects the nodes of a cluster through Redis. It is safe
// for concurrent use.
type Backplane struct {
	opt       Options
	client    goredis.UniversalClient
	ownClient bool
	log       *slog.Logger
	seal      *sealer
	open      *opener
	nodeChan  string

	sink     sink
	node     *wssafe.Node // the Endpoint's, when started by one: counts and logs go through it
	ownLog   bool         // Options.Logger was zero: the Endpoint's logger replaces the default
	life     sync.Mutex   // orders start and Stop
	started  bool         // under life: started, or stopped before a start
	stopOnce sync.Once
	stopErr  error
	stopping chan struct{}
	wg       sync.WaitGroup

	out      chan outMsg
	wakeW    chan struct{} // the writer has controls or interest to send
	controls controlQueue
	links    []*link
	topics   topicSet
	remote   interestTable
	pres     *presence
	needFull atomic.Bool     // send the full topic set (answering a sync)
	needSync atomic.Bool     // send a sync: the full set, asking for everyone's
	stopCtx  context.Context // Stop's, for the writer's last flush
	crashed  bool            // tests: stop as if the process died

	health health
	st     counters
}

type outMsg struct {
	channel string
	msg     []byte
}

// New checks opt and returns a Backplane; it connects nothing until start.
func New(opt Options) (*Backplane, error) {
	kr, err := newKeyring(opt.Keys)
	if err != nil {
		return nil, err
	}
	own := opt.Logger == nil
	if err := resolve(&opt); err != nil {
		return nil, err
	}
	b := &Backplane{opt: opt, log: opt.Logger, ownLog: own, client: opt.Client, stopping: make(chan struct{}),
		out: make(chan outMsg, opt.QueueSize), wakeW: make(chan struct{}, 1)}
	if b.client == nil {
		if b.client, err = clientFromURL(opt.URL, opt.TLSConfig); err != nil {
			return nil, err
		}
		b.ownClient = true
	}
	b.seal = newSealer(kr, opt.NodeID, opt.now)
	b.open = newOpener(kr, opt.NodeID, opt.MaxAge, opt.MaxSkew, recentControlsTTL, opt.now)
	b.nodeChan = opt.Prefix + ":node"
	if opt.Sharded {
		b.nodeChan = "{" + opt.Prefix + ":node}"
	}
	b.remote.init()
	b.topics.init()
	b.health.init(b)
	b.pres = newPresence(b)
	b.links = newLinks(b)
	return b, nil
}

func resolve(o *Options) error {
	if o.URL == "" && o.Client == nil {
		return errors.New("wssafe/redis: no Redis: set Options.URL (redis://host:6379/0 or rediss://...) or Options.Client")
	}
	if o.NodeID == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		o.NodeID = hex.EncodeToString(r[:])
	}
	if len(o.NodeID) > maxNodeIDLen {
		return errors.New("wssafe/redis: Options.NodeID is longer than 64 bytes")
	}
	if o.Prefix == "" {
		o.Prefix = "wssafe"
	}
	if !validPrefix.MatchString(o.Prefix) {
		return errors.New("wssafe/redis: Options.Prefix may hold only letters, digits, '_', '-' and '.', up to 64")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MaxAge, 30*time.Second)
	def(&o.MaxSkew, 5*time.Second)
	def(&o.PresenceTTL, 15*time.Second)
	def(&o.PresenceRefresh, 5*time.Second)
	def(&o.InterestRefresh, 30*time.Second)
	if o.PresenceRefresh >= o.PresenceTTL {
		return errors.New("wssafe/redis: Options.PresenceRefresh must be shorter than PresenceTTL (e.g. a third of it)")
	}
	if o.Partitions <= 0 {
		o.Partitions = 16
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.MaxPendingControls <= 0 {
		o.MaxPendingControls = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return nil
}

// clientFromURL builds a client for url with short timeouts: the
// backplane retries by itself, and a handshake waiting on Acquire must not
// wait long.
func clientFromURL(url string, tc *tls.Config) (*goredis.Client, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		// go-redis's error can quote the URL, and with it the password:
		// a fixed message instead.
		return nil, errURL
	}
	if o.TLSConfig != nil && tc != nil {
		c := tc.Clone()
		if c.ServerName == "" {
			c.ServerName = o.TLSConfig.ServerName
		}
		o.TLSConfig = c
	}
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 2 * time.Second
	o.WriteTimeout = 2 * time.Second
	o.MaxRetries = 1
	return goredis.NewClient(o), nil
}

// NodeID returns this node's ID.
func (b *Backplane) NodeID() string { return b.opt.NodeID }

// start connects to Redis in the background and delivers to s; attach,
// when set, runs first, under the same lock (Start's: the Endpoint's Node
// and logger), so that a refused start changes nothing.
func (b *Backplane) start(s sink, topics []string, attach func()) error {
	b.life.Lock()
	defer b.life.Unlock()
	if b.started {
		return errors.New("wssafe/redis: Start called twice, or after Stop: a Backplane serves one Endpoint, once")
	}
	b.started = true
	if attach != nil {
		attach()
	}
	b.sink = s
	for _, t := range topics {
		b.Subscribe(t)
	}
	b.needSync.Store(true)
	for _, l := range b.links {
		b.wg.Add(1)
		go l.run()
	}
	b.wg.Add(2)
	go b.writer()
	go b.pres.run()
	return nil
}

// Stop leaves the cluster: it tells the other nodes this node's topics are
// gone, removes its presence counts, sends what is queued within ctx, and
// stops every goroutine. Control operations still pending are lost. It
// may be called more than once, concurrently: the first call stops, the
// others wait for it and return what it returned. A Backplane stopped
// before it started cannot be started.
func (b *Backplane) Stop(ctx context.Context) error {
	b.stopOnce.Do(func() { b.stopErr = b.stop(ctx, false) })
	return b.stopErr
}

// stop is Stop's body; crash: as a dying process, removing nothing.
func (b *Backplane) stop(ctx context.Context, crash bool) error {
	b.life.Lock()
	if !b.started {
		b.started = true
		b.life.Unlock()
		if b.ownClient {
			return b.client.Close()
		}
		return nil
	}
	b.stopCtx, b.crashed = ctx, crash
	close(b.stopping)
	b.life.Unlock()
	for _, l := range b.links {
		l.close()
	}
	b.wg.Wait()
	var err error
	if !crash {
		err = b.pres.removeAll(ctx)
	}
	if b.ownClient {
		if cerr := b.client.Close(); err == nil && !crash {
			err = cerr
		}
	}
	return err
}

// down reports whether Redis is known unreachable.
func (b *Backplane) down() bool { return b.health.isDown.Load() }

// A health tracks whether Redis is reachable, from the writer's and the
// receiving links' results, and logs each outage once and each recovery
// once.
type health struct {
	b      *Backplane
	isDown atomic.Bool
	// announced: the link has been reported up (Node.SetUp) since the
	// last outage, or before the first, the first contact.
	announced atomic.Bool
	mu        sync.Mutex
	failed    map[any]bool // the parts currently failing
	since     time.Time
	onUp      []func()
}

func (h *health) init(b *Backplane) { h.b = b; h.failed = map[any]bool{} }

// fail records that part could not reach Redis. Once Stop began, a
// failure is Stop's own closing of the connections, not an outage.
func (h *health) fail(part any, err error) {
	select {
	case <-h.b.stopping:
		return
	default:
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed[part] = true
	if h.isDown.Swap(true) {
		return
	}
	h.since = h.b.opt.now()
	h.b.st.outages.Add(1)
	if n := h.b.node; n != nil {
		n.SetUp(false, err) // logs backplane_down once
		return
	}
	h.b.log.LogAttrs(context.Background(), slog.LevelWarn, "wssafe/redis: Redis unreachable: publications are dropped, control operations kept, receiving reconnects",
		slog.String("event", EventDown), slog.String("node", h.b.opt.NodeID), slog.String("error", err.Error()))
}

// ok records that part reached Redis; when no part is failing any more,
// the outage is over and the recovery hooks run.
func (h *health) ok(part any) {
	if !h.isDown.Load() && h.announced.Load() {
		return // the common case: nothing to do, no lock
	}
	h.mu.Lock()
	if !h.isDown.Load() && !h.announced.Load() {
		// The first contact: tell the Endpoint the link is up.
		h.announced.Store(true)
		h.mu.Unlock()
		if n := h.b.node; n != nil {
			n.SetUp(true, nil)
		}
		return
	}
	if !h.failed[part] && !h.isDown.Load() {
		h.mu.Unlock()
		return
	}
	delete(h.failed, part)
	if len(h.failed) > 0 || !h.isDown.Load() {
		h.mu.Unlock()
		return
	}
	h.isDown.Store(false)
	h.announced.Store(true)
	dur := h.b.opt.now().Sub(h.since)
	hooks := h.onUp
	h.mu.Unlock()
	if n := h.b.node; n != nil {
		n.SetUp(true, nil) // logs backplane_up once
	} else {
		h.b.log.LogAttrs(context.Background(), slog.LevelInfo, "wssafe/redis: Redis reachable again",
			slog.String("event", EventUp), slog.String("node", h.b.opt.NodeID), slog.Duration("outage", dur),
			slog.Uint64("dropped", h.b.st.dropped.Load()))
	}
	for _, f := range hooks {
		f()
	}
}

// forget records that part no longer talks to Redis at all (a link with
// nothing to receive): if it was failing, it is not any more, and the
// outage ends with it when no other part fails.
func (h *health) forget(part any) {
	h.mu.Lock()
	failing := h.failed[part]
	h.mu.Unlock()
	if failing {
		h.ok(part) // failing implies down: ok removes it and may end the outage
	}
}

// counters are the Backplane's statistics.
type counters struct {
	published, dropped, received atomic.Uint64
	recovered                    atomic.Uint64
	controlsDropped, outages     atomic.Uint64
	lastDropLog, lastRefuseLog   atomic.Int64
}

// Stats are a Backplane's counters since New.
type Stats struct {
	Published       uint64            // envelopes written to Redis
	Dropped         uint64            // publications dropped: queue full, Redis unreachable, or the write failed
	Received        uint64            // envelopes accepted from other nodes
	Echoes          uint64            // this node's own envelopes, dropped
	Refused         map[string]uint64 // envelopes refused, by reason: bad_mac, unknown_key, stale, replay, malformed, too_many_peers, bad_record
	ControlsPending int               // control operations waiting for Redis
	ControlsDropped uint64            // control operations lost: more than MaxPendingControls waiting
	ControlsReread  uint64            // control operations missed live, performed when re-read after a reconnect
	Outages         uint64            // times Redis became unreachable
	Down            bool              // Redis unreachable now
	RemoteNodes     int               // other nodes known to the interest table
}

// Stats returns the counters.
func (b *Backplane) Stats() Stats {
	s := Stats{
		Published: b.st.published.Load(), Dropped: b.st.dropped.Load(), Received: b.st.received.Load(),
		Echoes: b.open.counts[verdictEcho].Load(), Refused: map[string]uint64{},
		ControlsPending: b.controls.len(), ControlsDropped: b.st.controlsDropped.Load(), ControlsReread: b.st.recovered.Load(),
		Outages: b.st.outages.Load(), Down: b.down(), RemoteNodes: b.remote.nodes(),
	}
	for v := refusedMalformed; v < numVerdicts; v++ {
		s.Refused[reasonNames[v]] = b.open.counts[v].Load()
	}
	return s
}

// every reports whether a rate-limited line last logged at *last may be
// logged again, at most once per 10 s.
func (b *Backplane) every(last *atomic.Int64) bool {
	now := b.opt.now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(10*time.Second) && last.CompareAndSwap(prev, now)
}

// Reasons for dropping, as counted in the Endpoint's Stats().Backplane.
const (
	dropDown        = "down"          // Redis unreachable
	dropQueueFull   = "queue_full"    // the outbound queue was full
	dropWriteFailed = "write_failed"  // the write to Redis failed
	dropStopping    = "stopping"      // the last flush at Stop failed
	dropControls    = "controls_full" // a control operation: more than MaxPendingControls waiting
)

// msgKind is a sealed envelope's kind (its second byte).
func msgKind(msg []byte) kind {
	if len(msg) < 2 {
		return 0
	}
	return kind(msg[1])
}

// dropMsgs drops the publications of msgs; an interest message among them
// makes the full topic set due, so that the other nodes' tables heal.
func (b *Backplane) dropMsgs(msgs []outMsg, reason string) {
	n := 0
	for _, m := range msgs {
		switch msgKind(m.msg) {
		case kindPublication:
			n++
		case kindInterest:
			b.needFull.Store(true)
		}
	}
	if n > 0 {
		b.drop(n, reason)
	}
}

// drop counts n dropped publications, through the Endpoint's Node when
// started by one (which logs, rate-limited), else here.
func (b *Backplane) drop(n int, reason string) {
	b.st.dropped.Add(uint64(n))
	if nd := b.node; nd != nil {
		for range n {
			nd.Count(wssafe.BackplaneDropped, reason)
		}
		return
	}
	if b.every(&b.st.lastDropLog) {
		b.log.LogAttrs(context.Background(), slog.LevelWarn, "wssafe/redis: publications dropped (at most once: the client should resynchronise on reconnect)",
			slog.String("event", EventDropped), slog.Uint64("dropped_total", b.st.dropped.Load()), slog.Bool("down", b.down()))
	}
}

// crash stops the goroutines as a dying process would: nothing is
// removed from Redis (tests).
func (b *Backplane) crash() {
	b.stopOnce.Do(func() { b.stopErr = b.stop(context.Background(), true) })
}
