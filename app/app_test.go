package app_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Migrate: db.Migrate})
}

// The steps after a commit run in the order the caches' exactness depends on (see the package
// doc): the history cache moves before the change is published, and a disabled cache has no
// step.
func TestAfterCommitOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		cache, response bool
		want            []string
	}{
		{"both caches", true, true, []string{"history cache", "live", "response cache"}},
		{"history cache only", true, false, []string{"history cache", "live"}},
		{"no cache", false, false, []string{"typing members", "live"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
				c.CacheEnabled, c.ResponseCacheEnabled = tc.cache, tc.response
			}})
			if diff := cmp.Diff(tc.want, srv.App.AfterCommit()); diff != "" {
				t.Errorf("steps after a commit (-want +got):\n%s", diff)
			}
		})
	}
}

// A configuration New refuses after it has opened the pool returns its error, having closed
// what it opened.
func TestNewRefusesBadRedisConfig(t *testing.T) {
	cfg := app.Defaults()
	cfg.DatabaseURL = "postgres://threadline@127.0.0.1:1/threadline?sslmode=disable"
	cfg.JWTSecret = apptest.Secret
	for _, tc := range []struct {
		name string
		set  func(*app.Config)
		want string
	}{
		{"not a Redis URL", func(c *app.Config) { c.RedisURL = "http://127.0.0.1:6379" }, "REDIS_URL is not a valid"},
		{"TLS files with redis://", func(c *app.Config) {
			c.RedisURL, c.RedisTLS.CAFile = "redis://127.0.0.1:6379/0", "/etc/redis/ca.crt"
		}, "use rediss://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.set(&c)
			a, err := app.New(t.Context(), c, app.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tc.want)
			}
			if a != nil {
				t.Errorf("New returned an App with its error")
			}
		})
	}
}
