package loadtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The generator against an in-process server: counts, errors and the open model's clock.
func TestGenerator(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || !strings.Contains(string(body), `"query"`) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if n%10 == 0 {
			_, _ = io.WriteString(w, `{"errors":[{"message":"boom"}]}`)
			return
		}
		// Chunked (no Content-Length) and plain answers both parse.
		if n%2 == 0 {
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, `{"data":{"ok":true}}`)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := NewRequest(addr, "/query", "tok", GraphQLBody("{ ok }", nil))
	ctx := context.Background()

	res, err := Sequential(ctx, addr, 20, 0, Fixed(req))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.Errors != 2 || !strings.Contains(res.FirstError, "GraphQL errors") {
		t.Errorf("sequential: %d requests, %d errors (%s), want 20 and 2", res.Requests, res.Errors, res.FirstError)
	}

	res, err = Closed(ctx, addr, 4, 200*time.Millisecond, Fixed(req))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Hist.TotalCount() != res.Requests || res.RPS() <= 0 {
		t.Errorf("closed: %d requests, %d recorded", res.Requests, res.Hist.TotalCount())
	}

	res, err = Open(ctx, addr, 200, 500*time.Millisecond, 4, Fixed(req))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Offered != 200 {
		t.Errorf("open: %d requests at %v/s, want 100 at 200/s", res.Requests, res.Offered)
	}

	res, err = Clients(ctx, addr, 50, 100*time.Millisecond, 300*time.Millisecond, Fixed(req))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 150 {
		t.Errorf("clients: %d requests, want 150 (50 clients x 3)", res.Requests)
	}
}

func TestSumMetric(t *testing.T) {
	exp := []byte("# HELP x\nthreadline_sql_statements_total{query=\"A\"} 3\nthreadline_sql_statements_total{query=\"B\"} 4.5\nthreadline_sql_statements_total_other 9\n")
	if got := SumMetric(exp, "threadline_sql_statements_total"); got != 7.5 {
		t.Errorf("SumMetric = %v, want 7.5", got)
	}
}
