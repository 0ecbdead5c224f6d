package admission

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Middleware admits each request through l before it reaches next. A refused request gets 503
// with Retry-After and a GraphQL response whose one error has extensions.code
// SERVICE_UNAVAILABLE and extensions.retryAfter; so does one whose context ended while it
// waited (its client is gone or its deadline passed, and the answer is as good as any). An
// admitted request reports OutcomeOf its context when next returns, Ignored if next panicked.
//
// WebSocket upgrade requests (an Upgrade header) pass through untouched: their transport admits
// each operation itself. A nil l admits everything.
func Middleware(l *Limiter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if l == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" {
				next.ServeHTTP(w, r)
				return
			}
			release, err := l.Acquire(r.Context())
			if err != nil {
				h := w.Header()
				h.Set("Retry-After", strconv.Itoa(l.full.Seconds()))
				h.Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write(l.refusedBody)
				return
			}
			returned := false
			defer func() {
				o := Ignored
				if returned {
					o = OutcomeOf(r.Context())
				}
				release(o)
			}()
			next.ServeHTTP(w, r)
			returned = true
		})
	}
}

// refusalBody is the GraphQL response of a refusal.
func refusalBody(ref *Refusal) []byte {
	type extensions struct {
		Code       string `json:"code"`
		RetryAfter int    `json:"retryAfter"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, _ := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{ref.Error(), extensions{CodeServiceUnavailable, ref.Seconds()}}}})
	return body
}
