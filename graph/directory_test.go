package graph_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

type directoryUser struct {
	ID   string
	Name string
}

const usersQuery = `query($s: String, $first: Int, $after: String) { users(search: $s, first: $first, after: $after) {
  edges { cursor node { id name } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

// directoryPages pages through users(search:) with first, checking each page's shape, and
// returns the users in the order served and the number of pages.
func directoryPages(t *testing.T, srv *apptest.Server, viewer int64, search *string, first int) ([]directoryUser, int) {
	t.Helper()
	var out []directoryUser
	var after *string
	for pages := 1; ; pages++ {
		var d struct {
			Users struct {
				Edges []struct {
					Cursor string
					Node   directoryUser
				}
				PageInfo struct {
					HasNextPage, HasPreviousPage bool
					StartCursor, EndCursor       *string
				}
			}
		}
		gql(t, srv, viewer, usersQuery, vars{"s": search, "first": first, "after": after}, &d)
		edges, info := d.Users.Edges, d.Users.PageInfo
		if len(edges) > first || (info.HasNextPage && len(edges) != first) || info.HasPreviousPage != (after != nil) {
			t.Fatalf("search %v, page %d: %d users, pageInfo %+v", search, pages, len(edges), info)
		}
		if len(edges) > 0 && (info.StartCursor == nil || *info.StartCursor != edges[0].Cursor || info.EndCursor == nil || *info.EndCursor != edges[len(edges)-1].Cursor) {
			t.Fatalf("search %v, page %d: cursors %+v", search, pages, info)
		}
		for _, e := range edges {
			out = append(out, e.Node)
		}
		if !info.HasNextPage {
			return out, pages
		}
		after = info.EndCursor
	}
}

// TestUserDirectory: users(search:) pages through 10,000 users, 100 at a time, each once, in the
// order of their lower-case name then id; a search by part of a name, in any case, finds exactly
// the users whose name contains it.
func TestUserDirectory(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	const n = 10000
	dbtest.Directory(t, srv.Direct, n)

	// The expected order, computed here rather than by the database.
	rows, err := srv.Direct.Query(context.Background(), "SELECT id, name FROM users")
	if err != nil {
		t.Fatal(err)
	}
	var all []directoryUser
	var ids []int64
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		all, ids = append(all, directoryUser{apptest.ID(id), name}), append(ids, id)
	}
	if rows.Err() != nil || len(all) != n {
		t.Fatalf("%d users (%v)", len(all), rows.Err())
	}
	idOf := map[string]int64{}
	for i, u := range all {
		idOf[u.ID] = ids[i]
	}
	slices.SortFunc(all, func(a, b directoryUser) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return int(idOf[a.ID] - idOf[b.ID])
	})
	viewer := ids[0]

	got, pages := directoryPages(t, srv, viewer, nil, 100)
	if diff := cmp.Diff(all, got); diff != "" {
		t.Fatalf("the whole directory (-want +got):\n%s", diff)
	}
	if pages != n/100 {
		t.Fatalf("%d pages of 100 for %d users", pages, n)
	}

	for _, search := range []string{"KALO", "kalo", "kAlO", "lo BER", "ber1", "  Mi  ", "vyvy gor39", "%", "_", `\`, "100%_", "émile", "ÅBERG", "zzz"} {
		needle := strings.ToLower(strings.TrimSpace(search))
		var want []directoryUser
		for _, u := range all {
			if strings.Contains(strings.ToLower(u.Name), needle) {
				want = append(want, u)
			}
		}
		got, _ := directoryPages(t, srv, viewer, &search, 100)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("search %q (-want +got):\n%s", search, diff)
		}
		t.Logf("search %q: %d users", search, len(got))
	}

	for name, v := range map[string]vars{
		"first 0":          {"first": 0},
		"first 101":        {"first": 101},
		"a forged cursor":  {"after": "bm90IGEgY3Vyc29y"},
		"101 characters":   {"s": strings.Repeat("a", 101)},
		"a control letter": {"s": "a\x00b"},
	} {
		t.Run(name, func(t *testing.T) {
			gqlRefused(t, srv, viewer, usersQuery, v, "BAD_USER_INPUT")
		})
	}
}
