package admission_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/admission"
)

func post() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"{ me { id } }"}`))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestMiddlewareRefuses(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name       string
		retryAfter time.Duration
		req        *http.Request
		seconds    string
	}{
		{"default", 0, post(), "1"},
		{"under a second rounds up to one", 10 * time.Millisecond, post(), "1"},
		{"rounded up to whole seconds", 1500 * time.Millisecond, post(), "2"},
		{"context already ended", 3 * time.Second, post().WithContext(canceled), "3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := admission.New(admission.Config{MinLimit: 1, MaxLimit: 1, MaxQueue: -1, RetryAfter: c.retryAfter})
			release := acquire(t, l)
			defer release(admission.Success)
			h := admission.Middleware(l)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("a refused request reached the handler")
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, c.req)
			want := `{"errors":[{"message":"server overloaded: retry after ` + c.seconds + ` s","extensions":{"code":"SERVICE_UNAVAILABLE","retryAfter":` + c.seconds + `}}]}`
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != c.seconds ||
				w.Header().Get("Content-Type") != "application/json" || w.Body.String() != want {
				t.Errorf("got %d, Retry-After %q, Content-Type %q, body\n%s\nwant 503, %q, application/json,\n%s",
					w.Code, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"), w.Body, c.seconds, want)
			}
			checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
		})
	}
}

func TestMiddlewareAdmits(t *testing.T) {
	l := admission.New(admission.Config{MinLimit: 1, MaxLimit: 1, MaxQueue: -1})
	h := admission.Middleware(l)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
		w.WriteHeader(http.StatusTeapot)
	}))
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, post())
		if w.Code != http.StatusTeapot {
			t.Fatalf("admitted request: %d", w.Code)
		}
		checkStats(t, l, admission.Stats{Limit: 1})
	}
}

// WebSocket upgrades pass untouched, even with every slot taken: their transport admits each
// operation itself.
func TestMiddlewarePassesUpgrades(t *testing.T) {
	l := admission.New(admission.Config{MinLimit: 1, MaxLimit: 1, MaxQueue: -1})
	release := acquire(t, l)
	defer release(admission.Success)
	reached := false
	h := admission.Middleware(l)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		reached = true
		checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
	}))
	r := httptest.NewRequest(http.MethodGet, "/query", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !reached {
		t.Fatal("upgrade request did not reach the handler")
	}
}

func TestMiddlewareReleasesOnPanic(t *testing.T) {
	l := admission.New(admission.Config{MinLimit: 1, MaxLimit: 1, MaxQueue: -1})
	h := admission.Middleware(l)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Error("panic did not propagate")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), post())
	}()
	checkStats(t, l, admission.Stats{Limit: 1})
}

func TestMiddlewareNilLimiter(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	w := httptest.NewRecorder()
	admission.Middleware(nil)(next).ServeHTTP(w, post())
	if w.Code != http.StatusTeapot {
		t.Fatalf("nil limiter: %d", w.Code)
	}
}

func TestOutcomeOf(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want admission.Outcome
	}{
		{"live", context.Background(), admission.Success},
		{"deadline passed", expired, admission.Dropped},
		{"canceled", canceled, admission.Ignored},
	} {
		if got := admission.OutcomeOf(c.ctx); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRefusalExtensions(t *testing.T) {
	ref := &admission.Refusal{Reason: admission.QueueFull, RetryAfter: 2 * time.Second}
	ext := ref.Extensions()
	if len(ext) != 2 || ext["code"] != "SERVICE_UNAVAILABLE" || ext["retryAfter"] != 2 {
		t.Fatalf("extensions %v", ext)
	}
}
