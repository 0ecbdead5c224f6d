package db

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/chat"
)

// messageSend is the statement of a send, written by hand because sqlc cannot read the columns
// of a set-returning function. The function (migrations/00006_message_send.sql) is the send in
// one statement, planned once per server connection instead of once per call. The name comment
// is sqlc's, so that the statement is traced and counted under its name.
const messageSend = `-- name: MessageSend :one
SELECT id, conversation_id, seq, sender_id, sender_name, body, client_message_id, created_at,
       edited_at, deleted_at, version, reactions, event_seq, member_ids
FROM message_send($1, $2, $3, $4)
`

// send runs MessageSend for m in a transaction of its own, whose BEGIN travels with the
// statement (pgx.Batch.BeginTx), and commits it: two round trips, not three. Its row has
// MessageByClientID's columns; no row is pgx.ErrNoRows (and the transaction is rolled back).
//
// The COMMIT is sent only after the statement's answer, so that a send whose request gives up
// while it waits for the conversation's lock (its deadline passes, its client goes) does not
// commit: its connection is closed with the transaction open, and PostgreSQL rolls it back
// (TestEventStreamOperationDeadline). A statement on its own, or one pipelined with its COMMIT,
// would commit by itself once the lock came.
func (s *Store) send(ctx context.Context, m chat.NewMessage) (dbsqlc.MessageByClientIDRow, error) {
	var r dbsqlc.MessageByClientIDRow
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(messageSend, m.ConversationID, m.SenderID, m.Body, m.ClientMessageID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&r.ID, &r.ConversationID, &r.Seq, &r.SenderID, &r.SenderName, &r.Body, &r.ClientMessageID,
			&r.CreatedAt, &r.EditedAt, &r.DeletedAt, &r.Version, &r.Reactions, &r.EventSeq, &r.MemberIds)
	})
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		// A transaction the batch never began is closed already (pgx.ErrTxClosed); one whose
		// connection broke is closed with its connection.
		_ = tx.Rollback(ctx)
		return r, err
	}
	return r, tx.Commit(ctx)
}
