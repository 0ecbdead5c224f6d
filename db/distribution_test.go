package db_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

// The distribution plan for Citus lives in docs/capacity.md ("Past one PostgreSQL"), as a
// table: each table of the schema, whether it is a reference table (a copy on every node) or
// distributed, by which column, in which colocation group. TestSchemaIsReadyForCitus holds the
// migrated schema to it, so that the schema stays distributable as it changes: what Citus
// refuses to distribute, or could only distribute with cross-node checks, fails here first.
const capacityDoc = "../docs/capacity.md"

// placement is one row of the plan.
type placement struct {
	reference bool
	column    string // the distribution column of a distributed table
	group     string // its colocation group: tables of one group have their shards together
}

// planRow matches a row of the plan: | `table` | reference or distributed | `column` or — | group or — | ...
var planRow = regexp.MustCompile("^\\| `([a-z_]+)` \\| (reference|distributed) \\| (?:`([a-z_]+)`|—) \\| ([a-z]+|—) \\|")

func readPlan(t *testing.T) map[string]placement {
	t.Helper()
	raw, err := os.ReadFile(capacityDoc)
	if err != nil {
		t.Fatal(err)
	}
	plan := map[string]placement{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		m := planRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		p := placement{reference: m[2] == "reference", column: m[3], group: m[4]}
		if p.reference != (p.column == "") || p.reference != (p.group == "—") {
			t.Fatalf("%s: a reference table has no column and no group, a distributed one both: %q", capacityDoc, line)
		}
		if _, dup := plan[m[1]]; dup {
			t.Fatalf("%s places %s twice", capacityDoc, m[1])
		}
		plan[m[1]] = p
	}
	if len(plan) == 0 {
		t.Fatalf("%s has no distribution plan (rows like | `table` | distributed | `column` | group |)", capacityDoc)
	}
	return plan
}

// constraint is a PRIMARY KEY, UNIQUE, EXCLUDE or FOREIGN KEY constraint, or a unique index,
// with its columns in order (an expression counts as no column).
type constraint struct {
	table, name, kind string // kind: p, u, x, f, or i for a unique index
	columns           []string
	refTable          string   // f: the referenced table
	refColumns        []string // f: the referenced columns, pairwise with columns
}

func TestSchemaIsReadyForCitus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testenv.NewEmptyDatabase(t)
	if err := db.Migrate(ctx, d.DirectURL); err != nil {
		t.Fatal(err)
	}
	conn := dbtest.Open(t, d.DirectURL)
	plan := readPlan(t)

	// Every table of the schema is placed, and only those.
	rows, err := conn.Query(ctx, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'goose_db_version'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	placed := slices.Sorted(func(yield func(string) bool) {
		for name := range plan {
			if !yield(name) {
				return
			}
		}
	})
	if diff := cmp.Diff(tables, placed); diff != "" {
		t.Errorf("tables of the schema (-) against those placed in %s (+):\n%s", capacityDoc, diff)
	}

	// A distribution column is a NOT NULL bigint (one type, so that a group's tables hash
	// alike), and users is the reference table the plan says it is.
	for name, p := range plan {
		if p.reference {
			continue
		}
		var typ string
		var notNull bool
		err := conn.QueryRow(ctx, `
			SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
			WHERE a.attrelid = to_regclass('public.' || $1) AND a.attname = $2 AND NOT a.attisdropped`,
			name, p.column).Scan(&typ, &notNull)
		if err != nil {
			t.Errorf("%s: distribution column %s: %v", name, p.column, err)
			continue
		}
		if typ != "bigint" || !notNull {
			t.Errorf("%s.%s is %s (NOT NULL %v): want a NOT NULL bigint", name, p.column, typ, notNull)
		}
	}
	if p, ok := plan["users"]; !ok || !p.reference {
		t.Errorf("users is placed %+v: the plan keeps it a reference table (every node joins it locally)", p)
	}

	// Citus enforces a primary key, a unique constraint, an exclusion constraint or a unique
	// index of a distributed table only within a shard: it must include the distribution
	// column. A foreign key between distributed tables must join their distribution columns
	// and stay within a colocation group; one to a reference table is fine; one from a
	// reference table to a distributed table is not possible.
	rows, err = conn.Query(ctx, `
		SELECT c.conrelid::regclass::text, c.conname, c.contype::text,
		       coalesce((SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
		                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att), '{}'),
		       coalesce(c.confrelid::regclass::text, ''),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(att, n)
		                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att), '{}')
		FROM pg_constraint c
		WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'x', 'f')
		UNION ALL
		SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, 'i',
		       coalesce((SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY k(att, n)
		                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att), '{}'),
		       '', '{}'
		FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid
		WHERE r.relnamespace = 'public'::regnamespace AND i.indisunique AND r.relname <> 'goose_db_version'
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) -- checked as the constraint
		ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	var constraints []constraint
	for rows.Next() {
		var c constraint
		if err := rows.Scan(&c.table, &c.name, &c.kind, &c.columns, &c.refTable, &c.refColumns); err != nil {
			t.Fatal(err)
		}
		constraints = append(constraints, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, c := range constraints {
		p, ok := plan[c.table]
		if !ok {
			continue // not placed: reported above
		}
		switch c.kind {
		case "p", "u", "x", "i":
			if p.reference {
				continue
			}
			checked++
			if !slices.Contains(c.columns, p.column) {
				t.Errorf("%s: %s %v does not include the distribution column %s: Citus cannot enforce it across shards", c.table, c.name, c.columns, p.column)
			}
		case "f":
			ref, ok := plan[c.refTable]
			switch {
			case !ok:
				t.Errorf("%s: foreign key %s refers to %s, which the plan does not place", c.table, c.name, c.refTable)
			case ref.reference:
				// A distributed or reference table may refer to a reference table.
			case p.reference:
				t.Errorf("%s: foreign key %s from a reference table to the distributed %s: Citus cannot check it", c.table, c.name, c.refTable)
			case p.group != ref.group:
				t.Errorf("%s: foreign key %s to %s, in another colocation group (%s, %s): the rows are on different nodes", c.table, c.name, c.refTable, p.group, ref.group)
			default:
				checked++
				i := slices.Index(c.columns, p.column)
				if i < 0 || c.refColumns[i] != ref.column {
					t.Errorf("%s: foreign key %s %v -> %s %v does not join the distribution columns %s -> %s", c.table, c.name, c.columns, c.refTable, c.refColumns, p.column, ref.column)
				}
			}
		}
	}
	if checked < 5 {
		t.Errorf("only %d constraints of distributed tables checked: is the catalog query right?", checked)
	}
}

// referenceWrites are the statements of db/query that update a reference table's rows. A
// reference table is copied to every node, so each such write is a transaction across all of
// them: fine for what is rare (a user signing up), a wall for what happens per request. Each
// one here is listed in docs/capacity.md with its way out; a new one fails the test.
var referenceWrites = map[string]bool{
	// users.last_event_seq numbers each user's own events (joined, left, read): one write per
	// markRead. It moves to a per-user table distributed by user_id before users is made a
	// reference table (docs/capacity.md).
	"UserEventsAppend": true,
}

// TestReferenceTablesAreRarelyWritten: no query updates or deletes a reference table's rows
// but those listed in referenceWrites (and docs/capacity.md).
func TestReferenceTablesAreRarelyWritten(t *testing.T) {
	plan := readPlan(t)
	files, err := filepath.Glob("query/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no query files: %v", err)
	}
	write := regexp.MustCompile(`(?i)\b(?:UPDATE|DELETE\s+FROM)\s+([a-z_]+)`)
	name := regexp.MustCompile(`(?m)^-- name: (\w+)`)
	found := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		starts := name.FindAllStringSubmatchIndex(text, -1)
		for i, s := range starts {
			end := len(text)
			if i+1 < len(starts) {
				end = starts[i+1][0]
			}
			query := text[s[2]:s[3]]
			for _, m := range write.FindAllStringSubmatch(text[s[1]:end], -1) {
				if p, ok := plan[m[1]]; ok && p.reference {
					found[query] = true
					if !referenceWrites[query] {
						t.Errorf("%s (%s) writes the reference table %s: per-request writes to a table copied to every node do not scale out; see docs/capacity.md", query, f, m[1])
					}
				}
			}
		}
	}
	for q := range referenceWrites {
		if !found[q] {
			t.Errorf("referenceWrites lists %s, which writes no reference table any more: remove it (and its line in docs/capacity.md)", q)
		}
	}
	raw, err := os.ReadFile(capacityDoc)
	if err != nil {
		t.Fatal(err)
	}
	for q := range referenceWrites {
		if !strings.Contains(string(raw), "`"+q+"`") {
			t.Errorf("%s does not name %s, a write to a reference table", capacityDoc, q)
		}
	}
}
