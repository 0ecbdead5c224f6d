package streaming

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/go-cmp/cmp"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestAppendEvent(t *testing.T) {
	for _, tc := range []struct {
		name, event, data, want string
	}{
		{"one line", "next", `{"data":{"a":1}}`, "event: next\ndata: {\"data\":{\"a\":1}}\n\n"},
		// A line break in the data would end the field: each line gets a data field of its own,
		// which the client joins with line breaks again.
		{"lines", "next", "{\n\"a\": 1\n}", "event: next\ndata: {\ndata: \"a\": 1\ndata: }\n\n"},
		{"CRLF", "next", "{\r\n}", "event: next\ndata: {\ndata: }\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(appendEvent(nil, tc.event, []byte(tc.data)))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventSink drives the event stream's sink as the runner and the transport do, and checks
// what reaches the wire: a plain answer until the operation runs, the stream after.
func TestEventSink(t *testing.T) {
	limited := publicError("RATE_LIMITED", "slow down", map[string]any{"retryAfter": 3})
	result := &graphql.Response{Data: []byte(`{"a":1}`)}
	const open, complete = ":\n\n", "event: complete\ndata:\n\n"
	for _, tc := range []struct {
		name   string
		steps  func(s *eventSink)
		status int
		header map[string]string
		body   string
	}{
		{"refused before it ran", func(s *eventSink) { _ = s.refuse(http.StatusTooManyRequests, limited) }, 429,
			map[string]string{"Content-Type": "application/json; charset=utf-8", "Retry-After": "3"},
			`{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED","retryAfter":3}}]}`},
		{"a mutation in a GET", func(s *eventSink) {
			_ = s.refuse(http.StatusMethodNotAllowed, publicError("BAD_USER_INPUT", "use POST", nil))
		}, 405, map[string]string{"Allow": "POST"}, `{"errors":[{"message":"use POST","extensions":{"code":"BAD_USER_INPUT"}}]}`},
		{"rejected by the executor", func(s *eventSink) {
			_ = s.reject(&graphql.Response{Errors: gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}})
		}, 200, map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
			open + "event: next\ndata: {\"errors\":[{\"message\":\"bad\",\"extensions\":{\"code\":\"BAD_USER_INPUT\"}}]}\n\n" + complete},
		{"a query", func(s *eventSink) {
			_ = s.ping() // before the stream: nothing
			_ = s.running()
			_ = s.next(result)
			_ = s.complete()
			_ = s.ping() // after it: nothing
			_ = s.refuse(http.StatusUnauthorized, errTokenExpired())
		}, 200, nil, open + "event: next\ndata: {\"data\":{\"a\":1}}\n\n" + complete},
		{"a subscription, idle, then ended", func(s *eventSink) {
			_ = s.running()
			_ = s.ping()
			_ = s.next(result)
			_ = s.end(limited)
		}, 200, nil, open + open + "event: next\ndata: {\"data\":{\"a\":1}}\n\n" +
			"event: next\ndata: {\"errors\":[{\"message\":\"slow down\",\"extensions\":{\"code\":\"RATE_LIMITED\",\"retryAfter\":3}}]}\n\n" + complete},
		{"token expired while streaming", func(s *eventSink) {
			_ = s.running()
			_ = s.refuse(http.StatusUnauthorized, errTokenExpired())
		}, 200, nil, open + "event: next\ndata: {\"errors\":[{\"message\":\"the token has expired: reconnect with a new one\",\"extensions\":{\"code\":\"UNAUTHENTICATED\"}}]}\n\n" + complete},
		{"shutdown before the stream", func(s *eventSink) { s.goneAway() }, 503, map[string]string{"Retry-After": "1"},
			`{"errors":[{"message":"the server is shutting down: retry","extensions":{"code":"SERVICE_UNAVAILABLE","retryAfter":1}}]}`},
		{"shutdown while streaming: no complete", func(s *eventSink) {
			_ = s.running()
			_ = s.next(result)
			s.goneAway()
		}, 200, nil, open + "event: next\ndata: {\"data\":{\"a\":1}}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			_, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			s := &eventSink{w: rec, rc: http.NewResponseController(rec), timeout: DefaultWriteTimeout, cancel: cancel}
			tc.steps(s)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			for k, v := range tc.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if diff := cmp.Diff(tc.body, rec.Body.String()); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}
