package ts

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// TestApolloTimeline runs src/timeline-apollo.ts, Apollo Client (core, no React) with
// InMemoryCache and relayStylePagination() on Conversation.timeline, against a server with both
// caches on: it opens a conversation of 250 messages at seq 125 (historyAround), pages older
// with fetchMore({ after }) to the first message, sends three, and pages newer with
// fetchMore({ last, before }) to the newest. The list in Apollo's cache must then hold every
// message, newest first, each once.
func TestApolloTimeline(t *testing.T) {
	t.Parallel()
	n, s, u, conv := startWithConversation(t, apptest.Options{}, "Apollo")
	const total, at = 250, 125
	dbtest.Messages(t, s.Direct, conv, u, total)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := n.command(ctx, "timeline-apollo.js", s.URL, s.Token(u[1]))
	cmd.Env = append(cmd.Env, "THREADLINE_CONVERSATION="+apptest.ID(conv), "THREADLINE_SEQ=125")
	cmd.Stderr = os.Stderr
	start := time.Now()
	b, err := cmd.Output()
	t.Logf("the script ran in %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("timeline-apollo: %v\n%s", err, b)
	}
	var got struct {
		Seqs         []int
		CursorsMatch bool
		WatchedEdges int
		PageInfo     struct{ HasNextPage, HasPreviousPage bool }
		Window       []int
		OlderPages   int
		NewerPages   int
		Sent         []int
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("timeline-apollo printed %s: %v", b, err)
	}
	want := make([]int, 0, total+3)
	for seq := total + 3; seq >= 1; seq-- {
		want = append(want, seq)
	}
	if diff := cmp.Diff(want, got.Seqs); diff != "" {
		t.Errorf("the timeline in Apollo's cache (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{total + 1, total + 2, total + 3}, got.Sent); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if !got.CursorsMatch || got.WatchedEdges != total+3 || got.PageInfo.HasNextPage || got.PageInfo.HasPreviousPage {
		t.Errorf("cursors unique %v, the watched query sees %d edges, pageInfo %+v", got.CursorsMatch, got.WatchedEdges, got.PageInfo)
	}
	// The window is 135..115. The watched query reads 114..95, then 5 pages reach seq 1 (the
	// last of 14); newer, 7 pages of up to 20 run from 115 to 253 (the last of 19).
	if len(got.Window) != 21 || got.Window[0] != at+10 || got.OlderPages != 5 || got.NewerPages != 7 {
		t.Errorf("window %v, %d older and %d newer pages", got.Window, got.OlderPages, got.NewerPages)
	}
}
