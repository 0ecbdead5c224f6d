// Package playground's tests drive GraphiQL, built from this directory's sources into
// internal/playground, in headless Chromium against a development server (app/apptest).
package playground

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/browsertest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// startDevelopment starts a server as APP_ENV=development configures it (introspection on,
// GraphiQL's demo-user token), over a fresh database, seeded with the demo data set if seed.
func startDevelopment(t *testing.T, seed bool) *apptest.Server {
	t.Helper()
	return apptest.Start(t, apptest.Options{Seed: seed, Configure: func(c *app.Config) {
		c.Env, c.Introspection = "development", true
	}})
}

// browserPage is GraphiQL open in headless Chromium.
type browserPage struct{ *browsertest.Page }

// openPlayground starts headless Chromium (a fresh profile, stopped at the end of the test),
// opens GraphiQL at base and waits until it is ready.
func openPlayground(t *testing.T, base string) *browserPage {
	t.Helper()
	p := &browserPage{browsertest.Attach(t, browsertest.Start(t, 1400, 900), 60*time.Second)}
	if err := chromedp.Do(p.Ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-execute-button")),
	); err != nil {
		p.Shot("graphiql-failed.png")
		t.Fatalf("GraphiQL did not load: %v", err)
	}
	return p
}

// editor returns the text of the CodeMirror editor under the CSS selector, waiting until it
// has some.
func (p *browserPage) editor(selector string) string {
	p.T.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Poll[string](
		`document.querySelector(`+browsertest.JS(selector+" .CodeMirror")+`)?.CodeMirror.getValue() || null`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		p.T.Fatalf("read the editor %s: %v", selector, err)
	}
	return v
}

// run puts query in the query editor (unless it is "") and presses the execute button.
func (p *browserPage) run(query string) {
	p.T.Helper()
	steps := []chromedp.Action[chromedp.Void]{}
	if query != "" {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](
				`document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(`+browsertest.JS(query)+`)`)(ctx, tg)
			return err
		}))
	}
	// GraphiQL parses the query after a debounce: wait a moment before pressing the button.
	steps = append(steps, chromedp.Sleep(500*time.Millisecond), chromedp.Click(chromedp.CSS(".graphiql-execute-button")))
	if err := chromedp.Do(p.Ctx, steps...); err != nil {
		p.T.Fatal(err)
	}
}

// result waits until the result pane shows want (or an error) and returns its text.
func (p *browserPage) result(want string) string {
	p.T.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Poll[string](
		`(() => { const v = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '';
		          return v.includes(`+browsertest.JS(want)+`) || v.includes('"errors"') ? v : null })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		p.Shot("graphiql-failed.png")
		p.T.Fatalf("the result pane never showed %s: %v", want, err)
	}
	// Let the pane paint before a screenshot.
	_ = chromedp.Do(p.Ctx, chromedp.Sleep(300*time.Millisecond))
	return v
}

// exampleResult is the result of GraphiQL's example query.
type exampleResult struct {
	Data struct {
		Me            struct{ Name string }
		Conversations struct {
			Edges []struct {
				Node struct {
					ID       string
					Title    string
					Messages struct {
						Items []struct {
							Seq    int
							Body   string
							Sender struct{ Name string }
						}
					}
				}
			}
		}
	}
	Errors []json.RawMessage
}

// TestPlaygroundInBrowser opens GraphiQL at / of a development server in headless Chromium,
// checks the example query and the demo user's Authorization header, runs the query, sees the
// demo user's messages in the result pane, and saves a screenshot as a test artifact
// (testdata-artifacts/TestPlaygroundInBrowser/graphiql.png, and t.ArtifactDir() with
// go test -artifacts).
func TestPlaygroundInBrowser(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	s := startDevelopment(t, true)
	p := openPlayground(t, s.URL)

	// The example query is in the editor and the development token in the headers editor.
	if query := p.editor(".graphiql-query-editor"); !strings.Contains(query, "query LatestConversations") || !strings.Contains(query, "messages(") {
		t.Errorf("the query editor does not hold the example query:\n%s", query)
	}
	headers := p.editor(".graphiql-editor-tool .graphiql-editor:not(.hidden)")
	var hdr map[string]string
	if err := json.Unmarshal([]byte(headers), &hdr); err != nil || !strings.HasPrefix(hdr["Authorization"], "Bearer ") {
		t.Errorf("the headers editor does not hold a bearer token: %q (%v)", headers, err)
	}

	p.run("")
	result := p.result(`"data"`)
	p.Shot("graphiql.png")

	var resp exampleResult
	if err := json.Unmarshal([]byte(result), &resp); err != nil {
		t.Fatalf("the result pane does not hold JSON: %v\n%s", err, result)
	}
	if len(resp.Errors) > 0 || resp.Data.Me.Name != "Demo User" || len(resp.Data.Conversations.Edges) == 0 {
		t.Fatalf("the example query's result is not the demo user's conversations:\n%s", result)
	}
	messages := 0
	for _, e := range resp.Data.Conversations.Edges {
		for _, m := range e.Node.Messages.Items {
			if m.Seq > 0 && m.Body != "" && m.Sender.Name != "" {
				messages++
			}
		}
	}
	if messages == 0 {
		t.Fatalf("no messages in the result pane:\n%s", result)
	}
	// And they are on the screen, not only in the editor's model.
	visible, err := chromedp.Run(p.Ctx, chromedp.Text(chromedp.CSS(".graphiql-response")))
	if err != nil || !strings.Contains(visible, `"body"`) || !strings.Contains(visible, resp.Data.Conversations.Edges[0].Node.Title) {
		t.Errorf("the result pane does not show the messages (%v):\n%.500s", err, visible)
	}
	t.Logf("GraphiQL ran the example query: %d conversations, %d messages", len(resp.Data.Conversations.Edges), messages)
	p.CheckClean()
}

// TestPlaygroundSubscriptionInBrowser runs a subscription from GraphiQL: over WebSocket with
// graphql-ws, the headers editor's token as the connection_init payload; it sees the replay
// after afterSeq, then a message sent meanwhile.
func TestPlaygroundSubscriptionInBrowser(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	s := startDevelopment(t, true)
	demo := s.Client(1)
	var resp exampleResult
	demo.Query(t, `{ conversations(first: 1) { edges { node { id messages(limit: 1) { items { seq } } } } } }`, nil, &resp.Data)
	if len(resp.Data.Conversations.Edges) == 0 || len(resp.Data.Conversations.Edges[0].Node.Messages.Items) == 0 {
		t.Fatal("the demo user has no conversation with messages")
	}
	conv := resp.Data.Conversations.Edges[0].Node
	lastSeq := conv.Messages.Items[0].Seq

	p := openPlayground(t, s.URL)
	p.run(fmt.Sprintf("subscription Live {\n  messageAdded(conversationId: %q, afterSeq: %d) { seq body sender { name } }\n}\n", conv.ID, lastSeq-1))
	replayed := p.result(fmt.Sprintf(`"seq": %d`, lastSeq))
	if strings.Contains(replayed, "WebSocket closed: 4401") {
		// The demo token works over HTTP (TestPlaygroundInBrowser), so the server does not
		// authenticate WebSocket connection_init yet.
		t.Skipf("the server refused the WebSocket connection (subscriptions not wired in yet?):\n%s", replayed)
	}
	if strings.Contains(replayed, `"errors"`) {
		t.Fatalf("the subscription did not replay seq %d:\n%s", lastSeq, replayed)
	}

	const live = "hello from the browser test"
	demo.Query(t, fmt.Sprintf(`mutation { sendMessage(input: {conversationId: %q, body: %q, clientMessageId: "browser-1"}) { seq } }`, conv.ID, live), nil, nil)
	delivered := p.result(live)
	if strings.Contains(delivered, `"errors"`) || !strings.Contains(delivered, fmt.Sprintf(`"seq": %d`, lastSeq+1)) {
		t.Fatalf("the subscription did not deliver seq %d:\n%s", lastSeq+1, delivered)
	}
	p.Shot("graphiql-subscription.png")
	p.run("") // the execute button stops a running subscription
	p.CheckClean()
}

var pageConfigRE = regexp.MustCompile(`(?s)<script type="application/json" id="threadline-config">(.*?)</script>`)

// TestPlaygroundTokenOnlyInDevelopment checks that GraphiQL's page carries the demo user's
// Authorization header in development, a token that works, and none in production.
func TestPlaygroundTokenOnlyInDevelopment(t *testing.T) {
	t.Parallel()
	for _, appEnv := range []string{"development", "production"} {
		t.Run(appEnv, func(t *testing.T) {
			var s *apptest.Server
			if appEnv == "development" {
				s = startDevelopment(t, true)
			} else {
				s = apptest.Start(t, apptest.Options{})
			}
			status, html := s.Get("/")
			body := []byte(html)
			m := pageConfigRE.FindSubmatch(body)
			if status != http.StatusOK || m == nil {
				t.Fatalf("GET /: status %d, no config block:\n%s", status, body)
			}
			var cfg struct {
				DefaultQuery   string  `json:"defaultQuery"`
				DefaultHeaders *string `json:"defaultHeaders"`
			}
			if err := json.Unmarshal(m[1], &cfg); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(cfg.DefaultQuery, "query LatestConversations") {
				t.Errorf("no example query: %q", cfg.DefaultQuery)
			}
			if appEnv == "production" {
				if cfg.DefaultHeaders != nil || strings.Contains(string(body), "Bearer") {
					t.Errorf("the production page carries headers: %s", m[1])
				}
				return
			}
			if cfg.DefaultHeaders == nil {
				t.Fatal("the development page has no default headers")
			}
			var hdr map[string]string
			if err := json.Unmarshal([]byte(*cfg.DefaultHeaders), &hdr); err != nil {
				t.Fatal(err)
			}
			pageToken := &apptest.Client{URL: s.URL + "/query", Authorization: hdr["Authorization"]}
			if raw, want := pageToken.Must(t, `{ me { id name } }`, nil).Body, `{"data":{"me":{"id":"1","name":"Demo User"}}}`; string(raw) != want {
				t.Errorf("the page's token: %s, want %s", raw, want)
			}
		})
	}
}
