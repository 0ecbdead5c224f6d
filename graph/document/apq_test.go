package document_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/document"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// apqStore returns the APQ store over a Redis of its own (no TestMain: this package's fuzz
// workers must not start the whole test stack), and the client to look into it.
func apqStore(t *testing.T) (*apq.Cache, redis.UniversalClient) {
	t.Helper()
	rdb, err := redisclient.Open(testenv.NewRedis(t), redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return apq.New(rdb, redisclient.NewBreaker(redisclient.BreakerConfig{}), time.Minute), rdb
}

func keys(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	k, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The APQ store gets a document only once it has validated, and only up to the size cap;
// junk sent with its hash leaves no key and is not repeated in the error.
func TestPersistedQueriesStoreOnlyValidDocuments(t *testing.T) {
	store, rdb := apqStore(t)
	g := newGate(t, document.Config{PersistedQueries: store, PersistedQueryBytes: 1 << 10})

	junk := strings.Repeat("not GraphQL at all; ", 3000) // 60 KB
	for name, q := range map[string]string{
		"junk":             junk,
		"invalid":          `{ unknown { field } }`,
		"over a limit":     `{ me { ` + strings.Repeat("id ", 11) + `} }`,
		"introspection":    `{ __schema { queryType { name } } }`,
		"over the APQ cap": `query Big { __typename }` + strings.Repeat(" ", 1<<10),
	} {
		err := g.MutateOperationParameters(opContext(), &graphql.RawParams{Query: q, Extensions: persisted(document.SHA256(q))})
		if name == "over the APQ cap" {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		} else if err == nil || codes(gqlerror.List{err})[0] != "BAD_USER_INPUT" || strings.Contains(err.Message, "not GraphQL at all; not") {
			t.Fatalf("%s: %v", name, err)
		}
		if k := keys(t, rdb); len(k) != 0 {
			t.Fatalf("%s: Redis holds %v", name, k)
		}
	}

	// A valid document with its hash is stored, for its TTL, and a hash alone then resolves,
	// on another instance too.
	q := "query Stored { me { id } }"
	hash := document.SHA256(q)
	if err := g.MutateOperationParameters(opContext(), &graphql.RawParams{Query: q, Extensions: persisted(hash)}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.TTL(context.Background(), apq.Key(hash)).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %v %v", ttl, err)
	}
	other := newGate(t, document.Config{PersistedQueries: store})
	p := &graphql.RawParams{Extensions: persisted(hash)}
	if err := other.MutateOperationParameters(opContext(), p); err != nil || p.Query != q {
		t.Fatalf("hash alone: %v %q", err, p.Query)
	}

	// A document of the manifest is not stored: the manifest answers its hash.
	trusted := "query Trusted { __typename }"
	tg := newGate(t, document.Config{PersistedQueries: store, Trusted: document.Manifest{document.SHA256(trusted): trusted}})
	if err := tg.MutateOperationParameters(opContext(), &graphql.RawParams{Query: trusted, Extensions: persisted(document.SHA256(trusted))}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(context.Background(), apq.Key(document.SHA256(trusted))).Result(); n != 0 {
		t.Fatal("a trusted document was stored")
	}
}

// In trusted-only mode the APQ store is neither read nor written.
func TestTrustedOnlyIgnoresTheStore(t *testing.T) {
	store, rdb := apqStore(t)
	q := "query Stored { me { id } }"
	store.Add(context.Background(), document.SHA256(q), q)
	g := newGate(t, document.Config{PersistedQueries: store, TrustedOnly: true, Trusted: document.Manifest{}})
	err := g.MutateOperationParameters(opContext(), &graphql.RawParams{Extensions: persisted(document.SHA256(q))})
	if err == nil || codes(gqlerror.List{err})[0] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("hash of a stored document: %v", err)
	}
	other := "query Other { __typename }"
	if err := g.MutateOperationParameters(opContext(), &graphql.RawParams{Query: other, Extensions: persisted(document.SHA256(other))}); err == nil {
		t.Fatal("an untrusted document ran")
	}
	if k := keys(t, rdb); len(k) != 1 {
		t.Fatalf("Redis holds %v", k)
	}
}
