package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/ops/loadtest"
)

// searchCorpus is the search scenarios' data set: 1,000,000 messages in 2,000 conversations of
// 500, the viewer a member of 40 of them (20,000 messages), words drawn from 20,000 with Zipf's
// law. Of the viewer's messages, SearchWord(1) is in about 60%, SearchWord(10) in 12%, a word
// ranked 2,000 or below in a handful. The quick run's corpus is a tenth of it (its 1,000,000
// messages take a minute or more to write).
func searchCorpus(quick bool) db.SearchCorpus {
	c := db.SearchCorpus{
		Name: "1M", Conversations: 2000, Messages: 500, Members: 8, ViewerOf: 40,
		Vocabulary: 20000, WordsMin: 4, WordsMax: 24, RandSeed: 0.42,
	}
	if quick {
		c.Name, c.Conversations = "quick", 200
	}
	return c
}

func searchViewerName(quick bool) string { return "Search viewer " + searchCorpus(quick).Name }

// prepareSearch seeds the search corpus once.
func prepareSearch(ctx context.Context, conn *pgx.Conn, quick bool) error {
	corpus := searchCorpus(quick)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM users WHERE name = $1`, searchViewerName(quick)).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	logf("seeding the search corpus (%d conversations x %d messages)", corpus.Conversations, corpus.Messages)
	rep, err := db.SeedSearchCorpus(ctx, conn, corpus)
	if err != nil {
		return err
	}
	logf("search corpus: %d messages in %s", rep.Messages, rep.Took.Round(time.Millisecond))
	return nil
}

// searchFixture is what the search scenarios read: the viewer and one of its conversations.
type searchFixture struct {
	viewer       int64
	conversation string
	messages     int64 // in the whole table
}

func loadSearchFixture(ctx context.Context, conn *pgx.Conn, quick bool) (searchFixture, error) {
	var fx searchFixture
	err := conn.QueryRow(ctx, `SELECT u.id, min(m.conversation_id)::text FROM users u
		JOIN conversation_members m ON m.user_id = u.id WHERE u.name = $1 GROUP BY u.id`, searchViewerName(quick)).Scan(&fx.viewer, &fx.conversation)
	if err != nil {
		return fx, fmt.Errorf("search fixture: %w", err)
	}
	// The planner's estimate: exact enough, and instant.
	err = conn.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE relname = 'messages'`).Scan(&fx.messages)
	return fx, err
}

const searchQuery = `query Search($q: String!, $c: ID, $first: Int, $after: String) {
  searchMessages(query: $q, conversationId: $c, first: $first, after: $after) {
    edges { cursor snippet node { id seq conversationId body createdAt sender { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}`

// searchKinds are the searches measured: each a list of queries sent in turn.
func searchKinds() []struct {
	name    string
	queries []string
	conv    bool // in one conversation
	page2   bool // the second page
} {
	ranked := func(from, to, step int) []string {
		var qs []string
		for k := from; k <= to; k += step {
			qs = append(qs, db.SearchWord(k))
		}
		return qs
	}
	return []struct {
		name    string
		queries []string
		conv    bool
		page2   bool
	}{
		{name: "common word (the 5 most frequent: 60% to 20% of messages)", queries: ranked(1, 5, 1)},
		{name: "medium word (ranks 8 to 40: 15% to 3%)", queries: ranked(8, 40, 4)},
		{name: "rare word (ranks 2,000 to 20,000: a few hits)", queries: ranked(2000, 20000, 1000)},
		{name: "two words, a phrase, OR, -word", queries: []string{
			db.SearchWord(3) + " " + db.SearchWord(60), `"` + db.SearchWord(1) + " " + db.SearchWord(2) + `"`,
			db.SearchWord(500) + " or " + db.SearchWord(700), db.SearchWord(20) + " -" + db.SearchWord(1),
		}},
		{name: "common word, second page", queries: ranked(1, 5, 1), page2: true},
		{name: "one conversation, common and rare words", queries: append(ranked(1, 3, 1), ranked(3000, 9000, 3000)...), conv: true},
		{name: "no match (a word in no message)", queries: []string{"zzzzzz", "qqqqqq", "nothing"}},
	}
}

// searchLoads measures each kind of search, one request at a time, then all kinds mixed under
// 8 connections.
func (b *bench) searchLoads(ctx context.Context, s *server) {
	var mixed []loadtest.Request
	for _, kind := range searchKinds() {
		var reqs []loadtest.Request
		for _, q := range kind.queries {
			v := map[string]any{"q": q, "first": 20}
			if kind.conv {
				v["c"] = b.sfx.conversation
			}
			if kind.page2 {
				after, err := b.searchEndCursor(s, v)
				if err != nil {
					logf("search %q: %v", q, err)
					continue
				}
				v["after"] = after
			}
			reqs = append(reqs, loadtest.NewRequest(s.addr, "/query", b.searchToken, loadtest.GraphQLBody(searchQuery, v)))
		}
		if len(reqs) == 0 {
			continue
		}
		mixed = append(mixed, reqs...)
		cycle := func(_, i int) loadtest.Request { return reqs[i%len(reqs)] }
		b.warm(ctx, s, reqs[0])
		b.measure(ctx, s, "search: "+kind.name, "sequential, 5 ms apart", func() (loadtest.Result, error) {
			return loadtest.Sequential(ctx, s.addr, int(b.dur(200, 40)), 5*time.Millisecond, cycle)
		})
	}
	if len(mixed) > 0 {
		b.measure(ctx, s, "search: every kind above, in turn", "closed 8", func() (loadtest.Result, error) {
			return loadtest.Closed(ctx, s.addr, 8, b.dur(10*time.Second, 3*time.Second), func(w, i int) loadtest.Request {
				return mixed[(w*7+i)%len(mixed)]
			})
		})
	}
}

// searchEndCursor returns the end cursor of the first page of a search.
func (b *bench) searchEndCursor(s *server, v map[string]any) (string, error) {
	c, err := loadtest.Dial(s.addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	body, err := c.Do(loadtest.NewRequest(s.addr, "/query", b.searchToken, loadtest.GraphQLBody(searchQuery, v)))
	if err != nil {
		return "", err
	}
	var res struct {
		Data struct {
			SearchMessages struct {
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return "", err
	}
	if p := res.Data.SearchMessages.PageInfo; p.HasNextPage && p.EndCursor != nil {
		return *p.EndCursor, nil
	}
	return "", fmt.Errorf("no second page: %s", strings.TrimSpace(string(body)))
}
