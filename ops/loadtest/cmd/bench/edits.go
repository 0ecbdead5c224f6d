package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/graph/client"
	"github.com/threadline/threadline/ops/loadtest"
)

// ownMessages returns, for each fixture conversation in order, the id of the newest message user
// 1 (the bench's viewer) sent there ("" where there is none): what the edit-heavy mix edits and
// reacts to.
func ownMessages(ctx context.Context, directURL string, convs []string) ([]string, error) {
	conn, err := pgx.Connect(ctx, directURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT k.id::text, coalesce((SELECT m.id::text FROM messages m
		WHERE m.conversation_id = k.id::bigint AND m.sender_id = 1 AND m.deleted_at IS NULL ORDER BY m.seq DESC LIMIT 1), '')
		FROM unnest($1::text[]) WITH ORDINALITY AS k(id, ord) ORDER BY k.ord`, convs)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(convs))
	for rows.Next() {
		var conv, msg string
		if err := rows.Scan(&conv, &msg); err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, rows.Err()
}

// editMix is the edit-heavy mix: Zipf-distributed first pages read 80% of the time, sends 10%,
// and 10% changes to a message of the viewer's in the conversation drawn: an edit, or a
// reaction added or removed, in turn. Every change moves the conversation's generation, so the
// reads that follow miss both caches.
func (b *bench) editMix(s *server, mine []string) loadtest.Next {
	return b.zipfMix(s, func(r *rand.Rand, k uint64, worker, i int, run int64) (loadtest.Request, bool) {
		switch x := r.Float64(); {
		case x < 0.1:
			return b.req(s, client.SendMessage_Operation, map[string]any{"input": map[string]any{
				"conversationId": b.fx.convs[k], "body": "bench message",
				"clientMessageId": fmt.Sprintf("bench-e-%d-%d-%d", run, worker, i),
			}}), true
		case x < 0.2 && mine[k] != "":
			switch i % 3 {
			case 0:
				return b.req(s, client.EditMessage_Operation, map[string]any{"input": map[string]any{"id": mine[k], "body": fmt.Sprintf("edited %d", i)}}), true
			case 1:
				return b.req(s, client.AddReaction_Operation, map[string]any{"messageId": mine[k], "emoji": "👍"}), true
			default:
				return b.req(s, client.RemoveReaction_Operation, map[string]any{"messageId": mine[k], "emoji": "👍"}), true
			}
		}
		return loadtest.Request{}, false
	})
}
