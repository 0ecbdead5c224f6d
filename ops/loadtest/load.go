package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The load generator (cmd/bench drives it): raw HTTP/1.1 over keep-alive connections with
// prebuilt request bytes, so that the generator spends little of the CPU it shares with the
// server. Latencies go into HdrHistograms in microseconds (1 µs to 60 s, 3 significant digits).
//
// Two models:
//   - Closed: N connections, each sending its next request as soon as the previous answered.
//     Measures the maximum throughput at N connections.
//   - Open: requests are due at a constant rate, whatever the server does; the latency of each
//     runs from when it was due, not from when a connection was free to send it, so a slow
//     server cannot hide its queue (no coordinated omission).
//
// Clients is the open model per client: n keep-alive connections, each sending at its own
// modest rate.

// Request is one prebuilt HTTP/1.1 request.
type Request []byte

// NewRequest builds a POST of body (JSON) to path on host, with the bearer token ("" for none).
func NewRequest(host, path, token string, body []byte) Request {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, host)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// GraphQLBody is the JSON body of a GraphQL request.
func GraphQLBody(query string, variables map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		panic(err) // only plain values are passed in
	}
	return b
}

// Result is what a run measured.
type Result struct {
	Requests int64
	Errors   int64 // transport errors, non-200 statuses, and responses with GraphQL errors
	// NotSent counts the open model's requests still queued when the run ended (among Errors).
	NotSent int64
	// Refused counts the answers 503 with Retry-After: load the server shed (among Errors).
	Refused int64
	// OpenConns is, for Clients, how many connections were open when the run ended.
	OpenConns int
	// FirstError is the first error seen, for the report.
	FirstError string
	Elapsed    time.Duration
	Offered    float64 // the open model's rate, requests/s; 0 for the closed model
	Hist       *hdrhistogram.Histogram
}

// RPS is the requests answered per second (those never sent left out).
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.NotSent) / r.Elapsed.Seconds()
}

// Quantile is the latency at q (0..100).
func (r Result) Quantile(q float64) time.Duration {
	return time.Duration(r.Hist.ValueAtQuantile(q)) * time.Microsecond
}

// Max is the highest latency.
func (r Result) Max() time.Duration { return time.Duration(r.Hist.Max()) * time.Microsecond }

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// recorder collects a run's results from many goroutines.
type recorder struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	requests atomic.Int64
	errors   atomic.Int64
	notSent  atomic.Int64
	refused  atomic.Int64
	firstErr atomic.Value
}

func newRecorder() *recorder { return &recorder{hist: newHist()} }

func (r *recorder) merge(h *hdrhistogram.Histogram) {
	r.mu.Lock()
	r.hist.Merge(h)
	r.mu.Unlock()
}

// send sends req on c and records it in h: its latency from since (when it was due, or sent),
// and its failure, if any.
func (r *recorder) send(h *hdrhistogram.Histogram, c *Conn, req Request, since time.Time) {
	_, err := c.Do(req)
	_ = h.RecordValue(time.Since(since).Microseconds())
	r.requests.Add(1)
	if err != nil {
		r.fail(err)
	}
}

// workers runs work on each connection, in a goroutine of its own, with a histogram of its own
// that is merged into r when work returns; wait waits until every worker is done.
func (r *recorder) workers(conns []*Conn, work func(w int, c *Conn, h *hdrhistogram.Histogram)) (wait func()) {
	var wg sync.WaitGroup
	for w, c := range conns {
		wg.Go(func() {
			h := newHist()
			work(w, c, h)
			r.merge(h)
		})
	}
	return wg.Wait
}

func (r *recorder) fail(err error) {
	r.errors.Add(1)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable && se.RetryAfter != "" {
		r.refused.Add(1)
		return // shed load: an answer, not a failure to report first
	}
	r.firstErr.CompareAndSwap(nil, err.Error())
}

func (r *recorder) result(elapsed time.Duration, offered float64) Result {
	res := Result{Requests: r.requests.Load(), Errors: r.errors.Load(), NotSent: r.notSent.Load(), Refused: r.refused.Load(), Elapsed: elapsed, Offered: offered, Hist: r.hist}
	if v, ok := r.firstErr.Load().(string); ok {
		res.FirstError = v
	}
	return res
}

// Conn is one keep-alive HTTP/1.1 connection.
type Conn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	body []byte
}

// Dial connects to addr (host:port).
func Dial(addr string) (*Conn, error) {
	c := &Conn{addr: addr}
	return c, c.redial()
}

func (c *Conn) redial() error {
	if c.c != nil {
		c.c.Close()
	}
	nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		c.c = nil
		return err
	}
	c.c = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() {
	if c.c != nil {
		c.c.Close()
	}
}

var errorsKey = []byte(`"errors":`)

// Do sends req and reads the whole response. It returns the body (valid until the next Do) and
// an error for a transport failure, a status other than 200, or a GraphQL error in the body.
// After a transport failure the connection is dialled again on the next Do.
func (c *Conn) Do(req Request) ([]byte, error) {
	if c.c == nil {
		if err := c.redial(); err != nil {
			return nil, err
		}
	}
	_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		c.Close()
		c.c = nil
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.Close()
		c.c = nil
		return nil, err
	}
	c.body = c.body[:0]
	buf := bytes.NewBuffer(c.body)
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	c.body = buf.Bytes()
	if err != nil {
		c.Close()
		c.c = nil
		return nil, err
	}
	if resp.Close {
		c.Close()
		c.c = nil
	}
	if resp.StatusCode != http.StatusOK {
		return c.body, &StatusError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: string(c.body[:min(len(c.body), 200)])}
	}
	if bytes.Contains(c.body, errorsKey) {
		return c.body, fmt.Errorf("GraphQL errors: %.200s", c.body)
	}
	return c.body, nil
}

// StatusError is an answer other than 200.
type StatusError struct {
	Status     int
	RetryAfter string // the Retry-After header, if any
	Body       string // its start
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Next picks the request to send: worker is the connection's index, i counts its requests.
type Next func(worker, i int) Request

// Fixed always sends req.
func Fixed(req Request) Next { return func(int, int) Request { return req } }

// Closed runs n connections for d, each sending as soon as its previous request answered.
func Closed(ctx context.Context, addr string, n int, d time.Duration, next Next) (Result, error) {
	conns, err := dialAll(addr, n)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(conns)
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	deadline := start.Add(d)
	rec.workers(conns, func(w int, c *Conn, h *hdrhistogram.Histogram) {
		for i := 0; ctx.Err() == nil && time.Now().Before(deadline); i++ {
			t0 := time.Now() // the latency includes picking the request
			rec.send(h, c, next(w, i), t0)
		}
	})()
	return rec.result(time.Since(start), 0), nil
}

// Open offers rate requests per second for d over at most maxConns connections (dialled up
// front). Latency runs from each request's due time.
func Open(ctx context.Context, addr string, rate float64, d time.Duration, maxConns int, next Next) (Result, error) {
	conns, err := dialAll(addr, maxConns)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(conns)
	rec := newRecorder()
	total := int(rate * d.Seconds())
	due := make(chan time.Time, total+1) // the schedule never blocks on busy workers
	start := time.Now()
	// A saturated server leaves a backlog: what is still queued this long after the last due
	// time is not sent, but counted as an error with the latency it has already waited.
	cutoff := start.Add(d + max(2*time.Second, d/2))
	wait := rec.workers(conns, func(w int, c *Conn, h *hdrhistogram.Histogram) {
		i := 0
		for t := range due {
			if ctx.Err() != nil {
				continue // drain
			}
			if now := time.Now(); now.After(cutoff) {
				_ = h.RecordValue(now.Sub(t).Microseconds())
				rec.requests.Add(1)
				rec.notSent.Add(1)
				rec.fail(errBacklog)
				continue
			}
			rec.send(h, c, next(w, i), t)
			i++
		}
	})
	interval := time.Duration(float64(time.Second) / rate)
	for k := 0; k < total && ctx.Err() == nil; {
		now := time.Now()
		for ; k < total; k++ {
			t := start.Add(time.Duration(k) * interval)
			if t.After(now) {
				break
			}
			due <- t
		}
		if k < total {
			time.Sleep(min(time.Until(start.Add(time.Duration(k)*interval)), time.Millisecond))
		}
	}
	close(due)
	wait()
	return rec.result(time.Since(start), rate), nil
}

var errBacklog = errors.New("not sent: still queued in the generator when the run ended (server saturated)")

// Clients runs n keep-alive clients, each sending one request every interval for d (client i
// starting at i*interval/n), measuring from the due time. Each client connects just before its
// first request (its latency includes the dial), as a real one does: a server drops a
// connection that sends nothing within its header timeout. After the first interval all n
// connections are open at once; Result.OpenConns says how many still were at the end.
func Clients(ctx context.Context, addr string, n int, interval, d time.Duration, next Next) (Result, error) {
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = &Conn{addr: addr}
	}
	defer closeAll(conns)
	rec := newRecorder()
	start := time.Now()
	end := start.Add(d)
	rec.workers(conns, func(w int, c *Conn, h *hdrhistogram.Histogram) {
		t := start.Add(time.Duration(int64(interval) * int64(w) / int64(n)))
		for i := 0; t.Before(end) && ctx.Err() == nil; i++ {
			if wait := time.Until(t); wait > 0 {
				time.Sleep(wait)
			}
			rec.send(h, c, next(w, i), t)
			t = t.Add(interval)
		}
	})()
	res := rec.result(time.Since(start), float64(n)/interval.Seconds())
	for _, c := range conns {
		if c.c != nil {
			res.OpenConns++
		}
	}
	return res, nil
}

// Sequential sends n requests one at a time with gap between them: the idle server's latency.
func Sequential(ctx context.Context, addr string, n int, gap time.Duration, next Next) (Result, error) {
	c, err := Dial(addr)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	rec := newRecorder()
	h := newHist()
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t0 := time.Now()
		rec.send(h, c, next(0, i), t0)
		time.Sleep(gap)
	}
	rec.merge(h)
	return rec.result(time.Since(start), 0), nil
}

func dialAll(addr string, n int) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				c, err := Dial(addr)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		closeAll(conns)
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conns, nil
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// Get fetches url with a plain client (monitoring endpoints, not the load).
func Get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return b, err
}

// SumMetric sums the samples of the Prometheus counter name in a text exposition.
func SumMetric(exposition []byte, name string) float64 {
	var sum float64
	for line := range bytes.Lines(exposition) {
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		if len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(string(f[len(f)-1]), 64); err == nil {
			sum += v
		}
	}
	return sum
}
