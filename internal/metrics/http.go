package metrics

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTP returns middleware that counts requests by route and status code and times them by
// route. It must wrap the http.ServeMux itself, with nothing in between that replaces the
// *http.Request: the route is the pattern the mux matched (r.Pattern, which the mux sets on the
// request it is given), without its method; requests no pattern matched are "unmatched".
// WebSocket upgrades (code 101) and event streams (text/event-stream) are counted but not
// timed: they last as long as their connection, and their time says nothing of latency.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		returned := false
		defer func() {
			// A handler that panicked before writing is answered with a 500 by the recovering
			// middleware outside; the panic goes on unrecovered from here.
			status := rec.status
			switch {
			case status == 0 && !returned:
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK
			}
			route := routeLabel(r.Pattern)
			m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			if !rec.hijacked && !eventStream(rec.Header()) {
				m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
		}()
		next.ServeHTTP(rec, r)
		returned = true
	})
}

// eventStream reports whether a response's header says it is an event stream.
func eventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// routeLabel turns a ServeMux pattern ("GET /healthz", "/query") into its path.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// statusRecorder remembers the status code of a response. It keeps the writer's optional
// abilities: Flush and Hijack directly, the rest through Unwrap (http.ResponseController).
type statusRecorder struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() { _ = r.FlushError() }

// FlushError flushes and reports a failed write (http.ResponseController prefers it to Flush),
// so that a stream writing to a client that does not read learns of its write deadline.
func (r *statusRecorder) FlushError() error {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.hijacked = true
		if r.status == 0 {
			r.status = http.StatusSwitchingProtocols
		}
	}
	return conn, rw, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
