// Package browsertest drives headless Chromium for the browser tests (GraphiQL's, the web
// app's, EventSource's): the Chromium of apt's chromium package (make client-deps installs it),
// one process shared by a test's pages, each page in a browser context of its own (cookies,
// storage and cache apart, as two people's browsers), with the page's uncaught exceptions,
// console errors and Content-Security-Policy violations recorded for [Page.CheckClean].
package browsertest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath finds Chromium, failing the test when there is none.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run make client-deps (apt-get install chromium)")
	return ""
}

// Start starts headless Chromium with a fresh profile, stopped when the test ends, and returns
// the context of its first tab: pass it to NewPage, or use it as a page itself.
//
// Flags: chromedp's defaults (--headless, --no-first-run, --disable-background-networking,
// --disable-sync, …) plus --no-sandbox, --disable-gpu and --disable-component-update.
func Start(t testing.TB, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return browser
}

// Page is a tab, and what its pages reported.
type Page struct {
	T testing.TB
	// Ctx runs actions in the tab, with the deadline given to NewPage.
	Ctx context.Context

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors
}

// NewPage opens a tab of browser (from Start) in a new browser context, closed when the test
// ends. Actions on it fail after timeout.
func NewPage(t testing.TB, browser context.Context, timeout time.Duration) *Page {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return Attach(t, tab, timeout)
}

// Attach records what the pages of tab report, and returns it as a Page whose actions fail
// after timeout.
func Attach(t testing.TB, tab context.Context, timeout time.Duration) *Page {
	t.Helper()
	p := &Page{T: t}
	if err := chromedp.Listen(tab, p.record); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	// CSP violations are recorded by a script that runs before the page's own.
	const recordCSP = `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSP}); err != nil {
		t.Fatal(err)
	}
	// The deadline is set on a context derived from one that has run (see chromedp.Run).
	var cancel context.CancelFunc
	p.Ctx, cancel = context.WithTimeout(tab, timeout)
	t.Cleanup(cancel)
	return p
}

func (p *Page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		p.problems = append(p.problems, "exception: "+(&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p.problems = append(p.problems, "console.error: "+strings.Join(args, " "))
		}
	}
}

// Problems returns the uncaught exceptions and console errors recorded so far.
func (p *Page) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// CheckClean reports CSP violations, uncaught exceptions and console errors of the page as
// test errors.
func (p *Page) CheckClean() {
	p.T.Helper()
	violations, err := chromedp.Run(p.Ctx, chromedp.Evaluate[[]string](`window.__cspViolations || []`))
	if err != nil {
		p.T.Fatal(err)
	}
	for _, v := range violations {
		p.T.Errorf("Content-Security-Policy violation: %s", v)
	}
	for _, pr := range p.Problems() {
		p.T.Errorf("page error: %s", pr)
	}
}

// Shot saves a screenshot of the page as a test artifact (ArtifactPath) and returns the PNG.
func (p *Page) Shot(name string) []byte {
	p.T.Helper()
	png, err := chromedp.Run(p.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.T.Logf("screenshot %s: %v", name, err)
		return nil
	}
	path := ArtifactPath(p.T, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.T.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(p.T.ArtifactDir(), name), png, 0o644)
	p.T.Logf("screenshot: %s", path)
	return png
}

// ArtifactPath returns where a test saves a file for people to look at:
// testdata-artifacts/<test>/<name> at the repository root (gitignored), kept after the run.
func ArtifactPath(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "testdata-artifacts", t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// RepoRoot returns the directory of go.mod above the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// JS quotes s as a JavaScript string literal.
func JS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
