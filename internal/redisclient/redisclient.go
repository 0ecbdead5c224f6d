// Package redisclient opens the go-redis client that the cache, live fan-out and rate limits
// share, from REDIS_URL.
//
// REDIS_URL names a standalone Redis (redis://[user:pass@]host:port/db, or rediss:// for TLS) or a
// Redis Cluster: a URL that lists more seed nodes with addr parameters, or says cluster=true,
// e.g. redis://10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000. Every key Threadline writes
// is hash-tagged, by conversation or by user, so multi-key operations stay within one slot; what
// must read several slots (the response cache's dependencies) pipelines one command per slot.
//
// With rediss:// every connection speaks TLS 1.2 or later and verifies the server's
// certificate and name: a standalone Redis's against the URL's host, each cluster node's
// against the host it is reached at. Options.TLS adds a private CA and a client certificate.
package redisclient

import (
	"cmp"
	"errors"
	"net"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options tune the client. Zero values take the defaults below: short timeouts, because a cache
// that waits long is worse than no cache, and no retries (of commands, or of dials), because the
// circuit breaker above the client decides when to try again.
type Options struct {
	DialTimeout  time.Duration // default 500ms
	ReadTimeout  time.Duration // default 250ms
	WriteTimeout time.Duration // default 250ms
	PoolSize     int           // default go-redis's (10 per CPU)
	// TLS is the private CA and client certificate of rediss:// connections (see TLSFiles).
	TLS TLSFiles
}

// Open returns a client for url. It does not connect: the first command does; but it reads
// o.TLS's files, so a file that is missing, holds no PEM or a key that is not the
// certificate's is an error here, at start-up.
func Open(rawURL string, o Options) (redis.UniversalClient, error) {
	o.DialTimeout = cmp.Or(o.DialTimeout, 500*time.Millisecond)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, 250*time.Millisecond)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 250*time.Millisecond)
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, errInvalidURL
	}
	if u.Scheme == "redis" && o.TLS.set() {
		return nil, errors.New("config: REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE or REDIS_TLS_KEY_FILE is set but REDIS_URL is redis:// (plain text): use rediss://")
	}
	q := u.Query()
	if q.Has("addr") || q.Get("cluster") == "true" {
		q.Del("cluster")
		u.RawQuery = q.Encode()
		opts, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, errInvalidURL
		}
		o.apply(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.ContextTimeoutEnabled, &opts.MaxRetries, &opts.DialerRetries, &opts.PoolSize)
		if opts.TLSConfig != nil {
			// No server name: each node is verified against the host it is reached at.
			skip := opts.TLSConfig.InsecureSkipVerify // the URL's skip_verify
			if opts.TLSConfig, err = tlsConfig(o.TLS, ""); err != nil {
				return nil, err
			}
			opts.TLSConfig.InsecureSkipVerify = skip
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, errInvalidURL
	}
	o.apply(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.ContextTimeoutEnabled, &opts.MaxRetries, &opts.DialerRetries, &opts.PoolSize)
	if opts.TLSConfig != nil {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, errInvalidURL
		}
		skip := opts.TLSConfig.InsecureSkipVerify // the URL's skip_verify
		if opts.TLSConfig, err = tlsConfig(o.TLS, host); err != nil {
			return nil, err
		}
		opts.TLSConfig.InsecureSkipVerify = skip
	}
	return redis.NewClient(opts), nil
}

// apply sets the fields that redis.Options and redis.ClusterOptions share.
func (o Options) apply(dial, read, write *time.Duration, contextTimeout *bool, maxRetries, dialerRetries, poolSize *int) {
	*dial, *read, *write = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	*contextTimeout = true
	*maxRetries = -1
	// One dial per attempt: go-redis otherwise dials five times, 100 ms apart, so that with Redis
	// down every call would take its whole deadline instead of failing at once.
	*dialerRetries = 1
	if o.PoolSize > 0 {
		*poolSize = o.PoolSize
	}
}

// The URL may hold a password: never quote it.
var errInvalidURL = errors.New("redisclient: REDIS_URL is not a valid redis:// or rediss:// URL")
