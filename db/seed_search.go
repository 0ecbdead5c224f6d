package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// SearchCorpus describes a data set for measuring and testing message search: Conversations
// conversations of Messages messages each, written by their Members members in turn, with
// bodies of WordsMin..WordsMax words drawn from a vocabulary of Vocabulary words (see
// SearchWord) with Zipf's law: the k-th most frequent word is drawn with a probability
// proportional to 1/k, so that a few words are in most messages and most words in few. The
// viewer, a user of its own, is a member of ViewerOf of the conversations, spread among them.
// Messages of all conversations interleave in time, one second apart, the newest now; message
// ids follow conversations, not time.
type SearchCorpus struct {
	// Name tells corpora apart: the viewer is "Search viewer <Name>", the conversations
	// "Search corpus <Name> <k>", the members "Search member <Name> <k>".
	Name                                       string
	Conversations, Messages, Members, ViewerOf int
	Vocabulary, WordsMin, WordsMax             int
	// RandSeed makes the bodies reproducible (PostgreSQL's setseed, -1..1).
	RandSeed float64
}

// SearchCorpusReport says what SeedSearchCorpus added.
type SearchCorpusReport struct {
	Viewer int64
	// ViewerConversations are the viewer's conversations, by id.
	ViewerConversations []int64
	Messages            int64
	Took                time.Duration
}

// syllables make the corpus's words: SearchWord(k) is three of them, the first changing fastest.
var syllables = []string{"ka", "lo", "mi", "ne", "ra", "so", "tu", "vy", "be", "da", "fe", "gi", "ho", "ju", "ki",
	"le", "mo", "nu", "pa", "qi", "re", "si", "to", "ul", "va", "wo", "xe", "yu", "ze", "an"}

// MaxSearchVocabulary is the largest vocabulary of distinct words SearchWord spells.
const MaxSearchVocabulary = 30 * 30 * 30

// SearchWord returns the k-th most frequent word (k from 1) of a search corpus: "kakaka",
// "lokaka", …
func SearchWord(k int) string {
	k--
	return syllables[k%30] + syllables[k/30%30] + syllables[k/900%30]
}

// SeedSearchCorpus adds a search corpus in one transaction (over a direct connection: it is a
// bulk write), with one INSERT … SELECT for the messages, and analyzes the tables it wrote.
func SeedSearchCorpus(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, c SearchCorpus) (SearchCorpusReport, error) {
	start := time.Now()
	if c.Name == "" || c.Conversations < 1 || c.Messages < 1 || c.Members < 1 || c.ViewerOf < 0 || c.ViewerOf > c.Conversations ||
		c.Vocabulary < 1 || c.Vocabulary > MaxSearchVocabulary || c.WordsMin < 1 || c.WordsMax < c.WordsMin {
		return SearchCorpusReport{}, errors.New("db: search corpus: invalid size")
	}
	var rep SearchCorpusReport
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT setseed($1)", c.RandSeed); err != nil {
			return err
		}
		// The viewer, then the members.
		rows, err := tx.Query(ctx, `INSERT INTO users (name)
			SELECT CASE WHEN g = 0 THEN 'Search viewer ' || $2::text ELSE 'Search member ' || $2::text || ' ' || g END
			FROM generate_series(0, $1::int) g ORDER BY g RETURNING id`, c.Members, c.Name)
		if err != nil {
			return err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		slices.Sort(users)
		rep.Viewer = users[0]
		span := int64(c.Conversations) * int64(c.Messages) // seconds from the first message to now
		rows, err = tx.Query(ctx, `INSERT INTO conversations (title, created_by, created_at, last_seq, last_message_at)
			SELECT 'Search corpus ' || $5::text || ' ' || k, $2::bigint,
			       now() - make_interval(secs => $3::bigint + 3600),
			       $4::bigint, now() - make_interval(secs => $1::bigint - k)
			FROM generate_series(1, $1::int) k ORDER BY k RETURNING id`,
			c.Conversations, users[1], span, c.Messages, c.Name)
		if err != nil {
			return err
		}
		convs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("conversations: %w", err)
		}
		slices.Sort(convs)
		// Every conversation has all the members (the first is its owner; users[0] is the
		// viewer), and the viewer joins every step-th one.
		step := 0
		if c.ViewerOf > 0 {
			step = c.Conversations / c.ViewerOf
		}
		if _, err := tx.Exec(ctx, `INSERT INTO conversation_members (conversation_id, user_id, role)
			SELECT cv.id, u.id, CASE WHEN u.j = 2 THEN 'owner' ELSE 'member' END
			FROM unnest($1::bigint[]) WITH ORDINALITY cv(id, k)
			CROSS JOIN unnest($2::bigint[]) WITH ORDINALITY u(id, j)
			WHERE u.j > 1 OR ($3::int > 0 AND cv.k % $3::int = 0 AND cv.k / $3::int <= $4::int)`,
			convs, users, step, c.ViewerOf); err != nil {
			return fmt.Errorf("members: %w", err)
		}
		// A bulk insert: the GIN index takes the new entries in its pending list, merged into
		// it in one pass at the end, rather than one by one (2.5 times faster here); then it
		// goes back to migrations/00004_search.sql's fastupdate = off.
		if _, err := tx.Exec(ctx, `ALTER INDEX messages_tsv_idx SET (fastupdate = on, gin_pending_list_limit = 2097151)`); err != nil {
			return err
		}
		// Message g of conversation k, sent (g - 1) * conversations + k seconds after the
		// first, by member 1 + g % members. Each word is the floor((V+1)^u)-th of the
		// vocabulary for a uniform u: a rank r comes with probability log((r+1)/r) / log(V+1),
		// close to 1/(r ln V).
		tag, err := tx.Exec(ctx, `INSERT INTO messages (conversation_id, seq, sender_id, body, created_at)
			SELECT cv.id, g, ($2::bigint[])[2 + g % $3::int],
			       (SELECT string_agg(s.syl[1 + (r - 1) % 30] || s.syl[1 + (r - 1) / 30 % 30] || s.syl[1 + (r - 1) / 900 % 30], ' ')
			        FROM (SELECT least($5::int, floor(($5::int + 1) ^ random()))::int AS r
			              FROM generate_series(1, $6::int + (g * 7 + cv.k::int) % ($7::int - $6::int + 1))) w),
			       now() - make_interval(secs => $8::bigint - ((g - 1) * $9::bigint + cv.k))
			FROM unnest($1::bigint[]) WITH ORDINALITY cv(id, k)
			CROSS JOIN generate_series(1, $4::int) g
			CROSS JOIN (SELECT $10::text[] AS syl) s`,
			convs, users, c.Members, c.Messages, c.Vocabulary, c.WordsMin, c.WordsMax, span, c.Conversations, syllables)
		if err != nil {
			return fmt.Errorf("messages: %w", err)
		}
		rep.Messages = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `SELECT gin_clean_pending_list('messages_tsv_idx')`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER INDEX messages_tsv_idx RESET (gin_pending_list_limit)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER INDEX messages_tsv_idx SET (fastupdate = off)`); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT conversation_id FROM conversation_members WHERE user_id = $1 ORDER BY 1`, rep.Viewer)
		if err != nil {
			return err
		}
		rep.ViewerConversations, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return SearchCorpusReport{}, fmt.Errorf("db: search corpus: %w", err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return SearchCorpusReport{}, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// ANALYZE runs in a transaction block too; its statistics are kept when it commits.
	if _, err := tx.Exec(ctx, "ANALYZE users, conversations, conversation_members, messages"); err != nil {
		return SearchCorpusReport{}, fmt.Errorf("db: search corpus: analyze: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return SearchCorpusReport{}, err
	}
	rep.Took = time.Since(start)
	return rep, nil
}
