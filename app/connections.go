package app

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/connerr"
	"github.com/threadline/threadline/internal/httpapi"
)

// dependency is a service the application must reach: its readiness check, and what the
// start-up log says about its first connection.
type dependency struct {
	name string
	addr string // host:port (a cluster's seed nodes, comma-separated): never a URL, which may hold a password
	tls  bool
	// tlsHint is what to use when a plain client meets a TLS port ("rediss://").
	tlsHint string
	ping    func(context.Context) error
}

// reason is connerr.Reason, with the way to speak TLS when d does not and the server closed
// the connection as a TLS port does.
func (d dependency) reason(err error) string {
	r := connerr.Reason(err, d.tls)
	if !d.tls && d.tlsHint != "" && strings.HasSuffix(r, "is it a TLS port?") {
		r += " use " + d.tlsHint
	}
	return r
}

func (d dependency) check() httpapi.Check {
	return httpapi.Check{Name: d.name, Ping: d.ping, Reason: d.reason}
}

// postgresDependency is PostgreSQL as the pool reaches it (normally through PgBouncer).
func postgresDependency(pool *pgxpool.Pool, ping func(context.Context) error) dependency {
	cc := pool.Config().ConnConfig
	return dependency{
		name: "postgres", addr: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))),
		tls: cc.TLSConfig != nil, ping: ping,
	}
}

// redisDependency is the Redis client's server, or its cluster's seed nodes.
func redisDependency(c redis.UniversalClient) dependency {
	d := dependency{name: "redis", tlsHint: "rediss://", ping: func(ctx context.Context) error { return c.Ping(ctx).Err() }}
	switch c := c.(type) {
	case *redis.Client:
		d.addr, d.tls = c.Options().Addr, c.Options().TLSConfig != nil
	case *redis.ClusterClient:
		d.addr, d.tls = strings.Join(c.Options().Addrs, ","), c.Options().TLSConfig != nil
	}
	return d
}

// firstConnectionTimeout bounds each dependency's first connection at start-up.
const firstConnectionTimeout = 5 * time.Second

// LogConnections connects to each dependency once and logs the outcome: "connected", or why
// not, in words (internal/connerr) with the address and the error. It returns when every
// dependency has answered or failed, within a few seconds; `serve` runs it beside serving,
// since the server starts while its dependencies come up. Nothing is logged once ctx ends.
func (a *App) LogConnections(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range a.deps {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, firstConnectionTimeout)
			defer cancel()
			err := d.ping(pctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				a.log.ErrorContext(ctx, fmt.Sprintf("%s at %s: %s", d.name, d.addr, d.reason(err)),
					"dependency", d.name, "addr", d.addr, "tls", d.tls, "err", err)
				return
			}
			a.log.InfoContext(ctx, d.name+" connected", "dependency", d.name, "addr", d.addr, "tls", d.tls)
		})
	}
	wg.Wait()
}
