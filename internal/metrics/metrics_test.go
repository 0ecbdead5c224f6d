package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor/testexecutor"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/metrics"
)

// sample returns the value of the metric name with exactly the given labels (a histogram's
// sample count), and whether it exists.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func wantSample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := sample(t, reg, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
	} else if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// newGraphQL returns a gqlgen server over es with the metrics extension and an error
// presenter that, like Threadline's, reports parse and validation errors as BAD_USER_INPUT.
func newGraphQL(t *testing.T, es graphql.ExecutableSchema, opts metrics.Options) (*prometheus.Registry, *handler.Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, opts)
	srv := handler.New(es)
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.Websocket{})
	srv.Use(m.GraphQL())
	srv.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		e := graphql.DefaultErrorPresenter(ctx, err)
		if c, _ := e.Extensions["code"].(string); c == "GRAPHQL_PARSE_FAILED" || c == "GRAPHQL_VALIDATION_FAILED" {
			e.Extensions["code"] = "BAD_USER_INPUT"
		}
		return e
	})
	return reg, srv
}

func post(t *testing.T, h http.Handler, query, operationName string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "operationName": operationName})
	req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), `"data"`) && !strings.Contains(rec.Body.String(), `"errors"`) {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body.String())
	}
}

const (
	opsTotal  = "threadline_graphql_operations_total"
	opsDur    = "threadline_graphql_operation_duration_seconds"
	errsTotal = "threadline_graphql_errors_total"
)

func TestGraphQLOperations(t *testing.T) {
	reg, h := newGraphQL(t, testexecutor.New().Schema(), metrics.Options{KnownOperations: []string{"Known"}, MaxOperationNames: 2})

	// Every public code is exported before the first error.
	for _, code := range []string{"UNAUTHENTICATED", "NOT_FOUND", "BAD_USER_INPUT", "RATE_LIMITED",
		"COMPLEXITY_LIMIT_EXCEEDED", "PERSISTED_QUERY_NOT_FOUND", "INTERNAL_SERVER_ERROR"} {
		wantSample(t, reg, errsTotal, map[string]string{"code": code}, 0)
	}

	post(t, h, `query Known { name }`, "")
	post(t, h, `query Known { name }`, "Known")
	post(t, h, `query A { name }`, "")
	post(t, h, `query B { name }`, "")
	post(t, h, `query C { name }`, "") // past MaxOperationNames: other
	post(t, h, `{ name }`, "")
	post(t, h, `query `+strings.Repeat("x", 65)+` { name }`, "") // too long: other
	post(t, h, `mutation M { name }`, "")                        // the test schema answers an internal error
	// Refused before they ran: a syntax error, and validation errors.
	post(t, h, `{ name`, "")
	post(t, h, `query Bad { nope }`, "")
	post(t, h, `query Bad { nope }`, "Bad")

	wantSample(t, reg, opsTotal, map[string]string{"operation": "Known", "type": "query"}, 2)
	wantSample(t, reg, opsDur, map[string]string{"operation": "Known", "type": "query"}, 2)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "A", "type": "query"}, 1)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "B", "type": "query"}, 1)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "other", "type": "query"}, 2)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "other", "type": "mutation"}, 1)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "anonymous", "type": "query"}, 1)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "anonymous", "type": "unknown"}, 2)
	wantSample(t, reg, opsTotal, map[string]string{"operation": "other", "type": "unknown"}, 1)
	wantSample(t, reg, opsDur, map[string]string{"operation": "anonymous", "type": "unknown"}, 2)
	wantSample(t, reg, errsTotal, map[string]string{"code": "BAD_USER_INPUT"}, 3)
	wantSample(t, reg, errsTotal, map[string]string{"code": "INTERNAL_SERVER_ERROR"}, 1)
	if _, ok := sample(t, reg, opsTotal, map[string]string{"operation": "C", "type": "query"}); ok {
		t.Error("operation C has a series of its own past MaxOperationNames")
	}
}

func TestGraphQLFieldErrors(t *testing.T) {
	reg, h := newGraphQL(t, testexecutor.NewError().Schema(), metrics.Options{})
	post(t, h, `query Fails { name }`, "")
	wantSample(t, reg, opsTotal, map[string]string{"operation": "Fails", "type": "query"}, 1)
	wantSample(t, reg, errsTotal, map[string]string{"code": "INTERNAL_SERVER_ERROR"}, 1)
}

func TestGraphQLPanicInOperation(t *testing.T) {
	reg, h := newGraphQL(t, testexecutor.New().Schema(), metrics.Options{})
	h.AroundOperations(func(context.Context, graphql.OperationHandler) graphql.ResponseHandler { panic("boom") })
	post(t, h, `query Boom { name }`, "")
	wantSample(t, reg, opsTotal, map[string]string{"operation": "Boom", "type": "query"}, 1)
	wantSample(t, reg, errsTotal, map[string]string{"code": "INTERNAL_SERVER_ERROR"}, 1)
}

func TestGraphQLSubscriptions(t *testing.T) {
	exec := testexecutor.New()
	reg, h := newGraphQL(t, exec.Schema(), metrics.Options{})
	sub := client.New(h).Websocket(`subscription Names { name }`)
	defer sub.Close()
	// Counted when it starts, before any event.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := sample(t, reg, opsTotal, map[string]string{"operation": "Names", "type": "subscription"}); v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription was not counted when it started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 {
		exec.SendNextSubscriptionMessage()
		var resp struct{ Name string }
		if err := sub.Next(&resp); err != nil {
			t.Fatal(err)
		}
	}
	// Counted once, never timed.
	wantSample(t, reg, opsTotal, map[string]string{"operation": "Names", "type": "subscription"}, 1)
	if _, ok := sample(t, reg, opsDur, map[string]string{"operation": "Names", "type": "subscription"}); ok {
		t.Error("a subscription was timed")
	}
}

func TestStatementsBatchesAndRateLimited(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{})
	m.ObserveStatement(t.Context(), "MessagePages", 3*time.Millisecond, nil)
	m.ObserveStatement(t.Context(), "MessagePages", time.Millisecond, nil)
	m.ObserveStatement(t.Context(), "begin", time.Millisecond, io.EOF)
	m.ObserveBatch("pages", 7)
	m.RateLimited().Inc()

	wantSample(t, reg, "threadline_sql_statements_total", map[string]string{"query": "MessagePages"}, 2)
	wantSample(t, reg, "threadline_sql_statement_duration_seconds", map[string]string{"query": "MessagePages"}, 2)
	wantSample(t, reg, "threadline_sql_statements_total", map[string]string{"query": "begin"}, 1)
	wantSample(t, reg, "threadline_dataloader_batch_size", map[string]string{"loader": "pages"}, 1)
	wantSample(t, reg, "threadline_rate_limited_total", map[string]string{}, 1)
}

type fakePool struct{}

func (fakePool) AcquiredConns() int32                { return 3 }
func (fakePool) IdleConns() int32                    { return 2 }
func (fakePool) TotalConns() int32                   { return 5 }
func (fakePool) MaxConns() int32                     { return 32 }
func (fakePool) AcquireCount() int64                 { return 1000 }
func (fakePool) EmptyAcquireCount() int64            { return 7 }
func (fakePool) EmptyAcquireWaitTime() time.Duration { return 1500 * time.Millisecond }

func TestPoolCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewPoolCollector(func() metrics.PoolStats { return fakePool{} }))
	none := map[string]string{}
	for name, want := range map[string]float64{
		"threadline_db_pool_acquired_conns":             3,
		"threadline_db_pool_idle_conns":                 2,
		"threadline_db_pool_total_conns":                5,
		"threadline_db_pool_max_conns":                  32,
		"threadline_db_pool_acquires_total":             1000,
		"threadline_db_pool_empty_acquires_total":       7,
		"threadline_db_pool_acquire_wait_seconds_total": 1.5,
	} {
		wantSample(t, reg, name, none, want)
	}
}

func TestHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/query", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusRequestEntityTooLarge) })
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/events", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		io.WriteString(w, ":\n\n")
		// The stream learns of a failed write through the middleware (FlushError).
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack through the middleware: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
	})
	recoverer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					http.Error(w, "internal error", http.StatusInternalServerError)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
	// The middleware counts a request when its handler returns, which can be after the client
	// has read all it will (a flushed event stream, an upgrade): served waits for that.
	paths := []string{"/healthz", "/healthz", "/query", "/nope", "/panic", "/events"}
	var served sync.WaitGroup
	served.Add(len(paths) + 1) // and the upgrade
	counted := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer served.Done()
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(counted(recoverer(m.HTTP(mux))))
	defer srv.Close()

	for _, path := range paths {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	conn.Close()
	served.Wait()

	const reqs, dur = "threadline_http_requests_total", "threadline_http_request_duration_seconds"
	wantSample(t, reg, reqs, map[string]string{"route": "/healthz", "code": "200"}, 2)
	wantSample(t, reg, reqs, map[string]string{"route": "/query", "code": "413"}, 1)
	wantSample(t, reg, reqs, map[string]string{"route": "unmatched", "code": "404"}, 1)
	wantSample(t, reg, reqs, map[string]string{"route": "/panic", "code": "500"}, 1)
	wantSample(t, reg, reqs, map[string]string{"route": "/ws", "code": "101"}, 1)
	wantSample(t, reg, dur, map[string]string{"route": "/healthz"}, 2)
	if _, ok := sample(t, reg, dur, map[string]string{"route": "/ws"}); ok {
		t.Error("a hijacked connection was timed")
	}
	wantSample(t, reg, reqs, map[string]string{"route": "/events", "code": "200"}, 1)
	if _, ok := sample(t, reg, dur, map[string]string{"route": "/events"}); ok {
		t.Error("an event stream was timed")
	}
}
