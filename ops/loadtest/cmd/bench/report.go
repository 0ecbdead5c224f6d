package main

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/threadline/threadline/ops/loadtest"
)

func (b *bench) find(config, scenario, model string) *row {
	for i := range b.rows {
		r := &b.rows[i]
		if r.Config == config && strings.HasPrefix(r.Scenario, scenario) && r.Model == model && r.Res.Hist != nil {
			return r
		}
	}
	return nil
}

type target struct {
	what, measured string
	reached        *bool // nil: not measured
}

func yes(v bool) *bool { return &v }

func (b *bench) targets() []target {
	var ts []target
	cached := b.find("cache on", "cached page", "closed 32")
	off := b.find("cache off", "page (PgBouncer)", "closed 32")
	ceil := b.find("ceiling", "ceiling", "closed 32")
	t := target{what: "cached page, closed model, 32 connections: ≥ 5,000 req/s and ≥ 3x cache off"}
	if cached != nil && off != nil {
		ratio := cached.Res.RPS() / off.Res.RPS()
		t.measured = fmt.Sprintf("%.0f req/s; cache off %.0f req/s: %.1fx", cached.Res.RPS(), off.Res.RPS(), ratio)
		t.reached = yes(cached.Res.RPS() >= 5000 && ratio >= 3 && cached.Res.Errors == 0)
	}
	ts = append(ts, t)
	for _, c := range []struct {
		rate  int
		limit time.Duration
	}{{1000, 5 * time.Millisecond}, {2500, 20 * time.Millisecond}} {
		t := target{what: fmt.Sprintf("cached page, open model at %d req/s: p99 ≤ %s", c.rate, c.limit)}
		if r := b.find("cache on", "cached page", fmt.Sprintf("open %d/s", c.rate)); r != nil {
			t.measured = fmt.Sprintf("p99 %.2f ms (%.0f req/s done, %d errors)", ms(r.Res.Quantile(99)), r.Res.RPS(), r.Res.Errors)
			t.reached = yes(r.Res.Quantile(99) <= c.limit && r.Res.Errors == 0)
		}
		ts = append(ts, t)
	}
	t = target{what: "one request on an idle server: p50 ≤ 1 ms"}
	if r := b.find("cache on", "idle single request", "sequential, 5 ms apart"); r != nil {
		t.measured = fmt.Sprintf("p50 %.3f ms (cached page)", ms(r.Res.Quantile(50)))
		t.reached = yes(r.Res.Quantile(50) <= time.Millisecond)
	}
	ts = append(ts, t)
	t = target{what: "cache off, through PgBouncer, closed model, 32 connections: ≥ 2,000 req/s"}
	if off != nil {
		t.measured = fmt.Sprintf("%.0f req/s", off.Res.RPS())
		if off.Res.Errors > 0 {
			t.measured += ", errors " + errorsCell(off.Res)
		}
		t.reached = yes(off.Res.RPS() >= 2000 && off.Res.Errors == 0)
	}
	ts = append(ts, t)
	t = target{what: "cached path ≥ 30% of the in-memory ceiling (closed 32)"}
	if cached != nil && ceil != nil {
		share := cached.Res.RPS() / ceil.Res.RPS()
		t.measured = fmt.Sprintf("%.0f of %.0f req/s: %.0f%%", cached.Res.RPS(), ceil.Res.RPS(), 100*share)
		t.reached = yes(share >= 0.30)
	}
	ts = append(ts, t)
	t = target{what: "cached page with the response cache's in-process tier ≥ 50% of the in-memory ceiling (closed 32)"}
	if cached != nil && ceil != nil {
		share := cached.Res.RPS() / ceil.Res.RPS()
		t.measured = fmt.Sprintf("%.0f of %.0f req/s: %.0f%%", cached.Res.RPS(), ceil.Res.RPS(), 100*share)
		if off := b.find("cache on, local tier off", "cached page", "closed 32"); off != nil {
			t.measured += fmt.Sprintf(" (tier off: %.0f req/s, %.0f%%)", off.Res.RPS(), 100*off.Res.RPS()/ceil.Res.RPS())
		}
		t.reached = yes(share >= 0.50 && cached.Res.Errors == 0)
	}
	ts = append(ts, t)
	t = target{what: "history page at depth 10k within 1.5x the time of depth 0 (offset beside it)"}
	h0 := b.find("cache off", "deep pagination: history cursor at depth 0", "closed 4")
	h10 := b.find("cache off", "deep pagination: history cursor at depth 10000", "closed 4")
	o0 := b.find("cache off", "deep pagination: offset at depth 0", "closed 4")
	o10 := b.find("cache off", "deep pagination: offset at depth 10000", "closed 4")
	if h0 != nil && h10 != nil {
		g := ms(h10.Res.Quantile(50)) / ms(h0.Res.Quantile(50))
		t.measured = fmt.Sprintf("history p50 %.2f → %.2f ms (%.2fx)", ms(h0.Res.Quantile(50)), ms(h10.Res.Quantile(50)), g)
		if o0 != nil && o10 != nil {
			t.measured += fmt.Sprintf("; offset p50 %.2f → %.2f ms (%.2fx)", ms(o0.Res.Quantile(50)), ms(o10.Res.Quantile(50)),
				ms(o10.Res.Quantile(50))/ms(o0.Res.Quantile(50)))
		}
		t.reached = yes(g <= 1.5 && h10.Res.Errors == 0)
	}
	ts = append(ts, t)
	for _, kind := range []string{"historyAround", "timeline forward", "timeline backward"} {
		shallow, deep := timelineDepths[0], timelineDepths[len(timelineDepths)-1]
		t := target{what: fmt.Sprintf("%s at depth %d within 1.5x the time of depth %d", kind, deep, shallow)}
		var p50s []string
		rows := make([]*row, len(timelineDepths))
		for i, d := range timelineDepths {
			rows[i] = b.find("cache off", timelineScenario(kind, d), "closed 4")
			if rows[i] != nil {
				p50s = append(p50s, fmt.Sprintf("%.2f", ms(rows[i].Res.Quantile(50))))
			}
		}
		if first, last := rows[0], rows[len(rows)-1]; first != nil && last != nil && len(p50s) == len(rows) {
			g := ms(last.Res.Quantile(50)) / ms(first.Res.Quantile(50))
			t.measured = fmt.Sprintf("p50 at depths %v: %s ms; deep/shallow %.2fx", timelineDepths, strings.Join(p50s, " → "), g)
			t.reached = yes(g <= 1.5 && last.Res.Errors == 0 && first.Res.Errors == 0)
		}
		ts = append(ts, t)
	}
	t = target{what: fmt.Sprintf("full-text search over %s messages, each kind of search one at a time: p95 ≤ 100 ms", thousands(b.sfx.messages))}
	var worst *row
	kinds, clean := 0, true
	for i := range b.rows {
		r := &b.rows[i]
		if strings.HasPrefix(r.Scenario, "search: ") && r.Model == "sequential, 5 ms apart" && r.Res.Hist != nil {
			kinds++
			clean = clean && r.Res.Errors == 0
			if worst == nil || r.Res.Quantile(95) > worst.Res.Quantile(95) {
				worst = r
			}
		}
	}
	if worst != nil {
		t.measured = fmt.Sprintf("worst p95 %.2f ms (%s); %d kinds", ms(worst.Res.Quantile(95)), strings.TrimPrefix(worst.Scenario, "search: "), kinds)
		t.reached = yes(worst.Res.Quantile(95) <= 100*time.Millisecond && clean && kinds == len(searchKinds()))
	}
	ts = append(ts, t)
	t = target{what: "10,000 concurrent clients: zero errors, PgBouncer ≤ 20 server connections"}
	for i := range b.rows {
		r := &b.rows[i]
		if strings.Contains(r.Scenario, "concurrent keep-alive clients") && r.Res.Hist != nil {
			t.measured = fmt.Sprintf("%s clients (%d connections open at the end): %d requests, %d errors, p99 %.2f ms; PgBouncer server connections ≤ %d open (%d active)",
				strings.SplitN(r.Scenario, " ", 2)[0], r.Res.OpenConns, r.Res.Requests, r.Res.Errors, ms(r.Res.Quantile(99)), r.PgbTotal, r.PgbActive)
			t.reached = yes(r.Res.Errors == 0 && r.PgbTotal >= 0 && r.PgbTotal <= 20 && strings.HasPrefix(r.Scenario, "10000 "))
		}
	}
	ts = append(ts, t)
	return ts
}

func (b *bench) writeReport() error {
	var w bytes.Buffer
	commit := gitOut("rev-parse", "HEAD")
	// The report's own files are rewritten by this run: they do not make the tree dirty.
	if gitOut("status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md", ":!BENCHMARKS-*.png") != "" {
		commit += " (with uncommitted changes)"
	}
	goVersion := runtime.Version()
	mode := "full"
	if b.opts.quick {
		mode = "quick (BENCH_QUICK=1: fewer, shorter scenarios; not the published numbers)"
	}
	if b.opts.only != "" {
		mode += fmt.Sprintf(", only the %s scenarios (BENCH_ONLY=%s)", b.opts.only, b.opts.only)
	}
	fmt.Fprintf(&w, "# Threadline benchmarks\n\n")
	fmt.Fprintf(&w, "Written by `make bench` (ops/loadtest/cmd/bench) from one run; do not edit by hand.\n\n")
	fmt.Fprintf(&w, "- Date: %s\n- Commit: %s\n- Mode: %s, %s in all\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), commit, mode, b.took.Round(time.Second))
	fmt.Fprintf(&w, "- Machine: %s, %d cores (%s); the load generator, the server, PostgreSQL, PgBouncer and Redis all share them\n", b.cpuModel, runtime.NumCPU(), goVersion)
	fmt.Fprintf(&w, "- Load average (1, 5, 15 min) when the run began: %s; when it ended: %s (anything else running on the machine shows here)\n", b.loadBefore, b.loadAfter)
	fmt.Fprintf(&w, "- Data: 1000 conversations x 200 messages readable by user 1, and one conversation of %d messages (deep pagination)\n", longMessages)
	sc := searchCorpus(b.opts.quick)
	fmt.Fprintf(&w, "- Search: %d conversations x %d messages (%s messages in the table in all), words drawn from %d with Zipf's law, the searching user a member of %d conversations (ops/loadtest/cmd/bench/search.go)\n",
		sc.Conversations, sc.Messages, thousands(b.sfx.messages), sc.Vocabulary, sc.ViewerOf)
	fmt.Fprintf(&w, "- The page: `conversation(id){ messages(limit: 50, offset: 0){ items{ id seq conversationId body createdAt clientMessageId sender{ id name } } limit offset hasMore } }` (graph/client's MessagesPage)\n")
	fmt.Fprintf(&w, "- Server: bin/threadline, APP_ENV=production, LOG_LEVEL=warn, RATE_LIMIT_DISABLED=true, one process per configuration, restarted between them; open-file limit %d\n\n", fileLimit())

	fmt.Fprintf(&w, "## Targets\n\n| target | measured | |\n|---|---|---|\n")
	for _, t := range b.targets() {
		if b.opts.only != "" && t.reached == nil {
			continue // not this run's business
		}
		verdict := "not measured"
		if t.reached != nil {
			verdict = "**missed**"
			if *t.reached {
				verdict = "reached"
			}
		}
		if t.measured == "" {
			t.measured = "—"
		}
		fmt.Fprintf(&w, "| %s | %s | %s |\n", t.what, t.measured, verdict)
	}

	fmt.Fprintf(&w, "\n## Scenarios\n\n")
	fmt.Fprintf(&w, "Closed model: N connections, each sending as soon as its previous answer arrived. Open model: requests due at a constant rate; latency runs from when each was due (no coordinated omission). Percentiles from HdrHistograms (1 µs resolution, 3 significant digits). Errors: transport errors, non-200 answers and answers with GraphQL errors. Cache hit ratios are /health/cache deltas over the run (history cache, response cache; a history hit ratio appears only where pages were executed), cache errors the delta of both caches' error counters (Redis calls that failed or passed REDIS_TIMEOUT, after which the request executes or reads PostgreSQL), SQL/req the delta of `threadline_sql_statements_total` per request, PgBouncer the most server connections active / open at once (SHOW POOLS every 250 ms). Server CPU is the server process's user+system time per request (/proc, 10 ms ticks); other CPU the share of the machine's CPU time over the run used by neither the server nor the generator: PostgreSQL, PgBouncer, Redis, and anything else that ran (a high value with poor latency means the run competed for the cores).\n\n")
	fmt.Fprintf(&w, "| server | scenario | model | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | history hit | response hit | cache errors | SQL/req | PgBouncer sv active/open | server CPU µs/req | other CPU |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range b.rows {
		if r.Res.Hist == nil {
			fmt.Fprintf(&w, "| %s | %s | %s | failed: %s |||||||||\n", r.Config, r.Scenario, r.Model, r.Note)
			continue
		}
		errs := errorsCell(r.Res)
		cpu := "—"
		if r.ServerCPU >= 0 {
			cpu = fmt.Sprintf("%.0f", r.ServerCPU)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			r.Config, r.Scenario, r.Model, r.Res.RPS(), ms(r.Res.Quantile(50)), ms(r.Res.Quantile(95)), ms(r.Res.Quantile(99)), ms(r.Res.Max()),
			errs, ratio(r.HistHit), ratio(r.RespHit), r.CacheErrors, num(r.SQLPerReq), pools(r.PgbActive, r.PgbTotal), cpu, ratio(r.Others))
	}
	var notes []string
	for _, r := range b.rows {
		if r.Res.Hist != nil && r.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s, %s (%s): %s\n", r.Config, r.Scenario, r.Model, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(&w, "\nNotes on rows:\n\n%s", strings.Join(notes, ""))
	}
	if b.replica != "" {
		fmt.Fprintf(&w, "\nRead replica (row \"cache on, read replica\": `DATABASE_REPLICA_URL`, a streaming replica the bench starts on its stack; history-page misses go to it once it has replayed the conversation's last write, see the README's *Read replica*): %s.\n", b.replica)
	}
	if b.opts.only != "" {
		return os.WriteFile(b.opts.out, w.Bytes(), 0o644)
	}
	fmt.Fprintf(&w, "\n![latency against offered rate](BENCHMARKS-latency.png)\n\n![throughput at 32 connections](BENCHMARKS-throughput.png)\n")

	fmt.Fprintf(&w, "\n## Subscriber fan-out\n\nThe existing benchmark, `go test -run XXX -bench FanoutWebSocket ./ops/loadtest` (its own services and server process; see its doc comment for the metrics):\n\n```\n%s\n```\n", strings.TrimSpace(b.fanout))

	fmt.Fprintf(&w, "\n## Typing indicators across instances\n\n`go test -run XXX -bench TypingAcrossInstances ./ops/loadtest` (its own services and two server processes): setTyping over HTTP on one instance, until the event has reached every typing subscriber of the conversation on the other (p50-ms, p99-ms) and the first of them (first-p50-ms, first-p99-ms); see its doc comment:\n\n```\n%s\n```\n", strings.TrimSpace(b.typing))

	fmt.Fprintf(&w, "\n## Profiles\n\n")
	if len(b.profiles) == 0 {
		fmt.Fprintf(&w, "No profile was taken in this run (the cached page is profiled in every full run, the cache-off page when it misses its throughput target, the many-clients scenario in every full run).\n")
	}
	for _, p := range b.profiles {
		fmt.Fprintf(&w, "### %s\n\nA 5-second CPU profile of the server (on OPS_ADDR) under that load (`go tool pprof -top bin/threadline %s`):\n\n```\n%s\n```\n\n", p.Scenario, p.File, p.Top)
	}
	return os.WriteFile(b.opts.out, w.Bytes(), 0o644)
}

// thousands writes n with thousands separators: 1,000,000.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func ratio(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func num(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

func pools(active, total int) string {
	if total < 0 {
		return "—"
	}
	return fmt.Sprintf("%d / %d", active, total)
}

func gitOut(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// charts writes BENCHMARKS-latency.png (p50 and p99 against the offered rate, per server
// configuration) and BENCHMARKS-throughput.png (closed model at 32 connections) beside the report.
func (b *bench) charts() error {
	dir := filepath.Dir(b.opts.out)
	p := plot.New()
	p.Title.Text = "Open model: latency against offered rate (the page)"
	p.X.Label.Text = "offered req/s"
	p.Y.Label.Text = "latency ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	colors := map[string]color.RGBA{
		"cache on":                 {R: 0x1f, G: 0x77, B: 0xb4, A: 255},
		"cache on, local tier off": {R: 0x94, G: 0x67, B: 0xbd, A: 255},
		"response cache off":       {R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
		"cache off":                {R: 0xd6, G: 0x27, B: 0x28, A: 255},
		"ceiling":                  {R: 0x7f, G: 0x7f, B: 0x7f, A: 255},
	}
	for _, cfg := range []string{"cache on", "cache on, local tier off", "response cache off", "cache off", "ceiling"} {
		for _, q := range []float64{50, 99} {
			var pts plotter.XYs
			for _, r := range b.rows {
				if r.Config == cfg && r.Res.Offered > 0 && r.Res.Hist != nil && strings.HasPrefix(r.Model, "open") && !strings.Contains(r.Scenario, "95/5") {
					pts = append(pts, plotter.XY{X: r.Res.Offered, Y: max(ms(r.Res.Quantile(q)), 0.01)})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color, s.Color = colors[cfg], colors[cfg]
			if q == 50 {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, s)
			p.Legend.Add(fmt.Sprintf("%s p%.0f", cfg, q), l, s)
		}
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, "BENCHMARKS-latency.png")); err != nil {
		return err
	}

	bp := plot.New()
	bp.Title.Text = "Closed model, 32 connections: req/s (the page)"
	bp.Y.Label.Text = "req/s"
	var vals plotter.Values
	var names []string
	for _, c := range []struct{ cfg, scenario string }{
		{"ceiling", "ceiling"}, {"cache on", "cached page"}, {"cache on, local tier off", "cached page"}, {"response cache off", "cached page, executed"},
		{"cache off", "page (PgBouncer)"}, {"cache off, direct", "page (direct"},
	} {
		if r := b.find(c.cfg, c.scenario, "closed 32"); r != nil {
			vals = append(vals, r.Res.RPS())
			names = append(names, c.cfg)
		}
	}
	if len(vals) == 0 {
		return nil
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(40))
	if err != nil {
		return err
	}
	bars.Color = colors["cache on"]
	bp.Add(bars)
	bp.NominalX(names...)
	return bp.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, "BENCHMARKS-throughput.png"))
}

// errorsCell is a row's error count and what they were: the refusals (503 with Retry-After, the
// admission limit shedding load) apart, since they carry no error text, and the first other error.
func errorsCell(res loadtest.Result) string {
	cell := fmt.Sprint(res.Errors)
	if res.Errors == 0 {
		return cell
	}
	var parts []string
	if res.Refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused with 503", res.Refused))
	}
	if res.FirstError != "" {
		parts = append(parts, strings.ReplaceAll(truncate(res.FirstError, 80), "|", "/"))
	}
	return cell + " (" + strings.Join(parts, "; ") + ")"
}
