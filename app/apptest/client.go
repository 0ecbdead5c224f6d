package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/auth"
)

// Token signs a token for userID with secret, valid for ttl.
func Token(t testing.TB, secret string, userID int64, ttl time.Duration) string {
	t.Helper()
	keys, err := auth.NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Sign(userID, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Client sends GraphQL requests over HTTP.
type Client struct {
	URL           string // the /query endpoint
	Authorization string // the Authorization header; "" for none
	HTTP          *http.Client
	// Header is added to every request (Accept, X-Request-Id, …).
	Header http.Header
}

// Response is a GraphQL response with its HTTP status and headers.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the error's extensions.code.
func (e Error) Code() string { c, _ := e.Extensions["code"].(string); return c }

// Codes lists the codes of the response's errors, in order.
func (r Response) Codes() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Code())
	}
	return out
}

// OK reports whether the request was answered 200 without GraphQL errors.
func (r Response) OK() bool { return r.Status == http.StatusOK && len(r.Errors) == 0 }

// Do posts a request; a response whose body is not a GraphQL response is an error.
func (c *Client) Do(ctx context.Context, query string, vars map[string]any) (Response, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return Response{}, err
	}
	return c.Post(ctx, body)
}

// Post posts body, a JSON GraphQL request, as is.
func (c *Client) Post(ctx context.Context, body []byte) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req)
}

// Get sends a query as GET /query?query=…&variables=….
func (c *Client) Get(ctx context.Context, query string, vars map[string]any) (Response, error) {
	q := url.Values{"query": {query}}
	if vars != nil {
		b, err := json.Marshal(vars)
		if err != nil {
			return Response{}, err
		}
		q.Set("variables", string(b))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"?"+q.Encode(), nil)
	if err != nil {
		return Response{}, err
	}
	return c.send(req)
}

func (c *Client) send(req *http.Request) (Response, error) {
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if c.Authorization != "" {
		req.Header.Set("Authorization", c.Authorization)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, err
	}
	out := Response{Status: res.StatusCode, Header: res.Header, Body: raw}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("status %d, not a GraphQL response: %.300s", res.StatusCode, raw)
	}
	return out, nil
}

// Query runs a request and fails the test on any transport or GraphQL error; out (if not nil)
// receives data.
func (c *Client) Query(t testing.TB, query string, vars map[string]any, out any) {
	t.Helper()
	res, err := c.Do(t.Context(), query, vars)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if !res.OK() {
		t.Fatalf("%s: status %d, errors %+v", query, res.Status, res.Errors)
	}
	if out != nil {
		if err := json.Unmarshal(res.Data, out); err != nil {
			t.Fatalf("decoding %s: %v", res.Data, err)
		}
	}
}

// SendNumbered sends n messages to conv with the bodies "<prefix> 0" to "<prefix> n-1", in
// that order, failing the test on any error.
func (c *Client) SendNumbered(t testing.TB, conv int64, n int, prefix string) {
	t.Helper()
	for i := range n {
		c.Query(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
			map[string]any{"c": ID(conv), "b": fmt.Sprintf("%s %d", prefix, i)}, nil)
	}
}

// Must runs a request and fails the test on a transport error; GraphQL errors are the caller's
// to check.
func (c *Client) Must(t testing.TB, query string, vars map[string]any) Response {
	t.Helper()
	res, err := c.Do(t.Context(), query, vars)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return res
}
