// Package alertmanager holds the Alertmanager configuration (alertmanager.yml) and its tests:
// amtool validates it, every alert of ../prometheus/alerts.yml is routed through its tree to
// the receiver of its severity, and its inhibitions are checked on a real Alertmanager, which
// is sent alerts and asked which of them it holds back.
//
// amtool and Alertmanager come from Debian's prometheus-alertmanager, which `make test`
// installs (make ops-deps): without them the tests fail, except under -short.
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/testenv"
)

const (
	configFile = "alertmanager.yml"
	alertsFile = "../prometheus/alerts.yml"
)

// tool finds a command of the prometheus-alertmanager package.
func tool(t *testing.T, name string) string {
	t.Helper()
	testenv.SkipShort(t, "runs "+name+"")
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install it with `make ops-deps` (apt package prometheus-alertmanager)", name)
	}
	return path
}

func TestCheckConfig(t *testing.T) {
	amtool := tool(t, "amtool")
	out, err := exec.Command(amtool, "check-config", configFile).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", configFile, err, out)
	}
}

// alert is one alerting rule of alerts.yml: its name and labels.
type alert struct {
	name   string
	labels map[string]string
}

func readAlerts(t *testing.T) []alert {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string
				Labels map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []alert
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, alert{r.Alert, r.Labels})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no alerts in %s", alertsFile)
	}
	return out
}

// receiverBySeverity is where each severity must go: critical pages, warning goes to the
// team's channel (alerts.yml's header says what each severity means).
var receiverBySeverity = map[string]string{"critical": "pager", "warning": "team-channel"}

// TestRoutesBySeverity routes every alert of alerts.yml, with its labels, through the routing
// tree (amtool config routes test) and expects exactly the receiver of its severity; and an
// alert of no known severity goes to the default receiver, not to the pager.
func TestRoutesBySeverity(t *testing.T) {
	amtool := tool(t, "amtool")
	route := func(t *testing.T, labels map[string]string) string {
		t.Helper()
		args := []string{"config", "routes", "test", "--config.file=" + configFile}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range labels {
				if !yield(k) {
					return
				}
			}
		}) {
			args = append(args, k+"="+labels[k])
		}
		// The receivers on stdout; amtool warns on stderr that the file wins over a URL.
		var stderr bytes.Buffer
		cmd := exec.Command(amtool, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return strings.TrimSpace(string(out))
	}
	for _, a := range readAlerts(t) {
		t.Run(a.name, func(t *testing.T) {
			want, ok := receiverBySeverity[a.labels["severity"]]
			if !ok {
				t.Fatalf("severity %q has no receiver of its own", a.labels["severity"])
			}
			labels := map[string]string{"alertname": a.name, "job": "threadline", "instance": "app:9464"}
			for k, v := range a.labels {
				labels[k] = v
			}
			if got := route(t, labels); got != want {
				t.Errorf("routed to %q, want %q", got, want)
			}
		})
	}
	t.Run("no severity", func(t *testing.T) {
		if got := route(t, map[string]string{"alertname": "Unlabelled"}); got != "team-channel" {
			t.Errorf("routed to %q, want the default team-channel", got)
		}
	})
}

// startAlertmanager starts a real Alertmanager running alertmanager.yml on a free port, without
// clustering; its receivers' credential files do not exist, so it notifies no one.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := tool(t, "prometheus-alertmanager")
	addr := apptest.FreeAddr(t)
	base := "http://" + addr
	apptest.StartDaemon(t, exec.Command(bin, "--config.file="+configFile, "--storage.path="+t.TempDir(),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn"), base+"/-/ready")
	return base
}

// postAlerts sends firing alerts, as Prometheus does (API v2).
func postAlerts(t *testing.T, base string, alerts []map[string]string) {
	t.Helper()
	var body []map[string]any
	for _, labels := range alerts {
		body = append(body, map[string]any{
			"labels":   labels,
			"startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339),
			"endsAt":   time.Now().Add(time.Hour).Format(time.RFC3339),
		})
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", res.Status)
	}
}

// suppressed returns the alert names Alertmanager holds back by inhibition, and how many alerts
// it has in all.
func suppressed(t *testing.T, base string) (names []string, total int) {
	t.Helper()
	res, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var alerts []struct {
		Labels map[string]string
		Status struct {
			State       string
			InhibitedBy []string `json:"inhibitedBy"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if len(a.Status.InhibitedBy) > 0 {
			names = append(names, a.Labels["alertname"]+"{"+a.Labels["job"]+","+a.Labels["instance"]+"}")
		}
	}
	slices.Sort(names)
	return names, len(alerts)
}

// TestInhibitions sends a real Alertmanager the alerts of a situation and checks which it holds
// back: Redis down holds back the cache alerts and nothing else, PostgreSQL or PgBouncer down
// the connection-pool alerts, a critical alert the warnings of its own instance only.
func TestInhibitions(t *testing.T) {
	severity := map[string]string{}
	for _, a := range readAlerts(t) {
		severity[a.name] = a.labels["severity"]
	}
	// on builds an alert of alerts.yml with its severity; the job and instance say where.
	on := func(name, job, instance string) map[string]string {
		sev, ok := severity[name]
		if !ok {
			t.Fatalf("no alert %s in %s", name, alertsFile)
		}
		return map[string]string{"alertname": name, "severity": sev, "job": job, "instance": instance}
	}
	app1 := func(name string) map[string]string { return on(name, "threadline", "app-1:9464") }
	app2 := func(name string) map[string]string { return on(name, "threadline", "app-2:9464") }
	key := func(a map[string]string) string {
		return a["alertname"] + "{" + a["job"] + "," + a["instance"] + "}"
	}
	cacheAlerts := []map[string]string{
		app1("ThreadlineLowCacheHitRatio"), app1("ThreadlineCacheBreakerOpen"),
		app1("ThreadlineCacheInvalidationFailures"), app1("ThreadlinePubSubPublishFailures"),
	}
	poolAlerts := []map[string]string{
		app1("ThreadlineDBPoolSaturated"), app1("ThreadlineDBPoolWaits"),
		on("PgBouncerClientsWaiting", "pgbouncer", "pgbouncer-exporter:9127"),
	}
	keys := func(as ...map[string]string) []string {
		var out []string
		for _, a := range as {
			out = append(out, key(a))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name   string
		firing []map[string]string
		want   []string // held back
	}{
		{
			name:   "Redis down holds back the cache alerts",
			firing: append([]map[string]string{on("ThreadlineDependencyDown", "redis", "redis-exporter:9121"), app1("ThreadlineHighLatencyP95")}, cacheAlerts...),
			// ThreadlineHighLatencyP95 stays: latency is users' experience, whatever the cause.
			want: keys(cacheAlerts...),
		},
		{
			name:   "cache alerts alone are sent",
			firing: cacheAlerts,
			want:   nil,
		},
		{
			name:   "PostgreSQL down holds back the pool alerts, not the cache alerts",
			firing: append(append([]map[string]string{on("ThreadlineDependencyDown", "postgres", "postgres-exporter:9187")}, poolAlerts...), app1("ThreadlineLowCacheHitRatio")),
			want:   keys(poolAlerts...),
		},
		{
			name:   "PgBouncer down holds back the pool alerts",
			firing: append([]map[string]string{on("ThreadlineDependencyDown", "pgbouncer", "pgbouncer-exporter:9127")}, poolAlerts...),
			want:   keys(poolAlerts...),
		},
		{
			name:   "an instance down holds back its own warnings only",
			firing: []map[string]string{app1("ThreadlineInstanceDown"), app1("ThreadlineDBPoolWaits"), app2("ThreadlineDBPoolWaits")},
			want:   keys(app1("ThreadlineDBPoolWaits")),
		},
		{
			name:   "critical alerts are never held back by a critical one",
			firing: []map[string]string{on("ThreadlineDependencyDown", "redis", "redis-exporter:9121"), on("ThreadlineDependencyDown", "postgres", "postgres-exporter:9187"), app1("ThreadlineInstanceDown")},
			want:   nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startAlertmanager(t)
			// The inhibitor learns of the alerts in the order they were sent, after the POST
			// has answered. A canary pair brackets the situation: its warning goes first, its
			// critical last, and once the warning is held back the inhibitor has seen every
			// alert between them. (Their job is theirs alone: they touch nothing else.)
			canaryWarning := map[string]string{"alertname": "CanaryWarning", "severity": "warning", "job": "canary", "instance": "canary"}
			canaryCritical := map[string]string{"alertname": "CanaryCritical", "severity": "critical", "job": "canary", "instance": "canary"}
			sent := append(append([]map[string]string{canaryWarning}, tc.firing...), canaryCritical)
			postAlerts(t, base, sent)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for {
				got, total := suppressed(t, base)
				if i := slices.Index(got, key(canaryWarning)); i >= 0 && total == len(sent) {
					got = slices.Delete(got, i, i+1)
					if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("held back (-want +got):\n%s", diff)
					}
					return
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the inhibitor has not seen the alerts sent: %d of %d held, %v held back", total, len(sent), got)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}
