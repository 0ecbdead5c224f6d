package apptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SSE is a small client of GraphQL over Server-Sent Events (the graphql-sse protocol, distinct
// connections mode) for tests: one operation per request, written from the protocol's
// description, so that the tests see the wire as a browser library would. A stream the server
// refused before it began (a plain HTTP answer) has its status, header and body in Status,
// Header and Refusal, and no events.
type SSE struct {
	// Status and Header are the response's.
	Status int
	Header http.Header
	// Refusal is the GraphQL response of a request answered without a stream; nil for a stream.
	Refusal *Response

	cancel     context.CancelFunc
	body       io.ReadCloser
	listen     sync.Once
	events     inbox[SSEEvent] // the reader sets err before it closes events.done
	err        error
	keepAlives atomic.Int64
}

// SSEEvent is one event of a stream: next (Data is an ExecutionResult) or complete.
type SSEEvent struct {
	Event string
	Data  json.RawMessage
}

// SSEOptions say how to send a request for a stream.
type SSEOptions struct {
	// Method is GET (the request in the URL) or POST (a JSON body); default POST.
	Method string
	// Authorization is the Authorization header ("" for none).
	Authorization string
	// AccessToken is put in the URL as access_token, as a browser's EventSource must ("" for
	// none).
	AccessToken string
	// Header is added to the request (the Accept header is text/event-stream unless set here).
	Header http.Header
	// Extensions are the request's extensions (persisted queries).
	Extensions map[string]any
	// Defer leaves the stream unread until Listen (or a read): a client that does not read.
	Defer bool
}

// StreamRequest builds the request for an event stream of query with vars to url (…/query).
func StreamRequest(ctx context.Context, url, query string, vars map[string]any, o SSEOptions) (*http.Request, error) {
	var req *http.Request
	var err error
	if o.Method == http.MethodGet {
		q := urlValues(query, vars, o)
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, url+"?"+q, nil)
	} else {
		params := map[string]any{"query": query, "variables": vars}
		if o.Extensions != nil {
			params["extensions"] = o.Extensions
		}
		body, jerr := json.Marshal(params)
		if jerr != nil {
			return nil, jerr
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			if o.AccessToken != "" {
				req.URL.RawQuery = "access_token=" + o.AccessToken
			}
		}
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range o.Header {
		req.Header[k] = v
	}
	if o.Authorization != "" {
		req.Header.Set("Authorization", o.Authorization)
	}
	return req, nil
}

func urlValues(query string, vars map[string]any, o SSEOptions) string {
	v := map[string][]string{"query": {query}}
	if vars != nil {
		b, _ := json.Marshal(vars)
		v["variables"] = []string{string(b)}
	}
	if o.Extensions != nil {
		b, _ := json.Marshal(o.Extensions)
		v["extensions"] = []string{string(b)}
	}
	if o.AccessToken != "" {
		v["access_token"] = []string{o.AccessToken}
	}
	return url.Values(v).Encode()
}

// OpenSSE sends the request for an event stream and starts reading it in the background. It
// reports failures as errors rather than failing the test, so that it may run off the test's
// goroutine. The stream is closed when the test ends.
func OpenSSE(t testing.TB, url, query string, vars map[string]any, o SSEOptions) (*SSE, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := StreamRequest(ctx, url, query, vars, o)
	if err != nil {
		cancel()
		return nil, err
	}
	return OpenSSERequest(t, req, cancel, o.Defer)
}

// OpenSSERequest is OpenSSE for a request the test built itself (StreamRequest, then changed);
// cancel aborts req. With deferRead the stream is not read until Listen.
func OpenSSERequest(t testing.TB, req *http.Request, cancel context.CancelFunc, deferRead bool) (*SSE, error) {
	t.Cleanup(cancel)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &SSE{Status: res.StatusCode, Header: res.Header, cancel: cancel, events: newInbox[SSEEvent]()}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			return nil, err
		}
		s.Refusal = &Response{Status: res.StatusCode, Header: res.Header, Body: raw}
		if err := json.Unmarshal(raw, s.Refusal); err != nil {
			return s, fmt.Errorf("status %d, not a GraphQL response: %.300s", res.StatusCode, raw)
		}
		close(s.events.done)
		return s, nil
	}
	s.body = res.Body
	if !deferRead {
		s.Listen()
	}
	return s, nil
}

// Listen starts reading the stream in the background (at once unless SSEOptions.Defer).
func (s *SSE) Listen() {
	if s.body == nil {
		return // refused: nothing to read
	}
	s.listen.Do(func() { go s.read(s.body) })
}

// Stream opens an event stream of query to the server as userID (0: anonymous), with the token
// in the Authorization header, and fails the test if it cannot be sent.
func (e *Endpoint) Stream(t testing.TB, userID int64, query string, vars map[string]any, o SSEOptions) *SSE {
	t.Helper()
	if userID != 0 && o.Authorization == "" && o.AccessToken == "" {
		o.Authorization = "Bearer " + e.Token(userID)
	}
	s, err := OpenSSE(t, e.URL+"/query", query, vars, o)
	if err != nil {
		t.Fatalf("apptest: event stream: %v", err)
	}
	return s
}

// read parses the stream (the event-stream format of the HTML standard: fields, comments,
// events dispatched by a blank line) into events until it ends.
func (s *SSE) read(body io.ReadCloser) {
	defer close(s.events.done)
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "" && data == nil {
				continue
			}
			s.events.in <- SSEEvent{Event: event, Data: json.RawMessage(strings.Join(data, "\n"))}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			s.keepAlives.Add(1)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
	}
	s.err = sc.Err()
	if s.err == nil {
		s.err = io.EOF
	}
}

// Read returns the next event, or the error the stream ended with (io.EOF when the server
// ended it) once it has ended, or ctx's error.
func (s *SSE) Read(ctx context.Context) (SSEEvent, error) {
	s.Listen()
	return s.events.read(ctx, func() error {
		if s.err == nil {
			return errors.New("the request was refused: no stream")
		}
		return s.err
	})
}

// Next returns the next event, or ok=false when the stream has ended; it fails the test on
// timeout.
func (s *SSE) Next(t testing.TB, timeout time.Duration) (SSEEvent, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ev, err := s.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no event within %s", timeout)
	}
	return ev, err == nil
}

// TryNext returns an event already received, if there is one.
func (s *SSE) TryNext() (SSEEvent, bool) { return s.events.tryNext() }

// Ended waits until the stream ends, failing the test after timeout, and returns the events
// that came before the end.
func (s *SSE) Ended(t testing.TB, timeout time.Duration) []SSEEvent {
	t.Helper()
	s.Listen()
	s.events.waitEnd(t, timeout, "the stream")
	var out []SSEEvent
	for ev, ok := s.events.tryNext(); ok; ev, ok = s.events.tryNext() {
		out = append(out, ev)
	}
	return out
}

// Done is closed when the stream has ended.
func (s *SSE) Done() <-chan struct{} {
	s.Listen()
	return s.events.done
}

// KeepAlives counts the comment lines received so far (the first opens the stream).
func (s *SSE) KeepAlives() int64 { return s.keepAlives.Load() }

// Close ends the stream from the client's side (graphql-sse: how a client stops a
// subscription).
func (s *SSE) Close() { s.cancel() }

// Collect reads messageAdded results until it has n, or until one has body until (when not
// ""). It may run off the test's goroutine.
func (s *SSE) Collect(n int, timeout time.Duration, until string) ([]LiveMessage, error) {
	return collectAdded(n, timeout, until, "stream ended", func(ctx context.Context) (LiveMessage, error) {
		ev, err := s.Read(ctx)
		if err != nil {
			return LiveMessage{}, err
		}
		added, err := ev.MessageAdded()
		if err != nil {
			return LiveMessage{}, decodeError{err}
		}
		return added, nil
	})
}

// Messages reads n messageAdded results, failing the test otherwise.
func (s *SSE) Messages(t testing.TB, n int, timeout time.Duration) []LiveMessage {
	t.Helper()
	out, err := s.Collect(n, timeout, "")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MessageAdded decodes a messageAdded result (a next event without errors).
func (ev SSEEvent) MessageAdded() (LiveMessage, error) {
	return WSMessage{Type: ev.Event, Payload: ev.Data}.MessageAdded()
}

// Result decodes the ExecutionResult of a next event.
func (ev SSEEvent) Result() (Response, error) {
	var r Response
	if ev.Event != "next" {
		return r, fmt.Errorf("a %s event, not next", ev.Event)
	}
	err := json.Unmarshal(ev.Data, &r)
	return r, err
}
