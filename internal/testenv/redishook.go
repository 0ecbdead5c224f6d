package testenv

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTripCounter is a go-redis hook that counts round trips to Redis: a command or a
// pipeline is one. The handshake of a new connection (HELLO, CLIENT SETINFO) is not counted:
// tests count what the code under test asks of Redis, not how many connections it opened.
type RoundTripCounter struct{ atomic.Int64 }

var _ redis.Hook = (*RoundTripCounter)(nil)

func (*RoundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *RoundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isHandshake(cmd) {
			c.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *RoundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !isHandshake(cmds[0]) {
			c.Add(1)
		}
		return next(ctx, cmds)
	}
}

func isHandshake(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }
