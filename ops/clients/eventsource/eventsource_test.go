// Package eventsource's test follows a conversation from a page in headless Chromium with the
// browser's own EventSource: GraphQL over Server-Sent Events, a GET with the token in
// access_token, from another origin allowed by CORS_ALLOWED_ORIGINS.
package eventsource

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/browsertest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// TestEventSourceInBrowser opens testdata/live.html, served from an origin of its own, in
// headless Chromium: its EventSource subscribes to messageAdded on instance B and receives what
// is sent through instance A; the page closes the stream, messages are sent meanwhile, and the
// page opens a new one with afterSeq = the last seq it received: it gets exactly the missed
// ones, then a message sent live, each once, written into the page.
func TestEventSourceInBrowser(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	html, err := os.ReadFile(filepath.Join("testdata", "live.html"))
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(html)
	}))
	t.Cleanup(origin.Close)
	a := apptest.Start(t, apptest.Options{})
	b := apptest.Start(t, apptest.Options{Database: &a.Database, RedisURL: a.Config.RedisURL, Configure: func(c *app.Config) {
		c.CORSAllowedOrigins = []string{origin.URL}
	}})
	users := dbtest.Users(t, a.Direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, a.Direct, "General", users...)
	send := func(n int, what string) { a.Client(users[0]).SendNumbered(t, conv, n, what) }

	page := browsertest.Attach(t, browsertest.Start(t, 800, 600), 60*time.Second)
	ctx := page.Ctx

	q := url.Values{"endpoint": {b.URL + "/query"}, "token": {b.Token(users[1])}, "conversation": {apptest.ID(conv)}}
	if err := chromedp.Do(ctx, chromedp.Navigate(origin.URL+"/?"+q.Encode())); err != nil {
		t.Fatal(err)
	}
	state := func(want string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('state').textContent === `+browsertest.JS(want),
			chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("the page never said %q: %v (%s)", want, err, text(t, ctx, "#state"))
		}
	}
	received := func(n int) []int64 {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelectorAll('#messages li').length >= %d`, n),
			chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("the page never showed %d messages: %v (errors: %s)", n, err, text(t, ctx, "#errors"))
		}
		seqs, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`[...document.querySelectorAll('#messages li')].map((li) => Number(li.dataset.seq))`))
		if err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	call := func(fn string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](fn+`()`)); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
	}

	state("open")
	waitSubscriptions(t, b, 1)
	const before, missed = 5, 7
	send(before, "before")
	apptest.CheckSeqs(t, "before the disconnect", received(before), 1, before)
	call("disconnect")
	waitSubscriptions(t, b, 0)
	send(missed, "missed")
	call("resume")
	state("open")
	waitSubscriptions(t, b, 1)
	send(1, "live")
	got := received(before + missed + 1)
	apptest.CheckSeqs(t, "in the page", got, 1, before+missed+1)
	if last := text(t, ctx, "#messages li:last-child"); last != fmt.Sprintf("seq %d Alice: live 0", before+missed+1) {
		t.Errorf("the last message in the page: %q", last)
	}
	if errs := text(t, ctx, "#errors"); errs != "" {
		t.Errorf("the page got errors: %s", errs)
	}
	// Nothing more: each message once.
	time.Sleep(300 * time.Millisecond)
	if again := received(0); !slices.Equal(again, got) {
		t.Errorf("the page showed %v after %v", again, got)
	}
	page.CheckClean()
}

func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(`+browsertest.JS(selector)+`)?.textContent ?? ''`))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(v)
}

// waitSubscriptions waits until srv runs n subscriptions.
func waitSubscriptions(t *testing.T, srv *apptest.Server, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs, err := srv.App.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := -1.0
		for _, mf := range mfs {
			if mf.GetName() == "threadline_subscriptions_active" {
				got = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v subscriptions active, want %v", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
