package prometheus

// The monitoring configuration (this directory and ops/grafana) checked against promtool, the
// running server and a real Prometheus:
//
//   - TestPromtool: promtool check config, check rules and test rules;
//   - TestMonitoringConfig: every alert and dashboard expression parses as PromQL, every alert
//     has a unit test and a runbook link, the dashboard has the panels it must;
//   - TestRunbookCoversEveryAlert (runbook_test.go): ops/RUNBOOK.md has a section for exactly
//     the alerts, each naming dashboard panels that exist;
//   - TestMetricsExported: the server, driven through every resolver, exports every threadline_
//     metric the alerts and the dashboard name;
//   - TestPrometheusEvaluatesDashboard: a real Prometheus scrapes the server and evaluates the
//     dashboard's cache hit ratio and p95 latency to numbers, and every alert rule without error;
//   - TestExporterMetrics: the exporters export the redis_, pg_ and node_ metrics named.
//
// promtool, prometheus and the exporters come from Debian's packages (make ops-deps). Without
// them the tests fail in CI (CI set) and are skipped elsewhere.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

const (
	alertsFile     = "alerts.yml"
	alertTestsFile = "alerts_test.yml"
	promConfigFile = "prometheus.yml"
	dashboardFile  = "../grafana/dashboards/threadline.json"
	runbookFile    = "../RUNBOOK.md"
	composeFile    = "../../docker-compose.yml"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// The old report's nine panels, which the dashboard must keep (it may have more).
var requiredPanels = []string{
	"Request rate",
	"GraphQL latency (p50 / p95 / p99)",
	"Error ratio",
	"Cache hit ratio",
	"Cache operations",
	"PgBouncer pools",
	"PostgreSQL connections and transactions",
	"Redis memory and evictions",
	"Active subscriptions",
}

// lookTool finds a command the monitoring tests need: missing, it fails the test in CI and
// skips it elsewhere.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	return testenv.LookPath(t, name, "install it with `make ops-deps` (apt package "+pkg+")")
}

func TestPromtool(t *testing.T) {
	testenv.SkipShort(t, "runs promtool")
	promtool := lookTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "config", promConfigFile}, // also checks the rule files it names
		{"check", "rules", alertsFile},
		{"test", "rules", alertTestsFile},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// alertRules is the shape of alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert, Record, Expr, For string
			Labels, Annotations      map[string]string
		}
	}
}

func readAlerts(t *testing.T) alertRules {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rules
}

// dashboardPanel is the part of a Grafana panel the tests read; rows nest panels.
type dashboardPanel struct {
	Title   string
	Type    string
	Targets []struct {
		Expr         string
		LegendFormat string
		RefID        string `json:"refId"`
	}
	Panels []dashboardPanel
}

type dashboard struct {
	UID        string
	Panels     []dashboardPanel
	Templating struct {
		List []struct {
			Name, Type, Definition string
		}
	}
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels returns the dashboard's panels, rows left out and their panels included.
func (d dashboard) panels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVar matches Grafana's variable references: $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z0-9_]+)?\}|\$([A-Za-z0-9_]+)`)

// expandGrafana replaces the dashboard's variables as Grafana would: the rate interval by
// rateInterval and the instance selection by "all instances".
func expandGrafana(expr, rateInterval string) (string, error) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return rateInterval
		case "instance":
			return ".*"
		}
		unknown = append(unknown, name)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %v (teach expandGrafana about them)", unknown)
	}
	return out, nil
}

// monitoringExpr is a PromQL expression of the alerts or the dashboard, ready to evaluate.
type monitoringExpr struct {
	where string // for messages: the alert, or the panel and legend
	query string
}

// monitoringExprs returns every expression of the alert rules and the dashboard, the
// dashboard's with its variables expanded for the given rate interval.
func monitoringExprs(t *testing.T, rateInterval string) []monitoringExpr {
	t.Helper()
	var out []monitoringExpr
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			out = append(out, monitoringExpr{where: alertsFile + ": " + r.Alert + r.Record, query: r.Expr})
		}
	}
	for _, p := range readDashboard(t).panels() {
		for _, target := range p.Targets {
			q, err := expandGrafana(target.Expr, rateInterval)
			if err != nil {
				t.Errorf("dashboard panel %q: %v", p.Title, err)
				continue
			}
			out = append(out, monitoringExpr{where: fmt.Sprintf("dashboard panel %q (%s)", p.Title, target.LegendFormat), query: q})
		}
	}
	return out
}

var promqlParser = parser.NewParser(parser.Options{})

// metricNames parses an expression and returns the metric names it selects.
func metricNames(e monitoringExpr) ([]string, error) {
	expr, err := promqlParser.ParseExpr(e.query)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

// referencedMetrics returns every threadline_ metric the alerts and the dashboard name (the
// dashboard's variable queries included), each with where it is named. It fails the test for
// an expression that does not parse as PromQL.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	for _, e := range monitoringExprs(t, "5m") {
		names, err := metricNames(e)
		if err != nil {
			t.Errorf("%s: not PromQL: %v\n%s", e.where, err, e.query)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: selects no metric: %s", e.where, e.query)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "threadline_") {
				refs[n] = append(refs[n], e.where)
			}
		}
	}
	labelValues := regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
	for _, v := range readDashboard(t).Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil && strings.HasPrefix(m[1], "threadline_") {
			refs[m[1]] = append(refs[m[1]], "dashboard variable $"+v.Name)
		}
	}
	return refs
}

// TestMonitoringConfig checks the alert rules and the dashboard without any server: every
// expression parses as PromQL, every alert is unit-tested and documented, the dashboard has its
// panels.
func TestMonitoringConfig(t *testing.T) {
	refs := referencedMetrics(t) // fails on expressions that do not parse
	if len(refs) < 20 {
		t.Errorf("the alerts and the dashboard name only %d threadline_ metrics", len(refs))
	}

	// Every alert fires in at least one unit test, and links to its runbook section.
	raw, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := 0
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: %s needs a case where it fires and one where it does not (fires %v, quiet %v)", r.Alert, alertTestsFile, fires[r.Alert], quiet[r.Alert])
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, sev)
			}
			if want := "ops/RUNBOOK.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
	// The alerts the server needs: p95 latency, error ratio, low cache hit ratio, breaker open, PgBouncer
	// clients waiting, pgx pool saturation, Redis memory and evictions, instance down.
	if alerts < 9 {
		t.Errorf("%d alerts, want at least nine", alerts)
	}

	d := readDashboard(t)
	var titles []string
	for _, p := range d.panels() {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
	}
	for _, want := range requiredPanels {
		if !slices.Contains(titles, want) {
			t.Errorf("the dashboard has no panel %q (panels: %q)", want, titles)
		}
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
}

// monitoredServer is a Threadline server (app/apptest) over a fresh database and Redis, with
// a few users and conversations.
type monitoredServer struct {
	*apptest.Server
	users []int64
	convs []int64
	logs  *apptest.Buffer // warnings and errors

	mu   sync.Mutex
	sent int // messages sent by the traffic, for unique client message ids
}

func startMonitoredServer(t *testing.T) *monitoredServer {
	t.Helper()
	logs := &apptest.Buffer{}
	// Production mode, the rate limit off: the traffic below is several users' worth from one
	// client, which is not what is measured here.
	srv := apptest.Start(t, apptest.Options{App: app.Options{
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}})
	s := &monitoredServer{Server: srv, logs: logs}
	s.users = dbtest.Users(t, srv.Direct, "Alice", "Bob", "Carol")
	s.convs = []int64{
		dbtest.Conversation(t, srv.Direct, "Alice and Bob", s.users[0], s.users[1]),
		dbtest.Conversation(t, srv.Direct, "Alice and Carol", s.users[0], s.users[2]),
	}
	dbtest.Messages(t, srv.Direct, s.convs[0], s.users[:2], 120)
	dbtest.Messages(t, srv.Direct, s.convs[1], []int64{s.users[0], s.users[2]}, 30)
	return s
}

// queryOK posts a request as user (0: anonymous) that must succeed without errors.
func (s *monitoredServer) queryOK(ctx context.Context, user int64, query string, vars map[string]any) (apptest.Response, error) {
	reply, err := s.Client(user).Do(ctx, query, vars)
	if err == nil && !reply.OK() {
		err = fmt.Errorf("status %d, errors: %+v", reply.Status, reply.Errors)
	}
	if err != nil {
		return reply, fmt.Errorf("%.60s...: %w", strings.Join(strings.Fields(query), " "), err)
	}
	return reply, nil
}

const overviewQuery = `query Overview {
  me { id name }
  conversations(first: 10) {
    edges {
      cursor
      node {
        id title createdAt
        members { id name }
        lastMessage { id seq conversationId body createdAt clientMessageId sender { id name } }
        messages(limit: 10) { items { id seq body sender { id name } } limit offset hasMore }
        history(first: 5) { edges { cursor node { id seq sender { name } } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}`

const conversationQuery = `query Conversation($id: ID!, $before: String) {
  conversation(id: $id) {
    id title
    messages(limit: 20, offset: 10) { items { seq body sender { name } } hasMore }
    history(first: 5, before: $before) { edges { node { seq } } pageInfo { hasNextPage endCursor } }
  }
}`

// traffic runs one round of requests through every query and mutation resolver, and a few
// requests that fail with the errors clients cause. With create, it also creates a conversation.
func (s *monitoredServer) traffic(ctx context.Context, create bool) error {
	alice := s.users[0]
	if _, err := s.queryOK(ctx, alice, overviewQuery, nil); err != nil {
		return err
	}
	// Each conversation twice: by the first history page, then by the page before its end
	// cursor. Both read the same offset page, so the second read is a cache hit.
	for _, id := range s.convs {
		vars := map[string]any{"id": strconv.FormatInt(id, 10), "before": nil}
		for range 2 {
			reply, err := s.queryOK(ctx, alice, conversationQuery, vars)
			if err != nil {
				return err
			}
			var data struct {
				Conversation struct {
					History struct{ PageInfo struct{ EndCursor string } }
				}
			}
			if err := json.Unmarshal(reply.Data, &data); err != nil || data.Conversation.History.PageInfo.EndCursor == "" {
				return fmt.Errorf("Conversation %d: %s: %v", id, reply.Data, err)
			}
			conv := data.Conversation
			vars["before"] = conv.History.PageInfo.EndCursor
		}
	}
	s.mu.Lock()
	s.sent++
	n := s.sent
	s.mu.Unlock()
	if _, err := s.queryOK(ctx, alice, `mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq conversationId body clientMessageId createdAt sender { id name } }
}`, map[string]any{"input": map[string]any{"conversationId": strconv.FormatInt(s.convs[0], 10), "body": fmt.Sprint("traffic ", n), "clientMessageId": fmt.Sprint("traffic-", n)}}); err != nil {
		return err
	}
	if create {
		if _, err := s.queryOK(ctx, alice, `mutation Create($input: CreateConversationInput!) {
  createConversation(input: $input) { id title createdAt members { id name } }
}`, map[string]any{"input": map[string]any{"title": "Created by the monitoring test", "memberIds": []string{strconv.FormatInt(s.users[1], 10)}}}); err != nil {
			return err
		}
	}
	// Errors clients cause, each with its public code.
	for _, tc := range []struct {
		user  int64
		query string
		code  string
	}{
		{0, `query Anonymous { me { id } }`, "UNAUTHENTICATED"},
		{alice, `query Broken { me { id }`, "BAD_USER_INPUT"},
		{alice, `query Invalid { conversation(id: "1") { nope } }`, "BAD_USER_INPUT"},
	} {
		reply, err := s.Client(tc.user).Do(ctx, tc.query, nil)
		if err != nil {
			return err
		}
		if !slices.Contains(reply.Codes(), tc.code) {
			return fmt.Errorf("%s: codes %v, want %s", tc.query, reply.Codes(), tc.code)
		}
	}
	if _, err := s.queryOK(ctx, 0, `{ __typename }`, nil); err != nil {
		return err
	}
	return nil
}

// subscribe runs a messageAdded subscription over WebSocket (graphql-transport-ws): it replays
// the conversation's last two messages, then receives one sent while it listens.
func (s *monitoredServer) subscribe(t *testing.T) {
	t.Helper()
	conv := strconv.FormatInt(s.convs[0], 10)
	var last struct {
		Conversation struct{ LastMessage struct{ Seq int64 } }
	}
	s.Client(s.users[0]).Query(t, `query Last($id: ID!) { conversation(id: $id) { lastMessage { seq } } }`, map[string]any{"id": conv}, &last)
	after := last.Conversation.LastMessage.Seq - 2

	c := s.Dial(t, s.users[0])
	c.Subscribe("1", `subscription Live($id: ID!, $after: Int) { messageAdded(conversationId: $id, afterSeq: $after) { id seq body sender { name } } }`,
		map[string]any{"id": conv, "after": after})
	apptest.CheckSeqs(t, "the replay", apptest.Seqs(c.Messages("1", 2, 20*time.Second)), after+1, after+2)
	var sent struct{ SendMessage struct{ Seq int64 } }
	s.Client(s.users[1]).Query(t, `mutation Reply($input: SendMessageInput!) { sendMessage(input: $input) { seq } }`,
		map[string]any{"input": map[string]any{"conversationId": conv, "body": "live", "clientMessageId": "live-1"}}, &sent)
	apptest.CheckSeqs(t, "live", apptest.Seqs(c.Messages("1", 1, 20*time.Second)), sent.SendMessage.Seq, sent.SendMessage.Seq)
	c.Complete("1")
}

// scrape returns the server's /metrics, parsed.
func (s *monitoredServer) scrape(t *testing.T) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	status, body := s.GetOps("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	raw := []byte(body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families, raw
}

// isExported reports whether the scraped families provide the metric name a query selects: the
// family itself, or a histogram's (or summary's) _bucket, _sum or _count series.
func isExported(families map[string]*dto.MetricFamily, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := families[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// metricValue returns the value of the series of family name whose labels include want (the sum
// over several; a histogram's sample count), and whether there is one.
func metricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		found = true
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			sum += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			sum += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			sum += float64(m.GetHistogram().GetSampleCount())
		default:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// TestMetricsExported drives the server through every resolver and checks that /metrics
// exports every threadline_ metric that the alert rules and the dashboard name, that the
// exported ones follow Prometheus' naming conventions, and that the traffic shows in them.
func TestMetricsExported(t *testing.T) {
	s := startMonitoredServer(t)
	ctx := t.Context()
	for i := range 2 {
		if err := s.traffic(ctx, i == 0); err != nil {
			t.Fatalf("traffic: %v", err)
		}
	}
	s.subscribe(t)

	families, raw := s.scrape(t)
	refs := referencedMetrics(t)
	var missing []string
	for name, where := range refs {
		if !isExported(families, name) {
			sort.Strings(where)
			missing = append(missing, fmt.Sprintf("%s (named in %s)", name, strings.Join(slices.Compact(where), "; ")))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not exported by the server: %s", m)
	}

	// The traffic shows in the server's own metrics.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"threadline_graphql_operations_total", map[string]string{"operation": "Overview", "type": "query"}},
		{"threadline_graphql_operations_total", map[string]string{"operation": "Send", "type": "mutation"}},
		{"threadline_graphql_operations_total", map[string]string{"operation": "Create", "type": "mutation"}},
		{"threadline_graphql_operations_total", map[string]string{"operation": "anonymous", "type": "query"}},
		{"threadline_graphql_operation_duration_seconds", map[string]string{"operation": "Conversation", "type": "query"}},
		{"threadline_graphql_errors_total", map[string]string{"code": "UNAUTHENTICATED"}},
		{"threadline_graphql_errors_total", map[string]string{"code": "BAD_USER_INPUT"}},
		{"threadline_sql_statements_total", nil},
		{"threadline_sql_statement_duration_seconds", nil},
		{"threadline_dataloader_batch_size", map[string]string{"loader": "memberships"}},
		{"threadline_db_pool_acquires_total", nil},
		{"threadline_db_pool_max_conns", nil},
		{"threadline_http_requests_total", map[string]string{"route": "/query", "code": "200"}},
		{"threadline_http_request_duration_seconds", map[string]string{"route": "/query"}},
		{"threadline_cache_misses_total", nil},
		{"threadline_cache_hits_total", nil},
		{"go_goroutines", nil},
		{"process_resident_memory_bytes", nil},
	} {
		if v, ok := metricValue(families, c.name, c.labels); !ok || v <= 0 {
			t.Errorf("%s%v = %v (exported: %v), want > 0 after the traffic", c.name, c.labels, v, ok)
		}
	}
	if v, _ := metricValue(families, "threadline_graphql_operations_total", map[string]string{"operation": "Live", "type": "subscription"}); v != 1 {
		t.Errorf("subscription Live counted %v times, want 1", v)
	}
	if v, _ := metricValue(families, "threadline_subscription_deliveries_total", nil); v < 3 {
		t.Errorf("threadline_subscription_deliveries_total = %v, want >= 3", v)
	}
	if v, _ := metricValue(families, "threadline_graphql_errors_total", map[string]string{"code": "INTERNAL_SERVER_ERROR"}); v != 0 {
		t.Errorf("%v internal errors during the traffic\n%s", v, s.logs.String())
	}
	// Operation names stay bounded: only names the traffic used.
	for _, m := range families["threadline_graphql_operations_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "operation" && !slices.Contains([]string{"Overview", "Conversation", "Send", "Create", "Anonymous", "Broken", "Invalid", "Last", "Live", "Reply", "anonymous"}, l.GetValue()) {
				t.Errorf("unexpected operation label %q", l.GetValue())
			}
		}
	}

	// Naming conventions: promtool's linter on the scrape, for our own metrics.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(raw)
		out, _ := cmd.CombinedOutput() // exits 3 on lint problems, which are filtered here
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "threadline_") {
				t.Errorf("promtool check metrics: %s", line)
			}
		}
	}
	for name, f := range families {
		if !strings.HasPrefix(name, "threadline_") {
			continue
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if isCounter := f.GetType() == dto.MetricType_COUNTER; isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: a %s; counters, and only counters, end in _total", name, f.GetType())
		}
	}
}

// startPrometheus runs the prometheus binary with a temporary configuration: a 1 s scrape of
// target as job "threadline", and the alert rules of alerts.yml evaluated every second. It
// returns Prometheus' base URL; the process is killed when the test ends.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := lookTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: threadline
    static_configs:
      - targets: [%q]
`, rules, target)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := apptest.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	base := "http://" + addr
	apptest.StartDaemon(t, cmd, base+"/-/ready")
	return base
}

type promSample struct {
	labels map[string]string
	value  float64
}

// promQuery evaluates an instant query through Prometheus' HTTP API.
func promQuery(ctx context.Context, base, query string) ([]promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct {
		Status    string
		Error     string
		ErrorType string
		Data      struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", body.Data.ResultType)
	}
	var out []promSample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out, nil
}

// dashboardQuery returns the expression of the dashboard panel titled title whose legend is
// legend ("" for the panel's first query), expanded with rateInterval.
func dashboardQuery(t *testing.T, title, legend, rateInterval string) string {
	t.Helper()
	for _, p := range readDashboard(t).panels() {
		if p.Title != title {
			continue
		}
		for _, target := range p.Targets {
			if legend == "" || target.LegendFormat == legend {
				q, err := expandGrafana(target.Expr, rateInterval)
				if err != nil {
					t.Fatal(err)
				}
				return q
			}
		}
	}
	t.Fatalf("the dashboard has no panel %q with a query %q", title, legend)
	return ""
}

// TestPrometheusEvaluatesDashboard runs the real Prometheus against the running server for a
// few scrape intervals and evaluates the dashboard's cache hit ratio and p95 latency to numbers,
// and every alert rule without error.
func TestPrometheusEvaluatesDashboard(t *testing.T) {
	testenv.SkipShort(t, "runs the server and Prometheus")
	lookTool(t, "prometheus", "prometheus")
	s := startMonitoredServer(t)
	prom := startPrometheus(t, strings.TrimPrefix(s.OpsURL, "http://"))

	// Traffic, in the background, until the test is done (at most a minute).
	ctx, stop := context.WithTimeout(t.Context(), time.Minute)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var trafficErr error
	failed := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return trafficErr
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := s.traffic(ctx, i == 0); err != nil {
				if ctx.Err() == nil {
					errMu.Lock()
					trafficErr = err
					errMu.Unlock()
				}
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	defer func() {
		stop()
		wg.Wait()
		if err := failed(); err != nil {
			t.Errorf("traffic: %v", err)
		}
	}()

	// 15 s windows: at a 1 s scrape interval, rates have samples after two scrapes.
	hitRatio := dashboardQuery(t, "Cache hit ratio", "", "15s")
	p95 := dashboardQuery(t, "GraphQL latency (p50 / p95 / p99)", "p95", "15s")
	var ratio, latency float64
	var lastErr error
	deadline := time.Now().Add(45 * time.Second)
	for {
		ratio, latency, lastErr = math.NaN(), math.NaN(), nil
		samples, err := promQuery(ctx, prom, hitRatio)
		if err != nil {
			t.Fatalf("hit ratio %s: %v", hitRatio, err)
		}
		for _, smp := range samples {
			if smp.labels["cache"] == "history" {
				ratio = smp.value
			}
		}
		if samples, err = promQuery(ctx, prom, p95); err != nil {
			t.Fatalf("p95 %s: %v", p95, err)
		}
		if len(samples) == 1 {
			latency = samples[0].value
		}
		if isNumber(ratio) && isNumber(latency) {
			break
		}
		lastErr = fmt.Errorf("hit ratio %v, p95 %v", ratio, latency)
		if time.Now().After(deadline) || failed() != nil {
			t.Fatalf("Prometheus did not evaluate the dashboard's expressions to numbers: %v\nhit ratio: %s\np95: %s", lastErr, hitRatio, p95)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ratio < 0 || ratio > 1 {
		t.Errorf("cache hit ratio %v, want within [0, 1]", ratio)
	}
	if ratio == 0 {
		t.Errorf("cache hit ratio 0: the traffic reads every page twice, so some reads hit")
	}
	if latency <= 0 || latency > 10 {
		t.Errorf("p95 latency %v s, want a positive number below the 10 s request timeout", latency)
	}
	t.Logf("Prometheus evaluated: history cache hit ratio %.3f, GraphQL p95 %.4f s", ratio, latency)

	// Every alert rule evaluates without error against the live series.
	if err := waitRulesHealthy(ctx, prom); err != nil {
		t.Error(err)
	}
}

func isNumber(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// waitRulesHealthy waits until Prometheus has evaluated every rule of alerts.yml at least once
// and checks that none failed.
func waitRulesHealthy(ctx context.Context, prom string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom+"/api/v1/rules", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var body struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
						LastEvaluation          time.Time
					}
				}
			}
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil {
			return err
		}
		var pending, failed []string
		n := 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				n++
				switch {
				case r.LastEvaluation.IsZero() || r.Health == "unknown":
					pending = append(pending, r.Name)
				case r.Health != "ok":
					failed = append(failed, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.LastError))
				}
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("alert rules failed to evaluate: %s", strings.Join(failed, "; "))
		}
		if n > 0 && len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("alert rules not evaluated in time: " + strings.Join(pending, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestExporterMetrics runs the exporters the monitoring profile uses (Debian's packages of the
// same projects: redis_exporter, postgres_exporter, node_exporter), with the flags
// docker-compose.yml gives them, against the test stack, and checks that they export every
// redis_, pg_ and node_ metric the alerts and the dashboard name. (Debian's PgBouncer exporter
// is another project than prometheus-community's, so the pgbouncer_ names are not checked
// here: they are those of prometheus-community/pgbouncer_exporter's README.)
func TestExporterMetrics(t *testing.T) {
	testenv.SkipShort(t, "runs the exporters")
	stack := testenv.Stack(t)
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	// The part of docker-compose.yml read here: the exporters' flags and environment.
	var compose struct {
		Services map[string]struct {
			Command     []string
			Environment map[string]string
		}
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	// The compose flags, less those that name compose hosts and paths.
	flags := func(service string, drop ...string) []string {
		var out []string
		for _, f := range compose.Services[service].Command {
			if !slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(f, p) }) {
				out = append(out, f)
			}
		}
		return out
	}
	if _, ok := compose.Services["postgres-exporter"].Environment["DATA_SOURCE_NAME"]; !ok {
		t.Error("postgres-exporter: " + composeFile + " sets no DATA_SOURCE_NAME")
	}
	exporters := []struct {
		prefix, bin, pkg string
		args, env        []string
	}{
		{"redis_", "prometheus-redis-exporter", "prometheus-redis-exporter",
			append(flags("redis-exporter", "--redis.addr"), "--redis.addr="+stack.RedisURL), nil},
		{"pg_", "prometheus-postgres-exporter", "prometheus-postgres-exporter",
			flags("postgres-exporter"), []string{"DATA_SOURCE_NAME=" + stack.DirectURL}},
		{"node_", "prometheus-node-exporter", "prometheus-node-exporter",
			flags("node-exporter", "--path.rootfs"), nil},
	}

	wanted := map[string][]string{} // metric name: where it is named
	for _, e := range monitoringExprs(t, "5m") {
		names, err := metricNames(e)
		if err != nil {
			t.Fatalf("%s: %v", e.where, err)
		}
		for _, n := range names {
			wanted[n] = append(wanted[n], e.where)
		}
	}
	for _, x := range exporters {
		t.Run(x.bin, func(t *testing.T) {
			bin := lookTool(t, x.bin, x.pkg)
			addr := apptest.FreeAddr(t)
			cmd := exec.Command(bin, append(slices.Clone(x.args), "--web.listen-address="+addr)...)
			cmd.Env = append(os.Environ(), x.env...)
			apptest.StartDaemon(t, cmd, "http://"+addr+"/metrics")
			families, err := scrapeURL("http://" + addr + "/metrics")
			if err != nil {
				t.Fatalf("%s: %v", x.bin, err)
			}
			checked := 0
			for name, where := range wanted {
				if !strings.HasPrefix(name, x.prefix) {
					continue
				}
				checked++
				if !isExported(families, name) {
					sort.Strings(where)
					t.Errorf("%s does not export %s (named in %s)", x.bin, name, strings.Join(slices.Compact(where), "; "))
				}
			}
			if checked == 0 {
				t.Errorf("the alerts and the dashboard name no %s metric", x.prefix)
			}
		})
	}
}

// scrapeURL fetches and parses a Prometheus text exposition.
func scrapeURL(u string) (map[string]*dto.MetricFamily, error) {
	res, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(res.Body)
}
