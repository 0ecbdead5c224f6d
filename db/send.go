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

// sendInTx runs MessageSend for m in tx. Its row has MessageByClientID's columns; no row is
// pgx.ErrNoRows.
func sendInTx(ctx context.Context, tx pgx.Tx, m chat.NewMessage) (dbsqlc.MessageByClientIDRow, error) {
	var r dbsqlc.MessageByClientIDRow
	err := tx.QueryRow(ctx, messageSend, m.ConversationID, m.SenderID, m.Body, m.ClientMessageID).Scan(
		&r.ID, &r.ConversationID, &r.Seq, &r.SenderID, &r.SenderName, &r.Body, &r.ClientMessageID, &r.CreatedAt,
		&r.EditedAt, &r.DeletedAt, &r.Version, &r.Reactions, &r.EventSeq, &r.MemberIds)
	return r, err
}
