package devstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// redisConf is a redis.conf for a private, memory-only Redis on 127.0.0.1. With certificates it
// listens on a TLS port only (port 0) and requires a client certificate the CA signed.
func redisConf(port int, dir string, cluster bool, certs *TLS) string {
	var b strings.Builder
	if certs == nil {
		fmt.Fprintf(&b, "bind 127.0.0.1\nport %d\nprotected-mode no\ndaemonize no\n", port)
	} else {
		fmt.Fprintf(&b, "bind 127.0.0.1\nport 0\ntls-port %d\nprotected-mode no\ndaemonize no\n", port)
		fmt.Fprintf(&b, "tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients yes\n",
			strconv.Quote(certs.CertFile), strconv.Quote(certs.KeyFile), strconv.Quote(certs.CAFile))
		if cluster {
			b.WriteString("tls-cluster yes\ntls-replication yes\n")
		}
	}
	b.WriteString("save \"\"\nappendonly no\nlogfile \"\"\n")
	fmt.Fprintf(&b, "dir %s\n", strconv.Quote(dir))
	if cluster {
		b.WriteString("cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 5000\n")
	}
	return b.String()
}

// redisSpec: Redis does not mind running as root, so it runs as the current
// user, unlike PostgreSQL and PgBouncer.
func (s *Stack) redisSpec() (procSpec, error) {
	bin, err := lookRedis("redis-server")
	if err != nil {
		return procSpec{}, err
	}
	dir := s.path("redis")
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(redisConf(s.RedisPort, dir, false, s.TLS)), 0o644); err != nil {
		return procSpec{}, fmt.Errorf("devstack: %w", err)
	}
	return procSpec{
		service: "redis", path: bin, args: []string{conf}, dir: dir,
		logPath: s.logFile(redisSvc), detach: s.cfg.Detach,
	}, nil
}

var redisStop = []stopStep{{syscall.SIGTERM, 10 * time.Second}}

// startRedisNode starts a redis-server with its configuration, data, log and
// pid file (redis.pid) in dir, tied to this process unless detach, and waits
// until it answers PING. With certs it listens on a TLS port only.
func startRedisNode(ctx context.Context, dir string, port int, cluster, detach bool, certs *TLS) (*proc, error) {
	clientTLS, err := certs.clientTLS()
	if err != nil {
		return nil, err
	}
	bin, err := lookRedis("redis-server")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	// A cluster node must start empty; an old nodes.conf would make it rejoin a
	// cluster that no longer exists.
	if err := os.Remove(filepath.Join(dir, "nodes.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(redisConf(port, dir, cluster, certs)), 0o644); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	if !portFree(port) {
		return nil, &PortInUseError{Service: "redis", Port: port}
	}
	p, err := startProc(procSpec{
		service: "redis", path: bin, args: []string{conf}, dir: dir,
		logPath: filepath.Join(dir, "redis.log"), detach: detach,
	})
	if err != nil {
		return nil, err
	}
	if err := writePid(filepath.Join(dir, "redis.pid"), p.pid); err != nil {
		stopPid(p.pid, "redis-server", redisStop...)
		return nil, err
	}
	if err := waitReady(ctx, p, "redis", "redis-server", port, func(ctx context.Context) error {
		return pingRedis(ctx, addr(port), clientTLS)
	}); err != nil {
		stopPid(p.pid, "redis-server", redisStop...)
		return nil, err
	}
	return p, nil
}

// StartRedisServer starts a standalone, memory-only redis-server on port
// (0: a free port) with its files in dir, for one test that needs a Redis of
// its own. It returns the server's host:port and a function that stops it.
// The server is killed if this process dies.
func StartRedisServer(ctx context.Context, dir string, port int) (address string, stop func() error, err error) {
	return startRedisServer(ctx, dir, port, nil)
}

// StartRedisServerTLS is StartRedisServer for a Redis that listens on a TLS port only and
// requires a client certificate (see TLS): its address speaks TLS, with certs' CA and client
// certificate.
func StartRedisServerTLS(ctx context.Context, dir string, port int, certs TLS) (address string, stop func() error, err error) {
	return startRedisServer(ctx, dir, port, &certs)
}

func startRedisServer(ctx context.Context, dir string, port int, certs *TLS) (address string, stop func() error, err error) {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	for attempt := 0; ; attempt++ {
		p := port
		if p == 0 {
			if p, err = FreePort(); err != nil {
				return "", nil, err
			}
		}
		pr, err := startRedisNode(ctx, dir, p, false, false, certs)
		var inUse *PortInUseError
		if errors.As(err, &inUse) && port == 0 && attempt < 5 {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return addr(p), func() error { return stopPid(pr.pid, "redis-server", redisStop...) }, nil
	}
}

// maxClusterPort keeps the cluster bus port (port+10000) valid.
const maxClusterPort = 55535

// StartRedisCluster starts a three-master Redis Cluster (no replicas) on
// 127.0.0.1 with each node's files under dir/node-N, joined with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok. Zero ports are picked free (with their bus port,
// port+10000, free too); given ports must be <= 55535. It returns the nodes'
// host:port addresses and a function that stops them all. The nodes are
// killed if this process dies.
func StartRedisCluster(ctx context.Context, dir string, ports [3]int) (addrs []string, stop func() error, err error) {
	return RedisClusterConfig{Dir: dir, Ports: ports}.Start(ctx)
}

// StartRedisClusterTLS is StartRedisCluster for nodes that listen on TLS ports only, require a
// client certificate (see TLS) and speak TLS to each other on the cluster bus too.
func StartRedisClusterTLS(ctx context.Context, dir string, ports [3]int, certs TLS) (addrs []string, stop func() error, err error) {
	return RedisClusterConfig{Dir: dir, Ports: ports, TLS: &certs}.Start(ctx)
}

// RedisClusterConfig describes a three-master Redis Cluster for Start.
type RedisClusterConfig struct {
	// Dir holds each node's configuration, nodes.conf, log and pid file under Dir/node-N,
	// and the log of `redis-cli --cluster create`.
	Dir string
	// Ports of the nodes on 127.0.0.1, each <= 55535 (its bus port is port+10000); zero: a
	// free port whose bus port is free too.
	Ports [3]int
	// Detach lets the nodes outlive this process (StopRedisCluster stops them); otherwise they
	// are killed when it dies.
	Detach bool
	// TLS, when set, makes the nodes listen on TLS ports only (see StartRedisClusterTLS).
	TLS *TLS
}

// Start starts the nodes, empty, joins them with `redis-cli --cluster create`
// and waits until every node reports cluster_state:ok. It returns the nodes'
// host:port addresses and a function that stops them all.
func (c RedisClusterConfig) Start(ctx context.Context) (addrs []string, stop func() error, err error) {
	dir, ports, certs := c.Dir, c.Ports, c.TLS
	clientTLS, err := certs.clientTLS()
	if err != nil {
		return nil, nil, err
	}
	cli, err := lookRedis("redis-cli")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()
	var procs []*proc
	stopAll := func() error {
		var errs []error
		for _, p := range procs {
			errs = append(errs, stopPid(p.pid, "redis-server", redisStop...))
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	taken := map[int]bool{}
	for i, want := range ports {
		if want < 0 || want > maxClusterPort {
			return nil, nil, fmt.Errorf("devstack: redis cluster: port %d is not in 1..%d (the cluster bus uses port+10000)", want, maxClusterPort)
		}
		for attempt := 0; ; attempt++ {
			port := want
			if port == 0 {
				if port, err = freeClusterPort(taken); err != nil {
					return nil, nil, err
				}
			} else if !portFree(port + 10000) {
				return nil, nil, &PortInUseError{Service: "redis cluster bus", Port: port + 10000}
			}
			p, err := startRedisNode(ctx, filepath.Join(dir, fmt.Sprintf("node-%d", i)), port, true, c.Detach, certs)
			var inUse *PortInUseError
			if errors.As(err, &inUse) && want == 0 && attempt < 5 {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			procs = append(procs, p)
			taken[port], taken[port+10000] = true, true
			addrs = append(addrs, addr(port))
			break
		}
	}
	var args []string
	if certs != nil {
		args = []string{"--tls", "--cacert", certs.CAFile, "--cert", certs.ClientCertFile, "--key", certs.ClientKeyFile}
	}
	args = append(args, "--cluster", "create")
	args = append(args, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if err := runProc(procSpec{
		service: "redis cluster", path: cli, args: args, dir: dir,
		logPath: filepath.Join(dir, "cluster-create.log"),
	}); err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		if err := waitClusterOK(ctx, a, clientTLS); err != nil {
			return nil, nil, err
		}
	}
	return addrs, stopAll, nil
}

// StopRedisCluster stops the nodes of a cluster started under dir (by
// RedisClusterConfig.Start, possibly in another process), found by their pid
// files. Nothing running is not an error.
func StopRedisCluster(dir string) error {
	nodes, err := filepath.Glob(filepath.Join(dir, "node-*", "redis.pid"))
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	var errs []error
	for _, pidFile := range nodes {
		errs = append(errs, StopPidFile(pidFile, "redis-server", redisStop[0].grace))
	}
	return errors.Join(errs...)
}

// freeClusterPort picks a free port <= maxClusterPort whose bus port is free too.
func freeClusterPort(taken map[int]bool) (int, error) {
	for range 200 {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if p <= maxClusterPort && !taken[p] && !taken[p+10000] && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("devstack: redis cluster: no free port pair (port, port+10000) found")
}

func waitClusterOK(ctx context.Context, address string, tlsConfig *tls.Config) error {
	var info string
	var err error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err = redisDo(pctx, address, tlsConfig, "CLUSTER", "INFO")
		cancel()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: redis cluster node %s not ok: %v %s", address, err, info)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

func pingRedis(ctx context.Context, address string, tlsConfig *tls.Config) error {
	reply, err := redisDo(ctx, address, tlsConfig, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("redis %s: PING answered %q", address, reply)
	}
	return nil
}

// redisDo sends one command over a new connection (TLS when tlsConfig is
// set) and returns a simple string, integer or bulk string reply. It is all
// the Redis protocol this package needs, so the package does not depend on a
// Redis client.
func redisDo(ctx context.Context, address string, tlsConfig *tls.Config, args ...string) (string, error) {
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, "tcp", address)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", address)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	conn.SetDeadline(deadline)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New("redis: " + line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("redis: bad reply %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("redis: unexpected reply %q", line)
	}
}
