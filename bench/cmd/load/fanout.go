package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
)

// fanoutResult is one measured broadcast run.
type fanoutResult struct {
	Impl        string  `json:"impl"`
	Subscribers int     `json:"subscribers"`
	Size        int     `json:"size"`
	Paced       bool    `json:"paced"`
	Round       int     `json:"round"`
	PerSec      float64 `json:"deliveries_per_sec"`
	CPUns       float64 `json:"server_cpu_ns_per_delivery"`
	Allocs      float64 `json:"server_allocs_per_delivery"`
	P50ms       float64 `json:"p50_ms"` // paced: from the broadcast to its delivery
	P99ms       float64 `json:"p99_ms"`
	Busy        float64 `json:"server_cpu_busy"`
	LoadBusy    float64 `json:"load_cpu_busy"` // the load tool's own CPU time / wall time
	Others      float64 `json:"others_cpu"`
	Attempts    int     `json:"attempts"`
	WireDown    float64 `json:"wire_down_bytes_per_delivery"` // server to subscriber, frame headers included
}

// ring is the number of per-message delivery counters; the window the
// server may run ahead is bounded well below it (cmd/server's maxWindow).
const ring = 4096

// subscribers are the broadcast's clients, one reading goroutine each.
// Every message carries its sequence number; a message counts as received
// by all once its counter reaches the number of subscribers, and the last
// such sequence number is what the server's window is measured from.
type subscribers struct {
	conns     []*wsclient.Conn
	counts    [ring]atomic.Int32
	acked     atomic.Int64 // the last message every subscriber has received
	delivered atomic.Int64
	record    atomic.Bool // record latencies (paced runs)
	lat       [][]time.Duration
	latMu     []sync.Mutex
	probed    []atomic.Bool // a probe reached the subscriber (cluster runs)
	ctl       atomic.Pointer[control]
	wake      chan struct{}
	closing   atomic.Bool
	errOnce   sync.Once
	err       atomic.Pointer[error]
	readers   sync.WaitGroup
	acking    sync.WaitGroup
}

func (s *server) subscribe(cfg config, n int) (*subscribers, error) {
	conns, err := s.dialMany(cfg, n)
	if err != nil {
		return nil, err
	}
	return newSubscribers(conns), nil
}

// newSubscribers starts reading conns (which may be spread over several
// servers) as one set of subscribers.
// settle waits until every one of the sent messages has reached every
// subscriber, so that the next run can number its messages from 0 again,
// and resets the count for it.
func (sb *subscribers) settle(sent int64) error {
	for deadline := time.Now().Add(15 * time.Second); sb.acked.Load() != sent-1; time.Sleep(5 * time.Millisecond) {
		if err := sb.failure(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the run, %d of %d messages had reached every subscriber", sb.acked.Load()+1, sent)
		}
	}
	sb.acked.Store(-1)
	return nil
}

func newSubscribers(conns []*wsclient.Conn) *subscribers {
	n := len(conns)
	sb := &subscribers{conns: conns, lat: make([][]time.Duration, n), latMu: make([]sync.Mutex, n),
		probed: make([]atomic.Bool, n), wake: make(chan struct{}, 1)}
	sb.acked.Store(-1)
	for i, c := range conns {
		sb.readers.Go(func() { sb.read(i, c) })
	}
	sb.acking.Go(sb.ackLoop)
	return sb
}

func (sb *subscribers) fail(err error) {
	sb.errOnce.Do(func() { sb.err.Store(&err) })
}

func (sb *subscribers) failure() error {
	if p := sb.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (sb *subscribers) read(i int, c *wsclient.Conn) {
	var head [16]byte
	for {
		n, err := c.ReadBroadcast(head[:])
		if err != nil {
			if !sb.closing.Load() {
				sb.fail(fmt.Errorf("subscriber %d: %w", i, err))
			}
			return
		}
		if n < len(head) {
			sb.fail(fmt.Errorf("subscriber %d: a %d-byte message", i, n))
			return
		}
		seq := binary.BigEndian.Uint64(head[:8])
		if seq == math.MaxUint64 { // a probe (cluster runs): not counted
			sb.probed[i].Store(true)
			continue
		}
		sb.delivered.Add(1)
		if sb.record.Load() {
			d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(head[8:])))
			sb.latMu[i].Lock()
			sb.lat[i] = append(sb.lat[i], d)
			sb.latMu[i].Unlock()
		}
		if sb.counts[seq%ring].Add(1) == int32(len(sb.conns)) {
			sb.counts[seq%ring].Store(0)
			for a := sb.acked.Load(); int64(seq) > a && !sb.acked.CompareAndSwap(a, int64(seq)); a = sb.acked.Load() {
			}
			select {
			case sb.wake <- struct{}{}:
			default:
			}
		}
	}
}

// ackLoop tells the server how far every subscriber has got.
func (sb *subscribers) ackLoop() {
	for range sb.wake {
		if c := sb.ctl.Load(); c != nil {
			if a := sb.acked.Load(); a >= 0 {
				c.send(uint64(a))
			}
		}
	}
}

// attach sends the acknowledgements to ctl from now on. The server starts
// broadcasting before attach: if its first window of messages has
// already reached every subscriber, the acknowledgements went nowhere and
// the server waits for one, so attach sends the last one again.
func (sb *subscribers) attach(ctl *control) {
	sb.ctl.Store(ctl)
	select {
	case sb.wake <- struct{}{}:
	default:
	}
}

func (sb *subscribers) close() {
	sb.closing.Store(true)
	closeAll(sb.conns)
	sb.readers.Wait()
	close(sb.wake)
	sb.acking.Wait()
}

// control is the connection to the server's /broadcast.
type control struct {
	nc net.Conn
	br *bufio.Reader
	mu sync.Mutex
}

func (c *control) send(v uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(binary.BigEndian.AppendUint64(nil, v))
	return err
}

// startBroadcast asks the server to broadcast size-byte messages at rate
// messages/s (0: as fast as the window allows) to subs subscribers.
func (s *server) startBroadcast(size int, rate float64, window, subs int, payload string) (*control, error) {
	nc, err := net.DialTimeout("tcp", s.debug, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &control{nc: nc, br: bufio.NewReader(nc)}
	fmt.Fprintf(nc, "GET /broadcast?size=%d&rate=%g&window=%d&subs=%d&payload=%s HTTP/1.1\r\nHost: bench\r\n\r\n", size, rate, window, subs, payload)
	nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := c.br.ReadString('\n')
	nc.SetReadDeadline(time.Time{})
	if err != nil || line != "ready\n" {
		nc.Close()
		if err == nil {
			rest, _ := io.ReadAll(io.LimitReader(c.br, 512))
			err = fmt.Errorf("server answered %q", strings.TrimSpace(line+string(rest)))
		}
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	return c, nil
}

// stop ends the broadcast and returns how many messages the server sent.
func (c *control) stop() (int64, error) {
	defer c.nc.Close()
	if err := c.send(math.MaxUint64); err != nil {
		return 0, err
	}
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	var v [8]byte
	if _, err := io.ReadFull(c.br, v[:]); err != nil {
		return 0, fmt.Errorf("broadcast: the server's count: %w", err)
	}
	return int64(binary.BigEndian.Uint64(v[:])), nil
}

// runFanout measures every broadcast configuration of a round: for each
// subscriber count and implementation in turn, a fresh -fanout server and
// that many subscribers, then each message size paced and saturated.
func runFanout(cfg config, round int, res *results) error {
	for _, subs := range cfg.subs {
		for _, impl := range rotate(cfg.fanoutImpls, round) {
			if err := fanoutImpl(cfg, round, res, impl, subs); err != nil {
				return fmt.Errorf("%s, %d subscribers: %w", impl, subs, err)
			}
		}
	}
	return nil
}

func fanoutImpl(cfg config, round int, res *results, impl string, subs int) error {
	s, err := startServer(cfg, impl, "-fanout")
	if err != nil {
		return err
	}
	defer s.stop()
	sb, err := s.subscribe(cfg, subs)
	if err != nil {
		return err
	}
	defer sb.close()
	for _, size := range cfg.fanoutSizes {
		for _, paced := range []bool{true, false} {
			r, attempts, err := leastDisturbed(cfg, s, func() (fanoutResult, error) { return measureFanoutOnce(cfg, s, sb, impl, size, paced) },
				func(r fanoutResult) (float64, float64) {
					if paced {
						return r.Others, 1 // a paced server is not meant to be busy
					}
					return r.Others, r.Busy
				})
			if err != nil {
				return err
			}
			r.Round, r.Attempts = round, attempts
			mode := "saturated"
			if paced {
				mode = "paced"
			}
			log.Printf("round %d %-8s %5d subs %5d B %-9s: %8.0f deliveries/s cpu %6.0f ns/delivery (%3.0f%% busy, load %3.0f%%) allocs %5.3f p50 %6.2f ms p99 %6.2f ms; others %3.0f%% (attempt %d)",
				round+1, impl, subs, size, mode, r.PerSec, r.CPUns, r.Busy*100, r.LoadBusy*100, r.Allocs, r.P50ms, r.P99ms, r.Others*100, r.Attempts)
			res.Fanout = append(res.Fanout, r)
		}
	}
	return nil
}

func measureFanoutOnce(cfg config, s *server, sb *subscribers, impl string, size int, paced bool) (fanoutResult, error) {
	n := len(sb.conns)
	rate, window := 0.0, cfg.window
	if paced {
		// A paced run must not be held back by the window: allow half a
		// second of messages in flight, within the send queues.
		rate = cfg.pacedRate / float64(n)
		window = max(window, min(int(rate/2), peers.SubscriberQueue/2))
	}
	ctl, err := s.startBroadcast(size, rate, window, n, cfg.payload)
	if err != nil {
		return fanoutResult{}, err
	}
	sb.attach(ctl)
	defer sb.ctl.Store(nil)
	time.Sleep(cfg.warmup)
	// The memory statistics first and last: a busy server may take long
	// to answer, and that time must stay out of the CPU window.
	m0, err2 := s.mem(false)
	c0, err1 := snapshot(s)
	d0 := sb.delivered.Load()
	wire := wireOf(sb.conns)
	in0, _ := wire()
	t0 := time.Now()
	sb.record.Store(paced)
	time.Sleep(cfg.duration)
	sb.record.Store(false)
	d1 := sb.delivered.Load()
	in1, _ := wire()
	elapsed := time.Since(t0)
	c1, err3 := snapshot(s)
	m1, err4 := s.mem(false)
	sent, err5 := ctl.stop()
	if err := errors.Join(err1, err2, err3, err4, err5, sb.failure()); err != nil {
		return fanoutResult{}, err
	}
	if err := sb.settle(sent); err != nil {
		return fanoutResult{}, err
	}
	deliveries := float64(d1 - d0)
	if deliveries == 0 {
		return fanoutResult{}, errors.New("no message delivered")
	}
	r := fanoutResult{
		Impl:        impl,
		Subscribers: n,
		Size:        size,
		Paced:       paced,
		PerSec:      deliveries / elapsed.Seconds(),
		CPUns:       float64(c1.server-c0.server) / deliveries,
		Allocs:      (m1.Mallocs - m0.Mallocs) / deliveries,
		Busy:        float64(c1.server-c0.server) / float64(elapsed),
		LoadBusy:    float64(c1.self-c0.self) / float64(elapsed),
		Others:      float64((c1.machine-c0.machine)-(c1.server-c0.server)-(c1.self-c0.self)) / float64(elapsed),
		WireDown:    float64(in1-in0) / deliveries,
	}
	if paced {
		var all []time.Duration
		for i := range sb.lat {
			sb.latMu[i].Lock()
			all = append(all, sb.lat[i]...)
			sb.lat[i] = sb.lat[i][:0]
			sb.latMu[i].Unlock()
		}
		if len(all) > 0 {
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			r.P50ms = float64(all[len(all)/2]) / float64(time.Millisecond)
			r.P99ms = float64(all[len(all)*99/100]) / float64(time.Millisecond)
		}
	}
	return r, nil
}

// fanoutMedian is the median of every field over the rounds of one
// broadcast configuration.
func fanoutMedian(res *results, impl string, subs, size int, paced bool) (fanoutResult, bool) {
	var ps, cpu, allocs, p50, p99, busy, load, wire []float64
	for _, r := range res.Fanout {
		if r.Impl == impl && r.Subscribers == subs && r.Size == size && r.Paced == paced {
			ps, cpu, allocs = append(ps, r.PerSec), append(cpu, r.CPUns), append(allocs, r.Allocs)
			wire = append(wire, r.WireDown)
			p50, p99 = append(p50, r.P50ms), append(p99, r.P99ms)
			busy, load = append(busy, r.Busy), append(load, r.LoadBusy)
		}
	}
	if len(ps) == 0 {
		return fanoutResult{}, false
	}
	return fanoutResult{Impl: impl, Subscribers: subs, Size: size, Paced: paced, PerSec: median(ps), CPUns: median(cpu),
		Allocs: median(allocs), P50ms: median(p50), P99ms: median(p99), Busy: median(busy), LoadBusy: median(load), WireDown: median(wire)}, true
}

// fanoutRatio is the median of each round's f(a) / f(b) for one
// configuration.
func fanoutRatio(res *results, a, b string, subs, size int, paced bool, f func(fanoutResult) float64) (float64, bool) {
	return paired(res.Fanout, func(r fanoutResult) (string, int, bool) {
		return r.Impl, r.Round, r.Subscribers == subs && r.Size == size && r.Paced == paced
	}, a, b, func(x, y fanoutResult) float64 { return f(x) / f(y) })
}

func deliveriesPerSec(r fanoutResult) float64 { return r.PerSec }
func cpuPerDelivery(r fanoutResult) float64   { return r.CPUns }

// bestPeer is the implementation other than wssafe with the highest
// median of f (lowest, with lower) in one configuration.
func bestPeer(cfg config, res *results, subs, size int, paced, lower bool, f func(fanoutResult) float64) (string, bool) {
	best, found := "", false
	var bv float64
	for _, impl := range cfg.fanoutImpls {
		r, ok := fanoutMedian(res, impl, subs, size, paced)
		if !ok || impl == "wssafe" {
			continue
		}
		if v := f(r); !found || (lower && v < bv) || (!lower && v > bv) {
			best, bv, found = impl, v, true
		}
	}
	return best, found
}

func reportFanout(w io.Writer, cfg config, res *results) {
	fmt.Fprintf(w, "\nBroadcast, paced: %.0f deliveries/s in all (messages/s = that / subscribers), median of %d rounds of %s; ratios against %s are the median of each round's ratio. Latency is from the broadcast call to the subscriber's read.\n\n",
		cfg.pacedRate, cfg.rounds, cfg.duration, cfg.base)
	fmt.Fprintln(w, "| subscribers | size | impl | deliveries/s | server CPU ns/delivery | vs "+cfg.base+" | server busy | p50 ms | p99 ms | allocs/delivery |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, subs := range cfg.subs {
		for _, size := range cfg.fanoutSizes {
			for _, impl := range cfg.fanoutImpls {
				r, ok := fanoutMedian(res, impl, subs, size, true)
				if !ok {
					continue
				}
				fmt.Fprintf(w, "| %d | %d | %s | %.0f | %.0f | %s | %.0f%% | %.2f | %.2f | %.3f |\n", subs, size, impl, r.PerSec, r.CPUns,
					ratio(fanoutRatio(res, impl, cfg.base, subs, size, true, cpuPerDelivery)), r.Busy*100, r.P50ms, r.P99ms, r.Allocs)
			}
		}
	}
	fmt.Fprintf(w, "\nBroadcast, saturated: at most %d messages in flight (counted from the last one every subscriber has), median of %d rounds of %s. Load busy is the load tool's CPU share: near 100%%, the subscribers, not the server, set the pace.\n\n",
		cfg.window, cfg.rounds, cfg.duration)
	fmt.Fprintln(w, "| subscribers | size | impl | deliveries/s | vs "+cfg.base+" | server CPU ns/delivery | server busy | load busy | allocs/delivery |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, subs := range cfg.subs {
		for _, size := range cfg.fanoutSizes {
			for _, impl := range cfg.fanoutImpls {
				r, ok := fanoutMedian(res, impl, subs, size, false)
				if !ok {
					continue
				}
				fmt.Fprintf(w, "| %d | %d | %s | %.0f | %s | %.0f | %.0f%% | %.0f%% | %.3f |\n", subs, size, impl, r.PerSec,
					ratio(fanoutRatio(res, impl, cfg.base, subs, size, false, deliveriesPerSec)), r.CPUns, r.Busy*100, r.LoadBusy*100, r.Allocs)
			}
		}
	}
	if cfg.payload == "zeros" && !anyCompressed(cfg.fanoutImpls) {
		return
	}
	fmt.Fprintf(w, "\nBytes on the wire per delivery (payload: %s, after a 16-byte binary header of sequence number and time; frame headers included), paced runs, medians of the rounds.\n\n", cfg.payload)
	fmt.Fprintln(w, "| subscribers | size | impl | B/delivery |")
	fmt.Fprintln(w, "|---:|---:|---|---:|")
	for _, subs := range cfg.subs {
		for _, size := range cfg.fanoutSizes {
			for _, impl := range cfg.fanoutImpls {
				if r, ok := fanoutMedian(res, impl, subs, size, true); ok {
					fmt.Fprintf(w, "| %d | %d | %s | %.0f |\n", subs, size, impl, r.WireDown)
				}
			}
		}
	}
}

// fanoutTargets checks wssafe's broadcast against the targets:
// saturated, at least 1.5x the best peer's deliveries/s; paced, no more
// server CPU per delivery than gws.
func fanoutTargets(check func(bool, string, ...any), cfg config, res *results) {
	for _, subs := range cfg.subs {
		for _, size := range cfg.fanoutSizes {
			if best, ok := bestPeer(cfg, res, subs, size, false, false, deliveriesPerSec); ok {
				if r, ok := fanoutRatio(res, "wssafe", best, subs, size, false, deliveriesPerSec); ok {
					check(r >= 1.5, "broadcast %d x %d B saturated: deliveries/s %.2fx the best peer, %s (target >= 1.50x)", subs, size, r, best)
				}
			}
			if r, ok := fanoutRatio(res, "wssafe", "gws", subs, size, true, cpuPerDelivery); ok {
				check(r <= 1, "broadcast %d x %d B paced: server CPU/delivery %.2fx gws (target <= 1.00x)", subs, size, r)
			}
		}
	}
}
