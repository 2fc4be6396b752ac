package wsprom_test

// The Grafana dashboard, dashboards/wssafe.json, against the collector:
// every metric and label its queries use is one a Metrics describes, and
// every metric a Metrics describes is on the dashboard, so that the two
// cannot drift apart.

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	wsprom "github.com/wssafe/wssafe/prometheus"
)

// grafanaDashboard is the part of Grafana's dashboard model the test reads.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string             `json:"name"`
			Type       string             `json:"type"`
			Query      json.RawMessage    `json:"query"`
			Definition string             `json:"definition"`
			Datasource *grafanaDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Panels  []grafanaPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID        string             `json:"refId"`
		Expr         string             `json:"expr"`
		LegendFormat string             `json:"legendFormat"`
		Datasource   *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// describedMetric is what the test knows of one of the collector's metrics.
type describedMetric struct {
	labels    []string // variable labels
	histogram bool
}

// described returns the metrics a Metrics describes, by name, with their
// variable labels, and which are histograms (from a scrape: a Desc does
// not tell its type). A Desc exposes its name and labels only through its
// String form, so that is parsed.
func described(t *testing.T) map[string]*describedMetric {
	t.Helper()
	m := wsprom.New(wsprom.Options{})
	ch := make(chan *prometheus.Desc)
	go func() {
		m.Describe(ch)
		close(ch)
	}()
	descRE := regexp.MustCompile(`^Desc\{fqName: "([a-z0-9_:]+)", .*variableLabels: \{([^}]*)\}\}$`)
	out := map[string]*describedMetric{}
	for d := range ch {
		sm := descRE.FindStringSubmatch(d.String())
		if sm == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		var labels []string
		if sm[2] != "" {
			labels = strings.Split(sm[2], ",")
		}
		out[sm[1]] = &describedMetric{labels: labels}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetType() == dto.MetricType_HISTOGRAM {
			if dm := out[f.GetName()]; dm != nil {
				dm.histogram = true
			}
		}
	}
	return out
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile("dashboards/wssafe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboards/wssafe.json is not JSON: %v", err)
	}
	return d
}

// panels returns every panel, those in collapsed rows included.
func (d grafanaDashboard) panels() []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// targetLabels are the labels Prometheus adds to every series of a scrape,
// which the dashboard's variables select on.
var targetLabels = []string{"job", "instance"}

var (
	metricRE   = regexp.MustCompile(`\b(wssafe_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendRE   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// metricOf returns the described metric a series name in a query belongs
// to: the name itself, or a histogram's, for its _bucket, _sum and _count
// series; bucket is true for a _bucket series, which has the le label.
func metricOf(metrics map[string]*describedMetric, series string) (name string, bucket, ok bool) {
	if _, ok := metrics[series]; ok {
		return series, false, !metrics[series].histogram
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(series, suffix)
		if dm := metrics[base]; found && dm != nil && dm.histogram {
			return base, suffix == "_bucket", true
		}
	}
	return "", false, false
}

// reporter is the part of testing.T that checkQuery reports to.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// errorCount is a reporter that counts the errors reported.
type errorCount int

func (*errorCount) Helper()                 {}
func (n *errorCount) Errorf(string, ...any) { *n++ }

// checkQuery checks one PromQL query of the dashboard and returns the
// metrics it reads: each is one the collector describes (a histogram's
// through its series), and every label it selects, groups or names in its
// legend is one of theirs or a target label.
func checkQuery(t reporter, where, q, legend string, metrics map[string]*describedMetric) []string {
	t.Helper()
	if !balanced(q) {
		t.Errorf("%s: unbalanced brackets or quotes: %s", where, q)
	}
	var used []string
	known := slices.Clone(targetLabels)
	for _, sm := range metricRE.FindAllStringSubmatch(q, -1) {
		name, bucket, ok := metricOf(metrics, sm[1])
		if !ok {
			t.Errorf("%s: %s is not a series the collector exports: %s", where, sm[1], q)
			continue
		}
		used = append(used, name)
		labels := append(slices.Clone(targetLabels), metrics[name].labels...)
		if bucket {
			labels = append(labels, "le")
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(sm[2], -1) {
			if !slices.Contains(labels, mm[1]) {
				t.Errorf("%s: %s has no label %q: %s", where, sm[1], mm[1], q)
			}
		}
		known = append(known, labels...)
	}
	if len(used) == 0 && !strings.Contains(q, "wssafe_") {
		t.Errorf("%s: a query that reads no wssafe metric: %q", where, q)
	}
	var kept []string
	for _, gm := range groupingRE.FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(gm[1], ",") {
			l = strings.TrimSpace(l)
			if !slices.Contains(known, l) {
				t.Errorf("%s: groups by %q, a label none of its metrics has: %s", where, l, q)
			}
			kept = append(kept, l)
		}
	}
	for _, lm := range legendRE.FindAllStringSubmatch(legend, -1) {
		if !slices.Contains(kept, lm[1]) {
			t.Errorf("%s: the legend names %q, which the query does not keep: %s", where, lm[1], q)
		}
	}
	return used
}

// balanced reports whether q's brackets pair up and its strings end,
// the syntax slip a hand edit makes most (CI's promtool, where present,
// parses the queries in full).
func balanced(q string) bool {
	var open []rune
	var quote rune
	escaped := false
	for _, c := range q {
		switch {
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == quote:
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(' || c == '{' || c == '[':
			open = append(open, c)
		case c == ')' || c == '}' || c == ']':
			pair := map[rune]rune{')': '(', '}': '{', ']': '['}[c]
			if len(open) == 0 || open[len(open)-1] != pair {
				return false
			}
			open = open[:len(open)-1]
		}
	}
	return quote == 0 && len(open) == 0
}

func TestDashboardQueriesReadOnlyExportedMetrics(t *testing.T) {
	metrics := described(t)
	if len(metrics) == 0 {
		t.Fatal("the collector describes nothing")
	}
	d := readDashboard(t)
	onDashboard := map[string]bool{}
	queries := 0
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			where := p.Title + "/" + tg.RefID
			for _, name := range checkQuery(t, where, tg.Expr, tg.LegendFormat, metrics) {
				onDashboard[name] = true
			}
			queries++
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			checkQuery(t, "variable "+v.Name, v.Definition, "", metrics)
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries on the dashboard", queries)
	}
	for name := range metrics {
		if !onDashboard[name] {
			t.Errorf("%s is exported but on no panel of the dashboard", name)
		}
	}
}

// A query that names a metric the collector does not export, or a label
// its metric lacks, is caught.
func TestDashboardCheckCatchesDrift(t *testing.T) {
	metrics := described(t)
	for _, q := range []struct{ expr, legend string }{
		{`sum(rate(wssafe_messages_in_total[5m]))`, ""},
		{`sum by (code) (rate(wssafe_handshakes_refused_total[5m]))`, ""},
		{`sum(rate(wssafe_handshakes_refused_total{code="1008"}[5m]))`, ""},
		{`sum(rate(wssafe_handshakes_refused_total[5m]))`, "{{reason}}"},
		{`histogram_quantile(0.99, sum by (le) (rate(wssafe_handler_duration_bucket[5m])))`, ""},
		{`sum(wssafe_sessions_active_bucket)`, ""},
		{`sum(rate(wssafe_messages_total{direction="sent}[5m]))`, ""},
		{`sum(rate(wssafe_messages_total[5m])`, ""},
	} {
		var n errorCount
		checkQuery(&n, "drift", q.expr, q.legend, metrics)
		if n == 0 {
			t.Errorf("not caught: %q legend %q", q.expr, q.legend)
		}
	}
}

func TestDashboardIsAGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed for a stable import", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d: older than Grafana 11's", d.SchemaVersion)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Name == "datasource" && (v.Type != "datasource" || string(v.Query) != `"prometheus"`) {
			t.Errorf("the datasource variable is of type %q, query %s: want a Prometheus data source", v.Type, v.Query)
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not use the datasource variable", v.Name)
		}
	}
	if !slices.Contains(vars, "datasource") {
		t.Error("no datasource variable")
	}
	type rect struct{ x, y, w, h int }
	ids := map[int]string{}
	var placed []rect
	for _, p := range d.panels() {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, g)
		}
		for _, r := range placed {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				t.Errorf("panel %q at %+v overlaps another", p.Title, g)
			}
		}
		placed = append(placed, rect{g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q/%s does not use the datasource variable", p.Title, tg.RefID)
			}
		}
	}
}
