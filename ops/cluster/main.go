// Command cluster runs Threadline as several instances behind a load balancer, on the private
// stack of ops/stack: three `threadline serve` processes (the same binary, each on its own
// ADDR and OPS_ADDR, configured by environment) behind nginx, over a Redis Cluster of three
// masters and the stack's PgBouncer and PostgreSQL, with a streaming replica of it
// (devstack.Stack.StartReplica) that the instances read from as DATABASE_REPLICA_URL.
//
//	go run ./ops/cluster up      [-dir .data] [-bin bin/threadline] [-port 8080] [-instance-port 8081] [-ops-port 9465] [-redis-port 55001]
//	go run ./ops/cluster restart [-dir .data]
//	go run ./ops/cluster down    [-dir .data]
//
// up needs the stack running under -dir (go run ./ops/stack up; make run-cluster does both):
// it migrates and seeds the database as make run does, stops a cluster left running under the
// directory, starts the replica (or reuses the one running), the Redis Cluster, the instances
// and nginx, all outliving the command, and
// writes <dir>/cluster.env (URL, INSTANCE_n_URL, REDIS_URL). The instances run in development
// mode, as make run's server does, with the caller's environment but for what the cluster sets.
// restart is a rolling restart, one instance at a time (see Cluster.RollingRestart), printing
// what each took. down stops nginx, the instances and the Redis Cluster; the stack stays (make
// stop stops both).
//
// Under the directory:
//
//	cluster.env                  the cluster's URLs, as KEY=VALUE lines
//	cluster/cluster.json         what restart and down need (0600: it holds the database URL)
//	cluster/nginx/nginx.conf     nginx's configuration, rendered from nginx-http.conf.tmpl
//	cluster/redis/node-N/        the Redis Cluster's nodes (memory only)
//	cluster/run/                 the instances' pid files
//	log/threadline-N.log         each instance's log; log/nginx-access.log (a JSON line per
//	                             request, with the instances tried), log/nginx-error.log
//
// As root, nginx runs as the postgres user, as PostgreSQL and PgBouncer do (internal/devstack).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/threadline/threadline/internal/command"
	"github.com/threadline/threadline/internal/devstack"
)

func main() {
	// The instances get the whole environment, not only the variables the cluster reads.
	os.Exit(command.Main("cluster", func(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
		return run(ctx, args, os.Environ(), stdout, stderr)
	}))
}

const usage = `usage: go run ./ops/cluster up|restart|down [flags]

  up       start three instances behind nginx, over a Redis Cluster and the stack under -dir
  restart  restart the instances one at a time
  down     stop nginx, the instances and the Redis Cluster (not the stack)

flags:
`

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := command.NewFlagSet("cluster", usage, stderr)
	dir := fs.String("dir", ".data", "the stack's `directory`")
	bin := fs.String("bin", "bin/threadline", "the threadline `binary`")
	port := fs.Int("port", 8080, "nginx's port on 127.0.0.1")
	instancePort := fs.Int("instance-port", 8081, "the first instance's port (ADDR); the others follow")
	opsPort := fs.Int("ops-port", 9465, "the first instance's operations port (OPS_ADDR); the others follow")
	redisPort := fs.Int("redis-port", 55001, "the first Redis Cluster node's port (at most 55533); the others follow")
	cmd, err := command.Subcommand(fs, args, "up", "restart", "down")
	if err != nil {
		return err
	}

	switch cmd {
	case "up":
		return up(ctx, Config{
			Dir: *dir, Bin: *bin, Port: *port, InstancePort: *instancePort, OpsPort: *opsPort,
			RedisPort: *redisPort, Detach: true, Log: stderr,
		}, environ, stdout)
	case "restart":
		c, err := Attach(*dir)
		if err != nil {
			return err
		}
		_, err = c.RollingRestart(ctx, func(r Restart) { fmt.Fprintln(stdout, r) })
		return err
	case "down":
		if err := Down(*dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stopped the cluster under %s\n", *dir)
	}
	return nil
}

func up(ctx context.Context, cfg Config, environ []string, stdout io.Writer) error {
	stack, err := devstack.Attach(ctx, cfg.Dir)
	if err != nil {
		return fmt.Errorf("%w (start it with: go run ./ops/stack up -dir %s)", err, cfg.Dir)
	}
	cfg.Env = map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cfg.Env[k] = v
		}
	}
	for _, kv := range stack.Env() {
		k, v, _ := strings.Cut(kv, "=")
		cfg.Env[k] = v
	}
	if cfg.Env["APP_ENV"] == "" {
		cfg.Env["APP_ENV"] = "development"
	}
	if err := Down(cfg.Dir); err != nil {
		return err
	}
	env := make([]string, 0, len(cfg.Env))
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	for _, step := range [][]string{{"migrate"}, {"seed"}} {
		cmd := exec.CommandContext(ctx, cfg.Bin, step...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, cfg.Log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("threadline %s: %w", step[0], err)
		}
	}
	// The replica copies the primary after the seed, then streams its WAL; the instances read
	// from it what it has replayed (DATABASE_REPLICA_URL, README: Read replica).
	replica, err := stack.StartReplica(ctx)
	if err != nil {
		return fmt.Errorf("the streaming replica: %w", err)
	}
	for _, kv := range replica.Env() {
		k, v, _ := strings.Cut(kv, "=")
		cfg.Env[k] = v
	}
	c, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	lines := []string{"URL=" + c.URL, "REDIS_URL=" + c.RedisURL, "DATABASE_REPLICA_URL=" + replica.DatabaseURL}
	for _, in := range c.Instances {
		lines = append(lines, fmt.Sprintf("INSTANCE_%d_URL=%s", in.N, in.URL()))
	}
	envFile := filepath.Join(c.cfg.Dir, "cluster.env")
	if err := os.WriteFile(envFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	tokenCmd := exec.CommandContext(ctx, cfg.Bin, "token", "-user", "1")
	tokenCmd.Env = env
	token, err := tokenCmd.Output()
	if err != nil {
		return fmt.Errorf("threadline token: %w", err)
	}
	fmt.Fprintf(stdout, "nginx       %s   (GraphiQL at /, GraphQL at /query)\n", c.URL)
	for _, in := range c.Instances {
		fmt.Fprintf(stdout, "instance %d  %s   operations http://%s   log %s\n", in.N, in.URL(), in.OpsAddr, in.LogPath)
	}
	fmt.Fprintf(stdout, "Redis       %s\n", c.RedisURL)
	fmt.Fprintf(stdout, "replica     PostgreSQL on 127.0.0.1:%d, read through PgBouncer's %s entry\n", replica.Port, devstack.ReplicaEntry(stack.Database))
	fmt.Fprintf(stdout, "demo token (user 1): %s", token)
	fmt.Fprintf(stdout, "wrote %s; rolling restart: go run ./ops/cluster restart -dir %s; stop: make stop\n", envFile, cfg.Dir)
	return nil
}
