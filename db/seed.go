package db

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SeedSize describes a data set to generate.
type SeedSize struct {
	Users         int
	Conversations int
	// Each conversation gets between MinMessages and MaxMessages messages.
	MinMessages, MaxMessages int
	// Each conversation gets between MinMembers and MaxMembers members (the creator included).
	MinMembers, MaxMembers int
	// DemoMemberOf is how many of the new conversations user 1, the demo user, joins
	// (all of them when it is at least Conversations).
	DemoMemberOf int
}

// DemoSeed is the data set `make run` seeds on its first run: user 1 is a member of 20
// conversations of 100 to 200 messages from several senders.
var DemoSeed = SeedSize{
	Users: 40, Conversations: 300, MinMessages: 100, MaxMessages: 200,
	MinMembers: 3, MaxMembers: 8, DemoMemberOf: 20,
}

// LargeSeed is the load-test data set: 1000 conversations of 200 messages, all of which the demo
// user can read, so that one token reaches every conversation.
var LargeSeed = SeedSize{
	Users: 200, Conversations: 1000, MinMessages: 200, MaxMessages: 200,
	MinMembers: 3, MaxMembers: 6, DemoMemberOf: 1000,
}

// SeedReport says what Seed added.
type SeedReport struct {
	Users, Conversations, Messages int
	Took                           time.Duration
}

// Seed adds a generated data set over directURL with COPY, in one transaction. When the
// database has no users yet, user 1 ("Demo User") is created first. Generation is deterministic
// for a given randSeed and starting state.
func Seed(ctx context.Context, directURL string, size SeedSize, randSeed uint64) (SeedReport, error) {
	start := time.Now()
	if size.Users < 1 || size.Conversations < 0 || size.MinMessages < 0 || size.MaxMessages < size.MinMessages ||
		size.MinMembers < 1 || size.MaxMembers < size.MinMembers {
		return SeedReport{}, errors.New("db: seed: invalid size")
	}
	cfg, err := pgxConnConfig(directURL)
	if err != nil {
		return SeedReport{}, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return SeedReport{}, fmt.Errorf("db: seed: connect: %w", err)
	}
	defer conn.Close(context.Background())

	rep := SeedReport{}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Serialise concurrent seeders; the lock ends with the transaction.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(727001)"); err != nil {
			return err
		}
		var baseUser, baseConv int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM users").Scan(&baseUser); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM conversations").Scan(&baseConv); err != nil {
			return err
		}
		g := &generator{rnd: rand.New(rand.NewPCG(randSeed, uint64(baseUser)<<20|uint64(baseConv))), size: size, now: time.Now().UTC().Truncate(time.Microsecond)}
		g.plan(baseUser, baseConv)

		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "name"}, pgx.CopyFromRows(g.users)); err != nil {
			return fmt.Errorf("copy users: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"conversations"},
			[]string{"id", "title", "created_by", "created_at", "last_seq", "last_message_at", "last_event_seq"}, pgx.CopyFromRows(g.conversations)); err != nil {
			return fmt.Errorf("copy conversations: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"conversation_members"},
			[]string{"conversation_id", "user_id", "joined_at", "role"}, pgx.CopyFromRows(g.members)); err != nil {
			return fmt.Errorf("copy members: %w", err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"},
			[]string{"conversation_id", "seq", "sender_id", "body", "created_at"}, g.messageSource())
		if err != nil {
			return fmt.Errorf("copy messages: %w", err)
		}
		// Each message's message_added event: a seeded conversation's events are its messages
		// (event_seq = seq; last_event_seq = last_seq).
		if _, err := tx.Exec(ctx, `INSERT INTO conversation_events (conversation_id, event_seq, kind, actor_id, at, message_id)
			SELECT conversation_id, seq, 'message_added', sender_id, created_at, id FROM messages WHERE conversation_id > $1`, baseConv); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		for _, table := range []string{"users", "conversations", "messages"} {
			q := fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), greatest((SELECT max(id) FROM %s), 1))", table, table)
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("reset %s id sequence: %w", table, err)
			}
		}
		rep = SeedReport{Users: len(g.users), Conversations: len(g.conversations), Messages: int(n)}
		return nil
	})
	if err != nil {
		return SeedReport{}, fmt.Errorf("db: seed: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return SeedReport{}, fmt.Errorf("db: seed: analyze: %w", err)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// IsEmpty reports whether the database at directURL has no users yet.
func IsEmpty(ctx context.Context, directURL string) (bool, error) {
	cfg, err := pgxConnConfig(directURL)
	if err != nil {
		return false, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("db: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users)").Scan(&exists)
	return !exists, err
}

type generator struct {
	rnd  *rand.Rand
	size SeedSize
	now  time.Time

	users, conversations, members [][]any
	// Per new conversation: its id, its members, its message count and the time of message 1.
	convs []seedConv
}

type seedConv struct {
	id       int64
	members  []int64
	messages int
	first    time.Time
}

var firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Dennis",
	"Frances", "John", "Radia", "Leslie", "Niklaus", "Tony", "Hedy", "Katherine", "Linus", "Guido", "Rob"}

var lastNames = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson",
	"Ritchie", "Allen", "Backus", "Perlman", "Lamport", "Wirth", "Hoare", "Lamarr", "Johnson", "Torvalds", "Pike"}

var topics = []string{"Launch plan", "Design review", "Weekend trip", "Book club", "On-call", "Release notes",
	"Coffee", "Hiring", "Roadmap", "Incident follow-up", "Team lunch", "Bug bash", "Offsite", "Customer call"}

var words = strings.Fields(`the a to and we it is on for this that with can you be at I have
 deploy cache page query latency message thread review ship merge test fix today tomorrow soon
 looks good agreed thanks sure maybe later done ready check again numbers graph redis postgres`)

func (g *generator) plan(baseUser, baseConv int64) {
	r := g.rnd
	for i := range g.size.Users {
		id := baseUser + int64(i) + 1
		name := firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))]
		if id == 1 {
			name = "Demo User"
		}
		g.users = append(g.users, []any{id, name})
	}
	lastUser := baseUser + int64(g.size.Users)
	for i := range g.size.Conversations {
		c := seedConv{id: baseConv + int64(i) + 1}
		nMembers := g.size.MinMembers + r.IntN(g.size.MaxMembers-g.size.MinMembers+1)
		if i < g.size.DemoMemberOf {
			c.members = append(c.members, 1)
		}
		for len(c.members) < nMembers {
			u := 1 + r.Int64N(lastUser)
			if i < g.size.DemoMemberOf || u != 1 {
				if !containsID(c.members, u) {
					c.members = append(c.members, u)
				}
			}
		}
		c.messages = g.size.MinMessages + r.IntN(g.size.MaxMessages-g.size.MinMessages+1)
		// Messages a minute apart, the conversation's last one within the past few days.
		last := g.now.Add(-time.Duration(r.IntN(72*60)) * time.Minute)
		c.first = last.Add(-time.Duration(c.messages) * time.Minute)
		created := c.first.Add(-time.Hour)
		lastAt := created
		if c.messages > 0 {
			lastAt = c.first.Add(time.Duration(c.messages-1) * time.Minute)
		}
		title := topics[r.IntN(len(topics))] + fmt.Sprintf(" #%d", c.id)
		g.conversations = append(g.conversations, []any{c.id, title, c.members[0], created, int64(c.messages), lastAt, int64(c.messages)})
		for i, u := range c.members {
			role := "member"
			if i == 0 {
				role = "owner"
			}
			g.members = append(g.members, []any{c.id, u, created, role})
		}
		g.convs = append(g.convs, c)
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// messageSource streams the messages to COPY without holding them all in memory.
func (g *generator) messageSource() pgx.CopyFromSource {
	ci, seq := 0, 0
	row := make([]any, 5)
	var body strings.Builder
	return pgx.CopyFromFunc(func() ([]any, error) {
		for ci < len(g.convs) && seq >= g.convs[ci].messages {
			ci, seq = ci+1, 0
		}
		if ci == len(g.convs) {
			return nil, nil
		}
		c := &g.convs[ci]
		seq++
		body.Reset()
		n := 3 + g.rnd.IntN(18)
		for i := range n {
			if i > 0 {
				body.WriteByte(' ')
			}
			body.WriteString(words[g.rnd.IntN(len(words))])
		}
		row[0], row[1], row[2], row[3], row[4] = c.id, int64(seq), c.members[g.rnd.IntN(len(c.members))], body.String(),
			c.first.Add(time.Duration(seq-1)*time.Minute)
		return row, nil
	})
}
