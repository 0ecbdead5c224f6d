// Package apq stores automatic persisted queries (gqlgen's extension.AutomaticPersistedQuery)
// in Redis, shared by every instance: a client that registered a query's SHA-256 hash with one
// instance may send the hash alone to any other.
//
// Keys are apq:<sha256 hex> and live for the configured TTL from their last registration. Redis
// trouble never fails a request: through the circuit breaker, a lookup that cannot reach Redis
// is a miss (the client answers PERSISTED_QUERY_NOT_FOUND by sending the query with its hash)
// and a registration that cannot is dropped.
package apq

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/redisclient"
)

// DefaultTTL is how long a registered query is kept when Config.TTL is zero.
const DefaultTTL = 24 * time.Hour

// Cache is a graphql.Cache[string] over Redis.
type Cache struct {
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	ttl     time.Duration
}

var _ graphql.Cache[string] = (*Cache)(nil)

// New returns a Cache whose entries live ttl (DefaultTTL when not above zero).
func New(rdb redis.UniversalClient, breaker *redisclient.Breaker, ttl time.Duration) *Cache {
	return &Cache{rdb: rdb, breaker: breaker, ttl: defaults.Positive(ttl, DefaultTTL)}
}

// Key is the Redis key of the query with this hash.
func Key(hash string) string { return "apq:" + hash }

// Get returns the query registered under hash.
func (c *Cache) Get(ctx context.Context, hash string) (string, bool) {
	if !validHash(hash) {
		return "", false
	}
	var query string
	err := c.breaker.Do(ctx, func(ctx context.Context) error {
		var err error
		query, err = c.rdb.Get(ctx, Key(hash)).Result()
		return err
	})
	return query, err == nil
}

// Add registers query under hash; gqlgen has checked that hash is the query's SHA-256.
func (c *Cache) Add(ctx context.Context, hash, query string) {
	if !validHash(hash) {
		return
	}
	_ = c.breaker.Do(ctx, func(ctx context.Context) error {
		return c.rdb.Set(ctx, Key(hash), query, c.ttl).Err()
	})
}

// validHash reports whether h looks like a SHA-256 in lower-case hex, so that a client cannot
// choose arbitrary keys.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
