package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/graph/client"
)

// BenchmarkSinglePageRequest is one request for a 50-message page with senders, end to end
// through the HTTP handler (JWT, gqlgen, loaders, the history cache on a local Redis), one at a
// time: the latency of a request on an idle server. The dataloader window is varied to show
// that it does not dominate: the look-ahead prefetch loads the page before any resolver waits
// in a window.
func BenchmarkSinglePageRequest(b *testing.B) {
	type variant struct {
		name string
		opts envOptions
	}
	variants := []variant{{"response-cache-hit", envOptions{respCache: true}}}
	for _, wait := range []time.Duration{time.Microsecond, 250 * time.Microsecond, 2 * time.Millisecond} {
		variants = append(variants, variant{"history-hit/loader_wait=" + wait.String(), envOptions{cache: true, loaderWait: wait}})
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			e, body, authz := benchPage(b, v.opts)
			client := http.DefaultClient
			do := func() {
				req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", authz)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || n < 5000 {
					b.Fatalf("status %d, %d bytes", res.StatusCode, n)
				}
			}
			for range 20 { // fill the caches (a response is stored in the background)
				do()
				time.Sleep(time.Millisecond)
			}
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
	}
}

// BenchmarkServerCPU measures the server's CPU per request for a 50-message page with senders,
// handled in process (no client, no network: the handler is called directly), one request at a
// time: "cpu-µs/op" is the process's user+system CPU time per request, from getrusage, and
// ns/op the latency including the wait for Redis (and PostgreSQL, on misses).
//
//	response-cache-hit:   the stored response bytes, checked current in one Redis round trip
//	executed/history-hit: gqlgen executes the page, read from the history cache
//	executed/cache-off:   gqlgen executes the page, read from PostgreSQL
//	executed/history-hit/reactions: as executed/history-hit, with reactions on ten messages of
//	                      the page, the viewer's among them (Reaction.viewerReacted resolved)
//
// The parallel/ variants send the same requests from 32 goroutines at once, as the HTTP load
// test's 32 clients do, so that the collector's work under concurrent allocation is counted.
func BenchmarkServerCPU(b *testing.B) {
	for _, tc := range []struct {
		name     string
		opts     envOptions
		parallel bool
	}{
		{"response-cache-hit", envOptions{respCache: true}, false},
		{"executed/history-hit", envOptions{cache: true}, false},
		{"executed/cache-off", envOptions{}, false},
		{"executed/history-hit/reactions", envOptions{cache: true}, false},
		{"parallel/response-cache-hit", envOptions{respCache: true}, true},
		{"parallel/executed/history-hit", envOptions{cache: true}, true},
		{"parallel/executed/cache-off", envOptions{maxConns: 8}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, body, authz := benchPageOf(b, tc.opts, strings.HasSuffix(tc.name, "/reactions"))
			h := e.srv.App.Handler
			serve := func() error {
				req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", authz)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || w.Body.Len() < 5000 {
					return fmt.Errorf("status %d, %d bytes", w.Code, w.Body.Len())
				}
				return nil
			}
			do := func() {
				if err := serve(); err != nil {
					b.Fatal(err)
				}
			}
			for range 20 { // warm the caches (the response is stored in the background)
				do()
				time.Sleep(time.Millisecond)
			}
			if tc.opts.respCache && e.responseCacheStats().Hits == 0 {
				b.Fatal("no response-cache hit while warming up")
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			if tc.parallel {
				b.SetParallelism(16) // 32 goroutines on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := serve(); err != nil {
							b.Error(err) // Fatal only on the benchmark's goroutine
							return
						}
					}
				})
			} else {
				for b.Loop() {
					do()
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU returns the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPage starts an env with opts and a conversation of 200 messages, and returns it with the
// body of a request for the conversation's newest page of 50 and the Authorization header of a
// member. The request is graph/client's MessagesPage, the page the load test (make bench)
// sends: every field of a message, its reactions with viewerReacted, its sender.
func benchPage(b *testing.B, opts envOptions) (*env, []byte, string) {
	return benchPageOf(b, opts, false)
}

// benchPageOf is benchPage, with reactions on ten messages of the page when reactions is set:
// Bob's on each, the viewer's on every other one.
func benchPageOf(b *testing.B, opts envOptions, reactions bool) (*env, []byte, string) {
	e := newEnv(b, opts)
	f := newFixture(b, e, 200)
	if reactions {
		rows, err := e.direct.Query(context.Background(), `SELECT id::text FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 10`, f.conv)
		if err != nil {
			b.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		for i, id := range ids {
			e.as(f.bob, addReactionMut, map[string]any{"id": id, "e": "👍"}, nil)
			if i%2 == 0 {
				e.as(f.alice, addReactionMut, map[string]any{"id": id, "e": "🎉"}, nil)
			}
		}
	}
	body, _ := json.Marshal(map[string]any{
		"query":     client.MessagesPage_Operation,
		"variables": map[string]any{"conversationId": f.conv, "limit": 50, "offset": 0},
	})
	return e, body, "Bearer " + e.token(f.alice)
}
