package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/wssafe/wssafe/bench/internal/wsclient"
	"github.com/wssafe/wssafe/bench/peers"
	"github.com/wssafe/wssafe/redis/redistest"
)

// clusterResult is one measured run of wssafe's topic fan-out across
// nodes: Hub.Publish on the first node to a topic every subscriber joined,
// the subscribers spread over the nodes round-robin.
type clusterResult struct {
	Setup        string  `json:"setup"` // "single" (no backplane) or "redis"
	Nodes        int     `json:"nodes"`
	Subscribers  int     `json:"subscribers"`
	Size         int     `json:"size"`
	Paced        bool    `json:"paced"`
	Round        int     `json:"round"`
	PerSec       float64 `json:"deliveries_per_sec"`
	RemotePerSec float64 `json:"cross_node_deliveries_per_sec"`
	MsgsPerSec   float64 `json:"publishes_per_sec"`
	CPUns        float64 `json:"system_cpu_ns_per_delivery"` // every node and redis-server
	RedisCPUns   float64 `json:"redis_cpu_ns_per_delivery"`
	Busy         float64 `json:"system_cpu_busy"`
	LoadBusy     float64 `json:"load_cpu_busy"`
	Others       float64 `json:"others_cpu"`
	P50Local     float64 `json:"local_p50_ms"`
	P99Local     float64 `json:"local_p99_ms"`
	P50Remote    float64 `json:"cross_node_p50_ms"`
	P99Remote    float64 `json:"cross_node_p99_ms"`
	Dropped      float64 `json:"dropped"` // publications the backplane dropped
	Attempts     int     `json:"attempts"`
}

// name is the setup's row label.
func (r clusterResult) name() string {
	if r.Setup == "single" {
		return "single node, no backplane"
	}
	if r.Nodes == 1 {
		return "Redis, 1 node"
	}
	return fmt.Sprintf("Redis, %d nodes", r.Nodes)
}

// clusterSetup is one configuration of a round.
type clusterSetup struct {
	setup string
	nodes int
}

func clusterSetups(cfg config) []clusterSetup {
	out := []clusterSetup{{"single", 1}}
	for _, n := range cfg.clusterNodes {
		out = append(out, clusterSetup{"redis", n})
	}
	return out
}

// clusterRun is what every round of the cluster mode shares: one
// redis-server for the whole run, pinned with the nodes.
type clusterRun struct {
	redis *redistest.Server
	seq   int // numbers the runs' key prefixes, so no run sees another's state
}

// startCluster starts the redis-server and draws the cluster key the
// nodes inherit. It returns nil, with a message, when there is no
// redis-server binary.
func startCluster(cfg config) (*clusterRun, error) {
	var key [32]byte
	_, _ = rand.Read(key[:])
	if err := os.Setenv("WSSAFE_BENCH_CLUSTER_KEY", hex.EncodeToString(key[:])); err != nil {
		return nil, err
	}
	var wrap []string
	if cfg.serverCPUs != "" {
		wrap = []string{"taskset", "-c", cfg.serverCPUs}
	}
	rs, err := redistest.Launch(redistest.Config{Wrapper: wrap})
	if errors.Is(err, redistest.ErrNotFound) {
		log.Printf("cluster: skipped: %v", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &clusterRun{redis: rs}, nil
}

func (c *clusterRun) stop() {
	if c != nil {
		c.redis.Close()
	}
}

// runCluster measures every cluster configuration of a round: for each
// subscriber count and setup in turn (rotated between rounds), fresh
// nodes and subscribers, then each message size paced and saturated.
func runCluster(cfg config, cr *clusterRun, round int, res *results) error {
	if cr == nil {
		return nil
	}
	for _, subs := range cfg.clusterSubs {
		for _, su := range rotate(clusterSetups(cfg), round) {
			if err := clusterSetupRun(cfg, cr, round, res, su, subs); err != nil {
				return fmt.Errorf("cluster %s x%d, %d subscribers: %w", su.setup, su.nodes, subs, err)
			}
		}
	}
	return nil
}

// clusterSetupRun starts su's nodes, spreads subs subscribers over them
// and measures each size, paced and saturated.
func clusterSetupRun(cfg config, cr *clusterRun, round int, res *results, su clusterSetup, subs int) error {
	cr.seq++
	prefix := fmt.Sprintf("bench%d", cr.seq)
	nodes := make([]*server, 0, su.nodes)
	defer func() {
		for _, s := range nodes {
			s.stop()
		}
	}()
	for i := range su.nodes {
		args := []string{"-topic"}
		if su.setup == "redis" {
			args = append(args, "-redis", cr.redis.URL(0), "-node", fmt.Sprintf("n%d", i+1), "-prefix", prefix)
		}
		s, err := startServer(cfg, "wssafe", args...)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, s)
	}
	// Subscriber i is on node i mod N; latencies are split by that.
	perNode := make([][]*wsclient.Conn, su.nodes)
	var conns []*wsclient.Conn
	nodeOf := make([]int, subs)
	for i := range subs {
		nodeOf[i] = i % su.nodes
	}
	for k, s := range nodes {
		n := 0
		for _, v := range nodeOf {
			if v == k {
				n++
			}
		}
		cs, err := s.dialMany(cfg, n)
		if err != nil {
			for _, cs := range perNode {
				closeAll(cs)
			}
			return fmt.Errorf("node %d: %w", k+1, err)
		}
		perNode[k] = cs
	}
	// Interleave back into subscriber order.
	next := make([]int, su.nodes)
	for _, k := range nodeOf {
		conns = append(conns, perNode[k][next[k]])
		next[k]++
	}
	sb := newSubscribers(conns)
	defer sb.close()
	if err := probe(nodes[0], sb); err != nil {
		return err
	}
	for _, size := range cfg.clusterSizes {
		for _, paced := range []bool{true, false} {
			r, attempts, err := leastDisturbed(cfg, nodes[0], func() (clusterResult, error) {
				return measureClusterOnce(cfg, cr, nodes, sb, nodeOf, su, size, paced)
			}, func(r clusterResult) (float64, float64) {
				if paced {
					return r.Others, 1
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
			log.Printf("round %d %-26s %5d subs %5d B %-9s: %8.0f deliveries/s (%6.0f publishes/s, %8.0f cross-node) cpu %6.0f ns/delivery (redis %5.0f, %3.0f%% busy, load %3.0f%%) local p50 %6.2f p99 %6.2f ms, cross-node p50 %6.2f p99 %6.2f ms, dropped %.0f; others %3.0f%% (attempt %d)",
				round+1, r.name(), subs, size, mode, r.PerSec, r.MsgsPerSec, r.RemotePerSec, r.CPUns, r.RedisCPUns, r.Busy*100, r.LoadBusy*100,
				r.P50Local, r.P99Local, r.P50Remote, r.P99Remote, r.Dropped, r.Others*100, r.Attempts)
			res.Cluster = append(res.Cluster, r)
		}
	}
	return nil
}

// probe has the publishing node publish probes until every subscriber,
// on every node, has seen one: then every node's interest in the topic
// has reached the publisher, and no measured message is lost to a
// subscription still on its way.
func probe(s *server, sb *subscribers) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.debug + "/probe")
		if err != nil {
			return err
		}
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond) // the probe's way through Redis; polled, there is no event to wait on
		missing := 0
		for i := range sb.probed {
			if !sb.probed[i].Load() {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if err := sb.failure(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 15 s, %d of %d subscribers had not received a probe", missing, len(sb.probed))
		}
	}
}

// clusterCPU is the CPU time of every node and of redis-server.
type clusterCPU struct {
	nodes, redis, self, machine time.Duration
}

func clusterSnapshot(cr *clusterRun, nodes []*server) (clusterCPU, error) {
	var c clusterCPU
	var errs []error
	for _, s := range nodes {
		t, err := s.cpuTime()
		c.nodes += t
		errs = append(errs, err)
	}
	var err1, err2, err3 error
	c.redis, err1 = procCPU(fmt.Sprintf("/proc/%d/stat", cr.redis.Pid()))
	c.self, err2 = procCPU("/proc/self/stat")
	c.machine, err3 = machineBusy()
	return c, errors.Join(append(errs, err1, err2, err3)...)
}

// dropped is the publications node s's backplane dropped so far.
func (s *server) dropped() (float64, error) {
	resp, err := http.Get("http://" + s.debug + "/backplane")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Dropped float64 `json:"publish_errors"`
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.Dropped, err
}

func measureClusterOnce(cfg config, cr *clusterRun, nodes []*server, sb *subscribers, nodeOf []int, su clusterSetup, size int, paced bool) (clusterResult, error) {
	pub := nodes[0]
	n := len(sb.conns)
	local := 0
	for _, k := range nodeOf {
		if k == 0 {
			local++
		}
	}
	rate, window := 0.0, cfg.window
	if paced {
		rate = cfg.clusterRate / float64(n)
		window = max(window, min(int(rate/2), peers.SubscriberQueue/2))
	}
	ctl, err := pub.startBroadcast(size, rate, window, local, "zeros")
	if err != nil {
		return clusterResult{}, err
	}
	sb.attach(ctl)
	defer sb.ctl.Store(nil)
	time.Sleep(cfg.warmup)
	drop0, err0 := pub.dropped()
	c0, err1 := clusterSnapshot(cr, nodes)
	d0 := sb.delivered.Load()
	t0 := time.Now()
	sb.record.Store(paced)
	time.Sleep(cfg.duration)
	sb.record.Store(false)
	d1 := sb.delivered.Load()
	elapsed := time.Since(t0)
	c1, err2 := clusterSnapshot(cr, nodes)
	drop1, err3 := pub.dropped()
	sent, err4 := ctl.stop()
	if err := errors.Join(err0, err1, err2, err3, err4, sb.failure()); err != nil {
		return clusterResult{}, err
	}
	if err := sb.settle(sent); err != nil {
		return clusterResult{}, err
	}
	deliveries := float64(d1 - d0)
	if deliveries == 0 {
		return clusterResult{}, errors.New("no message delivered")
	}
	sys := (c1.nodes - c0.nodes) + (c1.redis - c0.redis)
	r := clusterResult{
		Setup: su.setup, Nodes: su.nodes, Subscribers: n, Size: size, Paced: paced,
		PerSec:       deliveries / elapsed.Seconds(),
		RemotePerSec: deliveries / elapsed.Seconds() * float64(n-local) / float64(n),
		MsgsPerSec:   deliveries / elapsed.Seconds() / float64(n),
		CPUns:        float64(sys) / deliveries,
		RedisCPUns:   float64(c1.redis-c0.redis) / deliveries,
		Busy:         float64(sys) / float64(elapsed),
		LoadBusy:     float64(c1.self-c0.self) / float64(elapsed),
		Others:       float64((c1.machine-c0.machine)-sys-(c1.self-c0.self)) / float64(elapsed),
		Dropped:      drop1 - drop0,
	}
	var loc, rem []time.Duration
	for i := range sb.lat {
		sb.latMu[i].Lock()
		if nodeOf[i] == 0 {
			loc = append(loc, sb.lat[i]...)
		} else {
			rem = append(rem, sb.lat[i]...)
		}
		sb.lat[i] = sb.lat[i][:0]
		sb.latMu[i].Unlock()
	}
	r.P50Local, r.P99Local = percentiles(loc)
	r.P50Remote, r.P99Remote = percentiles(rem)
	return r, nil
}

// percentiles returns the p50 and p99 of d in milliseconds (0 when empty).
func percentiles(d []time.Duration) (float64, float64) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	return ms(d[len(d)/2]), ms(d[len(d)*99/100])
}

// clusterMedian is the median of every field over the rounds of one
// configuration.
func clusterMedian(res *results, su clusterSetup, subs, size int, paced bool) (clusterResult, bool) {
	var f [13][]float64
	for _, r := range res.Cluster {
		if r.Setup == su.setup && r.Nodes == su.nodes && r.Subscribers == subs && r.Size == size && r.Paced == paced {
			for i, v := range []float64{r.PerSec, r.RemotePerSec, r.MsgsPerSec, r.CPUns, r.RedisCPUns, r.Busy, r.LoadBusy,
				r.P50Local, r.P99Local, r.P50Remote, r.P99Remote, r.Dropped, r.Others} {
				f[i] = append(f[i], v)
			}
		}
	}
	if len(f[0]) == 0 {
		return clusterResult{}, false
	}
	m := func(i int) float64 { return median(f[i]) }
	return clusterResult{Setup: su.setup, Nodes: su.nodes, Subscribers: subs, Size: size, Paced: paced,
		PerSec: m(0), RemotePerSec: m(1), MsgsPerSec: m(2), CPUns: m(3), RedisCPUns: m(4), Busy: m(5), LoadBusy: m(6),
		P50Local: m(7), P99Local: m(8), P50Remote: m(9), P99Remote: m(10), Dropped: m(11), Others: m(12)}, true
}

// clusterRatio is the median of each round's f(setup) / f(single node).
func clusterRatio(res *results, su clusterSetup, subs, size int, paced bool, f func(clusterResult) float64) (float64, bool) {
	key := func(r clusterResult) (string, int, bool) {
		return fmt.Sprintf("%s/%d", r.Setup, r.Nodes), r.Round, r.Subscribers == subs && r.Size == size && r.Paced == paced
	}
	return paired(res.Cluster, key, fmt.Sprintf("%s/%d", su.setup, su.nodes), "single/1",
		func(x, y clusterResult) float64 { return f(x) / f(y) })
}

func reportCluster(w io.Writer, cfg config, res *results) {
	if len(res.Cluster) == 0 {
		fmt.Fprintln(w, "\nCluster: not measured (no redis-server in PATH).")
		return
	}
	fmt.Fprintf(w, "\nCluster, paced: Hub.Publish on node 1 to a topic every subscriber joined, subscribers spread over the nodes round-robin, %.0f deliveries/s in all, median of %d rounds of %s. Latency is from the publish call to the subscriber's read: local on node 1, cross-node through Redis. System CPU is every node's and redis-server's; ratios against the single node are the median of each round's ratio.\n\n",
		cfg.clusterRate, cfg.rounds, cfg.duration)
	fmt.Fprintln(w, "| subscribers | size | setup | deliveries/s | system CPU ns/delivery | vs single | of which Redis | local p50 ms | local p99 ms | cross-node p50 ms | cross-node p99 ms |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	lat := func(v float64, remote bool, r clusterResult) string {
		if remote && r.Nodes == 1 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	for _, subs := range cfg.clusterSubs {
		for _, size := range cfg.clusterSizes {
			for _, su := range clusterSetups(cfg) {
				r, ok := clusterMedian(res, su, subs, size, true)
				if !ok {
					continue
				}
				fmt.Fprintf(w, "| %d | %d | %s | %.0f | %.0f | %s | %.0f | %s | %s | %s | %s |\n", subs, size, r.name(), r.PerSec, r.CPUns,
					ratio(clusterRatio(res, su, subs, size, true, func(r clusterResult) float64 { return r.CPUns })), r.RedisCPUns,
					lat(r.P50Local, false, r), lat(r.P99Local, false, r), lat(r.P50Remote, true, r), lat(r.P99Remote, true, r))
			}
		}
	}
	fmt.Fprintf(w, "\nCluster, saturated: at most %d messages in flight (counted from the last one every subscriber, on every node, has), median of %d rounds of %s. Publishes/s is messages through Redis (with 2 or more nodes); load busy near 100%% means the subscribers set the pace.\n\n",
		cfg.window, cfg.rounds, cfg.duration)
	fmt.Fprintln(w, "| subscribers | size | setup | deliveries/s | vs single | publishes/s | cross-node deliveries/s | system CPU ns/delivery | system busy | load busy | dropped |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, subs := range cfg.clusterSubs {
		for _, size := range cfg.clusterSizes {
			for _, su := range clusterSetups(cfg) {
				r, ok := clusterMedian(res, su, subs, size, false)
				if !ok {
					continue
				}
				fmt.Fprintf(w, "| %d | %d | %s | %.0f | %s | %.0f | %.0f | %.0f | %.0f%% | %.0f%% | %.0f |\n", subs, size, r.name(), r.PerSec,
					ratio(clusterRatio(res, su, subs, size, false, func(r clusterResult) float64 { return r.PerSec })),
					r.MsgsPerSec, r.RemotePerSec, r.CPUns, r.Busy*100, r.LoadBusy*100, r.Dropped)
			}
		}
	}
}
