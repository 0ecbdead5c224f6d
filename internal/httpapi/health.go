package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one readiness check: a dependency that must answer.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
	// Reason turns Ping's error into the words /readyz shows: words from a fixed vocabulary
	// (internal/connerr), never the error's text, which may name hosts, users or URLs, since
	// /readyz is on the public listener. Nil: "unavailable".
	Reason func(error) string
}

// Readiness serves /readyz: 200 when every check passes, else 503 with a JSON reason per
// failing check (Check.Reason). Draining makes it answer 503 at once: the first step of a graceful shutdown,
// so that load balancers stop sending new requests.
type Readiness struct {
	checks   []Check
	timeout  time.Duration
	draining atomic.Bool
}

// NewReadiness returns a Readiness over checks, each given timeout to answer.
func NewReadiness(checks []Check, timeout time.Duration) *Readiness {
	return &Readiness{checks: checks, timeout: timeout}
}

// Drain makes readiness fail from now on.
func (rd *Readiness) Drain() { rd.draining.Store(true) }

type readyReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (rd *Readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	report := readyReport{Status: "ok", Checks: make(map[string]string, len(rd.checks))}
	status := http.StatusOK
	if rd.draining.Load() {
		report.Status, status = "draining", http.StatusServiceUnavailable
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
		defer cancel()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range rd.checks {
			wg.Go(func() {
				result := "ok"
				if err := c.Ping(ctx); err != nil {
					result = "unavailable"
					if c.Reason != nil {
						result = c.Reason(err)
					}
				}
				mu.Lock()
				report.Checks[c.Name] = result
				if result != "ok" {
					report.Status, status = "unavailable", http.StatusServiceUnavailable
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	writeJSON(w, status, report)
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
