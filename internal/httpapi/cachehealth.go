package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
)

// CacheHealth serves /health/cache: the history cache's and the response cache's counters,
// Redis's evicted_keys, and the circuit breaker's state, as JSON.
type CacheHealth struct {
	History *cache.Store // nil when the cache is disabled
	// Response is the response cache; nil when it is disabled.
	Response *respcache.Cache
	Redis    redis.UniversalClient
	Breaker  *redisclient.Breaker
}

type healthReport struct {
	Enabled bool `json:"enabled"`
	cache.Stats
	// Evictions is Redis's evicted_keys (summed over a cluster's masters); null when Redis does not answer.
	Evictions *int64 `json:"evictions"`
	Breaker   string `json:"breaker"`
	// ResponseCache holds the response cache's counters; null when it is disabled.
	ResponseCache *respcache.Stats `json:"responseCache"`
}

func (hh *CacheHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := healthReport{Enabled: hh.History != nil, Breaker: hh.Breaker.State()}
	if hh.History != nil {
		rep.Stats = hh.History.Stats()
	}
	if hh.Response != nil {
		rs := hh.Response.Stats()
		rep.ResponseCache = &rs
	}
	ctx, cancel := context.WithTimeout(r.Context(), 500*time.Millisecond)
	defer cancel()
	if n, err := evictedKeys(ctx, hh.Redis); err == nil {
		rep.Evictions = &n
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(rep)
}

// evictedKeys reads evicted_keys from INFO stats, summed over the masters of a cluster.
func evictedKeys(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var total int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := evictedKeys(ctx, c)
			mu.Lock()
			total += n
			mu.Unlock()
			return err
		})
		return total, err
	}
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "evicted_keys:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}
