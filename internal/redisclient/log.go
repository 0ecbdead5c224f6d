package redisclient

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetLogger routes go-redis's own messages (such as "failed to dial" while Redis is down) to
// log at warning level instead of raw lines on stderr. go-redis keeps one logger per process,
// so main calls this once.
func SetLogger(log *slog.Logger) {
	redis.SetLogger(slogAdapter{log})
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.log.WarnContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}
