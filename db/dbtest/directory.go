package dbtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Directory inserts n users (n >= 3) in one statement, for tests of the user directory. Their
// names come from a few syllables, so that a part of a name matches many users, and many users
// share a name but for its case: "KALO BER0", "kalo ber0" and "Kalo Ber0" belong to different
// users. The first three are "100%_sure", `back\slash` and "ÉMILE Åberg", for LIKE's wildcards
// and for letters beyond ASCII.
func Directory(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	const q = `
INSERT INTO users (name)
SELECT CASE g
         WHEN 1 THEN '100%_sure'
         WHEN 2 THEN 'back\slash'
         WHEN 3 THEN 'ÉMILE Åberg'
         ELSE CASE g % 3 WHEN 0 THEN upper(s.name) WHEN 1 THEN lower(s.name) ELSE initcap(s.name) END
       END
FROM (
  SELECT g, (ARRAY['ka','lo','mi','ne','ra','so','tu','vy'])[1 + g % 8] ||
            (ARRAY['ka','lo','mi','ne','ra','so','tu','vy'])[1 + (g / 8) % 8] || ' ' ||
            (ARRAY['ber','dal','fen','gor'])[1 + (g / 64) % 4] || (g % 40) AS name
  FROM generate_series(1, $1::int) AS g
) s
ORDER BY g`
	if _, err := pool.Exec(context.Background(), q, n); err != nil {
		t.Fatalf("dbtest: insert the directory: %v", err)
	}
}
