// Package web's tests drive the web app, built from this directory into internal/webapp, in
// headless Chromium against a development server (app/apptest): two people, each in a browser
// context of their own, in one Chromium.
package web

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/browsertest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

var screenshots = flag.Bool("screenshots", false, "write the README's screenshots to docs/web/")

// appPage is the web app open in a tab, signed in as one user.
type appPage struct {
	*browsertest.Page
	name string
}

// trackSockets, run before the page's scripts, keeps every WebSocket the page opens in
// window.__sockets, for the test to see whether they are open and to close them.
const trackSockets = `window.__sockets = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) { super(...args); window.__sockets.push(this); }
};`

// signIn opens /app in a new browser context and signs in as the user named name on the
// development sign-in screen.
func signIn(t *testing.T, browser context.Context, s *apptest.Server, userID int64, name string) *appPage {
	t.Helper()
	p := &appPage{Page: browsertest.NewPage(t, browser, 90*time.Second), name: name}
	if _, err := chromedp.Call(p.Ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: trackSockets}); err != nil {
		t.Fatal(err)
	}
	link := fmt.Sprintf(`a[data-user-id="%d"]`, userID)
	if err := chromedp.Do(p.Ctx,
		chromedp.Navigate(s.URL+"/app"),
		chromedp.WaitVisible(chromedp.CSS(link)),
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS(".conversations li")),
	); err != nil {
		p.Shot(name + "-sign-in-failed.png")
		t.Fatalf("%s could not sign in: %v", name, err)
	}
	return p
}

// eval runs a JavaScript expression in the page.
func eval[T any](p *appPage, js string) T {
	p.T.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.T.Fatalf("%s: %s: %v", p.name, js, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds, and returns how long that took.
func (p *appPage) wait(what, cond string, timeout time.Duration) time.Duration {
	p.T.Helper()
	start := time.Now()
	if _, err := chromedp.Run(p.Ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout))); err != nil {
		p.Shot(p.name + "-failed.png")
		p.T.Fatalf("%s never saw %s (%s): %v", p.name, what, cond, err)
	}
	return time.Since(start)
}

func (p *appPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.T.Helper()
	if err := chromedp.Do(p.Ctx, steps...); err != nil {
		p.Shot(p.name + "-failed.png")
		p.T.Fatalf("%s: %v", p.name, err)
	}
}

// open clicks a conversation in the sidebar and waits for its messages.
func (p *appPage) open(conversation int64) {
	p.T.Helper()
	link := fmt.Sprintf(`.conversations a[href="#/c/%d"]`, conversation)
	p.do(chromedp.Click(chromedp.CSS(link)), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.conversation[data-conversation-id="%d"] .messages li[data-seq]`, conversation))))
}

// send types a message into the composer and presses Enter.
func (p *appPage) send(text string) {
	p.T.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#composer"), text+kb.Enter))
}

// seqs returns the seqs of the messages on screen, top to bottom.
func (p *appPage) seqs() []int64 {
	p.T.Helper()
	return eval[[]int64](p, `[...document.querySelectorAll('.messages li[data-seq]')].map((li) => Number(li.dataset.seq))`)
}

// message is the selector of the message on screen whose body is body.
func message(body string) string {
	return `[...document.querySelectorAll('.messages li')].find((li) => li.querySelector('.body')?.textContent === ` + browsertest.JS(body) + `)`
}

// unread is the unread badge of a conversation in the sidebar, 0 without one.
func unread(conversation int64) string {
	return fmt.Sprintf(`Number(document.querySelector('.conversations li[data-conversation-id="%d"]')?.dataset.unread ?? -1)`, conversation)
}

type user struct {
	ID   int64
	Name string
}

// TestWebApp runs two people through the app at once, Alice and Bob, each signed in on the
// development sign-in screen in a browser context of their own, one server and one Chromium for
// every step.
func TestWebApp(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	s := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.Env, c.Introspection = "development", true
		// The app must live within the rate limit (50 requests a second, typing costs 10).
		c.RateLimitDisabled = false
	}})
	ids := dbtest.Users(t, s.Direct, "Alice", "Bob", "Carol")
	alice, bob := user{ids[0], "Alice"}, user{ids[1], "Bob"}
	lunch := dbtest.Conversation(t, s.Direct, "Lunch", alice.ID, bob.ID)
	dbtest.Messages(t, s.Direct, lunch, []int64{alice.ID, bob.ID}, 4)
	general := dbtest.Conversation(t, s.Direct, "General", alice.ID, bob.ID, ids[2])
	dbtest.Messages(t, s.Direct, general, []int64{bob.ID, ids[2], alice.ID}, 95)
	// Bob has read Lunch; General, the latest, is on top of his sidebar.
	s.Client(bob.ID).Query(t, `mutation($c: ID!) { markRead(conversationId: $c, seq: 4) { id } }`, map[string]any{"c": lunch}, nil)

	browser := browsertest.Start(t, 1200, 800)
	a := signIn(t, browser, s, alice.ID, alice.Name)
	b := signIn(t, browser, s, bob.ID, bob.Name)

	t.Run("a message arrives live, counts as unread, and is read on opening", func(t *testing.T) {
		a.T, b.T = t, t
		if first := eval[string](b, `document.querySelector('.conversations li')?.dataset.conversationId`); first != fmt.Sprint(general) {
			t.Fatalf("Bob's sidebar starts with conversation %s, want General (%d)", first, general)
		}
		b.wait("Lunch read", unread(lunch)+` === 0`, 5*time.Second)
		title := eval[string](b, `document.title`)

		a.open(lunch)
		a.send("hello Bob")
		took := b.wait("Lunch on top of the sidebar with one unread", fmt.Sprintf(`document.querySelector('.conversations li')?.dataset.conversationId === '%d' && %s === 1`, lunch, unread(lunch)), 5*time.Second)
		t.Logf("Bob's sidebar moved Lunch to the top with 1 unread %v after Alice pressed Enter", took)
		b.wait("the app badge count up", `document.title !== `+browsertest.JS(title)+` && /^\(\d+\) Threadline$/.test(document.title)`, 5*time.Second)
		if before, after := badge(title), badge(eval[string](b, `document.title`)); after != before+1 {
			t.Errorf("the app badge went from %d to %d, want +1", before, after)
		}

		b.open(lunch)
		b.wait("the message", message("hello Bob")+` !== undefined`, 5*time.Second)
		b.wait("Lunch's badge cleared", unread(lunch)+` === 0 && !document.querySelector('.conversations li[data-conversation-id="`+fmt.Sprint(lunch)+`"] .badge')`, 5*time.Second)
		var got struct{ Conversation struct{ UnreadCount int } }
		s.Client(bob.ID).Query(t, `query($c: ID!) { conversation(id: $c) { unreadCount } }`, map[string]any{"c": lunch}, &got)
		if got.Conversation.UnreadCount != 0 {
			t.Errorf("the server counts %d unread for Bob in Lunch, want 0", got.Conversation.UnreadCount)
		}
		b.wait("the app badge back", `document.title === `+browsertest.JS(title), 5*time.Second)
	})

	t.Run("scrolling up pages older messages with no gap and no repeat while Bob sends", func(t *testing.T) {
		a.T = t
		a.open(general)
		const sent = 12
		done := make(chan error, 1)
		go func() {
			c := s.Client(bob.ID)
			for i := range sent {
				res, err := c.Do(context.Background(), `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
					map[string]any{"c": general, "b": fmt.Sprintf("meanwhile %d", i)})
				if err == nil && !res.OK() {
					err = fmt.Errorf("errors %+v", res.Errors)
				}
				if err != nil {
					done <- err
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			done <- nil
		}()
		for range 20 {
			if seqs := a.seqs(); len(seqs) > 0 && seqs[0] == 1 {
				break
			}
			a.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('.scroller').scrollTop = 0`), chromedp.Sleep(150*time.Millisecond))
		}
		if err := <-done; err != nil {
			t.Fatalf("Bob's messages: %v", err)
		}
		a.wait("every message", fmt.Sprintf(`document.querySelectorAll('.messages li[data-seq="%d"]').length === 1`, 95+sent), 5*time.Second)
		apptest.CheckSeqs(t, "Alice's screen", a.seqs(), 1, 95+sent)
	})

	t.Run("an edit, a deletion and a reaction reach the other person within a second", func(t *testing.T) {
		a.T, b.T = t, t
		a.open(lunch)
		b.wait("Lunch open", fmt.Sprintf(`document.querySelector('.conversation[data-conversation-id="%d"] .messages li[data-seq]') !== null`, lunch), 5*time.Second)

		mine := message("hello Bob")
		a.do(chromedp.Evaluate[chromedp.Void](mine + `.querySelector('button.edit').click()`))
		a.do(chromedp.WaitVisible(chromedp.CSS(".edit-form textarea")), chromedp.Evaluate[chromedp.Void](`document.querySelector('.edit-form textarea').select()`),
			chromedp.SendKeys(chromedp.CSS(".edit-form textarea"), "hello Bob, edited"+kb.Enter))
		took := b.wait("the edit", message("hello Bob, edited")+`?.querySelector('.edited') != null`, time.Second)
		t.Logf("edit: on Bob's screen %v after Alice pressed Enter", took)

		theirs := message("message 4") // Bob's
		a.do(chromedp.Evaluate[chromedp.Void](theirs + `.querySelector('button.react').click()`))
		took = b.wait("the reaction", theirs+`?.querySelector('.reaction')?.textContent === '👍 1'`, time.Second)
		t.Logf("reaction: on Bob's screen %v after Alice clicked", took)

		a.wait("the edit on Alice's screen", message("hello Bob, edited")+`?.querySelector('button.delete') != null`, 5*time.Second)
		a.do(chromedp.Evaluate[chromedp.Void](message("hello Bob, edited") + `.querySelector('button.delete').click()`))
		took = b.wait("the deletion", `[...document.querySelectorAll('.messages li .deleted')].length === 1 && `+message("hello Bob, edited")+` === undefined`, time.Second)
		t.Logf("deletion: on Bob's screen %v after Alice clicked", took)
	})

	t.Run("a message sent offline is pending, then sent once, and nothing is missed", func(t *testing.T) {
		a.T, b.T = t, t
		b.wait("Lunch open", fmt.Sprintf(`document.querySelector('.conversation[data-conversation-id="%d"] .messages li[data-seq]') !== null`, lunch), 5*time.Second)
		// Offline emulation fails new requests but leaves an open WebSocket open (Chromium 156):
		// the app drops its socket when the browser says it is offline (the offline event); the
		// test closes any left, as a network cut would.
		const openSockets = `window.__sockets.filter((s) => s.readyState === WebSocket.OPEN).length`
		b.setNetwork(true, false)
		b.do(chromedp.Sleep(300 * time.Millisecond))
		t.Logf("WebSockets open after 300 ms of offline emulation: %d", eval[int](b, openSockets))
		b.setNetwork(true, true)
		b.wait("the reconnecting notice", `document.querySelector('.offline') !== null`, 5*time.Second)
		t.Logf("WebSockets open once the offline event fired: %d", eval[int](b, openSockets))
		b.do(chromedp.Evaluate[chromedp.Void](`window.__sockets.forEach((s) => s.readyState === WebSocket.OPEN && s.close(4000, 'test: network cut'))`))

		const body = "sent while offline"
		b.send(body)
		b.wait("the pending message", message(body)+`?.dataset.pending === 'true'`, 2*time.Second)
		for i := range 3 {
			s.Client(alice.ID).Query(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
				map[string]any{"c": lunch, "b": fmt.Sprintf("while Bob was away %d", i)}, nil)
		}
		time.Sleep(time.Second) // the app retries meanwhile, in vain
		if pending := eval[bool](b, message(body)+`?.dataset.pending === 'true'`); !pending {
			t.Fatal("the message is no longer pending while offline")
		}

		b.setNetwork(false, true)
		took := b.wait("the message sent", message(body)+`?.dataset.seq !== undefined`, 10*time.Second)
		t.Logf("the pending message was confirmed %v after the network came back", took)
		b.wait("Alice's messages", message("while Bob was away 2")+` !== undefined`, 10*time.Second)
		b.wait("the notice gone", `document.querySelector('.offline') === null`, 10*time.Second)
		if n := dbtest.Count(t, s.Direct, `SELECT count(*) FROM messages WHERE body = $1`, body); n != 1 {
			t.Errorf("%d messages with the body %q in PostgreSQL, want 1", n, body)
		}
		var last int64
		if err := s.Direct.QueryRow(context.Background(), `SELECT last_seq FROM conversations WHERE id = $1`, lunch).Scan(&last); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // anything repeated would show by now
		apptest.CheckSeqs(t, "Bob's screen", b.seqs(), 1, last)
	})

	t.Run("typing shows on the other screen", func(t *testing.T) {
		a.T, b.T = t, t
		a.open(lunch)
		b.wait("Lunch open", fmt.Sprintf(`document.querySelector('.conversation[data-conversation-id="%d"]') !== null`, lunch), 5*time.Second)
		a.do(chromedp.SendKeys(chromedp.CSS("#composer"), "I am typ"))
		took := b.wait("Alice typing", `document.querySelector('.typing').textContent === 'Alice is typing…'`, 5*time.Second)
		t.Logf("typing: on Bob's screen %v after Alice's last key", took)
		a.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#composer').select()`), chromedp.KeyEvent(kb.Backspace))
		b.wait("Alice no longer typing", `document.querySelector('.typing').textContent === ''`, 5*time.Second)
	})

	t.Run("a new conversation appears in the other sidebar; Escape closes a dialog", func(t *testing.T) {
		a.T, b.T = t, t
		a.do(chromedp.Click(chromedp.CSS(`.app-header button:nth-of-type(2)`)), chromedp.WaitVisible(chromedp.CSS("#new-title")))
		a.do(chromedp.SendKeys(chromedp.CSS("#new-title"), "Weekend plans"), chromedp.SendKeys(chromedp.CSS("#new-search"), "bo"))
		a.wait("Bob in the picker", `[...document.querySelectorAll('.person')].some((l) => l.textContent.includes('Bob'))`, 5*time.Second)
		a.do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('.person')].find((l) => l.textContent.includes('Bob')).querySelector('input').click()`),
			chromedp.Click(chromedp.CSS(`.dialog button[type="submit"]`)))
		a.wait("the new conversation open", `document.querySelector('#conversation-title')?.textContent === 'Weekend plans' && document.querySelector('dialog[open]') === null`, 5*time.Second)
		b.wait("the new conversation in Bob's sidebar", `[...document.querySelectorAll('.conversations .title')].some((e) => e.textContent === 'Weekend plans')`, 5*time.Second)

		a.do(chromedp.Click(chromedp.CSS(`.app-header button:nth-of-type(1)`)), chromedp.WaitVisible(chromedp.CSS("#search-query")))
		a.do(chromedp.KeyEvent(kb.Escape))
		a.wait("the dialog closed", `document.querySelector('dialog') === null`, 2*time.Second)
	})

	t.Run("search opens a hit in its conversation, its snippet as text", func(t *testing.T) {
		a.T = t
		const body = "try <b>bold</b> searching for *flamingos*"
		res := s.Client(bob.ID).Must(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`, map[string]any{"c": general, "b": body})
		if !res.OK() {
			t.Fatalf("send: %+v", res.Errors)
		}
		// Search every conversation: the one open (Weekend plans) is searched alone by default.
		a.do(chromedp.Click(chromedp.CSS(`.app-header button:nth-of-type(1)`)), chromedp.WaitVisible(chromedp.CSS("#search-query")),
			chromedp.Evaluate[chromedp.Void](`(() => { const c = document.querySelector('dialog input[type="checkbox"]'); if (c?.checked) c.click(); })()`),
			chromedp.SendKeys(chromedp.CSS("#search-query"), "flamingos"))
		a.wait("a hit", `document.querySelector('.search-results mark')?.textContent.toLowerCase() === 'flamingos'`, 5*time.Second)
		if n := eval[int](a, `document.querySelectorAll('.search-results b').length`); n != 0 {
			t.Errorf("the snippet's <b> became an element: server text rendered as HTML")
		}
		if got := eval[string](a, `document.querySelector('.search-results a').textContent`); !strings.HasSuffix(got, "for *flamingos*") {
			t.Errorf("the hit reads %q: the snippet's escapes (\\*) not read as the body's own characters", got)
		}
		a.do(chromedp.Click(chromedp.CSS(".search-results a")))
		a.wait("the hit, in General", fmt.Sprintf(`document.querySelector('.conversation[data-conversation-id="%d"] .message.focused .body')?.textContent === %s`, general, browsertest.JS(body)), 5*time.Second)
	})

	for _, p := range []*appPage{a, b} {
		p.T = t
		p.CheckClean()
	}
	if n := counter(t, s, "threadline_rate_limited_total"); n != 0 {
		t.Errorf("the server refused %v requests of the app with RATE_LIMITED", n)
	}
}

// demoConversation is the demo user's first conversation in the sidebar, as startDemo reads it.
type demoConversation struct {
	ID          string
	UnreadCount int
	Members     []struct{ ID string }
	Messages    struct{ Items []struct{ ID string } } // the newest
}

func (c demoConversation) id() int64 {
	var id int64
	fmt.Sscan(c.ID, &id)
	return id
}

// startDemo starts a development server on the demo data set that make run seeds, and reads
// the demo user's (user 1's) first conversation.
func startDemo(t *testing.T) (*apptest.Server, demoConversation) {
	t.Helper()
	s := apptest.Start(t, apptest.Options{Seed: true, Configure: func(c *app.Config) { c.Env = "development" }})
	var first struct {
		Conversations struct {
			Edges []struct{ Node demoConversation }
		}
	}
	s.Client(1).Query(t, `{ conversations(first: 1) { edges { node { id unreadCount members { id } messages(limit: 1) { items { id } } } } } }`, nil, &first)
	if len(first.Conversations.Edges) == 0 {
		t.Fatal("the demo user has no conversation")
	}
	return s, first.Conversations.Edges[0].Node
}

// TestWebAppScreenshots takes the README's screenshots on the demo data set that make run
// seeds, as the demo user: the desktop layout, and the sidebar and a conversation at phone
// width, while another member reacts and types. With -screenshots (make screenshots) it writes
// them to docs/web/; otherwise they are test artifacts only.
func TestWebAppScreenshots(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	s, conv := startDemo(t)
	var other int64
	for _, m := range conv.Members {
		if m.ID != "1" {
			fmt.Sscan(m.ID, &other)
			break
		}
	}
	id := conv.id()

	browser := browsertest.Start(t, 1200, 760)
	p := signIn(t, browser, s, 1, "Demo User")
	p.open(id)
	them := s.Client(other)
	them.Query(t, `mutation($m: ID!) { addReaction(messageId: $m, emoji: "🎉") { id } }`, map[string]any{"m": conv.Messages.Items[0].ID}, nil)
	// Typing is ephemeral: a setTyping made before the page's typing subscription started is not
	// replayed to it, and it ends 6 s after the last one, so it is repeated every second until
	// the page shows all three (the read may come last).
	shown := `document.querySelector('.messages .reaction') !== null && document.querySelector('.typing')?.textContent !== '' && ` + unread(id) + ` === 0`
	for i, deadline := 0, time.Now().Add(15*time.Second); !eval[bool](p, shown) && time.Now().Before(deadline); i++ {
		if i%10 == 0 {
			them.Query(t, `mutation($c: ID!) { setTyping(conversationId: $c, typing: true) }`, map[string]any{"c": id}, nil)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.wait("the reaction, the typing and the conversation read", shown, time.Second)
	p.shoot(t, "desktop.png")

	p.do(chromedp.EmulateViewport(390, 760, chromedp.EmulateMobile), chromedp.Navigate(s.URL+"/app?as=1"), chromedp.WaitVisible(chromedp.CSS(".conversations li")))
	p.shoot(t, "phone-sidebar.png")
	p.open(id)
	p.shoot(t, "phone-conversation.png")
	p.CheckClean()
}

// TestWebAppMarkReadRetries: a markRead that fails is tried again while its messages stay on
// screen, without another sighting. The tab's first four MarkRead requests fail as a refused
// connection would (the RetryLink's three attempts, then the first of the app's own retry),
// and the conversation opened is read all the same.
func TestWebAppMarkReadRetries(t *testing.T) {
	testenv.SkipShort(t, "needs Chromium and the services")
	t.Parallel()
	s, conv := startDemo(t)
	if conv.UnreadCount == 0 {
		t.Fatalf("the demo user's first conversation has no unread messages: nothing to read")
	}
	id := conv.id()

	browser := browsertest.Start(t, 1200, 760)
	p := signIn(t, browser, s, 1, "Demo User")
	const fail = 4
	var failed atomic.Int32
	p.failRequests("MarkRead", fail, &failed)
	p.open(id)
	p.wait("the conversation read after failed markReads", unread(id)+` === 0`, 30*time.Second)
	if n := failed.Load(); n != fail {
		t.Errorf("%d MarkRead requests failed, want %d", n, fail)
	}
	var after struct {
		Conversation struct{ UnreadCount int }
	}
	s.Client(1).Query(t, `query($id: ID!) { conversation(id: $id) { unreadCount } }`, map[string]any{"id": id}, &after)
	if after.Conversation.UnreadCount != 0 {
		t.Errorf("the server counts %d unread messages after the page read them, want 0", after.Conversation.UnreadCount)
	}
}

// failRequests makes the tab's first n HTTP requests of the operation named operation fail
// as a refused connection would, counting them in failed; every other request goes through.
func (p *appPage) failRequests(operation string, n int32, failed *atomic.Int32) {
	p.T.Helper()
	ctx := p.Ctx
	var matched atomic.Int32
	handle := func(ev *fetch.EventRequestPaused) {
		var body []byte
		for _, e := range ev.Request.PostDataEntries {
			body = append(body, e.Bytes...)
		}
		if strings.Contains(string(body), `"operationName":"`+operation+`"`) && matched.Add(1) <= n {
			failed.Add(1)
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionRefused})
			return
		}
		_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*fetch.EventRequestPaused); ok {
			go handle(ev) // a listener must not run commands itself
		}
	}); err != nil {
		p.T.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{ResourceType: network.ResourceTypeFetch}}}); err != nil {
		p.T.Fatal(err)
	}
}

// badge reads the count of a title such as "(3) Threadline"; 0 without one.
func badge(title string) int {
	var n int
	fmt.Sscanf(title, "(%d)", &n)
	return n
}

// setNetwork cuts the tab's network off (every new request fails: Network.emulateNetworkConditions'
// successor in this protocol version) or gives it back, and with navigator also sets what
// navigator.onLine says, which fires the offline or online event.
func (p *appPage) setNetwork(offline, navigator bool) {
	p.T.Helper()
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		rule := &network.Conditions{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}
		if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{rule}}); err != nil {
			return err
		}
		if !navigator {
			return nil
		}
		_, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	}))
}

// shoot saves a screenshot as a test artifact, and with -screenshots into docs/web/ beside the
// README.
func (p *appPage) shoot(t *testing.T, name string) {
	t.Helper()
	p.do(chromedp.Sleep(300 * time.Millisecond)) // let it paint
	png := p.Shot(name)
	if *screenshots && png != nil {
		dir := filepath.Join(browsertest.RepoRoot(t), "docs", "web")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// counter reads a counter of the server's metrics.
func counter(t *testing.T, s *apptest.Server, name string) float64 {
	t.Helper()
	mfs, err := s.App.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}
