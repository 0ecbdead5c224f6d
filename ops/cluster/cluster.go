package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/threadline/threadline/internal/devstack"
)

// Config describes a cluster for Start. Zero ports are picked free.
type Config struct {
	// Dir is the data directory (.data for make run-cluster): the cluster keeps its files under
	// Dir/cluster and its logs under Dir/log, beside the stack's.
	Dir string
	// Bin is the threadline binary every instance runs.
	Bin string
	// Env is every instance's environment: the services' URLs (DATABASE_URL,
	// DATABASE_DIRECT_URL), the secret, the knobs. Start sets ADDR, OPS_ADDR and REDIS_URL, and
	// the defaults of instanceDefaults where Env has no value.
	Env map[string]string
	// Port is nginx's, on 127.0.0.1.
	Port int
	// InstancePort and OpsPort are the first instance's ADDR and OPS_ADDR ports on 127.0.0.1;
	// the others follow (zero: each a free port).
	InstancePort, OpsPort int
	// RedisPort is the first Redis Cluster node's; the others follow. At most 55533: a node's
	// bus port is its port + 10000.
	RedisPort int
	// FailTimeout is nginx's fail_timeout: how long an instance that failed a request is left
	// out (default 2s; whole seconds, rounded up).
	FailTimeout time.Duration
	// Detach lets every process outlive this one (make run-cluster; `down` stops them).
	// Otherwise they are killed when it dies (the tests).
	Detach bool
	// Log receives a line per step (nil: discarded).
	Log io.Writer
}

// Instances is how many server processes the cluster runs.
const Instances = 3

// instanceDefaults are the settings an instance gets behind nginx unless Env says otherwise.
var instanceDefaults = map[string]string{
	// A rolling restart takes an instance out of nginx's configuration before its SIGTERM;
	// requests that nginx's old workers had already read may still reach it for a moment, and
	// the drain delay serves them before the listener closes.
	"SHUTDOWN_DRAIN_DELAY": "1s",
	// Every connection comes from nginx's address: a limit per client address would be a limit
	// on all the clients of the instance together.
	"WS_MAX_CONNS_PER_ADDR": "100000",
}

// Cluster is a running cluster: nginx in front of Instances server processes, over a Redis
// Cluster and the database of Config.Env.
type Cluster struct {
	// URL is nginx's, http://127.0.0.1:<port>: the one address clients use.
	URL string
	// RedisURL names the Redis Cluster (its three nodes) as the instances' REDIS_URL.
	RedisURL  string
	Instances []*Instance

	cfg   Config
	nginx *devstack.Process
	// stopRedis stops the Redis Cluster's nodes (nil: a cluster attached from its state file).
	stopRedis func() error
}

// Instance is one server process of a cluster, always on the same ADDR and OPS_ADDR.
type Instance struct {
	N       int    // 1, 2, 3
	Addr    string // ADDR: host:port
	OpsAddr string // OPS_ADDR
	Bin     string
	Env     []string // its whole environment
	LogPath string
	PidFile string
	Detach  bool

	proc *devstack.Process // nil when another process started it
}

// URL is the instance's own base URL, past nginx.
func (in *Instance) URL() string { return "http://" + in.Addr }

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" || c.Bin == "" {
		return c, errors.New("cluster: Config.Dir and Config.Bin are required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, err
	}
	c.Dir = dir
	if c.Bin, err = filepath.Abs(c.Bin); err != nil {
		return c, err
	}
	if c.FailTimeout == 0 {
		c.FailTimeout = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.RedisPort > 55533 {
		return c, fmt.Errorf("cluster: Redis port %d: the nodes' bus ports (port + 10000) must stay below 65536", c.RedisPort)
	}
	return c, nil
}

func (c Config) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

// ports returns n ports from base on, or n free ports when base is 0.
func ports(base, n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		if base != 0 {
			out[i] = base + i
			continue
		}
		p, err := devstack.FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Start starts the Redis Cluster, the instances (each waited for until /readyz answers 200)
// and nginx in front of them, and records the cluster in Dir/cluster/cluster.json.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.path("cluster", "run"), cfg.path("log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c = &Cluster{cfg: cfg}
	started := c // c is nil when an error is returned
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "cluster: "+format+"\n", args...) }

	var redisPorts [3]int
	if cfg.RedisPort != 0 {
		redisPorts = [3]int{cfg.RedisPort, cfg.RedisPort + 1, cfg.RedisPort + 2}
	}
	addrs, stopRedis, err := devstack.RedisClusterConfig{Dir: cfg.path("cluster", "redis"), Ports: redisPorts, Detach: cfg.Detach}.Start(ctx)
	if err != nil {
		return nil, err
	}
	c.stopRedis = stopRedis
	c.RedisURL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	logf("Redis Cluster of three masters on %s", strings.Join(addrs, ", "))

	instancePorts, err := ports(cfg.InstancePort, Instances)
	if err != nil {
		return nil, err
	}
	opsPorts, err := ports(cfg.OpsPort, Instances)
	if err != nil {
		return nil, err
	}
	for i := range Instances {
		env := maps.Clone(instanceDefaults)
		maps.Copy(env, cfg.Env)
		in := &Instance{
			N: i + 1, Bin: cfg.Bin, Detach: cfg.Detach,
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(instancePorts[i])),
			OpsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opsPorts[i])),
			LogPath: cfg.path("log", fmt.Sprintf("threadline-%d.log", i+1)),
			PidFile: cfg.path("cluster", "run", fmt.Sprintf("threadline-%d.pid", i+1)),
		}
		env["ADDR"], env["OPS_ADDR"], env["REDIS_URL"] = in.Addr, in.OpsAddr, c.RedisURL
		for _, k := range slices.Sorted(maps.Keys(env)) {
			in.Env = append(in.Env, k+"="+env[k])
		}
		c.Instances = append(c.Instances, in)
		if err := in.Start(ctx); err != nil {
			return nil, err
		}
		logf("instance %d on %s (operations %s, pid %d, log %s)", in.N, in.Addr, in.OpsAddr, in.proc.Pid, in.LogPath)
	}

	if cfg.Port == 0 {
		if cfg.Port, err = devstack.FreePort(); err != nil {
			return nil, err
		}
		c.cfg.Port = cfg.Port
	}
	nginxCfg, err := c.nginxConfig()
	if err != nil {
		return nil, err
	}
	if c.nginx, err = nginxCfg.Start(ctx); err != nil {
		return nil, err
	}
	c.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	logf("nginx on %s (pid %d, logs %s, %s)", c.URL, c.nginx.Pid, cfg.path("log", "nginx-access.log"), cfg.path("log", "nginx-error.log"))
	if err := c.save(); err != nil {
		return nil, err
	}
	return c, nil
}

//go:embed nginx-http.conf.tmpl
var nginxHTTPTemplate string

var nginxHTTP = template.Must(template.New("nginx-http.conf.tmpl").Parse(nginxHTTPTemplate))

// upstream is one instance in nginx's configuration.
type upstream struct {
	Addr string
	// Down takes the instance out of rotation (a rolling restart's first step).
	Down bool
}

// nginxConfig renders the cluster's nginx configuration, with the instances numbered in down
// out of rotation.
func (c *Cluster) nginxConfig(down ...int) (devstack.NginxConfig, error) {
	var upstreams []upstream
	for _, in := range c.Instances {
		upstreams = append(upstreams, upstream{Addr: in.Addr, Down: slices.Contains(down, in.N)})
	}
	accessLog := c.cfg.path("log", "nginx-access.log")
	var b strings.Builder
	err := nginxHTTP.Execute(&b, struct {
		Listen, AccessLog, FailTimeout string
		Instances                      []upstream
	}{
		Listen:    net.JoinHostPort("127.0.0.1", strconv.Itoa(c.cfg.Port)),
		AccessLog: strconv.Quote(accessLog),
		// nginx reads fail_timeout in whole seconds.
		FailTimeout: fmt.Sprintf("%ds", max(1, int((c.cfg.FailTimeout+time.Second-1)/time.Second))),
		Instances:   upstreams,
	})
	if err != nil {
		return devstack.NginxConfig{}, err
	}
	return devstack.NginxConfig{
		Dir: c.cfg.path("cluster", "nginx"), ErrorLog: c.cfg.path("log", "nginx-error.log"),
		AccessLogs: []string{accessLog}, HTTP: b.String(), Port: c.cfg.Port, Detach: c.cfg.Detach,
	}, nil
}

// reload has nginx serve with the instances in down out of rotation (none: all in).
func (c *Cluster) reload(ctx context.Context, down ...int) error {
	cfg, err := c.nginxConfig(down...)
	if err != nil {
		return err
	}
	return cfg.Reload(ctx)
}

// Start starts the instance's process and waits until its /readyz answers 200.
func (in *Instance) Start(ctx context.Context) error {
	p, err := devstack.Spawn(devstack.Command{
		Name: fmt.Sprintf("threadline %d", in.N), Path: in.Bin, Args: []string{"serve"}, Env: in.Env,
		LogPath: in.LogPath, PidFile: in.PidFile, Detach: in.Detach,
	})
	if err != nil {
		return err
	}
	in.proc = p
	if err := in.WaitReady(ctx); err != nil {
		p.Stop(time.Second)
		return fmt.Errorf("cluster: instance %d: %w\n%s", in.N, err, p.NewLog())
	}
	return nil
}

// WaitReady waits until the instance's /readyz answers 200, at most 30 s.
func (in *Instance) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		err := fmt.Errorf("not running")
		if in.running() {
			err = readyz(ctx, client, in.URL())
			if err == nil {
				return nil
			}
		} else if in.proc != nil {
			return fmt.Errorf("exited before it was ready (%v)", in.proc.Err())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready on %s: %v", in.Addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func readyz(ctx context.Context, client *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %d", res.StatusCode)
	}
	return nil
}

func (in *Instance) comm() string {
	base := filepath.Base(in.Bin)
	return base[:min(len(base), 15)]
}

func (in *Instance) running() bool { return devstack.RunningPid(in.PidFile, in.comm()) != 0 }

// Signal sends sig to the instance's process, if it runs.
func (in *Instance) Signal(sig syscall.Signal) error {
	pid := devstack.RunningPid(in.PidFile, in.comm())
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cluster: instance %d: %w", in.N, err)
	}
	return nil
}

// Wait waits until the instance's process has exited and returns its exit status when this
// process started it (nil otherwise: another process's child tells nothing of how it ended).
func (in *Instance) Wait(ctx context.Context) error {
	if in.proc != nil {
		select {
		case <-in.proc.Done():
			return in.proc.Err()
		case <-ctx.Done():
			return fmt.Errorf("cluster: instance %d still runs: %w", in.N, ctx.Err())
		}
	}
	for in.running() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: instance %d still runs: %w", in.N, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Stop sends SIGTERM and waits for the process to exit, killing it after grace.
func (in *Instance) Stop(grace time.Duration) error {
	if in.proc != nil {
		return in.proc.Stop(grace)
	}
	return devstack.StopPidFile(in.PidFile, in.comm(), grace)
}

// Restart is what a rolling restart did to one instance, and when.
type Restart struct {
	Instance int
	// Stopped is how long the process took from SIGTERM to its exit; Ready, from its start
	// again until /readyz answered 200.
	Stopped, Ready time.Duration
}

func (r Restart) String() string {
	return fmt.Sprintf("instance %d: SIGTERM to exit %s, start to ready %s",
		r.Instance, r.Stopped.Round(time.Millisecond), r.Ready.Round(time.Millisecond))
}

// RollingRestart restarts the instances one at a time, so that at most one is out at any time:
//
//  1. nginx is reloaded with the instance marked down: from then on no connection reaches it
//     (devstack.NginxConfig.Reload returns once the old workers have stopped accepting);
//     requests those workers had read already may still go to it.
//  2. SIGTERM: for SHUTDOWN_DRAIN_DELAY the instance serves those; then it sends its WebSocket
//     clients away with 1001 (they come back through nginx, to the other instances, resuming
//     with afterSeq), closes its listener and finishes the requests it has.
//  3. Wait for the process to exit (0: a clean shutdown), start it again on the same address,
//     wait for /readyz, and reload nginx with every instance in rotation.
//
// nginx open source has no active health checks, hence the reloads: its passive checks
// (max_fails, fail_timeout) learn of a stopped instance only from a failed connection, and a
// connection the kernel had queued when the listener closed fails after the request was sent,
// which nginx does not retry for a POST. report, if not nil, gets each instance's timings as
// they come.
func (c *Cluster) RollingRestart(ctx context.Context, report func(Restart)) ([]Restart, error) {
	var out []Restart
	for _, in := range c.Instances {
		r := Restart{Instance: in.N}
		if err := c.reload(ctx, in.N); err != nil {
			return out, err
		}
		began := time.Now()
		if err := in.Signal(syscall.SIGTERM); err != nil {
			return out, err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := in.Wait(wctx)
		cancel()
		if err != nil {
			return out, fmt.Errorf("cluster: instance %d did not shut down cleanly: %w", in.N, err)
		}
		exited := time.Now()
		r.Stopped = exited.Sub(began)
		if err := in.Start(ctx); err != nil {
			return out, err
		}
		r.Ready = time.Since(exited)
		if err := c.reload(ctx); err != nil {
			return out, err
		}
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out, nil
}

// Stop stops nginx, the instances and the Redis Cluster.
func (c *Cluster) Stop() error {
	var errs []error
	if c.nginx != nil {
		errs = append(errs, c.nginx.Stop(10*time.Second))
	} else {
		errs = append(errs, devstack.StopNginx(c.cfg.path("cluster", "nginx")))
	}
	for _, in := range c.Instances {
		errs = append(errs, in.Stop(30*time.Second))
	}
	if c.stopRedis != nil {
		errs = append(errs, c.stopRedis())
	} else {
		errs = append(errs, devstack.StopRedisCluster(c.cfg.path("cluster", "redis")))
	}
	return errors.Join(errs...)
}

// state is what cluster.json keeps for the commands that find a detached cluster again.
type state struct {
	URL         string        `json:"url"`
	Port        int           `json:"port"`
	RedisURL    string        `json:"redis_url"`
	FailTimeout time.Duration `json:"fail_timeout"`
	Instances   []*Instance   `json:"instances"`
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(state{URL: c.URL, Port: c.cfg.Port, RedisURL: c.RedisURL, FailTimeout: c.cfg.FailTimeout, Instances: c.Instances}, "", "  ")
	if err != nil {
		return err
	}
	// 0600: the instances' environment holds the database password.
	return os.WriteFile(c.cfg.path("cluster", "cluster.json"), append(b, '\n'), 0o600)
}

// Attach returns the cluster recorded under dir by Start (possibly in another process).
func Attach(dir string) (*Cluster, error) {
	cfg, err := Config{Dir: dir, Bin: "threadline"}.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(cfg.path("cluster", "cluster.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster: no cluster under %s (start one with make run-cluster)", cfg.Dir)
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", cfg.path("cluster", "cluster.json"), err)
	}
	cfg.FailTimeout, cfg.Port, cfg.Detach = st.FailTimeout, st.Port, true
	return &Cluster{URL: st.URL, RedisURL: st.RedisURL, Instances: st.Instances, cfg: cfg}, nil
}

// Down stops whatever cluster runs under dir, found by its pid files; nothing running is not an
// error. The stack's services (ops/stack) are left alone.
func Down(dir string) error {
	cfg, err := Config{Dir: dir, Bin: "threadline"}.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, devstack.StopNginx(cfg.path("cluster", "nginx")))
	pidFiles, _ := filepath.Glob(cfg.path("cluster", "run", "threadline-*.pid"))
	comm := "threadline"
	if c, err := Attach(dir); err == nil && len(c.Instances) > 0 {
		comm = c.Instances[0].comm()
	}
	for _, f := range pidFiles {
		errs = append(errs, devstack.StopPidFile(f, comm, 30*time.Second))
	}
	errs = append(errs, devstack.StopRedisCluster(cfg.path("cluster", "redis")))
	return errors.Join(errs...)
}
